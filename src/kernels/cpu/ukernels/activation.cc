#include "kernels/cpu/ukernels/activation.h"

#include <cmath>

#include "kernels/cpu/ukernels/vec_math.h"

namespace strata::cpu::uk {

float Activate(const ActivationOp& op, float x) {
  switch (op.act) {
    case Activation::kRelu: return x > 0 ? x : 0.f;
    case Activation::kLeakyRelu: return x >= 0 ? x : op.alpha * x;
    case Activation::kClip: return std::fmin(std::fmax(x, op.alpha), op.beta);
    case Activation::kSigmoid: return 1.f / (1.f + std::exp(-x));
    case Activation::kTanh: return std::tanh(x);
    case Activation::kHardSigmoid: return std::fmin(1.f, std::fmax(0.f, op.alpha * x + op.beta));
    case Activation::kHardSwish: return x * std::fmin(1.f, std::fmax(0.f, x / 6.f + 0.5f));
    case Activation::kGelu: return 0.5f * x * (1.f + std::erf(x * 0.70710678118654752f));
    case Activation::kGeluTanh:
      return 0.5f * x * (1.f + std::tanh(0.79788456080286536f * (x + 0.044715f * x * x * x)));
  }
  return x;
}

void ApplyActivations(std::span<const ActivationOp> ops, float* y, int64_t ldy, int64_t rows, int64_t cols) {
  const vec::Kernels& k = vec::Active();
  for (int64_t r = 0; r < rows; ++r) {
    float* row = y + r * ldy;
    for (const ActivationOp& op : ops) {
      switch (op.act) {
        case Activation::kGelu: k.gelu_erf(row, row, cols); break;
        case Activation::kGeluTanh: k.gelu_tanh(row, row, cols); break;
        case Activation::kSigmoid: k.sigmoid(row, row, cols); break;
        case Activation::kTanh: k.tanh(row, row, cols); break;
        default:
          for (int64_t j = 0; j < cols; ++j) row[j] = Activate(op, row[j]);
      }
    }
  }
}

}  // namespace strata::cpu::uk
