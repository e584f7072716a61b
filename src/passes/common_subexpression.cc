// O1: common-subexpression elimination. Two nodes with the same op, domain, opset, attributes and
// inputs compute the same values, so readers of the second read the first. Small initializers with
// identical contents are merged first, so nodes that differ only in which copy of a constant they
// read (exporters repeat axes and shape constants) also match. Random ops and nodes with subgraphs
// are never merged.
#include <map>
#include <unordered_map>

#include "passes/graph_editor.h"
#include "passes/graph_pass.h"

namespace strata::passes {
namespace {

constexpr int64_t kMaxMergedInitializer = 4096;  // elements; larger weights are not compared

class CommonSubexpressionElimination final : public GraphPass {
 public:
  std::string_view name() const override { return "common-subexpression-elimination"; }
  int level() const override { return 1; }

  Result<bool> Apply(ir::Model& model) override {
    GraphEditor ed(model);
    MergeInitializers(ed);
    std::unordered_multimap<std::string, int> seen;
    for (int i = 0; i < ed.num_nodes(); ++i) {
      const ir::Node& n = ed.node(i);
      if (HasSubgraph(n) || IsNondeterministic(n) || n.outputs.empty()) continue;
      const std::string key = Key(n);
      bool merged = false;
      auto [lo, hi] = seen.equal_range(key);
      for (auto it = lo; it != hi && !merged; ++it) merged = TryMerge(ed, it->second, i);
      if (!merged) seen.emplace(key, i);
    }
    return ed.Commit();
  }

 private:
  static std::string Key(const ir::Node& n) {
    std::string k = n.domain + "|" + n.op_type + "|" + std::to_string(n.opset) + "|" + std::to_string(n.outputs.size());
    for (const auto& in : n.inputs) k += "|" + in;
    k += "|";
    for (const auto& a : n.attributes) k += a.name + ",";
    return k;
  }

  // Makes the readers of node `dup` read node `keep` instead, if they compute the same thing.
  static bool TryMerge(GraphEditor& ed, int keep, int dup) {
    const ir::Node& a = ed.node(keep);
    const ir::Node& b = ed.node(dup);
    if (a.inputs != b.inputs || a.attributes.size() != b.attributes.size()) return false;
    for (size_t k = 0; k < a.attributes.size(); ++k)
      if (!AttributesEqual(a.attributes[k], b.attributes[k])) return false;
    for (size_t k = 0; k < b.outputs.size(); ++k) {
      if (b.outputs[k].empty()) continue;
      if (a.outputs[k].empty() || !ed.Rewirable(b.outputs[k])) return false;
    }
    for (size_t k = 0; k < b.outputs.size(); ++k)
      if (!b.outputs[k].empty()) ed.ReplaceUses(b.outputs[k], a.outputs[k]);
    ed.Remove(dup);
    return true;
  }

  static void MergeInitializers(GraphEditor& ed) {
    std::map<std::string, std::vector<std::string>> groups;  // dtype/shape -> names
    for (const auto& [name, t] : ed.graph().initializers) {
      if (t.numel() > kMaxMergedInitializer || ed.IsGraphInput(name) || !ed.Rewirable(name)) continue;
      groups[std::to_string(static_cast<int>(t.dtype())) + ShapeToString(t.shape())].push_back(name);
    }
    for (const auto& [key, names] : groups) {
      std::vector<const std::string*> firsts;
      for (const auto& name : names) {
        const Tensor& t = ed.graph().initializers.at(name);
        bool merged = false;
        for (const std::string* f : firsts) {
          if (!TensorsEqual(ed.graph().initializers.at(*f), t)) continue;
          if (!ed.Consumers(name).empty()) ed.ReplaceUses(name, *f);
          merged = true;
          break;
        }
        if (!merged) firsts.push_back(&name);
      }
    }
  }
};

const PassRegistrar kReg{{"common-subexpression-elimination", order::kCse,
                          [] { return std::make_unique<CommonSubexpressionElimination>(); }}};

}  // namespace
}  // namespace strata::passes
