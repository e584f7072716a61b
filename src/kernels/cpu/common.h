// Utilities shared by CPU kernels: dtype dispatch, broadcasting, axis handling.
#pragma once

#include <omp.h>

#include <algorithm>
#include <cstdint>
#include <exception>
#include <limits>
#include <string>
#include <type_traits>
#include <span>
#include <vector>

#include "core/status.h"
#include "core/tensor.h"
#include "runtime/kernel.h"

namespace strata::cpu {

// Type lists for dispatch.
template <typename... Ts> struct TypeList {};
using FloatTypes = TypeList<float, double, Float16, BFloat16>;
using SignedIntTypes = TypeList<int8_t, int16_t, int32_t, int64_t>;
using UnsignedIntTypes = TypeList<uint8_t, uint16_t, uint32_t, uint64_t>;
using IntTypes = TypeList<int8_t, int16_t, int32_t, int64_t, uint8_t, uint16_t, uint32_t, uint64_t>;
using NumericTypes = TypeList<float, double, Float16, BFloat16, int8_t, int16_t, int32_t, int64_t, uint8_t, uint16_t,
                              uint32_t, uint64_t>;
using SignedNumericTypes = TypeList<float, double, Float16, BFloat16, int8_t, int16_t, int32_t, int64_t>;
using AllTypes = TypeList<float, double, Float16, BFloat16, int8_t, int16_t, int32_t, int64_t, uint8_t, uint16_t,
                          uint32_t, uint64_t, bool, std::string>;

template <typename... Ts>
std::vector<DType> DTypesOf(TypeList<Ts...>) { return {DTypeOf<Ts>::value...}; }

// Calls f(T{}) — well, f with a null T* tag — for the T in the list matching dt.
// Usage: return Dispatch(NumericTypes{}, dt, [&](auto* tag) { using T = std::remove_pointer_t<decltype(tag)>; ... });
template <typename F, typename... Ts>
Status Dispatch(TypeList<Ts...>, DType dt, F&& f) {
  Status result = Status::Ok();
  const bool matched = ((DTypeOf<Ts>::value == dt ? (result = f(static_cast<Ts*>(nullptr)), true) : false) || ...);
  if (!matched) return Unsupported("dtype " + std::string(DTypeName(dt)) + " is not supported here");
  return result;
}

// Load-time check: input i's dtype (if known) must be one of `allowed`.
Status CheckInputDType(const KernelInfo& info, int i, const std::vector<DType>& allowed);

// Numpy-style multidirectional broadcasting of shapes.
Result<Shape> BroadcastShapes(const Shape& a, const Shape& b);
Result<Shape> BroadcastShapes(const std::vector<const Shape*>& shapes);
Result<Shape> BroadcastShapes(std::span<const Shape* const> shapes);

// Strides (in elements) of `in` broadcast to `out`: 0 along broadcast dims. `in` is right-aligned.
Strides BroadcastStrides(const Shape& in, const Shape& out);
Strides ContiguousStrides(const Shape& shape);

// ---- parallel loops ----
// Loops go through these rather than `#pragma omp parallel for if (...)`: a parallel region
// whose `if` is false still builds a one-thread team (and allocates) on every call.
inline constexpr int64_t kParallelThreshold = 1 << 15;

// Calls f(begin, end) over [0, n), split across threads when n >= threshold. An exception f throws
// on a worker thread (std::bad_alloc from scratch memory) is rethrown on the caller's, since one
// escaping an OpenMP region ends the process; the executor turns bad_alloc into an error Status.
template <typename F>
void ParallelFor(int64_t n, F&& f, int64_t threshold = kParallelThreshold) {
  if (n <= 0) return;
  const int threads = omp_get_max_threads();
  if (n < threshold || threads <= 1 || omp_in_parallel()) {
    f(int64_t{0}, n);
    return;
  }
  const int64_t grain = std::max<int64_t>(1, threshold / 2);
  const int64_t chunks = std::min<int64_t>(threads, (n + grain - 1) / grain);
  std::exception_ptr error;
#pragma omp parallel for num_threads(static_cast<int>(chunks)) schedule(static)
  for (int64_t c = 0; c < chunks; ++c) {
    const int64_t b = n * c / chunks, e = n * (c + 1) / chunks;
    try {
      if (b < e) f(b, e);
    } catch (...) {
#pragma omp critical(strata_parallel_for_error)
      if (!error) error = std::current_exception();
    }
  }
  if (error) std::rethrow_exception(error);
}

// dst[0, n) = src[0, n) on all threads when n is large: a residual placed in a destination before a
// oneDNN sum post-op, on one thread, costs more than a convolution at 2 threads (ResNet-50's 56x56
// layers). No-op when src == dst.
inline void ParallelCopy(const float* src, float* dst, int64_t n) {
  if (src == dst) return;
  ParallelFor(n, [&](int64_t b, int64_t e) { std::copy(src + b, src + e, dst + b); }, int64_t{1} << 16);
}

// Calls f(begin, end) over rows [0, rows) of row_elems elements each, split across threads when
// there are at least two rows and more than min_elems elements in all.
template <typename F>
void ParallelRows(int64_t rows, int64_t row_elems, F&& f, int64_t min_elems = 1 << 16) {
  ParallelFor(rows, f, std::max<int64_t>(2, min_elems / std::max<int64_t>(row_elems, 1) + 1));
}

// Iterates all output indices of a broadcast, calling f(out_index, offset_a, offset_b).
// The innermost dimension is handed to `f` in a tight loop.
template <typename F>
void ForEachBroadcast2(const Shape& out, const Strides& sa, const Strides& sb, F&& f) {
  const int rank = static_cast<int>(out.size());
  const int64_t total = NumElements(out);
  if (total == 0) return;
  if (rank == 0) { f(0, 0, 0); return; }
  Shape idx(static_cast<size_t>(rank), 0);
  const int64_t inner = out[static_cast<size_t>(rank - 1)];
  const int64_t ia = sa[static_cast<size_t>(rank - 1)], ib = sb[static_cast<size_t>(rank - 1)];
  int64_t oa = 0, ob = 0;
  for (int64_t o = 0; o < total; o += inner) {
    for (int64_t k = 0; k < inner; ++k) f(o + k, oa + k * ia, ob + k * ib);
    for (int d = rank - 2; d >= 0; --d) {
      const auto ud = static_cast<size_t>(d);
      ++idx[ud];
      oa += sa[ud];
      ob += sb[ud];
      if (idx[ud] < out[ud]) break;
      oa -= sa[ud] * out[ud];
      ob -= sb[ud] * out[ud];
      idx[ud] = 0;
    }
  }
}

// Maps an axis in [-rank, rank) to [0, rank); fails otherwise.
Result<int> NormalizeAxis(int64_t axis, int rank, const std::string& where = "");
// As above, naming ctx's node in the error; the name is only built on failure (no allocation in Compute).
inline Result<int> NormalizeAxis(int64_t axis, int rank, const KernelContext& ctx) {
  Result<int> r = NormalizeAxis(axis, rank);
  if (!r.ok()) return r.status().WithContext(ctx.Where());
  return r;
}

// Per-thread scratch for kernels: grows to the largest request and is then reused, so steady-state
// runs do not allocate. `slot` (0..kThreadScratchSlots-1) separates buffers one caller holds at the same time; nothing
// may keep a pointer past its Compute (the next kernel on the thread reuses the slots). 64-byte
// aligned, uninitialised; null when out of memory.
inline constexpr int kThreadScratchSlots = 4;
float* ThreadScratch(int slot, size_t floats);

// Reads a 1-D (or scalar) integer tensor (int32/int64) into a vector.
Result<std::vector<int64_t>> ReadInt64s(const Tensor& t);

// Converts a value between element types with ONNX Cast semantics for numeric types.
template <typename To, typename From>
inline To CastValue(From v) {
  if constexpr (std::is_same_v<To, From>) {
    return v;
  } else if constexpr (std::is_same_v<To, Float16> || std::is_same_v<To, BFloat16>) {
    return To(static_cast<float>(static_cast<ComputeType<From>>(v)));
  } else if constexpr (std::is_same_v<From, Float16> || std::is_same_v<From, BFloat16>) {
    return CastValue<To, float>(static_cast<float>(v));
  } else if constexpr (std::is_same_v<To, bool>) {
    return v != From(0);
  } else if constexpr (std::is_integral_v<To> && std::is_floating_point_v<From>) {
    // Out-of-range float->int is UB in C++; saturate NaN/inf to keep it defined.
    if (v != v) return To(0);
    if (v >= static_cast<From>(std::numeric_limits<To>::max())) return std::numeric_limits<To>::max();
    if (v <= static_cast<From>(std::numeric_limits<To>::lowest())) return std::numeric_limits<To>::lowest();
    return static_cast<To>(v);
  } else {
    return static_cast<To>(v);
  }
}

}  // namespace strata::cpu
