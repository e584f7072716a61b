// MaxPool, AveragePool, LpPool, their Global variants, MaxUnpool and MaxRoiPool.
// 1-D/2-D/3-D windows are handled as 3-D (missing leading dims have size 1). float32 MaxPool (without
// Indices) and AveragePool take a row-wise fast path; everything else walks each output's window.
// The com.strata MaxPool/AveragePool/GlobalAveragePool forms (written by the conv-layout pass) may
// read and write channels-last data (attribute "layout").
#include <immintrin.h>

#include <cmath>
#include <cstring>
#include <limits>
#include <new>
#include <type_traits>
#include <vector>

#include "kernels/cpu/nn_common.h"
#include "kernels/cpu/ukernels/isa_region.h"
#include "kernels/cpu/ukernels/vec_math.h"

namespace strata::cpu {
namespace {

using nn::SpatialAttrs;
using nn::SpatialGeom;

// 3-D padded view of a pooling geometry.
struct Geom3 {
  int64_t in[3], out[3], k[3], s[3], d[3], pb[3], pe[3];
  int nsp = 0;
  int64_t in_size() const { return in[0] * in[1] * in[2]; }
  int64_t out_size() const { return out[0] * out[1] * out[2]; }
};

Geom3 To3(const SpatialGeom& g) {
  Geom3 r;
  r.nsp = static_cast<int>(g.in.size());
  const int off = 3 - r.nsp;
  for (int i = 0; i < 3; ++i) {
    const int j = i - off;
    const bool real = j >= 0;
    const size_t u = static_cast<size_t>(real ? j : 0);
    r.in[i] = real ? g.in[u] : 1;
    r.out[i] = real ? g.out[u] : 1;
    r.k[i] = real ? g.kernel[u] : 1;
    r.s[i] = real ? g.strides[u] : 1;
    r.d[i] = real ? g.dilations[u] : 1;
    r.pb[i] = real ? g.pad_begin[u] : 0;
    r.pe[i] = real ? g.pad_end[u] : 0;
  }
  return r;
}

// Computes the pooling geometry for X [N, C, spatial...].
Status PoolGeom(const SpatialAttrs& a, const Shape& x, bool allow_dilation, SpatialGeom& g, Shape& y_shape) {
  if (x.size() < 3) return InvalidArgument("pooling input must have rank >= 3, got " + ShapeToString(x));
  const size_t nsp = x.size() - 2;
  if (nsp > 3) return Unsupported("pooling over more than 3 spatial dimensions is not supported");
  if (a.kernel_shape.size() != nsp)
    return InvalidArgument("kernel_shape has " + std::to_string(a.kernel_shape.size()) + " values, input has " +
                           std::to_string(nsp) + " spatial dims");
  g.in.assign(x.begin() + 2, x.end());
  g.kernel = a.kernel_shape;
  g.strides = a.strides.empty() ? Shape(nsp, 1) : Shape(a.strides);
  g.dilations = (a.dilations.empty() || !allow_dilation) ? Shape(nsp, 1) : Shape(a.dilations);
  RETURN_IF_ERROR(nn::ComputeForwardGeom(a, g, a.ceil_mode));
  y_shape = {x[0], x[1]};
  y_shape.insert(y_shape.end(), g.out.begin(), g.out.end());
  return Status::Ok();
}

// Valid tap range [lo, hi) along one dim for a window starting at input coordinate b.
inline void TapRange(int64_t b, int64_t k, int64_t d, int64_t in, int64_t& lo, int64_t& hi) {
  if (b >= 0 && b + (k - 1) * d < in) {  // the common interior window, without divisions
    lo = 0;
    hi = k;
    return;
  }
  lo = b >= 0 ? 0 : (-b + d - 1) / d;
  hi = in - b <= 0 ? 0 : std::min<int64_t>(k, (in - b + d - 1) / d);
  if (hi < lo) hi = lo;
}

// Visits the valid input offsets of the window for one output position.
template <typename F>
inline void ForWindow(const Geom3& g, int64_t o0, int64_t o1, int64_t o2, F&& f) {
  const int64_t b0 = o0 * g.s[0] - g.pb[0], b1 = o1 * g.s[1] - g.pb[1], b2 = o2 * g.s[2] - g.pb[2];
  int64_t l0, h0, l1, h1, l2, h2;
  TapRange(b0, g.k[0], g.d[0], g.in[0], l0, h0);
  TapRange(b1, g.k[1], g.d[1], g.in[1], l1, h1);
  TapRange(b2, g.k[2], g.d[2], g.in[2], l2, h2);
  for (int64_t k0 = l0; k0 < h0; ++k0) {
    const int64_t i0 = b0 + k0 * g.d[0];
    for (int64_t k1 = l1; k1 < h1; ++k1) {
      const int64_t i1 = b1 + k1 * g.d[1];
      for (int64_t k2 = l2; k2 < h2; ++k2) f(i0, i1, b2 + k2 * g.d[2]);
    }
  }
}

// Number of window taps inside the padded extent [-pb, in + pe) along one dim.
inline int64_t PaddedTaps(const Geom3& g, int dim, int64_t o) {
  const int64_t b = o * g.s[dim] - g.pb[dim];
  if (b >= -g.pb[dim] && b + (g.k[dim] - 1) * g.d[dim] < g.in[dim] + g.pe[dim]) return g.k[dim];
  int64_t c = 0;
  for (int64_t k = 0; k < g.k[dim]; ++k) {
    const int64_t i = b + k * g.d[dim];
    if (i >= -g.pb[dim] && i < g.in[dim] + g.pe[dim]) ++c;
  }
  return c;
}

// ParallelFor threshold, in planes of `plane_size` elements, for going parallel above `elements`.
// (ParallelFor runs small loops inline: a serial `omp parallel if` region still allocates a team.)
inline int64_t PlaneThreshold(int64_t plane_size, int64_t elements) {
  return std::max<int64_t>(2, elements / std::max<int64_t>(plane_size, 1));
}

// Runs f(plane_index, out_offset, o0, o1, o2) over all planes and output positions in parallel.
template <typename F>
void ForOutputs(const Geom3& g, int64_t planes, F&& f) {
  const int64_t os = g.out_size();
  ParallelFor(
      planes,
      [&](int64_t begin, int64_t end) {
        for (int64_t p = begin; p < end; ++p)
          for (int64_t o0 = 0; o0 < g.out[0]; ++o0)
            for (int64_t o1 = 0; o1 < g.out[1]; ++o1)
              for (int64_t o2 = 0; o2 < g.out[2]; ++o2)
                f(p, p * os + (o0 * g.out[1] + o1) * g.out[2] + o2, o0, o1, o2);
      },
      PlaneThreshold(os, 4096));
}

// ---- float32 fast path ----
//
// Max and average pooling of float32 without the Indices output, over NCHW or channels-last data.
// Both reduce whole rows of contiguous floats at a time (RowOps): channels-last reduces the C
// channels of every tap of one output position; NCHW first reduces the input rows under the
// window's leading dims into one row, then walks the last dim's taps along that row. The generic
// per-output walk above costs ~30x more (index bookkeeping per tap). Max propagates NaN from any
// tap and takes +0 over -0 (MaxBeats: the generic path does the same, so the result depends on
// neither the tap order nor the ISA); the average sums taps in the generic path's order (except the
// NCHW row split) and divides by the same count.

enum class PoolKind { kMax, kAvg };

// Whether tap v replaces the running maximum `best` (every MaxPool path follows this rule): it is
// larger, or NaN (NaN wins, first NaN kept), or +0 over -0 (IEEE 754-2019 maximum; x86 max returns
// its second operand on ties, so without this the sign of a zero maximum followed the tap order).
// Equal values otherwise keep the first, which the Indices output reports.
template <typename A>
inline bool MaxBeats(A v, A best) {
  if constexpr (std::is_floating_point_v<A>)
    return v > best || (v != v && best == best) || (v == 0 && best == 0 && std::signbit(best) && !std::signbit(v));
  else return v > best;
}

// y[i] = max / sum over the rows of rows[r][i], i < n, combined with y itself when `accumulate`.
// A sum is divided by `divisor` at the end (pass 1 for a partial result).
struct RowOps {
  void (*max)(const float* const* rows, int64_t nrows, int64_t n, float* y, bool accumulate);
  void (*sum)(const float* const* rows, int64_t nrows, int64_t n, float* y, bool accumulate, float divisor);
};

#pragma GCC push_options
// Float compares may trap under the default -ftrapping-math, which stops GCC from vectorising the
// selects below with baseline SSE2.
#pragma GCC optimize("no-trapping-math")
namespace portable {
void RowsMax(const float* const* rows, int64_t nrows, int64_t n, float* y, bool accumulate) {
  for (int64_t r = 0; r < nrows; ++r) {
    const float* x = rows[r];
    if (r == 0 && !accumulate) {
      for (int64_t i = 0; i < n; ++i) y[i] = x[i];
      continue;
    }
    for (int64_t i = 0; i < n; ++i) {
      // MaxBeats, in a form GCC vectorises: the sum of two zeros is -0 only if both are.
      const float a = y[i], v = x[i];
      const float m = (v > a || v != v) && a == a ? v : a;
      y[i] = a == 0.f && v == 0.f ? a + v : m;
    }
  }
}
void RowsSum(const float* const* rows, int64_t nrows, int64_t n, float* y, bool accumulate, float divisor) {
  if (!accumulate)
    for (int64_t i = 0; i < n; ++i) y[i] = 0.f;
  for (int64_t r = 0; r < nrows; ++r) {
    const float* x = rows[r];
    for (int64_t i = 0; i < n; ++i) y[i] += x[i];
  }
  if (divisor != 1.f)
    for (int64_t i = 0; i < n; ++i) y[i] /= divisor;
}
}  // namespace portable
#pragma GCC pop_options

// AVX-512 versions, in an ISA region (isa_region.h): only called after vec::Active() reports AVX-512.
STRATA_BEGIN_AVX512
namespace avx512 {
inline __mmask16 TailMask(int64_t left) {
  return left >= 16 ? static_cast<__mmask16>(0xFFFF) : static_cast<__mmask16>((1u << left) - 1u);
}
// vrangeps with imm 5 is max with +0 over -0; NaN is tracked apart (its result would be an operand).
inline __m512 Max(__m512 a, __m512 b) { return _mm512_range_ps(a, b, 0x5); }
void RowsMax(const float* const* rows, int64_t nrows, int64_t n, float* y, bool accumulate) {
  const __m512 qnan = _mm512_set1_ps(__builtin_nanf(""));
  const int64_t r0 = accumulate ? 0 : 1;
  int64_t i = 0;
  // 64 floats per pass over the rows: four independent max chains, and 256 contiguous bytes per row.
  for (; i + 64 <= n; i += 64) {
    const float* first = accumulate ? y + i : rows[0] + i;
    __m512 a0 = _mm512_loadu_ps(first), a1 = _mm512_loadu_ps(first + 16);
    __m512 a2 = _mm512_loadu_ps(first + 32), a3 = _mm512_loadu_ps(first + 48);
    __mmask16 n0 = _mm512_cmp_ps_mask(a0, a0, _CMP_UNORD_Q), n1 = _mm512_cmp_ps_mask(a1, a1, _CMP_UNORD_Q);
    __mmask16 n2 = _mm512_cmp_ps_mask(a2, a2, _CMP_UNORD_Q), n3 = _mm512_cmp_ps_mask(a3, a3, _CMP_UNORD_Q);
    for (int64_t r = r0; r < nrows; ++r) {
      const float* x = rows[r] + i;
      const __m512 v0 = _mm512_loadu_ps(x), v1 = _mm512_loadu_ps(x + 16);
      const __m512 v2 = _mm512_loadu_ps(x + 32), v3 = _mm512_loadu_ps(x + 48);
      n0 = _kor_mask16(n0, _mm512_cmp_ps_mask(v0, v0, _CMP_UNORD_Q));
      n1 = _kor_mask16(n1, _mm512_cmp_ps_mask(v1, v1, _CMP_UNORD_Q));
      n2 = _kor_mask16(n2, _mm512_cmp_ps_mask(v2, v2, _CMP_UNORD_Q));
      n3 = _kor_mask16(n3, _mm512_cmp_ps_mask(v3, v3, _CMP_UNORD_Q));
      a0 = Max(a0, v0);
      a1 = Max(a1, v1);
      a2 = Max(a2, v2);
      a3 = Max(a3, v3);
    }
    _mm512_storeu_ps(y + i, _mm512_mask_mov_ps(a0, n0, qnan));
    _mm512_storeu_ps(y + i + 16, _mm512_mask_mov_ps(a1, n1, qnan));
    _mm512_storeu_ps(y + i + 32, _mm512_mask_mov_ps(a2, n2, qnan));
    _mm512_storeu_ps(y + i + 48, _mm512_mask_mov_ps(a3, n3, qnan));
  }
  for (; i < n; i += 16) {
    const __mmask16 m = TailMask(n - i);
    __m512 acc = _mm512_maskz_loadu_ps(m, accumulate ? y + i : rows[0] + i);
    __mmask16 nan = _mm512_cmp_ps_mask(acc, acc, _CMP_UNORD_Q);
    for (int64_t r = r0; r < nrows; ++r) {
      const __m512 v = _mm512_maskz_loadu_ps(m, rows[r] + i);
      nan = _kor_mask16(nan, _mm512_cmp_ps_mask(v, v, _CMP_UNORD_Q));
      acc = Max(acc, v);
    }
    _mm512_mask_storeu_ps(y + i, m, _mm512_mask_mov_ps(acc, nan, qnan));
  }
}
void RowsSum(const float* const* rows, int64_t nrows, int64_t n, float* y, bool accumulate, float divisor) {
  const __m512 div = _mm512_set1_ps(divisor);
  for (int64_t i = 0; i < n; i += 16) {
    const __mmask16 m = TailMask(n - i);
    __m512 acc = accumulate ? _mm512_maskz_loadu_ps(m, y + i) : _mm512_setzero_ps();
    for (int64_t r = 0; r < nrows; ++r) acc = _mm512_add_ps(acc, _mm512_maskz_loadu_ps(m, rows[r] + i));
    if (divisor != 1.f) acc = _mm512_div_ps(acc, div);
    _mm512_mask_storeu_ps(y + i, m, acc);
  }
}
}  // namespace avx512
STRATA_END_AVX512

RowOps ActiveRowOps() {
  if (vec::Active().isa == vec::Isa::kAvx512) return {avx512::RowsMax, avx512::RowsSum};
  return {portable::RowsMax, portable::RowsSum};
}

// Tap pointers are reduced in batches of this many (windows larger than that are rare).
constexpr int64_t kTapBatch = 64;

// Reduces `rows` (nrows of them, n floats each) into y: max, or sum times 1/divisor; `accumulate`
// folds y's previous contents in (the callers reduce long windows in batches of kTapBatch).
inline void ReduceRows(const RowOps& ops, PoolKind kind, const float* const* rows, int64_t nrows, int64_t n,
                       float* y, bool accumulate, float divisor) {
  if (kind == PoolKind::kMax) ops.max(rows, nrows, n, y, accumulate);
  else ops.sum(rows, nrows, n, y, accumulate, divisor);
}

// Output value of a window without any tap inside the input (as the generic path).
inline float EmptyWindow(PoolKind kind) {
  return kind == PoolKind::kMax ? -std::numeric_limits<float>::infinity() : 0.f;
}

// Averaging divisor of one window: its taps inside the input, or inside the padded extent.
inline int64_t AvgCount(const Geom3& g, bool include_pad, const int64_t* o, const int64_t* lo, const int64_t* hi) {
  if (!include_pad) return (hi[0] - lo[0]) * (hi[1] - lo[1]) * (hi[2] - lo[2]);
  return PaddedTaps(g, 0, o[0]) * PaddedTaps(g, 1, o[1]) * PaddedTaps(g, 2, o[2]);
}

// X [planes, in0, in1, in2] -> Y [planes, out0, out1, out2].
void PoolNchwF32(const Geom3& g, PoolKind kind, bool include_pad, int64_t planes, const float* x, float* y) {
  const RowOps ops = ActiveRowOps();
  const int64_t out_rows = planes * g.out[0] * g.out[1], is = g.in_size();
  const int64_t row_work = std::max<int64_t>(1, (g.in[2] + g.out[2]) * g.k[0] * g.k[1]);
  ParallelFor(
      out_rows,
      [&](int64_t begin, int64_t end) {
        float* tmp = ThreadScratch(0, static_cast<size_t>(g.in[2]));
        if (!tmp) throw std::bad_alloc();  // as the std::vector this replaced did
        const float* rows[kTapBatch];
        const __m128 v_nan = _mm_set_ss(std::numeric_limits<float>::quiet_NaN()), v_sign = _mm_set_ss(-0.f);
        for (int64_t r = begin; r < end; ++r) {
          const int64_t p = r / (g.out[0] * g.out[1]), o0 = (r / g.out[1]) % g.out[0], o1 = r % g.out[1];
          const float* xp = x + p * is;
          float* yr = y + r * g.out[2];
          const int64_t b0 = o0 * g.s[0] - g.pb[0], b1 = o1 * g.s[1] - g.pb[1];
          int64_t lo[3], hi[3];
          TapRange(b0, g.k[0], g.d[0], g.in[0], lo[0], hi[0]);
          TapRange(b1, g.k[1], g.d[1], g.in[1], lo[1], hi[1]);
          if (lo[0] == hi[0] || lo[1] == hi[1]) {
            for (int64_t o2 = 0; o2 < g.out[2]; ++o2) yr[o2] = EmptyWindow(kind);
            continue;
          }
          // Rows under the window's leading dims, reduced into tmp.
          int64_t nrows = 0;
          bool accumulate = false;
          for (int64_t k0 = lo[0]; k0 < hi[0]; ++k0)
            for (int64_t k1 = lo[1]; k1 < hi[1]; ++k1) {
              rows[nrows++] = xp + ((b0 + k0 * g.d[0]) * g.in[1] + b1 + k1 * g.d[1]) * g.in[2];
              if (nrows == kTapBatch) {
                ReduceRows(ops, kind, rows, nrows, g.in[2], tmp, accumulate, 1.f);
                nrows = 0;
                accumulate = true;
              }
            }
          ReduceRows(ops, kind, rows, nrows, g.in[2], tmp, accumulate, 1.f);
          for (int64_t o2 = 0; o2 < g.out[2]; ++o2) {
            const int64_t b2 = o2 * g.s[2] - g.pb[2];  // may be negative: index tmp only at valid taps
            TapRange(b2, g.k[2], g.d[2], g.in[2], lo[2], hi[2]);
            if (kind == PoolKind::kMax) {
              // Branch-free SSE scalar max: compare-and-branch mispredicts on every other tap. NaN
              // and +0 (whose presence turns a -0 maximum into +0, as MaxBeats) are tracked apart.
              __m128 best = _mm_set_ss(EmptyWindow(kind)), nan = _mm_setzero_ps();
              __m128i pos0 = _mm_setzero_si128();
              for (int64_t k2 = lo[2]; k2 < hi[2]; ++k2) {
                const __m128 v = _mm_load_ss(tmp + b2 + k2 * g.d[2]);
                nan = _mm_or_ps(nan, _mm_cmpunord_ss(v, v));
                pos0 = _mm_or_si128(pos0, _mm_cmpeq_epi32(_mm_castps_si128(v), _mm_setzero_si128()));
                best = _mm_max_ss(best, v);
              }
              best = _mm_andnot_ps(_mm_and_ps(_mm_castsi128_ps(pos0), v_sign), best);
              yr[o2] = _mm_cvtss_f32(_mm_or_ps(_mm_and_ps(nan, v_nan), _mm_andnot_ps(nan, best)));
            } else {
              float sum = 0.f;
              for (int64_t k2 = lo[2]; k2 < hi[2]; ++k2) sum += tmp[b2 + k2 * g.d[2]];
              const int64_t o[3] = {o0, o1, o2};
              const int64_t cnt = AvgCount(g, include_pad, o, lo, hi);
              yr[o2] = cnt > 0 && hi[2] > lo[2] ? sum / static_cast<float>(cnt) : 0.f;
            }
          }
        }
      },
      PlaneThreshold(row_work, 1 << 15));
}

// Channels-last X [n, in0, in1, in2, c] -> Y [n, out0, out1, out2, c].
void PoolNhwcF32(const Geom3& g, PoolKind kind, bool include_pad, int64_t n, int64_t c, const float* x, float* y) {
  const RowOps ops = ActiveRowOps();
  const int64_t out_rows = n * g.out[0] * g.out[1], is = g.in_size() * c;
  const int64_t row_work = std::max<int64_t>(1, g.out[2] * g.k[0] * g.k[1] * g.k[2] * c);
  ParallelFor(
      out_rows,
      [&](int64_t begin, int64_t end) {
        const float* rows[kTapBatch];
        for (int64_t r = begin; r < end; ++r) {
          const int64_t b = r / (g.out[0] * g.out[1]), o0 = (r / g.out[1]) % g.out[0], o1 = r % g.out[1];
          const float* xb = x + b * is;
          const int64_t b0 = o0 * g.s[0] - g.pb[0], b1 = o1 * g.s[1] - g.pb[1];
          int64_t lo[3], hi[3];
          TapRange(b0, g.k[0], g.d[0], g.in[0], lo[0], hi[0]);
          TapRange(b1, g.k[1], g.d[1], g.in[1], lo[1], hi[1]);
          for (int64_t o2 = 0; o2 < g.out[2]; ++o2) {
            float* yp = y + (r * g.out[2] + o2) * c;
            const int64_t b2 = o2 * g.s[2] - g.pb[2];
            TapRange(b2, g.k[2], g.d[2], g.in[2], lo[2], hi[2]);
            const int64_t o[3] = {o0, o1, o2};
            const int64_t cnt = kind == PoolKind::kAvg ? AvgCount(g, include_pad, o, lo, hi) : 1;
            const bool empty = lo[0] == hi[0] || lo[1] == hi[1] || lo[2] == hi[2];
            if (empty || cnt <= 0) {
              for (int64_t i = 0; i < c; ++i) yp[i] = EmptyWindow(kind);
              continue;
            }
            const float divisor = static_cast<float>(cnt);
            int64_t nrows = 0;
            bool accumulate = false;
            for (int64_t k0 = lo[0]; k0 < hi[0]; ++k0)
              for (int64_t k1 = lo[1]; k1 < hi[1]; ++k1) {
                const float* line = xb + ((b0 + k0 * g.d[0]) * g.in[1] + b1 + k1 * g.d[1]) * g.in[2] * c;
                for (int64_t k2 = lo[2]; k2 < hi[2]; ++k2) {
                  rows[nrows++] = line + (b2 + k2 * g.d[2]) * c;
                  if (nrows == kTapBatch) {
                    ReduceRows(ops, kind, rows, nrows, c, yp, accumulate, 1.f);
                    nrows = 0;
                    accumulate = true;
                  }
                }
              }
            ReduceRows(ops, kind, rows, nrows, c, yp, accumulate, divisor);
          }
        }
      },
      PlaneThreshold(row_work, 1 << 15));
}

// The pooling layout a com.strata pooling node declares ("layout": NCHW or NHWC); ONNX nodes are NCHW.
Status ReadLayout(const KernelInfo& info, bool& nhwc) {
  nhwc = false;
  if (info.node().domain != "com.strata") return Status::Ok();
  const std::string v = info.attr_string("layout", "NCHW");
  if (v != "NCHW" && v != "NHWC") return info.Error("layout must be NCHW or NHWC, got '" + v + "'");
  nhwc = v == "NHWC";
  if (nhwc) {
    RETURN_IF_ERROR(CheckInputDType(info, 0, {DType::kFloat}));
    const ir::TypeInfo* t = info.input_type(0);
    if (t && t->shape && t->shape->size() != 4) return info.Error("the NHWC layout needs a 4-D input");
  }
  return Status::Ok();
}

// Runs the float32 fast path into an already allocated Y. Returns an error for layouts it cannot
// take (a channels-last X must be 4-D float32).
Status PoolF32(const Tensor& X, Tensor& Y, const Geom3& g, PoolKind kind, bool include_pad, bool nhwc) {
  if (nhwc) {
    if (X.dtype() != DType::kFloat || X.rank() != 4)
      return InvalidArgument("channels-last pooling needs a 4-D float32 input, got " + ShapeToString(X.shape()));
    PoolNhwcF32(g, kind, include_pad, X.dim(0), X.dim(1), X.data<float>(), Y.data<float>());
  } else {
    PoolNchwF32(g, kind, include_pad, X.dim(0) * X.dim(1), X.data<float>(), Y.data<float>());
  }
  return Status::Ok();
}

using PoolFloatTypes = TypeList<float, double, Float16, BFloat16>;
using MaxPoolTypes = TypeList<float, double, Float16, BFloat16, int8_t, uint8_t>;

class MaxPoolKernel final : public OpKernel {
 public:
  Status Init(const KernelInfo& info) {
    RETURN_IF_ERROR(CheckInputDType(info, 0, DTypesOf(MaxPoolTypes{})));
    RETURN_IF_ERROR(a_.Load(info, info.opset() >= 10, info.opset() >= 10));
    if (a_.kernel_shape.empty()) return info.Error("kernel_shape is required");
    storage_order_ = info.attr_int("storage_order", 0);
    if (storage_order_ != 0 && storage_order_ != 1) return info.Error("storage_order must be 0 or 1");
    RETURN_IF_ERROR(ReadLayout(info, nhwc_));
    if (nhwc_ && info.num_outputs() > 1 && info.output_requested(1))
      return info.Error("the NHWC layout cannot return Indices");
    return Status::Ok();
  }
  Status Compute(KernelContext& ctx) override {
    const Tensor& X = ctx.input_tensor(0);
    SpatialGeom sg;
    Shape ys;
    RETURN_IF_ERROR(PoolGeom(a_, X.shape(), true, sg, ys));
    const Geom3 g = To3(sg);
    ASSIGN_OR_RETURN(Tensor * Y, ctx.AllocateOutput(0, X.dtype(), ys));
    const bool want_indices = ctx.num_outputs() > 1 && ctx.output_requested(1);
    if (nhwc_ || (X.dtype() == DType::kFloat && !want_indices))
      return PoolF32(X, *Y, g, PoolKind::kMax, false, nhwc_);
    int64_t* ind = nullptr;
    if (want_indices) {
      ASSIGN_OR_RETURN(Tensor * I, ctx.AllocateOutput(1, DType::kInt64, ys));
      ind = I->data<int64_t>();
    }
    const int64_t planes = X.dim(0) * X.dim(1), is = g.in_size();
    // Strides of the spatial dims in the index output (row- or column-major over the real dims).
    int64_t ist[3] = {0, 0, 0};
    {
      int64_t acc = 1;
      if (storage_order_ == 0) {
        for (int i = 2; i >= 0; --i) { ist[i] = acc; acc *= g.in[i]; }
      } else {
        for (int i = 3 - g.nsp; i < 3; ++i) { ist[i] = acc; acc *= g.in[i]; }
      }
    }
    return Dispatch(MaxPoolTypes{}, X.dtype(), [&](auto* tag) -> Status {
      using T = std::remove_pointer_t<decltype(tag)>;
      using A = ComputeType<T>;
      const T* x = X.data<T>();
      T* y = Y->data<T>();
      ForOutputs(g, planes, [&](int64_t p, int64_t oo, int64_t o0, int64_t o1, int64_t o2) {
        const T* xp = x + p * is;
        A best = std::numeric_limits<A>::lowest();
        if constexpr (std::is_floating_point_v<A>) best = -std::numeric_limits<A>::infinity();
        int64_t bi = -1;
        ForWindow(g, o0, o1, o2, [&](int64_t i0, int64_t i1, int64_t i2) {
          const A v = static_cast<A>(xp[(i0 * g.in[1] + i1) * g.in[2] + i2]);
          if (bi < 0 || MaxBeats(v, best)) {
            best = v;
            bi = i0 * ist[0] + i1 * ist[1] + i2 * ist[2];
          }
        });
        y[oo] = static_cast<T>(best);
        if (ind) ind[oo] = p * is + std::max<int64_t>(bi, 0);
      });
      return Status::Ok();
    });
  }

