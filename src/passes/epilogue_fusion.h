// What epilogue fusion (epilogue_fusion.cc) would fold, for passes that must leave those nodes to it.
#pragma once

#include "passes/graph_editor.h"

namespace strata::passes {

// True when epilogue fusion folds node `consumer` into the Conv/Gemm/MatMul (or fused form) that
// produces one of its inputs. It folds one consumer per producer per round, so the rest of a chain
// is still waiting for it in the graph a later pass of the same round sees.
bool EpilogueFusionTakes(const GraphEditor& ed, int consumer);

}  // namespace strata::passes
