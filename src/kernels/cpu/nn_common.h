// Shared helpers for the NN kernel family (MatMul/Gemm/Conv/Pool/Quant): a portable reference
// GEMM, convolution/pooling geometry, and the oneDNN adapter (ukernels/onednn.h).
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <string>
#include <type_traits>
#include <vector>

#include "kernels/cpu/common.h"
#include "kernels/cpu/ukernels/onednn.h"

namespace strata::cpu::nn {

// The oneDNN adapter (ukernels/onednn.h), callable as nn:: too.
using onednn::DnnlCall;
using onednn::Engine;
using onednn::PlainDesc;
using onednn::RowMajorStrides;
using onednn::Stream;
using onednn::WinogradAvailable;

// Tests only: while set, Conv/ConvTranspose/FusedConv build no oneDNN primitive (when they load or
// meet new shapes) and run their reference paths instead. Like vec::ForceIsa.
void ForceConvReference(bool on);
bool ConvReferenceForced();

// C[M,N] (=|+=) A[M,K] * B[K,N], all contiguous row-major. Acc is the accumulation type.
template <typename Acc, typename TA, typename TB>
void GemmRef(int64_t M, int64_t N, int64_t K, const TA* A, const TB* B, Acc* C, bool accumulate) {
  const int64_t work = M * N * K;
#pragma omp parallel for if (work > (1 << 16) && M > 1) schedule(static)
  for (int64_t i = 0; i < M; ++i) {
    Acc* c = C + i * N;
    if (!accumulate)
      for (int64_t j = 0; j < N; ++j) c[j] = Acc(0);
    const TA* a = A + i * K;
    for (int64_t k = 0; k < K; ++k) {
      const Acc av = static_cast<Acc>(a[k]);
      if (av == Acc(0)) continue;
      const TB* b = B + k * N;
      for (int64_t j = 0; j < N; ++j) c[j] += av * static_cast<Acc>(b[j]);
    }
  }
}

// Converts n elements between types (used to widen/narrow 16-bit floats and quantized ints).
template <typename To, typename From>
void ConvertBuffer(const From* src, To* dst, int64_t n) {
  for (int64_t i = 0; i < n; ++i) dst[i] = static_cast<To>(static_cast<ComputeType<From>>(src[i]));
}
template <typename From>
void ConvertBufferToHalf(const float* src, From* dst, int64_t n) {
  for (int64_t i = 0; i < n; ++i) dst[i] = From(src[i]);
}

// Geometry for a conv/pool over `nsp` spatial dims. Shape keeps the dims inline, so kernels can
// build it on every run without touching the heap.
struct SpatialGeom {
  Shape in, out, kernel, strides, dilations, pad_begin, pad_end;
  int64_t in_size() const { int64_t p = 1; for (auto v : in) p *= v; return p; }
  int64_t out_size() const { int64_t p = 1; for (auto v : out) p *= v; return p; }
  int64_t kernel_size() const { int64_t p = 1; for (auto v : kernel) p *= v; return p; }
};

// Attributes common to Conv/ConvTranspose/pooling.
struct SpatialAttrs {
  std::string auto_pad = "NOTSET";
  std::vector<int64_t> kernel_shape, strides, dilations, pads;
  bool ceil_mode = false;
  Status Load(const KernelInfo& info, bool with_dilations, bool with_ceil);
};

// Computes output sizes and effective pads for a forward conv/pool window. `in` holds spatial input
// sizes; kernel/strides/dilations must be filled by the caller (same length as `in`).
Status ComputeForwardGeom(const SpatialAttrs& a, SpatialGeom& g, bool ceil_mode);

// Saturating round-half-to-even to an integer type.
template <typename Q>
inline Q SaturateRound(double v) {
  if (v != v) return Q(0);
  double r = std::nearbyint(v);
  constexpr double lo = static_cast<double>(std::numeric_limits<Q>::lowest());
  constexpr double hi = static_cast<double>(std::numeric_limits<Q>::max());
  if (r < lo) r = lo;
  if (r > hi) r = hi;
  return static_cast<Q>(r);
}

}  // namespace strata::cpu::nn
