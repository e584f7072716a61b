// O1: removes nodes that return their input unchanged: Identity, inference-mode Dropout (mask
// unused), Cast to the input's own type, Reshape to the input's own static shape, identity
// Transposes and Transpose pairs that undo each other, and Unsqueeze/Squeeze pairs that cancel.
#include <algorithm>
#include <optional>

#include "passes/graph_editor.h"
#include "passes/graph_pass.h"

namespace strata::passes {
namespace {

std::optional<std::vector<int64_t>> TransposePerm(const GraphEditor& ed, const ir::Node& n) {
  if (const ir::Attribute* a = n.attr("perm")) return a->ints;
  auto r = ed.Rank(n.inputs[0]);
  if (!r) return std::nullopt;
  std::vector<int64_t> p(static_cast<size_t>(*r));
  for (int64_t i = 0; i < *r; ++i) p[static_cast<size_t>(i)] = *r - 1 - i;
  return p;
}

bool IsIdentityPerm(const std::vector<int64_t>& p) {
  for (size_t i = 0; i < p.size(); ++i)
    if (p[i] != static_cast<int64_t>(i)) return false;
  return true;
}

// Squeeze/Unsqueeze axes (attribute before opset 13, input since), normalised against `rank` and sorted.
std::optional<std::vector<int64_t>> SqueezeAxes(const GraphEditor& ed, const ir::Node& n, int64_t rank) {
  std::vector<int64_t> axes;
  if (ed.OpsetOf(n) >= 13) {
    if (n.inputs.size() < 2 || n.inputs[1].empty()) return std::nullopt;
    const Tensor* t = ed.Constant(n.inputs[1]);
    if (!t || t->rank() > 1) return std::nullopt;
    for (int64_t i = 0; i < t->numel(); ++i) axes.push_back(t->GetAsInt64(i));
  } else {
    const ir::Attribute* a = n.attr("axes");
    if (!a) return std::nullopt;
    axes = a->ints;
  }
  if (axes.empty()) return std::nullopt;
  for (auto& a : axes) {
    if (a < -rank || a >= rank) return std::nullopt;
    if (a < 0) a += rank;
  }
  std::sort(axes.begin(), axes.end());
  if (std::adjacent_find(axes.begin(), axes.end()) != axes.end()) return std::nullopt;
  return axes;
}

class NoOpElimination final : public GraphPass {
 public:
  std::string_view name() const override { return "noop-elimination"; }
  int level() const override { return 1; }

  Result<bool> Apply(ir::Model& model) override {
    GraphEditor ed(model);
    for (int i = 0; i < ed.num_nodes(); ++i) {
      const ir::Node& n = ed.node(i);
      if (n.domain != ir::kOnnxDomain || n.inputs.empty() || n.outputs.empty() || n.inputs[0].empty()) continue;
      if (auto src = Source(ed, n)) ed.Bypass(i, *src, n.outputs[0]);
    }
    return ed.Commit();
  }

 private:
  // The value node `n` merely copies, if it is a no-op.
  static std::optional<std::string> Source(GraphEditor& ed, const ir::Node& n) {
    const std::string& x = n.inputs[0];
    const std::string& op = n.op_type;
    if (op == "Identity") return x;
    if (op == "Dropout") {
      if (ed.OpsetOf(n) < 7 && AttrInt(n, "is_test", 0) == 0) return std::nullopt;
      if (n.inputs.size() > 2 && !n.inputs[2].empty()) {
        double training = 1;
        if (!ed.ConstantScalar(n.inputs[2], &training) || training != 0) return std::nullopt;
      }
      if (n.outputs.size() > 1 && !n.outputs[1].empty()) {
        const std::string& mask = n.outputs[1];
        if (!ed.Rewirable(mask) || !ed.Consumers(mask).empty()) return std::nullopt;
      }
      return x;
    }
    if (op == "Cast") {
      const DType from = ed.ElemType(x);
      const ir::Attribute* to = n.attr("to");
      if (from != DType::kUndefined && to && static_cast<int64_t>(from) == to->i) return x;
      return std::nullopt;
    }
    if (op == "Reshape") {
      Shape in;
      if (n.inputs.size() < 2 || !ed.StaticShape(x, &in)) return std::nullopt;
      const Tensor* s = ed.Constant(n.inputs[1]);
      if (!s || s->rank() != 1 || s->numel() != static_cast<int64_t>(in.size())) return std::nullopt;
      const bool allowzero = AttrInt(n, "allowzero", 0) != 0;
      int wildcards = 0;
      for (int64_t d = 0; d < s->numel(); ++d) {
        const int64_t v = s->GetAsInt64(d);
        if (v == -1) ++wildcards;
        else if (!(v == in[static_cast<size_t>(d)] || (v == 0 && !allowzero))) return std::nullopt;
      }
      // With every other dim equal, one -1 can only resolve to the input's own dim.
      if (wildcards > 1) return std::nullopt;
      return x;
    }
    if (op == "Transpose") {
      auto perm = TransposePerm(ed, n);
      if (!perm) return std::nullopt;
      if (IsIdentityPerm(*perm)) return x;
      const int p = ed.Producer(x);
      if (p < 0) return std::nullopt;
      const ir::Node& prev = ed.node(p);
      if (!IsOp(prev, "Transpose")) return std::nullopt;
      auto first = TransposePerm(ed, prev);
      if (!first || first->size() != perm->size()) return std::nullopt;
      // out[i] = x[first[perm[i]]]
      for (size_t i = 0; i < perm->size(); ++i) {
        const int64_t k = (*perm)[i];
        if (k < 0 || k >= static_cast<int64_t>(first->size()) || (*first)[static_cast<size_t>(k)] != static_cast<int64_t>(i))
          return std::nullopt;
      }
      return prev.inputs[0];
    }
    if (op == "Squeeze" || op == "Unsqueeze") {
      const int p = ed.Producer(x);
      if (p < 0) return std::nullopt;
      const ir::Node& prev = ed.node(p);
      const bool pair = prev.domain == ir::kOnnxDomain && ((op == "Squeeze" && prev.op_type == "Unsqueeze") ||
                                                           (op == "Unsqueeze" && prev.op_type == "Squeeze"));
      if (!pair || prev.inputs.empty()) return std::nullopt;
      // Both axis lists index the higher-rank side: Unsqueeze's output, Squeeze's input.
      const auto r0 = ed.Rank(prev.inputs[0]);
      if (!r0) return std::nullopt;
      std::optional<std::vector<int64_t>> a, b;
      if (op == "Squeeze") {  // Unsqueeze(y, a) then Squeeze(a)
        const auto r1 = ed.Rank(x);  // rank after Unsqueeze
        if (!r1) return std::nullopt;
        a = SqueezeAxes(ed, prev, *r1);
        b = SqueezeAxes(ed, n, *r1);
      } else {  // Squeeze(y, a) then Unsqueeze(a)
        a = SqueezeAxes(ed, prev, *r0);
        b = SqueezeAxes(ed, n, *r0);
      }
      if (a && b && *a == *b) return prev.inputs[0];
      return std::nullopt;
    }
    return std::nullopt;
  }
};

const PassRegistrar kReg{{"noop-elimination", order::kNoOp, [] { return std::make_unique<NoOpElimination>(); }}};

}  // namespace
}  // namespace strata::passes
