#include "kernels/cpu/ukernels/pool_rows.h"

#include <immintrin.h>

#include <limits>

#include "kernels/cpu/ukernels/isa_region.h"

namespace strata::cpu::uk {

#pragma GCC push_options
// Float compares may trap under the default -ftrapping-math, which stops GCC from vectorising the
// selects below with baseline SSE2.
#pragma GCC optimize("no-trapping-math")
namespace {
void MaxRowsPortable(const float* const* rows, int64_t nrows, int64_t n, float* y, bool accumulate) {
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

void SumRowsPortable(const float* const* rows, int64_t nrows, int64_t n, float* y, bool accumulate, float divisor) {
  if (!accumulate)
    for (int64_t i = 0; i < n; ++i) y[i] = 0.f;
  for (int64_t r = 0; r < nrows; ++r) {
    const float* x = rows[r];
    for (int64_t i = 0; i < n; ++i) y[i] += x[i];
  }
  if (divisor != 1.f)
    for (int64_t i = 0; i < n; ++i) y[i] /= divisor;
}
}  // namespace

void GlobalAvgPoolChannelsLastF32(int64_t n, int64_t c, int64_t hw, const float* x, float* y) {
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

namespace {

// Only called after vec::Active() reports AVX-512 (isa_region.h).
STRATA_BEGIN_AVX512
inline __mmask16 TailMask(int64_t left) {
  return left >= 16 ? static_cast<__mmask16>(0xFFFF) : static_cast<__mmask16>((1u << left) - 1u);
}

// vrangeps with imm 5 is max with +0 over -0; NaN is tracked apart (its result would be an operand).
inline __m512 MaxPlusZero(__m512 a, __m512 b) { return _mm512_range_ps(a, b, 0x5); }

void MaxRowsAvx512(const float* const* rows, int64_t nrows, int64_t n, float* y, bool accumulate) {
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
      a0 = MaxPlusZero(a0, v0);
      a1 = MaxPlusZero(a1, v1);
      a2 = MaxPlusZero(a2, v2);
      a3 = MaxPlusZero(a3, v3);
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
      acc = MaxPlusZero(acc, v);
    }
    _mm512_mask_storeu_ps(y + i, m, _mm512_mask_mov_ps(acc, nan, qnan));
  }
}

void SumRowsAvx512(const float* const* rows, int64_t nrows, int64_t n, float* y, bool accumulate, float divisor) {
  const __m512 div = _mm512_set1_ps(divisor);
  for (int64_t i = 0; i < n; i += 16) {
    const __mmask16 m = TailMask(n - i);
    __m512 acc = accumulate ? _mm512_maskz_loadu_ps(m, y + i) : _mm512_setzero_ps();
    for (int64_t r = 0; r < nrows; ++r) acc = _mm512_add_ps(acc, _mm512_maskz_loadu_ps(m, rows[r] + i));
    if (divisor != 1.f) acc = _mm512_div_ps(acc, div);
    _mm512_mask_storeu_ps(y + i, m, acc);
  }
}
STRATA_END_AVX512

}  // namespace

PoolRowsF32 PoolRowsF32For(vec::Isa isa) {
  if (isa == vec::Isa::kAvx512) return {MaxRowsAvx512, SumRowsAvx512};
  return {MaxRowsPortable, SumRowsPortable};
}

// Baseline x86-64 (SSE scalar operations), the same at every vec::Isa level.
void MaxPoolRow1dF32(const float* x, int64_t in, int64_t k, int64_t stride, int64_t dilation, int64_t pad_begin,
                     float* y, int64_t out) {
  const __m128 v_nan = _mm_set_ss(std::numeric_limits<float>::quiet_NaN()), v_sign = _mm_set_ss(-0.f);
  for (int64_t o = 0; o < out; ++o) {
    const int64_t b = o * stride - pad_begin;  // may be negative: index x only at valid taps
    int64_t lo, hi;
    PoolTapRange(b, k, dilation, in, lo, hi);
    // Branch-free scalar max: compare-and-branch mispredicts on every other tap. NaN and +0 (whose
    // presence turns a -0 maximum into +0, as MaxBeats) are tracked apart.
    __m128 best = _mm_set_ss(-std::numeric_limits<float>::infinity()), nan = _mm_setzero_ps();
    __m128i pos0 = _mm_setzero_si128();
    for (int64_t t = lo; t < hi; ++t) {
      const __m128 v = _mm_load_ss(x + b + t * dilation);
      nan = _mm_or_ps(nan, _mm_cmpunord_ss(v, v));
      pos0 = _mm_or_si128(pos0, _mm_cmpeq_epi32(_mm_castps_si128(v), _mm_setzero_si128()));
      best = _mm_max_ss(best, v);
    }
    best = _mm_andnot_ps(_mm_and_ps(_mm_castsi128_ps(pos0), v_sign), best);
    y[o] = _mm_cvtss_f32(_mm_or_ps(_mm_and_ps(nan, v_nan), _mm_andnot_ps(nan, best)));
  }
}

}  // namespace strata::cpu::uk
