// Helpers shared by the tensor-manipulation kernels (tensor_*.cc): dtype dispatch by element
// size for pure data movement, strided copies, and small index utilities.
#pragma once

#include <cstdint>
#include <cstring>
#include <string>
#include <type_traits>

#include "kernels/cpu/common.h"

namespace strata::cpu::tensor {

// 16-byte plain element (complex128) for size-based dispatch.
struct Pod16 {
  uint64_t a, b;
};

// Calls f with a T* tag where T is an unsigned integer of the element size (or Pod16, or
// std::string for strings). For kernels that only move elements around.
template <typename F>
Status DispatchBySize(DType dt, F&& f) {
  if (dt == DType::kString) return f(static_cast<std::string*>(nullptr));
  switch (DTypeSize(dt)) {
    case 1: return f(static_cast<uint8_t*>(nullptr));
    case 2: return f(static_cast<uint16_t*>(nullptr));
    case 4: return f(static_cast<uint32_t*>(nullptr));
    case 8: return f(static_cast<uint64_t*>(nullptr));
    case 16: return f(static_cast<Pod16*>(nullptr));
    default: return Unsupported("dtype " + std::string(DTypeName(dt)) + " is not supported here");
  }
}

// Copies n elements; memcpy for trivially copyable types.
template <typename T>
inline void CopyN(const T* src, int64_t n, T* dst) {
  if constexpr (std::is_trivially_copyable_v<T>) {
    if (n > 0) std::memcpy(dst, src, static_cast<size_t>(n) * sizeof(T));
  } else {
    for (int64_t i = 0; i < n; ++i) dst[i] = src[i];
  }
}

// Copies rows [row_begin, row_end) of a rank-N strided gather (a row = the innermost output dimension).
template <typename T>
void StridedCopyRows(const T* in, int64_t base, const Shape& shape, const Strides& in_strides, T* out,
                     int64_t row_begin, int64_t row_end) {
  const int rank = static_cast<int>(shape.size());
  const int64_t inner = shape[static_cast<size_t>(rank - 1)];
  const int64_t is = in_strides[static_cast<size_t>(rank - 1)];
  Shape idx(static_cast<size_t>(rank), 0);
  int64_t off = base;
  int64_t rem = row_begin;
  for (int d = rank - 2; d >= 0; --d) {
    const auto ud = static_cast<size_t>(d);
    idx[ud] = rem % shape[ud];
    rem /= shape[ud];
    off += idx[ud] * in_strides[ud];
  }
  for (int64_t row = row_begin; row < row_end; ++row) {
    const T* src = in + off;
    T* dst = out + row * inner;
    if (is == 1) {
      CopyN(src, inner, dst);
    } else {
      for (int64_t k = 0; k < inner; ++k) dst[k] = src[k * is];
    }
    for (int d = rank - 2; d >= 0; --d) {
      const auto ud = static_cast<size_t>(d);
      ++idx[ud];
      off += in_strides[ud];
      if (idx[ud] < shape[ud]) break;
      off -= in_strides[ud] * shape[ud];
      idx[ud] = 0;
    }
  }
}

// 2-D tiled transpose-like copy for when the innermost output dimension is strided in the input but
// some other output dimension `a` is contiguous (stride 1) in the input: moves 32x32 tiles of (a, last).
template <typename T>
void TiledCopy(const T* in, int64_t base, const Shape& shape, const Strides& in_strides, T* out, int a) {
  const int rank = static_cast<int>(shape.size());
  const int last = rank - 1;
  const int64_t n_last = shape[static_cast<size_t>(last)], n_a = shape[static_cast<size_t>(a)];
  const int64_t s_last = in_strides[static_cast<size_t>(last)];
  const Strides os = ContiguousStrides(shape);
  const int64_t os_a = os[static_cast<size_t>(a)];
  // Remaining dims (all except a and last) enumerate independent planes.
  Shape rest;
  Strides rin, rout;
  for (int d = 0; d < last; ++d) {
    if (d == a) continue;
    rest.push_back(shape[static_cast<size_t>(d)]);
    rin.push_back(in_strides[static_cast<size_t>(d)]);
    rout.push_back(os[static_cast<size_t>(d)]);
  }
  const int64_t planes = NumElements(rest);
  constexpr int64_t kTile = 32;
  const int64_t tiles = (n_a + kTile - 1) / kTile;  // of rows along a, per plane
  ParallelRows(planes * tiles, kTile * n_last, [&](int64_t begin, int64_t end) {
    for (int64_t t = begin; t < end; ++t) {
      const int64_t p = t / tiles, i0 = t % tiles * kTile;
      int64_t ioff = base, ooff = 0, rem = p;
      for (int d = static_cast<int>(rest.size()) - 1; d >= 0; --d) {
        const auto ud = static_cast<size_t>(d);
        const int64_t i = rem % rest[ud];
        rem /= rest[ud];
        ioff += i * rin[ud];
        ooff += i * rout[ud];
      }
      const int64_t i1 = i0 + kTile < n_a ? i0 + kTile : n_a;
      for (int64_t j0 = 0; j0 < n_last; j0 += kTile) {
        const int64_t j1 = j0 + kTile < n_last ? j0 + kTile : n_last;
        for (int64_t i = i0; i < i1; ++i) {
          const T* src = in + ioff + i;
          T* dst = out + ooff + i * os_a;
          for (int64_t j = j0; j < j1; ++j) dst[j] = src[j * s_last];
        }
      }
    }
  });
}

// Generic rank-N strided gather: out (contiguous, shape `shape`) [i] = in[sum idx_d * in_strides_d + base].
// The innermost dimension is a tight loop; when its stride is 1 it becomes a block copy.
template <typename T>
void StridedCopy(const T* in, int64_t base, const Shape& shape, const Strides& in_strides, T* out) {
  const int rank = static_cast<int>(shape.size());
  const int64_t total = NumElements(shape);
  if (total == 0) return;
  if (rank == 0) { out[0] = in[base]; return; }
  const int64_t inner = shape[static_cast<size_t>(rank - 1)];
  if (in_strides[static_cast<size_t>(rank - 1)] != 1 && total >= 4096) {
    for (int d = rank - 2; d >= 0; --d)
      if (in_strides[static_cast<size_t>(d)] == 1 && shape[static_cast<size_t>(d)] >= 8 && inner >= 8) {
        TiledCopy(in, base, shape, in_strides, out, d);
        return;
      }
  }
  ParallelRows(total / inner, inner,
               [&](int64_t begin, int64_t end) { StridedCopyRows(in, base, shape, in_strides, out, begin, end); }, 1 << 17);
}

// Shape/strides simplification, in place: drops size-1 dims and merges dims that are contiguous in the input.
inline void CoalesceDims(Shape& shape, Strides& strides) {
  size_t n = 0;  // dims kept so far, in shape[0, n) and strides[0, n)
  for (size_t i = 0; i < shape.size(); ++i) {
    if (shape[i] == 1) continue;
    if (n > 0 && strides[n - 1] == strides[i] * shape[i]) {
      shape[n - 1] *= shape[i];
      strides[n - 1] = strides[i];
    } else {
      shape[n] = shape[i];
      strides[n] = strides[i];
      ++n;
    }
  }
  shape.resize(n);
  strides.resize(n);
}

// Wraps an index in [-n, n) into [0, n); returns false when out of range.
inline bool WrapIndex(int64_t& i, int64_t n) {
  if (i < -n || i >= n) return false;
  if (i < 0) i += n;
  return true;
}

// Reads integer input i (int32 or int64, scalar or 1-D) for a kernel's parameters (shapes, axes, starts...).
// The result is a Shape, whose storage is inline up to Shape::kInline values, so Compute does not touch the heap.
inline Result<Shape> ReadIntsInput(const KernelContext& ctx, int i, const char* name) {
  const Tensor& t = ctx.input_tensor(i);
  if (t.dtype() != DType::kInt64 && t.dtype() != DType::kInt32)
    return InvalidArgument(ctx.Where() + "input '" + name + "': expected an int32/int64 tensor, got " +
                           std::string(DTypeName(t.dtype())));
  Shape v(static_cast<size_t>(t.numel()));
  for (int64_t k = 0; k < t.numel(); ++k) v[static_cast<size_t>(k)] = t.GetAsInt64(k);
  return v;
}

}  // namespace strata::cpu::tensor
