// Compiles IR graphs into flat, slot-indexed step lists and runs them.
#pragma once

#include <memory>
#include <span>
#include <string>
#include <unordered_map>
#include <vector>

#include "core/status.h"
#include "core/value.h"
#include "ir/graph.h"
#include "runtime/kernel.h"
#include "runtime/run_state.h"

namespace strata {

class CompiledGraph {
 public:
  struct Step {
    const ir::Node* node = nullptr;
    std::unique_ptr<OpKernel> kernel;
    std::vector<int> inputs;    // slot per node input, -1 when omitted
    std::vector<int> outputs;   // slot per node output, -1 when unrequested
    std::vector<int> reads;     // every slot the step reads, incl. values its subgraphs capture
    std::vector<int> release;   // slots whose last reader is this step
    // Shapes of constant inputs the kernel released at compile time (it packed them; once every
    // reader has, they arrive absent at run time): a Conv's work is counted from its weights', and
    // whether a step is big enough for several threads counts their elements.
    std::vector<std::pair<int, Shape>> released_shapes;
    int64_t released_elements = 0;
  };

  // Runs with `outer` as the frame of the enclosing graph (nullptr for the main graph), allocating
  // every tensor on the heap. Subgraph bodies run this way.
  Status Run(const std::vector<Value>* outer, std::span<const Value> inputs, std::vector<Value>& outputs) const;

  // Runs the main graph in `state`. The first run with given input shapes records every output
  // allocation and plans an arena for them; later runs with the same shapes place intermediates there.
  Status Run(RunState& state, std::span<const Value> inputs, std::vector<Value>& outputs) const;
  RunStatePtr NewRunState(bool plan_memory = true, bool profile = false) const;
  static PlanStats LastPlanStats(const RunState& state);
  // Moves the step times `state` collected (when made with profile) into `into`, sized to the steps.
  void TakeProfile(RunState& state, std::vector<StepTiming>& into) const;

  // Initializers no step reads any more: their kernels packed them, and compiling freed them.
  const std::vector<std::string>& released_constants() const { return released_constants_; }

  int num_inputs() const { return static_cast<int>(input_slots_.size()); }
  int num_outputs() const { return static_cast<int>(output_slots_.size()); }

 private:
  friend class GraphCompiler;
  std::string name_;
  std::vector<Step> steps_;
  std::vector<int> input_slots_;
  std::vector<int> output_slots_;
  std::vector<std::pair<int, Value>> constants_;
  std::vector<std::pair<int, int>> captures_;  // (local slot, slot in the enclosing frame)
  std::vector<char> is_constant_slot_;
  std::vector<std::string> released_constants_;
  int num_slots_ = 0;
};

// Compiles a model's main graph. Fails at load time on any op, attribute or dtype Strata cannot run.
Result<std::shared_ptr<CompiledGraph>> CompileModel(const ir::Model& model);
// The same, and initializers whose every reader packed them into its own layout are erased from
// `model` as compiling goes (listed in released_constants()), so weights are not held twice.
Result<std::shared_ptr<CompiledGraph>> CompileModelReleasingWeights(ir::Model& model);

}  // namespace strata