 private:
  SpatialAttrs a_;
  int64_t storage_order_ = 0;
  bool nhwc_ = false;
};

// AveragePool and LpPool differ only in how one window is reduced; the geometry, output allocation, dtype
// dispatch and parallel walk over the outputs are shared here. reduce(g, plane, o0, o1, o2) returns the
// window's value in ComputeType<T> for the input plane `plane` (a const T*).
template <typename Reduce>
Status PoolWindows(KernelContext& ctx, const SpatialAttrs& a, bool allow_dilation, const Reduce& reduce) {
  const Tensor& X = ctx.input_tensor(0);
  SpatialGeom sg;
  Shape ys;
  RETURN_IF_ERROR(PoolGeom(a, X.shape(), allow_dilation, sg, ys));
  const Geom3 g = To3(sg);
  ASSIGN_OR_RETURN(Tensor * Y, ctx.AllocateOutput(0, X.dtype(), ys));
  const int64_t planes = X.dim(0) * X.dim(1), is = g.in_size();
  return Dispatch(PoolFloatTypes{}, X.dtype(), [&](auto* tag) -> Status {
    using T = std::remove_pointer_t<decltype(tag)>;
    const T* x = X.data<T>();
    T* y = Y->data<T>();
    ForOutputs(g, planes, [&](int64_t p, int64_t oo, int64_t o0, int64_t o1, int64_t o2) {
      y[oo] = static_cast<T>(reduce(g, x + p * is, o0, o1, o2));
    });
    return Status::Ok();
  });
}

class AveragePoolKernel final : public OpKernel {
 public:
  Status Init(const KernelInfo& info) {
    RETURN_IF_ERROR(CheckInputDType(info, 0, DTypesOf(PoolFloatTypes{})));
    RETURN_IF_ERROR(a_.Load(info, info.opset() >= 19, info.opset() >= 10));
    if (a_.kernel_shape.empty()) return info.Error("kernel_shape is required");
    count_include_pad_ = info.attr_int("count_include_pad", 0) != 0;
    return ReadLayout(info, nhwc_);
  }
  Status Compute(KernelContext& ctx) override {
    const Tensor& X = ctx.input_tensor(0);
    if (nhwc_ || X.dtype() == DType::kFloat) {
      SpatialGeom sg;
      Shape ys;
      RETURN_IF_ERROR(PoolGeom(a_, X.shape(), false, sg, ys));
      ASSIGN_OR_RETURN(Tensor * Y, ctx.AllocateOutput(0, X.dtype(), ys));
      return PoolF32(X, *Y, To3(sg), PoolKind::kAvg, count_include_pad_, nhwc_);
    }
    return PoolWindows(ctx, a_, false, [&](const Geom3& g, const auto* xp, int64_t o0, int64_t o1, int64_t o2) {
      using A = ComputeType<std::remove_cv_t<std::remove_pointer_t<decltype(xp)>>>;
      A sum = 0;
      int64_t cnt = 0;
      ForWindow(g, o0, o1, o2, [&](int64_t i0, int64_t i1, int64_t i2) {
        sum += static_cast<A>(xp[(i0 * g.in[1] + i1) * g.in[2] + i2]);
        ++cnt;
      });
      if (count_include_pad_) cnt = PaddedTaps(g, 0, o0) * PaddedTaps(g, 1, o1) * PaddedTaps(g, 2, o2);
      return cnt > 0 ? sum / static_cast<A>(cnt) : A(0);
    });
  }

