// The epilogue of Strata's fused ops (com.strata FusedConv, FusedGemm, FusedMatMul), which graph
// passes create from Conv/Gemm/MatMul followed by Add and activations (docs/passes.md):
//   Y = act_k(... act_1(op(A, B) + bias + residual))
// `residual` is the optional last input (index 3), the same shape as Y; the activations are listed
// in the attribute `activations` with their parameters in `activation_alpha`/`activation_beta`.
// On oneDNN the epilogue becomes post-ops (a sum for the residual, then eltwise ops); Strata's own
// GEMM takes the activations (ukernels/packed_gemm_f32.h); the reference paths use Apply().
#pragma once

#include <string>
#include <vector>

#include "kernels/cpu/nn_common.h"
#include "kernels/cpu/ukernels/activation.h"

namespace strata::cpu {

class Epilogue {
 public:
  Status Load(const KernelInfo& info) {
    const std::vector<std::string> names = info.attr_strings("activations");
    const std::vector<float> alpha = info.attr_floats("activation_alpha"), beta = info.attr_floats("activation_beta");
    if (alpha.size() != names.size() || beta.size() != names.size())
      return info.Error("activation_alpha and activation_beta need one value per activation (" +
                        std::to_string(names.size()) + ")");
    using A = uk::Activation;
    static const std::pair<const char*, A> kNames[] = {
        {"Relu", A::kRelu},       {"LeakyRelu", A::kLeakyRelu},     {"Clip", A::kClip},
        {"Sigmoid", A::kSigmoid}, {"Tanh", A::kTanh},               {"HardSigmoid", A::kHardSigmoid},
        {"HardSwish", A::kHardSwish}, {"Gelu", A::kGelu},           {"GeluTanh", A::kGeluTanh}};
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
  bool empty() const { return ops_.empty() && !residual_; }
  const std::vector<uk::ActivationOp>& activations() const { return ops_; }

  // oneDNN post-ops: a sum (of what the caller put in the destination: the residual, or Gemm's
  // beta*C), then the activations.
  dnnl::post_ops PostOps(bool sum, float sum_scale) const { return onednn::PostOps(ops_, sum, sum_scale); }

  // Attributes with the residual as the sum.
  dnnl::primitive_attr Attr() const {
    dnnl::primitive_attr attr;
    if (!empty()) attr.set_post_ops(PostOps(residual_, 1.f));
    return attr;
  }

  // y[i] = activations(y[i] + residual[i]) for the reference paths.
  void Apply(float* y, int64_t n, const float* residual) const {
    if (empty()) return;
    for (int64_t i = 0; i < n; ++i) {
      float v = y[i];
      if (residual) v += residual[i];
      for (const uk::ActivationOp& op : ops_) v = uk::Activate(op, v);
      y[i] = v;
    }
  }

 private:
  std::vector<uk::ActivationOp> ops_;
  bool residual_ = false;
};

}  // namespace strata::cpu
