// Elementwise activations as GEMM and convolution epilogues apply them: a list of ops over a block of
// rows, with vec_math's kernels where there is one.
#pragma once

#include <cstdint>
#include <span>

namespace strata::cpu::uk {

enum class Activation { kRelu, kLeakyRelu, kClip, kSigmoid, kTanh, kHardSigmoid, kHardSwish, kGelu, kGeluTanh };

// LeakyRelu: alpha is the slope; Clip: [alpha, beta]; HardSigmoid: max(0, min(1, alpha x + beta)).
struct ActivationOp {
  Activation act;
  float alpha = 0, beta = 0;
};

float Activate(const ActivationOp& op, float x);

// Every op in order over a rows x cols block with row stride ldy.
void ApplyActivations(std::span<const ActivationOp> ops, float* y, int64_t ldy, int64_t rows, int64_t cols);

}  // namespace strata::cpu::uk