 private:
  SpatialAttrs a_;
  bool count_include_pad_ = false;
  bool nhwc_ = false;
};

float ReadP(const KernelInfo& info) {
  const ir::Attribute* a = info.attr("p");
  if (!a) return 2.f;
  return a->type == ir::Attribute::Type::kFloat ? a->f : static_cast<float>(a->i);
}

template <typename A>
inline A LpFinish(A sum, float p) {
  if (p == 2.f) return std::sqrt(sum);
  if (p == 1.f) return sum;
  return std::pow(sum, A(1) / static_cast<A>(p));
}
template <typename A>
inline A LpTerm(A v, float p) {
  if (p == 2.f) return v * v;
  if (p == 1.f) return std::abs(v);
  return std::pow(std::abs(v), static_cast<A>(p));
}

class LpPoolKernel final : public OpKernel {
 public:
  Status Init(const KernelInfo& info) {
    RETURN_IF_ERROR(CheckInputDType(info, 0, DTypesOf(PoolFloatTypes{})));
    RETURN_IF_ERROR(a_.Load(info, info.opset() >= 18, info.opset() >= 18));
    if (a_.kernel_shape.empty()) return info.Error("kernel_shape is required");
    p_ = ReadP(info);
    if (!(p_ > 0)) return info.Error("p must be positive");
    return Status::Ok();
  }
  Status Compute(KernelContext& ctx) override {
    return PoolWindows(ctx, a_, true, [&](const Geom3& g, const auto* xp, int64_t o0, int64_t o1, int64_t o2) {
      using A = ComputeType<std::remove_cv_t<std::remove_pointer_t<decltype(xp)>>>;
      A sum = 0;
      ForWindow(g, o0, o1, o2, [&](int64_t i0, int64_t i1, int64_t i2) {
        sum += LpTerm(static_cast<A>(xp[(i0 * g.in[1] + i1) * g.in[2] + i2]), p_);
      });
      return LpFinish(sum, p_);
    });
  }

