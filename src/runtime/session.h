// Session: a model compiled once into an execution plan, run many times.
#pragma once

#include <memory>
#include <mutex>
#include <span>
#include <string>
#include <vector>

#include "core/status.h"
#include "core/value.h"
#include "ir/graph.h"
#include "runtime/run_state.h"

namespace strata {

class CompiledGraph;

struct SessionOptions {
  int num_threads = 0;   // 0: one per physical core
  // Reject inputs whose shape contradicts the model's declared input shape. Turning it off trusts
  // the data over the declaration (dtypes are still checked, and kernels still check what they need).
  bool check_input_shapes = true;
  // Place intermediates in one arena planned from the first run with each input-shape signature.
  // Off: every tensor is allocated on the heap (for comparison and debugging).
  bool plan_memory = true;
  // Graph optimisation level (docs/passes.md): 0 none, 1 cleanups and constant folding, 2 fusions,
  // 3 pattern recognition. Passes trust declared shapes, so without check_input_shapes none run.
  int opt_level = 3;
  // Time every step of every run (one clock read before and after each kernel); see profile().
  bool profile = false;
};

class Session {
 public:
  static Result<std::unique_ptr<Session>> Load(const std::string& path, const SessionOptions& options = {});
  static Result<std::unique_ptr<Session>> FromModel(ir::Model model, const SessionOptions& options = {});
  ~Session();

  // Graph inputs the caller must feed (initializers listed as inputs are excluded).
  const std::vector<ir::ValueInfo>& inputs() const { return inputs_; }
  const std::vector<ir::ValueInfo>& outputs() const { return outputs_; }
  // The optimised model. Initializers that kernels packed into their own layouts are freed after
  // compiling, so they are missing from it.
  const ir::Model& model() const { return model_; }
  int num_threads() const { return num_threads_; }

  // Checks inputs against the declared types and shapes, runs, and fills `outputs`. Safe to call
  // from several threads at once: each concurrent run gets its own execution state and arena.
  Status Run(std::span<const Value> inputs, std::vector<Value>& outputs);

  // The plan of the most recent run: arena size against the sum of the intermediates, and work.
  PlanStats last_plan_stats() const;

  // With SessionOptions::profile: per-step times summed over the runs since the last call, in
  // execution order, and restarts the count. Empty without profiling or runs.
  std::vector<StepTiming> TakeProfile();

 private:
  Session() = default;
  ir::Model model_;
  std::vector<ir::ValueInfo> inputs_;
  std::vector<ir::ValueInfo> outputs_;
  std::shared_ptr<CompiledGraph> plan_;
  mutable std::mutex states_mu_;
  std::vector<RunStatePtr> idle_states_;
  PlanStats last_stats_;
  int num_threads_ = 1;
  bool check_input_shapes_ = true;
  bool plan_memory_ = true;
  bool profile_ = false;
};

}  // namespace strata
