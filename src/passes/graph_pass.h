// Graph optimisation passes: small rewrites of a shape-inferred model, each with one job and a level
// (-O1 cleanups, -O2 fusions, -O3 pattern recognition), run by Optimize to a fixed point.
//
// Passes register themselves statically (like kernels), so a pass that needs the runtime (constant
// folding evaluates nodes with Strata's kernels) can live in src/runtime without src/passes
// depending on it. Passes only rewrite the main graph, never rename or drop graph inputs/outputs,
// keep nodes in topological order, and give every value they create a type.
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "core/status.h"
#include "ir/graph.h"

namespace strata::passes {

class GraphPass {
 public:
  virtual ~GraphPass() = default;
  virtual std::string_view name() const = 0;
  // Lowest -O level that runs this pass.
  virtual int level() const = 0;
  // Rewrites `model`; returns whether anything changed.
  virtual Result<bool> Apply(ir::Model& model) = 0;
};

// One registration: `order` fixes where the pass runs within an iteration (lower first).
struct PassDef {
  std::string name;
  int order = 0;
  std::function<std::unique_ptr<GraphPass>()> factory;
};

class PassRegistry {
 public:
  static PassRegistry& Global();
  void Register(PassDef def);
  // Fresh instances of every registered pass, in order.
  std::vector<std::unique_ptr<GraphPass>> CreateAll() const;
  // A fresh instance of one pass, or nullptr.
  std::unique_ptr<GraphPass> Create(std::string_view name) const;

 private:
  std::vector<PassDef> defs_;
};

struct PassRegistrar {
  explicit PassRegistrar(PassDef def) { PassRegistry::Global().Register(std::move(def)); }
};

// Positions of the built-in passes within an iteration. Recognition runs before fusion, so a Gelu
// found in one iteration can become a MatMul epilogue in the next.
namespace order {
constexpr int kDeadCode = 10, kNoOp = 20, kConstantFolding = 30, kCse = 40, kConvBn = 50, kLayerNorm = 60,
              kGelu = 70, kEpilogue = 80, kConvLayout = 90;
}

struct OptimizeReport {
  int iterations = 0;
  std::vector<std::string> applied;  // names of passes that changed something, in the order they did
};

constexpr int kMaxOptLevel = 3;

// Runs every pass of level <= `level` until none changes anything (at most a few iterations).
// Level 0 does nothing. Errors name the pass.
Status Optimize(ir::Model& model, int level, OptimizeReport* report = nullptr);

}  // namespace strata::passes