 private:
  SpatialAttrs a_;
  float p_ = 2.f;
};

enum class GlobalKind { kAvg, kMax, kLp };

#pragma GCC push_options
#pragma GCC optimize("no-trapping-math")
// Channels-last X [n, hw, c] -> Y [n, c]: sums each channel over the positions in order, like the
// NCHW loop, so both layouts give the same bits.
void GlobalAvgNhwc(int64_t n, int64_t c, int64_t hw, const float* x, float* y) {
  for (int64_t b = 0; b < n; ++b) {
    float* yb = y + b * c;
    const float* xb = x + b * hw * c;
    for (int64_t i = 0; i < c; ++i) yb[i] = 0.f;
    for (int64_t p = 0; p < hw; ++p)
      for (int64_t i = 0; i < c; ++i) yb[i] += xb[p * c + i];
    for (int64_t i = 0; i < c; ++i) yb[i] = hw ? yb[i] / static_cast<float>(hw) : 0.f;
  }
}
#pragma GCC pop_options

template <GlobalKind K>
class GlobalPoolKernel final : public OpKernel {
 public:
  Status Init(const KernelInfo& info) {
    RETURN_IF_ERROR(CheckInputDType(info, 0, DTypesOf(PoolFloatTypes{})));
    if constexpr (K == GlobalKind::kLp) {
      p_ = ReadP(info);
      if (!(p_ > 0)) return info.Error("p must be positive");
    }
    return ReadLayout(info, nhwc_);
  }
  Status Compute(KernelContext& ctx) override {
    const Tensor& X = ctx.input_tensor(0);
    if (X.rank() < 2) return InvalidArgument("global pooling input must have rank >= 2");
    Shape ys = X.shape();
    for (size_t i = 2; i < ys.size(); ++i) ys[i] = 1;
    ASSIGN_OR_RETURN(Tensor * Y, ctx.AllocateOutput(0, X.dtype(), ys));
    const int64_t planes = X.dim(0) * X.dim(1);
    const int64_t is = planes ? X.numel() / planes : 0;
    if (nhwc_) {  // Y [N, C, 1, 1] is the same in either layout
      if constexpr (K != GlobalKind::kAvg) return Unsupported("channels-last GlobalMaxPool/GlobalLpPool");
      if (X.dtype() != DType::kFloat || X.rank() != 4)
        return InvalidArgument("channels-last GlobalAveragePool needs a 4-D float32 input, got " +
                               ShapeToString(X.shape()));
      GlobalAvgNhwc(X.dim(0), X.dim(1), is, X.data<float>(), Y->data<float>());
      return Status::Ok();
    }
    return Dispatch(PoolFloatTypes{}, X.dtype(), [&](auto* tag) -> Status {
      using T = std::remove_pointer_t<decltype(tag)>;
      using A = ComputeType<T>;
      const T* x = X.data<T>();
      T* y = Y->data<T>();
      ParallelFor(
          planes,
          [&](int64_t begin, int64_t end) {
            for (int64_t p = begin; p < end; ++p) {
              const T* xp = x + p * is;
              A acc;
              if constexpr (K == GlobalKind::kMax) {
                acc = -std::numeric_limits<A>::infinity();
                for (int64_t i = 0; i < is; ++i)
                  if (MaxBeats(static_cast<A>(xp[i]), acc)) acc = static_cast<A>(xp[i]);
              } else if constexpr (K == GlobalKind::kAvg) {
                acc = 0;
                for (int64_t i = 0; i < is; ++i) acc += static_cast<A>(xp[i]);
                acc = is ? acc / static_cast<A>(is) : A(0);
              } else {
                acc = 0;
                for (int64_t i = 0; i < is; ++i) acc += LpTerm(static_cast<A>(xp[i]), p_);
                acc = LpFinish(acc, p_);
              }
              y[p] = static_cast<T>(acc);
            }
          },
          PlaneThreshold(is, 1 << 16));
      return Status::Ok();
    });
  }

