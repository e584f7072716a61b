// Channels-last activations between 2-D convolutions.
//
// oneDNN's fastest f32 convolutions on AVX-512 read and write NHWC. With NCHW tensors every
// convolution pays a reorder on its input and another on its output, which cost as much as the
// convolution itself on MobileNetV2. This pass keeps a tensor channels-last when it only flows from
// one convolution into others (as their input or their residual), possibly through MaxPool or
// AveragePool (ResNet's stem), so the reorders happen once at the edges of each chain. A
// GlobalAveragePool may read a channels-last tensor too: its [N, C, 1, 1] output is the same in
// both layouts. The logical shape stays NCHW; the layouts are node attributes (FusedConv:
// `x_layout`, `residual_layout`, `y_layout`; com.strata MaxPool/AveragePool/GlobalAveragePool:
// `layout`; "NCHW" or "NHWC"). It runs last, after every fusion, and recomputes the layouts from
// scratch each time, so it stays consistent with whatever the other passes did.
#include <algorithm>
#include <unordered_map>
#include <vector>

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

bool IsOnnxOrStrata(const ir::Node& n) { return n.domain == ir::kOnnxDomain || n.domain == kStrataDomain; }

// Pooling that keeps its input's layout: 2-D float32 MaxPool (without Indices) and AveragePool.
bool IsPool2d(const GraphEditor& ed, const ir::Node& n) {
  if (!IsOnnxOrStrata(n) || (n.op_type != "MaxPool" && n.op_type != "AveragePool")) return false;
  if (n.inputs.empty() || n.inputs[0].empty() || n.outputs.empty() || n.outputs[0].empty()) return false;
  for (size_t i = 1; i < n.outputs.size(); ++i)
    if (!n.outputs[i].empty()) return false;  // Indices are NCHW offsets
  return ed.ElemType(n.inputs[0]) == DType::kFloat && ed.ElemType(n.outputs[0]) == DType::kFloat &&
         ed.Rank(n.inputs[0]) == 4;
}

bool IsGlobalAvgPool(const GraphEditor& ed, const ir::Node& n) {
  return IsOnnxOrStrata(n) && n.op_type == "GlobalAveragePool" && !n.inputs.empty() && !n.inputs[0].empty() &&
         ed.ElemType(n.inputs[0]) == DType::kFloat && ed.Rank(n.inputs[0]) == 4;
}

std::string_view Layout(const ir::Node& n, std::string_view attr) {
  const ir::Attribute* a = n.attr(attr);
  return a ? std::string_view(a->s) : kNchw;
}

// Union-find over value names, each set with a veto flag: a pool's input and output share one layout.
class LayoutGroups {
 public:
  int Id(const std::string& v) {
    auto [it, fresh] = ids_.try_emplace(v, static_cast<int>(parent_.size()));
    if (fresh) {
      parent_.push_back(it->second);
      ok_.push_back(1);
    }
    return it->second;
  }
  void Union(int a, int b) {
    a = Find(a);
    b = Find(b);
    if (a == b) return;
    parent_[Idx(b)] = a;
    ok_[Idx(a)] = static_cast<char>(ok_[Idx(a)] && ok_[Idx(b)]);
  }
  void Veto(int i) { ok_[Idx(Find(i))] = 0; }
  bool Nhwc(const std::string& v) {
    auto it = ids_.find(v);
    return it != ids_.end() && ok_[Idx(Find(it->second))];
  }

 private:
  static size_t Idx(int i) { return static_cast<size_t>(i); }
  int Find(int i) {
    while (parent_[Idx(i)] != i) i = parent_[Idx(i)] = parent_[Idx(parent_[Idx(i)])];
    return i;
  }
  std::unordered_map<std::string, int> ids_;
  std::vector<int> parent_;
  std::vector<char> ok_;
};

// Sets the layout of a pooling node. A channels-last pool becomes a com.strata node that keeps, as
// its opset override, the ONNX opset it was written for (so its attributes mean the same); an ONNX
// pool that stays NCHW is left alone.
void SetPoolLayout(GraphEditor& ed, int i, std::string_view layout) {
  const ir::Node& n = ed.node(i);
  if (n.domain == ir::kOnnxDomain ? layout == kNchw : Layout(n, "layout") == layout) return;
  ir::Node f = n;
  if (f.domain == ir::kOnnxDomain) {
    f.opset = ed.OpsetOf(n);
    f.domain = std::string(kStrataDomain);
  }
  std::erase_if(f.attributes, [](const ir::Attribute& a) { return a.name == "layout"; });
  f.attributes.push_back(MakeAttr("layout", std::string(layout)));
  ed.ReplaceNode(i, std::move(f));
}

