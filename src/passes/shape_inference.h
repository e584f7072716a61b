// Strata's shape inference: gives every value a dtype and a shape, with symbolic dimensions
// (`batch`, `seq`, `batch*seq`) where they are dynamic.
//
// It walks each graph's nodes in order, applies a per-op rule, and refines the value's entry in
// Graph::value_info (or Graph::outputs for graph outputs). Small integer tensors (shapes, indices,
// axes) also carry a symbolic value, so Shape -> Gather -> Unsqueeze -> Concat -> Reshape chains
// resolve to symbolic shapes. A declared type is never made less precise; an op without a rule keeps
// what it had. A rule that finds a real inconsistency (an impossible broadcast between known dims)
// makes InferShapes return InvalidModel naming the node.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "core/status.h"
#include "ir/graph.h"

namespace strata::passes {

struct ShapeInferenceReport {
  int64_t values = 0;     // node outputs visited, all graphs
  int64_t refined = 0;    // entries that became more precise than what the model declared
  // Values where an inferred type disagreed with the declared one (the declared one was kept).
  std::vector<std::string> conflicts;
};

Status InferShapes(ir::Model& model, ShapeInferenceReport* report = nullptr);

// True for a tensor type whose rank is known and whose every dim is known or symbolic.
bool IsFullyShaped(const ir::TypeInfo& t);

// How many node outputs of `g` (not counting subgraphs) have a fully-shaped declared type.
struct ShapeCoverage {
  int64_t values = 0;
  int64_t shaped = 0;       // IsFullyShaped
  int64_t typed = 0;        // at least the dtype is known
};
ShapeCoverage CountShapeCoverage(const ir::Graph& g);

}  // namespace strata::passes