 private:
  float p_ = 2.f;
  bool nhwc_ = false;
};

using UnpoolTypes = TypeList<float, double, Float16, BFloat16>;

class MaxUnpoolKernel final : public OpKernel {
 public:
  Status Init(const KernelInfo& info) {
    RETURN_IF_ERROR(CheckInputDType(info, 0, DTypesOf(UnpoolTypes{})));
    RETURN_IF_ERROR(a_.Load(info, false, false));
    if (a_.kernel_shape.empty()) return info.Error("kernel_shape is required");
    return Status::Ok();
  }
  Status Compute(KernelContext& ctx) override {
    const Tensor& X = ctx.input_tensor(0);
    const Tensor& I = ctx.input_tensor(1);
    if (X.rank() < 3) return InvalidArgument("MaxUnpool: X must have rank >= 3");
    if (I.dtype() != DType::kInt64 || I.shape() != X.shape())
      return InvalidArgument("MaxUnpool: I must be int64 with the shape of X");
    const size_t nsp = static_cast<size_t>(X.rank() - 2);
    if (a_.kernel_shape.size() != nsp) return InvalidArgument("MaxUnpool: kernel_shape length mismatch");
    const Shape strides = a_.strides.empty() ? Shape(nsp, 1) : Shape(a_.strides);
    const Shape pads = a_.pads.empty() ? Shape(2 * nsp, 0) : Shape(a_.pads);
    if (strides.size() != nsp || pads.size() != 2 * nsp) return InvalidArgument("MaxUnpool: strides/pads length mismatch");
    Shape ys{X.dim(0), X.dim(1)};
    for (size_t i = 0; i < nsp; ++i)
      ys.push_back((X.dim(static_cast<int>(i) + 2) - 1) * strides[i] - pads[i] - pads[i + nsp] + a_.kernel_shape[i]);
    Shape out_shape = ys;
    if (ctx.has_input(2)) {
      ASSIGN_OR_RETURN(std::vector<int64_t> os, ReadInt64s(ctx.input_tensor(2)));
      if (os.size() != ys.size()) return InvalidArgument("MaxUnpool: output_shape has the wrong rank");
      out_shape = os;
    }
    ASSIGN_OR_RETURN(Tensor * Y, ctx.AllocateZeroedOutput(0, X.dtype(), out_shape));
    // Indices address the default output shape; map them by coordinates into the requested one.
    const int64_t ndef = NumElements(ys);
    const bool same = out_shape == ys;
    const int64_t* idx = I.data<int64_t>();
    const size_t es = DTypeSize(X.dtype());
    const char* x = static_cast<const char*>(X.raw());
    char* y = static_cast<char*>(Y->raw());
    const int rank = static_cast<int>(ys.size());
    for (int64_t i = 0; i < X.numel(); ++i) {
      if (idx[i] < 0 || idx[i] >= ndef)
        return InvalidArgument("MaxUnpool: index " + std::to_string(idx[i]) + " out of range for output of " +
                               std::to_string(ndef) + " elements");
      int64_t dst = idx[i];
      if (!same) {
        int64_t rem = idx[i], mul = 1;
        dst = 0;
        for (int d = rank - 1; d >= 0; --d) {
          const int64_t c = rem % ys[static_cast<size_t>(d)];
          rem /= ys[static_cast<size_t>(d)];
          if (c >= out_shape[static_cast<size_t>(d)]) return InvalidArgument("MaxUnpool: index outside output_shape");
          dst += c * mul;
          mul *= out_shape[static_cast<size_t>(d)];
        }
      }
      std::memcpy(y + static_cast<size_t>(dst) * es, x + static_cast<size_t>(i) * es, es);
    }
    return Status::Ok();
  }

