// Channels-last activations between 2-D convolutions.
//
// oneDNN's fastest f32 convolutions on AVX-512 read and write NHWC. With NCHW tensors every
// convolution pays a reorder on its input and another on its output, which cost as much as the
// convolution itself on MobileNetV2. This pass keeps a tensor channels-last when it only flows from
// one convolution into others (as their input or their residual), so the reorders happen once at
// the edges of each chain. The logical shape stays NCHW; only FusedConv reads the layout
// attributes (`x_layout`, `residual_layout`, `y_layout`: "NCHW" or "NHWC"). It runs last, after
// every fusion, and recomputes the layouts from scratch each time, so it stays consistent with
// whatever the other passes did.
#include <unordered_map>

#include "passes/graph_editor.h"
#include "passes/graph_pass.h"

namespace strata::passes {
namespace {

constexpr std::string_view kNchw = "NCHW", kNhwc = "NHWC";

bool IsConv2d(const GraphEditor& ed, const ir::Node& n) {
  const bool conv = (n.domain == ir::kOnnxDomain && n.op_type == "Conv") ||
                    (n.domain == kStrataDomain && n.op_type == "FusedConv");
  if (!conv || n.outputs.size() != 1 || n.inputs.size() < 2 || n.inputs[0].empty()) return false;
  return ed.ElemType(n.inputs[0]) == DType::kFloat && ed.ElemType(n.outputs[0]) == DType::kFloat &&
         ed.Rank(n.inputs[0]) == 4;
}

std::string_view Layout(const ir::Node& n, std::string_view attr) {
  const ir::Attribute* a = n.attr(attr);
  return a ? std::string_view(a->s) : kNchw;
}

class ConvLayout final : public GraphPass {
 public:
  std::string_view name() const override { return "conv-layout"; }
  int level() const override { return 3; }

  Result<bool> Apply(ir::Model& model) override {
    GraphEditor ed(model);
    std::vector<char> conv(static_cast<size_t>(ed.num_nodes()), 0);
    for (int i = 0; i < ed.num_nodes(); ++i) conv[static_cast<size_t>(i)] = !ed.removed(i) && IsConv2d(ed, ed.node(i));

    // A convolution's output goes channels-last when every reader is a convolution taking it as
    // its input or residual (never as weights or bias), and nothing outside the graph sees it.
    std::unordered_map<std::string, bool> nhwc;
    for (int i = 0; i < ed.num_nodes(); ++i) {
      if (!conv[static_cast<size_t>(i)]) continue;
      const std::string& y = ed.node(i).outputs[0];
      const std::vector<int> readers = ed.Consumers(y);
      bool ok = !readers.empty() && ed.Rewirable(y);
      for (int c : readers) {
        if (!ok) break;
        const ir::Node& r = ed.node(c);
        ok = conv[static_cast<size_t>(c)] && r.inputs[1] != y && (r.inputs.size() < 3 || r.inputs[2] != y);
      }
      nhwc[y] = ok;
    }
    auto layout_of = [&](const std::string& v) {
      auto it = nhwc.find(v);
      return it != nhwc.end() && it->second ? kNhwc : kNchw;
    };

    for (int i = 0; i < ed.num_nodes(); ++i) {
      if (!conv[static_cast<size_t>(i)]) continue;
      const ir::Node& n = ed.node(i);
      const bool has_residual = n.inputs.size() > 3 && !n.inputs[3].empty();
      const std::string_view x = layout_of(n.inputs[0]), y = layout_of(n.outputs[0]);
      const std::string_view r = has_residual ? layout_of(n.inputs[3]) : kNchw;
      const bool wanted = x == kNhwc || y == kNhwc || r == kNhwc;
      const bool present = n.attr("x_layout") != nullptr;
      if (!wanted && !present) continue;
      if (present && Layout(n, "x_layout") == x && Layout(n, "y_layout") == y && Layout(n, "residual_layout") == r)
        continue;
      ir::Node f = FusedForm(n);
      std::erase_if(f.attributes, [](const ir::Attribute& a) {
        return a.name == "x_layout" || a.name == "y_layout" || a.name == "residual_layout";
      });
      f.attributes.push_back(MakeAttr("x_layout", std::string(x)));
      f.attributes.push_back(MakeAttr("y_layout", std::string(y)));
      f.attributes.push_back(MakeAttr("residual_layout", std::string(r)));
      ed.ReplaceNode(i, std::move(f));
    }
    if (ed.changed()) model.opset_imports[std::string(kStrataDomain)] = 1;
    return ed.Commit();
  }
};

const PassRegistrar kReg{{"conv-layout", order::kConvLayout, [] { return std::make_unique<ConvLayout>(); }}};

}  // namespace
}  // namespace strata::passes
