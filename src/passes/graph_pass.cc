#include "passes/graph_pass.h"

#include <algorithm>

namespace strata::passes {

PassRegistry& PassRegistry::Global() {
  static PassRegistry registry;
  return registry;
}

void PassRegistry::Register(PassDef def) {
  defs_.push_back(std::move(def));
  std::stable_sort(defs_.begin(), defs_.end(), [](const PassDef& a, const PassDef& b) { return a.order < b.order; });
}

std::vector<std::unique_ptr<GraphPass>> PassRegistry::CreateAll() const {
  std::vector<std::unique_ptr<GraphPass>> out;
  for (const auto& d : defs_) out.push_back(d.factory());
  return out;
}

std::unique_ptr<GraphPass> PassRegistry::Create(std::string_view name) const {
  for (const auto& d : defs_)
    if (d.name == name) return d.factory();
  return nullptr;
}

Status Optimize(ir::Model& model, int level, OptimizeReport* report) {
  if (level <= 0 || !model.graph) return Status::Ok();
  auto passes = PassRegistry::Global().CreateAll();
  // Each rewrite removes nodes or replaces several by one, so a few rounds reach the fixed point;
  // the bound only guards against two passes undoing each other.
  constexpr int kMaxIterations = 8;
  for (int it = 0; it < kMaxIterations; ++it) {
    if (report) report->iterations = it + 1;
    bool changed = false;
    for (auto& p : passes) {
      if (p->level() > level) continue;
      auto r = p->Apply(model);
      if (!r.ok()) return r.status().WithContext("graph pass '" + std::string(p->name()) + "': ");
      if (*r) {
        changed = true;
        if (report) report->applied.emplace_back(p->name());
      }
    }
    if (!changed) break;
  }
  return Status::Ok();
}

}  // namespace strata::passes
