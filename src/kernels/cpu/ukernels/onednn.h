// The adapter through which kernels call oneDNN: the process-wide engine and stream, an
// allocation-free way to execute primitives, plain memory descriptors, and the one place where
// oneDNN's exceptions become a Status (Call, ErrorStatus).
#pragma once

#include <oneapi/dnnl/dnnl.hpp>

#include <cstdint>
#include <new>
#include <span>
#include <string_view>
#include <type_traits>
#include <vector>

#include "core/status.h"
#include "kernels/cpu/ukernels/activation.h"

namespace strata::cpu::onednn {

// Process-wide CPU engine and stream (created on first use).
dnnl::engine& Engine();
dnnl::stream& Stream();

// Runs a oneDNN primitive on caller pointers without allocating per call (the C++ API builds a
// memory object and an argument map each time). Memory objects are made on the first call for each
// argument and re-pointed afterwards; a changed descriptor makes a new one.
class DnnlCall {
 public:
  DnnlCall& Arg(int arg, const dnnl::memory::desc& md, const void* data);
  // Executes with the arguments bound since the last Execute, then forgets them. Throws dnnl::error.
  void Execute(const dnnl::primitive& prim);

 private:
  struct Slot {
    int arg;
    dnnl::memory mem;
  };
  std::vector<Slot> slots_;
  std::vector<dnnl_exec_arg_t> args_;
};

// Whether this oneDNN build offers its F(4x4, 3x3) Winograd convolution on this CPU (oneDNN 2.6 has
// it for AVX-512 only; ONEDNN_MAX_CPU_ISA can take it away). Tests assert kernel choices with it.
bool WinogradAvailable();

// Row-major strides.
inline std::vector<int64_t> RowMajorStrides(const std::vector<int64_t>& dims) {
  std::vector<int64_t> s(dims.size(), 1);
  for (int i = static_cast<int>(dims.size()) - 2; i >= 0; --i)
    s[static_cast<size_t>(i)] = s[static_cast<size_t>(i) + 1] * dims[static_cast<size_t>(i) + 1];
  return s;
}

// Plain row-major oneDNN memory descriptor for the given dims.
dnnl::memory::desc PlainDesc(const std::vector<int64_t>& dims, dnnl::memory::data_type dt = dnnl::memory::data_type::f32);

// oneDNN post-ops: a sum of what the destination holds (scaled by sum_scale), then the activations.
dnnl::post_ops PostOps(std::span<const uk::ActivationOp> activations, bool sum, float sum_scale);

// Attributes of a matmul that computes alpha * AB, adds sum_scale times what the destination holds
// (nothing when 0), then the activations.
dnnl::primitive_attr MatMulAttr(float alpha, float sum_scale, std::span<const uk::ActivationOp> activations);

// `error` as a Status whose message starts with `what` (the operation that failed): no kernel for
// the request is Unsupported, arguments oneDNN rejects are InvalidArgument, and running out of
// memory or anything else is Internal (Status has no resource-exhaustion code).
Status ErrorStatus(const dnnl::error& error, std::string_view what);
Status OutOfMemory(std::string_view what);

// Runs f (returning void or Status), turning the dnnl::error or std::bad_alloc it throws into a
// Status. Nothing is allocated unless something is thrown.
template <class F>
Status Call(std::string_view what, F&& f) {
  try {
    if constexpr (std::is_void_v<std::invoke_result_t<F&>>) {
      f();
      return Status::Ok();
    } else {
      return f();
    }
  } catch (const dnnl::error& e) {
    return ErrorStatus(e, what);
  } catch (const std::bad_alloc&) {
    return OutOfMemory(what);
  }
}

}  // namespace strata::cpu::onednn
