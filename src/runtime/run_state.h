// What Session needs to hold execution state without seeing the executor: the plan statistics
// it reports and an owning handle to a run state.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

namespace strata {

// What the plan for a run's input shapes holds (for `strata inspect`, `strata bench` and tests).
struct PlanStats {
  bool planned = false;       // the run executed in a planned arena
  size_t arena_bytes = 0;     // size of the arena the plan needs
  size_t planned_bytes = 0;   // sum of the intermediates placed in the arena
  int planned_buffers = 0;
  int heap_buffers = 0;       // outputs and anything the plan could not place
  int in_place_buffers = 0;   // planned buffers that take over an input's buffer (OpKernel::InPlaceInput)
  double matmul_flops = 0;    // multiply-add work of Conv/MatMul/Gemm/Attention steps (2 per MAC), measured
                              // on the recorded run's actual shapes
};

// Time spent in one step of the compiled graph, summed over the profiled runs.
struct StepTiming {
  std::string node;      // node name (or its first output when unnamed)
  std::string op;        // op type, with its domain when not the default one
  double seconds = 0;
  int64_t calls = 0;
};

// Per-caller execution state of a main graph: its value frame, one memory plan per input-shape
// signature, and the arena. Reused across runs so the steady state does not allocate per tensor.
class RunState;
struct RunStateDeleter {
  void operator()(RunState* s) const;
};
using RunStatePtr = std::unique_ptr<RunState, RunStateDeleter>;

}  // namespace strata
