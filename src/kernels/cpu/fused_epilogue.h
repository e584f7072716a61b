// The epilogue of Strata's fused ops (com.strata FusedConv, FusedGemm, FusedMatMul), which graph
// passes create from Conv/Gemm/MatMul followed by Add and activations (docs/passes.md):
//   Y = act_k(... act_1(op(A, B) + bias + residual))
// `residual` is the optional last input (index 3), the same shape as Y; the activations are listed
// in the attribute `activations` with their parameters in `activation_alpha`/`activation_beta`.
// On oneDNN the epilogue becomes post-ops (a sum for the residual, then eltwise ops); the reference
// paths apply it elementwise with Apply().
#pragma once

#include <cmath>
#include <string>
#include <vector>

#include "kernels/cpu/nn_common.h"
#include "kernels/cpu/ukernels/vec_math.h"

namespace strata::cpu {

class Epilogue {
 public:
  enum class Act { kRelu, kLeakyRelu, kClip, kSigmoid, kTanh, kHardSigmoid, kHardSwish, kGelu, kGeluTanh };
  struct Op {
    Act act;
    float alpha = 0, beta = 0;
  };

  Status Load(const KernelInfo& info) {
    const std::vector<std::string> names = info.attr_strings("activations");
    const std::vector<float> alpha = info.attr_floats("activation_alpha"), beta = info.attr_floats("activation_beta");
    if (alpha.size() != names.size() || beta.size() != names.size())
      return info.Error("activation_alpha and activation_beta need one value per activation (" +
                        std::to_string(names.size()) + ")");
    static const std::pair<const char*, Act> kNames[] = {
        {"Relu", Act::kRelu},       {"LeakyRelu", Act::kLeakyRelu},     {"Clip", Act::kClip},
        {"Sigmoid", Act::kSigmoid}, {"Tanh", Act::kTanh},               {"HardSigmoid", Act::kHardSigmoid},
        {"HardSwish", Act::kHardSwish}, {"Gelu", Act::kGelu},           {"GeluTanh", Act::kGeluTanh}};
    for (size_t i = 0; i < names.size(); ++i) {
      bool found = false;
      for (const auto& [n, a] : kNames)
        if (names[i] == n) {
          ops_.push_back({a, alpha[i], beta[i]});
          found = true;
        }
      if (!found) return info.Error("unknown fused activation '" + names[i] + "'");
    }
    residual_ = info.input_present(3);
    return Status::Ok();
  }

  bool has_residual() const { return residual_; }
  bool has_activations() const { return !ops_.empty(); }
  bool empty() const { return ops_.empty() && !residual_; }

  // oneDNN post-ops: a sum (of what the caller put in the destination: the residual, or Gemm's
  // beta*C), then the activations.
  dnnl::post_ops PostOps(bool sum, float sum_scale) const {
    using A = dnnl::algorithm;
    dnnl::post_ops po;
    if (sum) po.append_sum(sum_scale);
    for (const Op& op : ops_) {
      switch (op.act) {
        case Act::kRelu: po.append_eltwise(1.f, A::eltwise_relu, 0.f, 0.f); break;
        case Act::kLeakyRelu: po.append_eltwise(1.f, A::eltwise_relu, op.alpha, 0.f); break;
        case Act::kClip: po.append_eltwise(1.f, A::eltwise_clip, op.alpha, op.beta); break;
        case Act::kSigmoid: po.append_eltwise(1.f, A::eltwise_logistic, 0.f, 0.f); break;
        case Act::kTanh: po.append_eltwise(1.f, A::eltwise_tanh, 0.f, 0.f); break;
        case Act::kHardSigmoid:
          po.append_eltwise(1.f, A::eltwise_linear, op.alpha, op.beta);
          po.append_eltwise(1.f, A::eltwise_clip, 0.f, 1.f);
          break;
        case Act::kHardSwish: po.append_eltwise(1.f, A::eltwise_hardswish, 0.f, 0.f); break;
        case Act::kGelu: po.append_eltwise(1.f, A::eltwise_gelu_erf, 0.f, 0.f); break;
        case Act::kGeluTanh: po.append_eltwise(1.f, A::eltwise_gelu_tanh, 0.f, 0.f); break;
      }
    }
    return po;
  }

  // Attributes with the residual as the sum.
  dnnl::primitive_attr Attr() const {
    dnnl::primitive_attr attr;
    if (!empty()) attr.set_post_ops(PostOps(residual_, 1.f));
    return attr;
  }

  // The activations alone, over a rows x cols block with row stride ldc (a finished GEMM tile, whose
  // residual is already in it), with vec_math's kernels where there is one.
  void ApplyActivations(float* y, int64_t ldc, int64_t rows, int64_t cols) const {
    const vec::Kernels& k = vec::Active();
    for (int64_t r = 0; r < rows; ++r) {
      float* row = y + r * ldc;
      for (const Op& op : ops_) {
        switch (op.act) {
          case Act::kGelu: k.gelu_erf(row, row, cols); break;
          case Act::kGeluTanh: k.gelu_tanh(row, row, cols); break;
          case Act::kSigmoid: k.sigmoid(row, row, cols); break;
          case Act::kTanh: k.tanh(row, row, cols); break;
          default:
            for (int64_t j = 0; j < cols; ++j) row[j] = Activate(op, row[j]);
        }
      }
    }
  }

  // y[i] = activations(y[i] + residual[i]) for the reference paths.
  void Apply(float* y, int64_t n, const float* residual) const {
    if (empty()) return;
    for (int64_t i = 0; i < n; ++i) {
      float v = y[i];
      if (residual) v += residual[i];
      for (const Op& op : ops_) v = Activate(op, v);
      y[i] = v;
    }
  }

 private:
  static float Activate(const Op& op, float x) {
    switch (op.act) {
      case Act::kRelu: return x > 0 ? x : 0.f;
      case Act::kLeakyRelu: return x >= 0 ? x : op.alpha * x;
      case Act::kClip: return std::fmin(std::fmax(x, op.alpha), op.beta);
      case Act::kSigmoid: return 1.f / (1.f + std::exp(-x));
      case Act::kTanh: return std::tanh(x);
      case Act::kHardSigmoid: return std::fmin(1.f, std::fmax(0.f, op.alpha * x + op.beta));
      case Act::kHardSwish: return x * std::fmin(1.f, std::fmax(0.f, x / 6.f + 0.5f));
      case Act::kGelu: return 0.5f * x * (1.f + std::erf(x * 0.70710678118654752f));
      case Act::kGeluTanh:
        return 0.5f * x * (1.f + std::tanh(0.79788456080286536f * (x + 0.044715f * x * x * x)));
    }
    return x;
  }

  std::vector<Op> ops_;
  bool residual_ = false;
};

}  // namespace strata::cpu
