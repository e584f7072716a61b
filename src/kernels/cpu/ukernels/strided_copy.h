// Strided gathers over rank-N shapes (transposes, slices, layout changes), on all threads when large.
#pragma once

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <type_traits>

#include "core/tensor.h"
#include "kernels/cpu/ukernels/parallel.h"

namespace strata::cpu::tensor {

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

}  // namespace strata::cpu::tensor
