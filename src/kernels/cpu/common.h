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
#include "kernels/cpu/ukernels/parallel.h"
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
