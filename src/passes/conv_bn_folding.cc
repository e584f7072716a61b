// O2: Conv followed by inference-mode BatchNormalization becomes one Conv with rescaled weights and
// bias: y = (conv(x, W) + B - mean) * s + beta with s = scale / sqrt(var + eps), so
// W'[m] = W[m] * s[m] and B'[m] = (B[m] - mean[m]) * s[m] + beta[m]. Needs float32 constant weights
// and BN parameters, a Conv output read only by the BN, and a BN that returns only Y.
#include <cmath>

#include "passes/graph_editor.h"
#include "passes/graph_pass.h"

namespace strata::passes {
namespace {

bool FloatVector(const Tensor* t, int64_t n) {
  return t && t->dtype() == DType::kFloat && t->rank() == 1 && t->numel() == n;
}

class ConvBnFolding final : public GraphPass {
 public:
  std::string_view name() const override { return "conv-bn-folding"; }
  int level() const override { return 2; }

  Result<bool> Apply(ir::Model& model) override {
    GraphEditor ed(model);
    for (int i = 0; i < ed.num_nodes(); ++i) {
      const ir::Node& bn = ed.node(i);
      if (bn.op_type != "BatchNormalization" || bn.domain != ir::kOnnxDomain || bn.inputs.size() != 5) continue;
      if (AttrInt(bn, "training_mode", 0) != 0 || (ed.OpsetOf(bn) < 7 && AttrInt(bn, "is_test", 0) == 0)) continue;
      bool extra_outputs = false;
      for (size_t k = 1; k < bn.outputs.size(); ++k) extra_outputs |= !bn.outputs[k].empty();
      if (extra_outputs || bn.outputs.empty()) continue;
      const int c = ed.Producer(bn.inputs[0]);
      if (c < 0) continue;
      const ir::Node& conv = ed.node(c);
      if (!IsOp(conv, "Conv", 2) || !ed.HasSingleConsumer(bn.inputs[0])) continue;
      const Tensor* w = ed.Constant(conv.inputs[1]);
      if (!w || w->dtype() != DType::kFloat || w->rank() < 3) continue;
      const int64_t m = w->dim(0);
      const bool has_bias = conv.inputs.size() > 2 && !conv.inputs[2].empty();
      const Tensor* b = has_bias ? ed.Constant(conv.inputs[2]) : nullptr;
      if (has_bias && !FloatVector(b, m)) continue;
      const Tensor* scale = ed.Constant(bn.inputs[1]);
      const Tensor* beta = ed.Constant(bn.inputs[2]);
      const Tensor* mean = ed.Constant(bn.inputs[3]);
      const Tensor* var = ed.Constant(bn.inputs[4]);
      if (!FloatVector(scale, m) || !FloatVector(beta, m) || !FloatVector(mean, m) || !FloatVector(var, m)) continue;
      const double eps = AttrFloat(bn, "epsilon", 1e-5f);

      Tensor nw(DType::kFloat, w->shape()), nb(DType::kFloat, {m});
      const int64_t per = w->numel() / std::max<int64_t>(m, 1);
      for (int64_t o = 0; o < m; ++o) {
        const double s = static_cast<double>(scale->data<float>()[o]) /
                         std::sqrt(static_cast<double>(var->data<float>()[o]) + eps);
        for (int64_t k = 0; k < per; ++k)
          nw.data<float>()[o * per + k] = static_cast<float>(w->data<float>()[o * per + k] * s);
        const double bias = b ? b->data<float>()[o] : 0.0;
        nb.data<float>()[o] = static_cast<float>((bias - mean->data<float>()[o]) * s + beta->data<float>()[o]);
      }
      ir::Node fused = conv;
      fused.inputs.resize(3);
      fused.inputs[1] = ed.AddInitializer(conv.inputs[1] + "_bn", std::move(nw));
      fused.inputs[2] = ed.AddInitializer((conv.name.empty() ? conv.outputs[0] : conv.name) + "_bn_bias", std::move(nb));
      fused.outputs = {bn.outputs[0]};
      if (!bn.name.empty() && fused.name.empty()) fused.name = bn.name;
      // The fused Conv takes the BN's place: every input it reads is defined before the BN.
      ed.Remove(c);
      ed.ReplaceNode(i, std::move(fused));
    }
    return ed.Commit();
  }
};

const PassRegistrar kReg{{"conv-bn-folding", order::kConvBn, [] { return std::make_unique<ConvBnFolding>(); }}};

}  // namespace
}  // namespace strata::passes