class ConvLayout final : public GraphPass {
 public:
  std::string_view name() const override { return "conv-layout"; }
  int level() const override { return 3; }

  Result<bool> Apply(ir::Model& model) override {
    GraphEditor ed(model);
    enum Role : char { kOther, kConv, kPool, kGlobal };
    std::vector<Role> role(static_cast<size_t>(ed.num_nodes()), kOther);
    for (int i = 0; i < ed.num_nodes(); ++i) {
      if (ed.removed(i)) continue;
      const ir::Node& n = ed.node(i);
      role[static_cast<size_t>(i)] = IsConv2d(ed, n)          ? kConv
                                     : IsPool2d(ed, n)        ? kPool
                                     : IsGlobalAvgPool(ed, n) ? kGlobal
                                                              : kOther;
    }
    auto role_of = [&](int i) { return i < 0 ? kOther : role[static_cast<size_t>(i)]; };

    // A convolution's or pool's output may go channels-last when every reader is a convolution
    // taking it as its input or residual (never as weights or bias) or a pool taking it as its
    // input, and nothing outside the graph sees it. A pool's input and output go together, so
    // conv -> MaxPool -> conv is channels-last only if both tensors qualify.
    LayoutGroups groups;
    for (int i = 0; i < ed.num_nodes(); ++i) {
      const Role r = role_of(i);
      if (r != kConv && r != kPool) continue;
      const ir::Node& n = ed.node(i);
      const std::string& y = n.outputs[0];
      const int id = groups.Id(y);
      if (r == kPool) {
        const int x = groups.Id(n.inputs[0]);
        const Role producer = role_of(ed.Producer(n.inputs[0]));
        if (producer != kConv && producer != kPool) groups.Veto(x);
        groups.Union(x, id);
      }
      const std::vector<int> readers = ed.Consumers(y);
      bool ok = !readers.empty() && ed.Rewirable(y);
      for (int c : readers) {
        if (!ok) break;
        const ir::Node& rn = ed.node(c);
        switch (role_of(c)) {
          case kConv: ok = rn.inputs[1] != y && (rn.inputs.size() < 3 || rn.inputs[2] != y); break;
          case kPool:
          case kGlobal: ok = rn.inputs[0] == y; break;  // pools have one input
          default: ok = false;
        }
      }
      if (!ok) groups.Veto(id);
    }
    auto layout_of = [&](const std::string& v) { return groups.Nhwc(v) ? kNhwc : kNchw; };

    for (int i = 0; i < ed.num_nodes(); ++i) {
      const Role r = role_of(i);
      if (r == kPool || r == kGlobal) {
        SetPoolLayout(ed, i, layout_of(ed.node(i).inputs[0]));
        continue;
      }
      if (r != kConv) continue;
      const ir::Node& n = ed.node(i);
      const bool has_residual = n.inputs.size() > 3 && !n.inputs[3].empty();
      const std::string_view x = layout_of(n.inputs[0]), y = layout_of(n.outputs[0]);
      const std::string_view res = has_residual ? layout_of(n.inputs[3]) : kNchw;
      const bool wanted = x == kNhwc || y == kNhwc || res == kNhwc;
      const bool present = n.attr("x_layout") != nullptr;
      if (!wanted && !present) continue;
      if (present && Layout(n, "x_layout") == x && Layout(n, "y_layout") == y && Layout(n, "residual_layout") == res)
        continue;
      ir::Node f = FusedForm(n);
      std::erase_if(f.attributes, [](const ir::Attribute& a) {
        return a.name == "x_layout" || a.name == "y_layout" || a.name == "residual_layout";
      });
      f.attributes.push_back(MakeAttr("x_layout", std::string(x)));
      f.attributes.push_back(MakeAttr("y_layout", std::string(y)));
      f.attributes.push_back(MakeAttr("residual_layout", std::string(res)));
      ed.ReplaceNode(i, std::move(f));
    }
    if (ed.changed()) model.opset_imports[std::string(kStrataDomain)] = 1;
    return ed.Commit();
  }
};

const PassRegistrar kReg{{"conv-layout", order::kConvLayout, [] { return std::make_unique<ConvLayout>(); }}};

}  // namespace
}  // namespace strata::passes