 private:
  SpatialAttrs a_;
};

class MaxRoiPoolKernel final : public OpKernel {
 public:
  Status Init(const KernelInfo& info) {
    RETURN_IF_ERROR(CheckInputDType(info, 0, DTypesOf(PoolFloatTypes{})));
    pooled_ = info.attr_ints("pooled_shape");
    if (pooled_.size() != 2 || pooled_[0] <= 0 || pooled_[1] <= 0)
      return info.Error("pooled_shape must hold two positive values");
    scale_ = info.attr_float("spatial_scale", 1.f);
    return Status::Ok();
  }
  Status Compute(KernelContext& ctx) override {
    const Tensor& X = ctx.input_tensor(0);
    const Tensor& R = ctx.input_tensor(1);
    if (X.rank() != 4) return InvalidArgument("MaxRoiPool: X must be 4-D");
    if (R.rank() != 2 || R.dim(1) != 5 || R.dtype() != X.dtype())
      return InvalidArgument("MaxRoiPool: rois must be [num_rois, 5] of X's dtype");
    const int64_t C = X.dim(1), H = X.dim(2), W = X.dim(3), nr = R.dim(0), PH = pooled_[0], PW = pooled_[1];
    ASSIGN_OR_RETURN(Tensor * Y, ctx.AllocateOutput(0, X.dtype(), {nr, C, PH, PW}));
    return Dispatch(PoolFloatTypes{}, X.dtype(), [&](auto* tag) -> Status {
      using T = std::remove_pointer_t<decltype(tag)>;
      using A = ComputeType<T>;
      const T* x = X.data<T>();
      const T* r = R.data<T>();
      T* y = Y->data<T>();
      for (int64_t n = 0; n < nr; ++n) {
        const int64_t b = static_cast<int64_t>(static_cast<A>(r[n * 5]));
        if (b < 0 || b >= X.dim(0)) return InvalidArgument("MaxRoiPool: roi batch index out of range");
        const int64_t x1 = static_cast<int64_t>(std::round(static_cast<A>(r[n * 5 + 1]) * scale_));
        const int64_t y1 = static_cast<int64_t>(std::round(static_cast<A>(r[n * 5 + 2]) * scale_));
        const int64_t x2 = static_cast<int64_t>(std::round(static_cast<A>(r[n * 5 + 3]) * scale_));
        const int64_t y2 = static_cast<int64_t>(std::round(static_cast<A>(r[n * 5 + 4]) * scale_));
        const int64_t rw = std::max<int64_t>(x2 - x1 + 1, 1), rh = std::max<int64_t>(y2 - y1 + 1, 1);
        const double bh = static_cast<double>(rh) / static_cast<double>(PH);
        const double bw = static_cast<double>(rw) / static_cast<double>(PW);
        for (int64_t c = 0; c < C; ++c) {
          const T* xp = x + (b * C + c) * H * W;
          for (int64_t ph = 0; ph < PH; ++ph)
            for (int64_t pw = 0; pw < PW; ++pw) {
              int64_t hs = static_cast<int64_t>(std::floor(static_cast<double>(ph) * bh)) + y1;
              int64_t he = static_cast<int64_t>(std::ceil(static_cast<double>(ph + 1) * bh)) + y1;
              int64_t ws = static_cast<int64_t>(std::floor(static_cast<double>(pw) * bw)) + x1;
              int64_t we = static_cast<int64_t>(std::ceil(static_cast<double>(pw + 1) * bw)) + x1;
              hs = std::clamp<int64_t>(hs, 0, H);
              he = std::clamp<int64_t>(he, 0, H);
              ws = std::clamp<int64_t>(ws, 0, W);
              we = std::clamp<int64_t>(we, 0, W);
              A best = 0;
              bool any = false;
              for (int64_t h = hs; h < he; ++h)
                for (int64_t w = ws; w < we; ++w) {
                  const A v = static_cast<A>(xp[h * W + w]);
                  if (!any || v > best) { best = v; any = true; }
                }
              y[((n * C + c) * PH + ph) * PW + pw] = static_cast<T>(any ? best : A(0));
            }
        }
      }
      return Status::Ok();
    });
  }

