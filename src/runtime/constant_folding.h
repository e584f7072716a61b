// Constant folding (O1): a node whose inputs are all constants is evaluated once, with Strata's own
// kernels, and its outputs become initializers of the same names. Shape and Size of a value whose
// static shape is known fold too, so shape-computation chains (Shape -> Gather -> Unsqueeze ->
// Concat -> Reshape) collapse into constants. It lives in src/runtime because it runs kernels; it
// registers itself with the pass registry in src/passes.
#pragma once

#include <cstdint>

#include "passes/graph_pass.h"

namespace strata {

class ConstantFolding final : public passes::GraphPass {
 public:
  // Outputs larger than this are not folded unless no larger than the node's largest constant input
  // (folding a Transpose of a weight is fine; materialising a big Expand/Tile/ConstantOfShape is not).
  static constexpr int64_t kMaxFoldedBytes = int64_t{1} << 20;

  std::string_view name() const override { return "constant-folding"; }
  int level() const override { return 1; }
  Result<bool> Apply(ir::Model& model) override;
};

}  // namespace strata
