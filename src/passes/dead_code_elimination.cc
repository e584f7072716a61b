// O1: removes nodes whose outputs nobody reads (no node, nested graph or graph output), and the
// initializers and value_info entries left unreferenced.
#include "passes/graph_editor.h"
#include "passes/graph_pass.h"

namespace strata::passes {
namespace {

class DeadCodeElimination final : public GraphPass {
 public:
  std::string_view name() const override { return "dead-code-elimination"; }
  int level() const override { return 1; }
  Result<bool> Apply(ir::Model& model) override {
    GraphEditor ed(model);
    // Walk backwards so a chain of dead nodes goes in one sweep.
    for (int i = ed.num_nodes() - 1; i >= 0; --i) {
      const ir::Node& n = ed.node(i);
      bool live = false;
      for (const auto& o : n.outputs)
        if (!o.empty() && (ed.IsGraphOutput(o) || ed.UsedBySubgraph(o) || !ed.Consumers(o).empty())) live = true;
      if (!live) ed.Remove(i);
    }
    return ed.Commit();
  }
};

const PassRegistrar kReg{{"dead-code-elimination", order::kDeadCode, [] { return std::make_unique<DeadCodeElimination>(); }}};

}  // namespace
}  // namespace strata::passes