 private:
  std::vector<int64_t> pooled_;
  float scale_ = 1.f;
};

const KernelRegistrar kMaxPool{{.op_type = "MaxPool", .since = 1, .until = 18, .dtypes = DTypesOf(MaxPoolTypes{}),
                                .factory = MakeKernel<MaxPoolKernel>}};
const KernelRegistrar kAveragePool{{.op_type = "AveragePool", .since = 1, .until = 18,
                                    .dtypes = DTypesOf(PoolFloatTypes{}), .factory = MakeKernel<AveragePoolKernel>}};
const KernelRegistrar kLpPool{{.op_type = "LpPool", .since = 1, .until = 18, .dtypes = DTypesOf(PoolFloatTypes{}),
                               .factory = MakeKernel<LpPoolKernel>}};
const KernelRegistrar kGlobalAveragePool{{.op_type = "GlobalAveragePool", .since = 1, .until = 18,
                                          .dtypes = DTypesOf(PoolFloatTypes{}),
                                          .factory = MakeKernel<GlobalPoolKernel<GlobalKind::kAvg>>}};
const KernelRegistrar kGlobalMaxPool{{.op_type = "GlobalMaxPool", .since = 1, .until = 18,
                                      .dtypes = DTypesOf(PoolFloatTypes{}),
                                      .factory = MakeKernel<GlobalPoolKernel<GlobalKind::kMax>>}};
const KernelRegistrar kGlobalLpPool{{.op_type = "GlobalLpPool", .since = 1, .until = 18,
                                     .dtypes = DTypesOf(PoolFloatTypes{}),
                                     .factory = MakeKernel<GlobalPoolKernel<GlobalKind::kLp>>}};
// The channels-last forms the conv-layout pass writes (attribute "layout"; docs/passes.md). The node
// keeps the ONNX opset it was written for in its opset override, so the attributes mean the same.
const KernelRegistrar kStrataMaxPool{{.op_type = "MaxPool", .domain = "com.strata", .since = 1, .until = 18,
                                      .dtypes = {DType::kFloat}, .factory = MakeKernel<MaxPoolKernel>}};
const KernelRegistrar kStrataAveragePool{{.op_type = "AveragePool", .domain = "com.strata", .since = 1, .until = 18,
                                          .dtypes = {DType::kFloat}, .factory = MakeKernel<AveragePoolKernel>}};
const KernelRegistrar kStrataGlobalAveragePool{{.op_type = "GlobalAveragePool", .domain = "com.strata", .since = 1,
                                                .until = 18, .dtypes = {DType::kFloat},
                                                .factory = MakeKernel<GlobalPoolKernel<GlobalKind::kAvg>>}};
const KernelRegistrar kMaxUnpool{{.op_type = "MaxUnpool", .since = 9, .until = 18, .dtypes = DTypesOf(UnpoolTypes{}),
                                  .factory = MakeKernel<MaxUnpoolKernel>}};
const KernelRegistrar kMaxRoiPool{{.op_type = "MaxRoiPool", .since = 1, .until = 18,
                                   .dtypes = DTypesOf(PoolFloatTypes{}), .factory = MakeKernel<MaxRoiPoolKernel>}};

}  // namespace
}  // namespace strata::cpu
