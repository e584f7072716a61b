#include "kernels/cpu/ukernels/attention_tiles.h"

#include <immintrin.h>

#include <cstring>

#include "kernels/cpu/ukernels/isa_region.h"

namespace strata::cpu::uk {
namespace {

using ScoresFn = void (*)(const float*, int64_t, const float*, int64_t, int64_t, float, float*, int64_t, int64_t,
                          int64_t);
using WeightedValuesFn = void (*)(const float*, int64_t, int64_t, const float*, int64_t, int64_t, float*, int64_t,
                                  int64_t);
// K^T from rows of K contiguous along c (k_d == 1), as pack_keys_transposed.
using TransposeKeysFn = void (*)(const float* k, int64_t k_s, int64_t sk, int64_t d, float* kt, int64_t ldk);

// ---- scalar ----
namespace scalar {

void Scores(const float* q, int64_t q_s, const float* kt, int64_t ldk, int64_t d, float scale, float* s, int64_t lds,
            int64_t rows, int64_t n) {
  for (int64_t r = 0; r < rows; ++r) {
    float* sr = s + r * lds;
    for (int64_t j = 0; j < n; ++j) sr[j] = 0;
    for (int64_t c = 0; c < d; ++c) {
      const float qv = q[r * q_s + c];
      const float* kr = kt + c * ldk;
      for (int64_t j = 0; j < n; ++j) sr[j] += qv * kr[j];
    }
    for (int64_t j = 0; j < n; ++j) sr[j] *= scale;
  }
}

void WeightedValues(const float* p, int64_t ldp, int64_t n, const float* v, int64_t v_s, int64_t dv, float* y,
                    int64_t y_s, int64_t rows) {
  for (int64_t r = 0; r < rows; ++r) {
    float* yr = y + r * y_s;
    for (int64_t c = 0; c < dv; ++c) yr[c] = 0;
    for (int64_t j = 0; j < n; ++j) {
      const float pv = p[r * ldp + j];
      const float* vr = v + j * v_s;
      for (int64_t c = 0; c < dv; ++c) yr[c] += pv * vr[c];
    }
  }
}

}  // namespace scalar

// Every ISA packs K^T here; `transpose` (null for scalar) takes rows of K that are contiguous along c.
void PackKeysTransposed(TransposeKeysFn transpose, const float* k, int64_t k_s, int64_t k_d, int64_t sk, int64_t d,
                        float* kt, int64_t ldk) {
  if (k_s == 1) {  // K is already K^T: copy its rows
    for (int64_t c = 0; c < d; ++c) {
      float* row = kt + c * ldk;
      std::memcpy(row, k + c * k_d, static_cast<size_t>(sk) * sizeof(float));
      std::memset(row + sk, 0, static_cast<size_t>(ldk - sk) * sizeof(float));
    }
    return;
  }
  if (transpose && k_d == 1) return transpose(k, k_s, sk, d, kt, ldk);
  for (int64_t c = 0; c < d; ++c) std::memset(kt + c * ldk + sk, 0, static_cast<size_t>(ldk - sk) * sizeof(float));
  for (int64_t j = 0; j < sk; ++j)
    for (int64_t c = 0; c < d; ++c) kt[c * ldk + j] = k[j * k_s + c * k_d];
}

// Splits `left` key or column vectors into tiles of at most 3, taking 4 as 2 + 2: a one-vector tile
// issues only one FMA per load.
inline int64_t NextTileVectors(int64_t left) { return left == 4 ? 2 : left < 3 ? left : 3; }

// ---- AVX2 + FMA: 4 x 24 tiles ----
// An ISA region (isa_region.h): only called after the CPU check. A 4-row tile of 3 vectors holds 12
// accumulators, 3 operand vectors and one broadcast: the 16 ymm registers, without spills.
STRATA_BEGIN_AVX2
namespace avx2 {

constexpr int64_t kLanes = 8;

// R rows x C vectors of 8 keys. kt has zero padding up to a multiple of 16 keys.
template <int R, int C>
void ScoreTile(const float* q, int64_t q_s, const float* kt, int64_t ldk, int64_t d, float scale, float* s,
               int64_t lds) {
  __m256 acc[R][C];
#pragma GCC unroll 4
  for (int r = 0; r < R; ++r)
#pragma GCC unroll 4
    for (int c = 0; c < C; ++c) acc[r][c] = _mm256_setzero_ps();
  for (int64_t k = 0; k < d; ++k) {
    const float* kr = kt + k * ldk;
    __m256 kv[C];
#pragma GCC unroll 4
    for (int c = 0; c < C; ++c) kv[c] = _mm256_loadu_ps(kr + c * kLanes);
#pragma GCC unroll 4
    for (int r = 0; r < R; ++r) {
      const __m256 qb = _mm256_broadcast_ss(q + r * q_s + k);
#pragma GCC unroll 4
      for (int c = 0; c < C; ++c) acc[r][c] = _mm256_fmadd_ps(qb, kv[c], acc[r][c]);
    }
  }
  const __m256 sc = _mm256_set1_ps(scale);
#pragma GCC unroll 4
  for (int r = 0; r < R; ++r)
#pragma GCC unroll 4
    for (int c = 0; c < C; ++c) _mm256_storeu_ps(s + r * lds + c * kLanes, _mm256_mul_ps(acc[r][c], sc));
}

using ScoreTileFn = void (*)(const float*, int64_t, const float*, int64_t, int64_t, float, float*, int64_t);

template <int R>
void ScoresRows(const float* q, int64_t q_s, const float* kt, int64_t ldk, int64_t d, float scale, float* s,
                int64_t lds, int64_t n) {
  constexpr ScoreTileFn kTiles[3] = {ScoreTile<R, 1>, ScoreTile<R, 2>, ScoreTile<R, 3>};
  const int64_t vecs = (n + kLanes - 1) / kLanes;
  for (int64_t v = 0; v < vecs;) {
    const int64_t c = NextTileVectors(vecs - v);
    kTiles[c - 1](q, q_s, kt + v * kLanes, ldk, d, scale, s + v * kLanes, lds);
    v += c;
  }
}

void Scores(const float* q, int64_t q_s, const float* kt, int64_t ldk, int64_t d, float scale, float* s, int64_t lds,
            int64_t rows, int64_t n) {
  switch (rows) {
    case 1: ScoresRows<1>(q, q_s, kt, ldk, d, scale, s, lds, n); break;
    case 2: ScoresRows<2>(q, q_s, kt, ldk, d, scale, s, lds, n); break;
    case 3: ScoresRows<3>(q, q_s, kt, ldk, d, scale, s, lds, n); break;
    default: ScoresRows<4>(q, q_s, kt, ldk, d, scale, s, lds, n); break;
  }
}

// R rows x NV whole vectors of output columns.
template <int R, int NV>
void WeightedValuesTile(const float* p, int64_t ldp, int64_t n, const float* v, int64_t v_s, float* y, int64_t y_s) {
  __m256 acc[R][NV];
#pragma GCC unroll 4
  for (int r = 0; r < R; ++r)
#pragma GCC unroll 4
    for (int c = 0; c < NV; ++c) acc[r][c] = _mm256_setzero_ps();
  for (int64_t j = 0; j < n; ++j) {
    const float* vr = v + j * v_s;
    __m256 vv[NV];
#pragma GCC unroll 4
    for (int c = 0; c < NV; ++c) vv[c] = _mm256_loadu_ps(vr + c * kLanes);
#pragma GCC unroll 4
    for (int r = 0; r < R; ++r) {
      const __m256 pb = _mm256_broadcast_ss(p + r * ldp + j);
#pragma GCC unroll 4
      for (int c = 0; c < NV; ++c) acc[r][c] = _mm256_fmadd_ps(pb, vv[c], acc[r][c]);
    }
  }
#pragma GCC unroll 4
  for (int r = 0; r < R; ++r)
#pragma GCC unroll 4
    for (int c = 0; c < NV; ++c) _mm256_storeu_ps(y + r * y_s + c * kLanes, acc[r][c]);
}

// R rows x the first `lanes` (set in `mask`) columns of one vector.
template <int R>
void WeightedValuesTailTile(const float* p, int64_t ldp, int64_t n, const float* v, int64_t v_s, float* y,
                            int64_t y_s, __m256i mask) {
  __m256 acc[R];
#pragma GCC unroll 4
  for (int r = 0; r < R; ++r) acc[r] = _mm256_setzero_ps();
  for (int64_t j = 0; j < n; ++j) {
    const __m256 vv = _mm256_maskload_ps(v + j * v_s, mask);
#pragma GCC unroll 4
    for (int r = 0; r < R; ++r) acc[r] = _mm256_fmadd_ps(_mm256_broadcast_ss(p + r * ldp + j), vv, acc[r]);
  }
#pragma GCC unroll 4
  for (int r = 0; r < R; ++r) _mm256_maskstore_ps(y + r * y_s, mask, acc[r]);
}

using WeightedValuesTileFn = void (*)(const float*, int64_t, int64_t, const float*, int64_t, float*, int64_t);

template <int R>
void WeightedValuesRows(const float* p, int64_t ldp, int64_t n, const float* v, int64_t v_s, int64_t dv, float* y,
                        int64_t y_s) {
  constexpr WeightedValuesTileFn kTiles[3] = {WeightedValuesTile<R, 1>, WeightedValuesTile<R, 2>,
                                              WeightedValuesTile<R, 3>};
  const int64_t vecs = dv / kLanes;
  for (int64_t c = 0; c < vecs;) {
    const int64_t nv = NextTileVectors(vecs - c);
    kTiles[nv - 1](p, ldp, n, v + c * kLanes, v_s, y + c * kLanes, y_s);
    c += nv;
  }
  if (const int64_t tail = dv - vecs * kLanes; tail > 0) {
    const __m256i mask =
        _mm256_cmpgt_epi32(_mm256_set1_epi32(static_cast<int>(tail)), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
    WeightedValuesTailTile<R>(p, ldp, n, v + vecs * kLanes, v_s, y + vecs * kLanes, y_s, mask);
  }
}

void WeightedValues(const float* p, int64_t ldp, int64_t n, const float* v, int64_t v_s, int64_t dv, float* y,
                    int64_t y_s, int64_t rows) {
  switch (rows) {
    case 1: WeightedValuesRows<1>(p, ldp, n, v, v_s, dv, y, y_s); break;
    case 2: WeightedValuesRows<2>(p, ldp, n, v, v_s, dv, y, y_s); break;
    case 3: WeightedValuesRows<3>(p, ldp, n, v, v_s, dv, y, y_s); break;
    default: WeightedValuesRows<4>(p, ldp, n, v, v_s, dv, y, y_s); break;
  }
}

// In-register transpose: r[i][c] -> r[c][i]. Unpacks pair rows within 128-bit lanes, shuffle_ps
// gathers 4 rows of one column per lane, and the lane permutes join rows 0-3 and 4-7.
inline void Transpose8(__m256 r[8]) {
  __m256 a[8], b[8];
  for (int k = 0; k < 4; ++k) {
    a[2 * k] = _mm256_unpacklo_ps(r[2 * k], r[2 * k + 1]);
    a[2 * k + 1] = _mm256_unpackhi_ps(r[2 * k], r[2 * k + 1]);
  }
  for (int k = 0; k < 2; ++k) {  // b[4k + m]: rows 4k..4k+3 of column m (low lane) and m + 4 (high lane)
    b[4 * k] = _mm256_shuffle_ps(a[4 * k], a[4 * k + 2], 0x44);
    b[4 * k + 1] = _mm256_shuffle_ps(a[4 * k], a[4 * k + 2], 0xEE);
    b[4 * k + 2] = _mm256_shuffle_ps(a[4 * k + 1], a[4 * k + 3], 0x44);
    b[4 * k + 3] = _mm256_shuffle_ps(a[4 * k + 1], a[4 * k + 3], 0xEE);
  }
  for (int m = 0; m < 4; ++m) {
    r[m] = _mm256_permute2f128_ps(b[m], b[4 + m], 0x20);
    r[4 + m] = _mm256_permute2f128_ps(b[m], b[4 + m], 0x31);
  }
}

// 8 x 8 blocks of K, transposed in registers.
void TransposeKeys(const float* k, int64_t k_s, int64_t sk, int64_t d, float* kt, int64_t ldk) {
  const __m256i lane = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
  for (int64_t j0 = 0; j0 < ldk; j0 += kLanes) {
    const int64_t rows = sk - j0 < kLanes ? sk - j0 : kLanes;
    for (int64_t c0 = 0; c0 < d; c0 += kLanes) {
      const int64_t cols = d - c0 < kLanes ? d - c0 : kLanes;
      const __m256i m = _mm256_cmpgt_epi32(_mm256_set1_epi32(static_cast<int>(cols)), lane);
      __m256 r[8];
      for (int64_t i = 0; i < kLanes; ++i) {
        if (i >= rows) {
          r[i] = _mm256_setzero_ps();
          continue;
        }
        const float* src = k + (j0 + i) * k_s + c0;
        r[i] = cols == kLanes ? _mm256_loadu_ps(src) : _mm256_maskload_ps(src, m);
      }
      Transpose8(r);
      for (int64_t c = 0; c < cols; ++c) _mm256_storeu_ps(kt + (c0 + c) * ldk + j0, r[c]);
    }
  }
}

}  // namespace avx2
STRATA_END_AVX2

// ---- AVX-512: 4 x 64 tiles ----
STRATA_BEGIN_AVX512
namespace avx512 {

constexpr int64_t kLanes = 16;

// R rows x C vectors of 16 keys. kt has zero padding up to a multiple of 16.
template <int R, int C>
void ScoreTile(const float* q, int64_t q_s, const float* kt, int64_t ldk, int64_t d, float scale, float* s,
               int64_t lds) {
  __m512 acc[R][C];
#pragma GCC unroll 4
  for (int r = 0; r < R; ++r)
#pragma GCC unroll 4
    for (int c = 0; c < C; ++c) acc[r][c] = _mm512_setzero_ps();
  for (int64_t k = 0; k < d; ++k) {
    const float* kr = kt + k * ldk;
    __m512 kv[C];
#pragma GCC unroll 4
    for (int c = 0; c < C; ++c) kv[c] = _mm512_loadu_ps(kr + c * kLanes);
#pragma GCC unroll 4
    for (int r = 0; r < R; ++r) {
      const __m512 qb = _mm512_set1_ps(q[r * q_s + k]);
#pragma GCC unroll 4
      for (int c = 0; c < C; ++c) acc[r][c] = _mm512_fmadd_ps(qb, kv[c], acc[r][c]);
    }
  }
  const __m512 sc = _mm512_set1_ps(scale);
#pragma GCC unroll 4
  for (int r = 0; r < R; ++r)
#pragma GCC unroll 4
    for (int c = 0; c < C; ++c) _mm512_storeu_ps(s + r * lds + c * kLanes, _mm512_mul_ps(acc[r][c], sc));
}

using ScoreTileFn = void (*)(const float*, int64_t, const float*, int64_t, int64_t, float, float*, int64_t);

template <int R>
void ScoresRows(const float* q, int64_t q_s, const float* kt, int64_t ldk, int64_t d, float scale, float* s,
                int64_t lds, int64_t n) {
  constexpr ScoreTileFn kTiles[4] = {ScoreTile<R, 1>, ScoreTile<R, 2>, ScoreTile<R, 3>, ScoreTile<R, 4>};
  const int64_t vecs = (n + kLanes - 1) / kLanes;
  for (int64_t v = 0; v < vecs; v += 4) {
    const int64_t c = vecs - v < 4 ? vecs - v : 4;
    kTiles[c - 1](q, q_s, kt + v * kLanes, ldk, d, scale, s + v * kLanes, lds);
  }
}

void Scores(const float* q, int64_t q_s, const float* kt, int64_t ldk, int64_t d, float scale, float* s, int64_t lds,
            int64_t rows, int64_t n) {
  switch (rows) {
    case 1: ScoresRows<1>(q, q_s, kt, ldk, d, scale, s, lds, n); break;
    case 2: ScoresRows<2>(q, q_s, kt, ldk, d, scale, s, lds, n); break;
    case 3: ScoresRows<3>(q, q_s, kt, ldk, d, scale, s, lds, n); break;
    default: ScoresRows<4>(q, q_s, kt, ldk, d, scale, s, lds, n); break;
  }
}

// R rows x NV vectors of output columns; the last vector is masked by `tail`.
template <int R, int NV>
void WeightedValuesTile(const float* p, int64_t ldp, int64_t n, const float* v, int64_t v_s, float* y, int64_t y_s,
                        __mmask16 tail) {
  __m512 acc[R][NV];
#pragma GCC unroll 4
  for (int r = 0; r < R; ++r)
#pragma GCC unroll 4
    for (int c = 0; c < NV; ++c) acc[r][c] = _mm512_setzero_ps();
  for (int64_t j = 0; j < n; ++j) {
    const float* vr = v + j * v_s;
    __m512 vv[NV];
#pragma GCC unroll 4
    for (int c = 0; c < NV - 1; ++c) vv[c] = _mm512_loadu_ps(vr + c * kLanes);
    vv[NV - 1] = _mm512_maskz_loadu_ps(tail, vr + (NV - 1) * kLanes);
#pragma GCC unroll 4
    for (int r = 0; r < R; ++r) {
      const __m512 pb = _mm512_set1_ps(p[r * ldp + j]);
#pragma GCC unroll 4
      for (int c = 0; c < NV; ++c) acc[r][c] = _mm512_fmadd_ps(pb, vv[c], acc[r][c]);
    }
  }
#pragma GCC unroll 4
  for (int r = 0; r < R; ++r) {
#pragma GCC unroll 4
    for (int c = 0; c < NV - 1; ++c) _mm512_storeu_ps(y + r * y_s + c * kLanes, acc[r][c]);
    _mm512_mask_storeu_ps(y + r * y_s + (NV - 1) * kLanes, tail, acc[r][NV - 1]);
  }
}

using WeightedValuesTileFn = void (*)(const float*, int64_t, int64_t, const float*, int64_t, float*, int64_t,
                                      __mmask16);

template <int R>
void WeightedValuesRows(const float* p, int64_t ldp, int64_t n, const float* v, int64_t v_s, int64_t dv, float* y,
                        int64_t y_s) {
  constexpr WeightedValuesTileFn kTiles[4] = {WeightedValuesTile<R, 1>, WeightedValuesTile<R, 2>,
                                              WeightedValuesTile<R, 3>, WeightedValuesTile<R, 4>};
  for (int64_t c0 = 0; c0 < dv; c0 += 4 * kLanes) {
    const int64_t w = dv - c0 < 4 * kLanes ? dv - c0 : 4 * kLanes;
    const int64_t nv = (w + kLanes - 1) / kLanes;
    const int64_t last = w - (nv - 1) * kLanes;
    const __mmask16 tail = static_cast<__mmask16>(last == kLanes ? 0xFFFFu : (1u << last) - 1u);
    kTiles[nv - 1](p, ldp, n, v + c0, v_s, y + c0, y_s, tail);
  }
}

void WeightedValues(const float* p, int64_t ldp, int64_t n, const float* v, int64_t v_s, int64_t dv, float* y,
                    int64_t y_s, int64_t rows) {
  switch (rows) {
    case 1: WeightedValuesRows<1>(p, ldp, n, v, v_s, dv, y, y_s); break;
    case 2: WeightedValuesRows<2>(p, ldp, n, v, v_s, dv, y, y_s); break;
    case 3: WeightedValuesRows<3>(p, ldp, n, v, v_s, dv, y, y_s); break;
    default: WeightedValuesRows<4>(p, ldp, n, v, v_s, dv, y, y_s); break;
  }
}

// In-register transpose: r[i][c] -> r[c][i]. Unpacks pair rows within 128-bit lanes, shuffle_ps
// gathers 4 rows of one column per lane, and two lane shuffles put lane L of the four row groups together.
inline void Transpose16(__m512 r[16]) {
  __m512 a[16], b[16];
  for (int k = 0; k < 8; ++k) {
    a[2 * k] = _mm512_unpacklo_ps(r[2 * k], r[2 * k + 1]);
    a[2 * k + 1] = _mm512_unpackhi_ps(r[2 * k], r[2 * k + 1]);
  }
  for (int k = 0; k < 4; ++k) {  // b[4k + m], lane L: rows 4k..4k+3 of column 4L + m
    b[4 * k] = _mm512_shuffle_ps(a[4 * k], a[4 * k + 2], 0x44);
    b[4 * k + 1] = _mm512_shuffle_ps(a[4 * k], a[4 * k + 2], 0xEE);
    b[4 * k + 2] = _mm512_shuffle_ps(a[4 * k + 1], a[4 * k + 3], 0x44);
    b[4 * k + 3] = _mm512_shuffle_ps(a[4 * k + 1], a[4 * k + 3], 0xEE);
  }
  for (int m = 0; m < 4; ++m) {
    const __m512 c0 = _mm512_shuffle_f32x4(b[m], b[4 + m], 0x44);
    const __m512 c1 = _mm512_shuffle_f32x4(b[m], b[4 + m], 0xEE);
    const __m512 c2 = _mm512_shuffle_f32x4(b[8 + m], b[12 + m], 0x44);
    const __m512 c3 = _mm512_shuffle_f32x4(b[8 + m], b[12 + m], 0xEE);
    r[m] = _mm512_shuffle_f32x4(c0, c2, 0x88);
    r[4 + m] = _mm512_shuffle_f32x4(c0, c2, 0xDD);
    r[8 + m] = _mm512_shuffle_f32x4(c1, c3, 0x88);
    r[12 + m] = _mm512_shuffle_f32x4(c1, c3, 0xDD);
  }
}

// 16 x 16 blocks of K, transposed in registers.
void TransposeKeys(const float* k, int64_t k_s, int64_t sk, int64_t d, float* kt, int64_t ldk) {
  for (int64_t j0 = 0; j0 < ldk; j0 += kLanes) {
    const int64_t rows = sk - j0 < kLanes ? sk - j0 : kLanes;
    for (int64_t c0 = 0; c0 < d; c0 += kLanes) {
      const int64_t cols = d - c0 < kLanes ? d - c0 : kLanes;
      const __mmask16 m = static_cast<__mmask16>(cols == kLanes ? 0xFFFFu : (1u << cols) - 1u);
      __m512 r[16];
      for (int64_t i = 0; i < kLanes; ++i)
        r[i] = i < rows ? _mm512_maskz_loadu_ps(m, k + (j0 + i) * k_s + c0) : _mm512_setzero_ps();
      Transpose16(r);
      for (int64_t c = 0; c < cols; ++c) _mm512_storeu_ps(kt + (c0 + c) * ldk + j0, r[c]);
    }
  }
}

}  // namespace avx512
STRATA_END_AVX512

template <TransposeKeysFn kTranspose>
void PackKeysTransposedWith(const float* k, int64_t k_s, int64_t k_d, int64_t sk, int64_t d, float* kt, int64_t ldk) {
  PackKeysTransposed(kTranspose, k, k_s, k_d, sk, d, kt, ldk);
}

const AttentionTileKernels kScalar{vec::Isa::kScalar, PackKeysTransposedWith<nullptr>, scalar::Scores,
                                   scalar::WeightedValues};
const AttentionTileKernels kAvx2{vec::Isa::kAvx2, PackKeysTransposedWith<avx2::TransposeKeys>, avx2::Scores,
                                 avx2::WeightedValues};
const AttentionTileKernels kAvx512{vec::Isa::kAvx512, PackKeysTransposedWith<avx512::TransposeKeys>,
                                   avx512::Scores, avx512::WeightedValues};

}  // namespace

const AttentionTileKernels& AttentionTilesFor(vec::Isa isa) {
  switch (isa) {
    case vec::Isa::kAvx512: return kAvx512;
    case vec::Isa::kAvx2: return kAvx2;
    case vec::Isa::kScalar: break;
  }
  return kScalar;
}

void MaskScores(const AttentionMask& mask, int64_t first_query, float* s, int64_t lds, int64_t rows, int64_t n) {
  for (int64_t r = 0; r < rows; ++r) {
    float* sr = s + r * lds;
    const int64_t qi = first_query + r;
    if (mask.add) {
      const float* m = mask.add + qi * mask.query_stride;
      if (mask.key_stride == 1) {
        for (int64_t j = 0; j < n; ++j) sr[j] += m[j];
      } else {
        for (int64_t j = 0; j < n; ++j) sr[j] += m[j * mask.key_stride];
      }
    } else if (mask.keep && !mask.causal) {
      const bool* m = mask.keep + qi * mask.query_stride;
      for (int64_t j = 0; j < n; ++j) sr[j] = m[j * mask.key_stride] ? sr[j] : mask.fill;
    }
    if (mask.causal)
      for (int64_t j = qi + 1; j < n; ++j) sr[j] = mask.fill;
  }
}

}  // namespace strata::cpu::uk
