#include "kernels/cpu/ukernels/gemm_f32.h"

#include <immintrin.h>

#include <algorithm>

#include "kernels/cpu/ukernels/isa_region.h"
#include "kernels/cpu/ukernels/parallel.h"
#include "kernels/cpu/ukernels/vec_math.h"

namespace strata::cpu::uk {
namespace {

// A 6 x 16 register tile: 12 ymm accumulators, two for the B row and one for the A broadcast, 15 of
// AVX2's 16 registers. A K step of 256 keeps the tile's B panel (16 KiB) in L1 while it meets every
// row block of A; 192 rows of A (192 KiB) stay in L2 while the panels pass.
constexpr int kMr = 6;
constexpr int64_t kNr = 16, kKc = 256, kMc = 192;
constexpr int64_t kEpiloguePanels = 8;  // 128 columns

// What a tile does with C: the first K step writes alpha * AB (+ beta * C), later ones add to it.
struct TileStore {
  float alpha, beta;
  bool first;
  const float* bias;  // 16 floats, on the last K step only
};

STRATA_BEGIN_AVX2
inline void StoreRowAvx2(float* c, __m256 x0, __m256 x1, const TileStore& s) {
  const __m256 alpha = _mm256_set1_ps(s.alpha);
  x0 = _mm256_mul_ps(x0, alpha);
  x1 = _mm256_mul_ps(x1, alpha);
  if (!s.first) {
    x0 = _mm256_add_ps(x0, _mm256_loadu_ps(c));
    x1 = _mm256_add_ps(x1, _mm256_loadu_ps(c + 8));
  } else if (s.beta != 0.f) {
    const __m256 beta = _mm256_set1_ps(s.beta);
    x0 = _mm256_fmadd_ps(beta, _mm256_loadu_ps(c), x0);
    x1 = _mm256_fmadd_ps(beta, _mm256_loadu_ps(c + 8), x1);
  }
  if (s.bias) {
    x0 = _mm256_add_ps(x0, _mm256_loadu_ps(s.bias));
    x1 = _mm256_add_ps(x1, _mm256_loadu_ps(s.bias + 8));
  }
  _mm256_storeu_ps(c, x0);
  _mm256_storeu_ps(c + 8, x1);
}

// The accumulators are named variables, not arrays: GCC keeps an array of vectors in registers but
// also writes it back to the stack on every iteration.
template <int R>
void TileAvx2(int64_t kc, const float* a, int64_t lda, const float* b, float* c, int64_t ldc, const TileStore& s) {
  __m256 c00 = _mm256_setzero_ps(), c01 = c00, c10 = c00, c11 = c00, c20 = c00, c21 = c00, c30 = c00, c31 = c00,
         c40 = c00, c41 = c00, c50 = c00, c51 = c00;
#define STRATA_GEMM_ROW(r)                                        \
  if constexpr (R > r) {                                          \
    const __m256 av = _mm256_broadcast_ss(a + r * lda + p);        \
    c##r##0 = _mm256_fmadd_ps(av, b0, c##r##0);                   \
    c##r##1 = _mm256_fmadd_ps(av, b1, c##r##1);                   \
  }
#pragma GCC unroll 4
  for (int64_t p = 0; p < kc; ++p) {
    const __m256 b0 = _mm256_loadu_ps(b + p * kNr), b1 = _mm256_loadu_ps(b + p * kNr + 8);
    STRATA_GEMM_ROW(0)
    STRATA_GEMM_ROW(1)
    STRATA_GEMM_ROW(2)
    STRATA_GEMM_ROW(3)
    STRATA_GEMM_ROW(4)
    STRATA_GEMM_ROW(5)
  }
#undef STRATA_GEMM_ROW
  StoreRowAvx2(c, c00, c01, s);
  if constexpr (R > 1) StoreRowAvx2(c + ldc, c10, c11, s);
  if constexpr (R > 2) StoreRowAvx2(c + 2 * ldc, c20, c21, s);
  if constexpr (R > 3) StoreRowAvx2(c + 3 * ldc, c30, c31, s);
  if constexpr (R > 4) StoreRowAvx2(c + 4 * ldc, c40, c41, s);
  if constexpr (R > 5) StoreRowAvx2(c + 5 * ldc, c50, c51, s);
}
STRATA_END_AVX2

using TileFn = void (*)(int64_t, const float*, int64_t, const float*, float*, int64_t, const TileStore&);
constexpr TileFn kTiles[kMr + 1] = {nullptr,        TileAvx2<1>, TileAvx2<2>, TileAvx2<3>,
                                    TileAvx2<4>, TileAvx2<5>, TileAvx2<6>};

// A tile whose columns run past N goes through a full-width copy (the packed panel's padding is zero).
void EdgeTile(int rows, int64_t cols, int64_t kc, const float* a, int64_t lda, const float* b, float* c, int64_t ldc,
              TileStore s) {
  alignas(32) float tmp[kMr * kNr] = {};
  alignas(32) float bias[kNr] = {};
  const bool reads_c = !s.first || s.beta != 0.f;
  for (int r = 0; r < rows; ++r)
    if (reads_c) std::copy(c + r * ldc, c + r * ldc + cols, tmp + r * kNr);
  if (s.bias) {
    std::copy(s.bias, s.bias + cols, bias);
    s.bias = bias;
  }
  kTiles[rows](kc, a, lda, b, tmp, kNr, s);
  for (int r = 0; r < rows; ++r) std::copy(tmp + r * kNr, tmp + r * kNr + cols, c + r * ldc);
}

// Column panels [p0, p1) of C, rows [r0, r1).
void RunBlock(const GemmF32Args& g, int64_t p0, int64_t p1, int64_t r0, int64_t r1) {
  for (int64_t pc = 0; pc < g.k; pc += kKc) {
    const int64_t kc = std::min(kKc, g.k - pc);
    const bool first = pc == 0, last = pc + kc == g.k;
    for (int64_t ic = r0; ic < r1; ic += kMc) {
      const int64_t mc = std::min(kMc, r1 - ic);
      for (int64_t p = p0; p < p1; ++p) {
        const float* bp = g.packed_b + p * g.k * kNr + pc * kNr;
        const int64_t col0 = p * kNr, cols = std::min(kNr, g.n - col0);
        const TileStore s{g.alpha, g.beta, first, last && g.bias ? g.bias + col0 : nullptr};
        // The next panel's B block comes from L3 or memory: its lines are requested a share per
        // tile, so the stream overlaps with this panel's arithmetic.
        const float* next_b = p + 1 < p1 ? bp + g.k * kNr : nullptr;
        const int64_t next_lines = kc * kNr / 16, tiles = (mc + kMr - 1) / kMr;
        const int64_t lines_per_tile = (next_lines + tiles - 1) / tiles;
        int64_t next_line = 0;
        for (int64_t ir = ic; ir < ic + mc; ir += kMr) {
          if (next_b)
            for (int64_t l = 0; l < lines_per_tile && next_line < next_lines; ++l, ++next_line)
              __builtin_prefetch(next_b + next_line * 16);
          const int rows = static_cast<int>(std::min<int64_t>(kMr, ic + mc - ir));
          const float* a = g.a + ir * g.lda + pc;
          float* c = g.c + ir * g.ldc + col0;
          if (cols == kNr) kTiles[rows](kc, a, g.lda, bp, c, g.ldc, s);
          else EdgeTile(rows, cols, kc, a, g.lda, bp, c, g.ldc, s);
        }
        // The epilogue takes a group of panels at a time: rows of 16 would spend more on calls
        // and vector tails than on the activations, and the block is still in L2.
        const int64_t group_begin = p0 + (p - p0) / kEpiloguePanels * kEpiloguePanels;
        const int64_t group_end = std::min(p1, group_begin + kEpiloguePanels);
        if (last && g.epilogue && p + 1 == group_end) {
          const int64_t first_col = group_begin * kNr;
          g.epilogue->apply(g.epilogue->ctx, g.c + ic * g.ldc + first_col, g.ldc, mc,
                            std::min(g.n, group_end * kNr) - first_col);
        }
      }
    }
  }
}

}  // namespace

bool GemmF32Available() { return vec::Active().isa == vec::Isa::kAvx2; }

int64_t GemmF32PackedFloats(int64_t k, int64_t n) { return (n + kNr - 1) / kNr * k * kNr; }

void GemmF32PackB(const float* b, int64_t k, int64_t n, bool transposed, float* packed) {
  const int64_t panels = (n + kNr - 1) / kNr;
  ParallelFor(panels, [&](int64_t p0, int64_t p1) {
    for (int64_t p = p0; p < p1; ++p) {
      float* out = packed + p * k * kNr;
      for (int64_t kk = 0; kk < k; ++kk)
        for (int64_t j = 0; j < kNr; ++j) {
          const int64_t col = p * kNr + j;
          out[kk * kNr + j] = col < n ? (transposed ? b[col * k + kk] : b[kk * n + col]) : 0.f;
        }
    }
  }, 2);
}

void GemmF32UnpackB(const float* packed, int64_t k, int64_t n, bool transposed, float* b) {
  for (int64_t kk = 0; kk < k; ++kk)
    for (int64_t col = 0; col < n; ++col)
      b[transposed ? col * k + kk : kk * n + col] = packed[(col / kNr) * k * kNr + kk * kNr + col % kNr];
}

void GemmF32(const GemmF32Args& g) {
  if (g.m <= 0 || g.n <= 0) return;
  if (g.k <= 0) {  // no products: C = beta * C + bias
    for (int64_t i = 0; i < g.m; ++i) {
      float* c = g.c + i * g.ldc;
      for (int64_t j = 0; j < g.n; ++j) c[j] = (g.beta != 0.f ? g.beta * c[j] : 0.f) + (g.bias ? g.bias[j] : 0.f);
      if (g.epilogue) g.epilogue->apply(g.epilogue->ctx, c, g.ldc, 1, g.n);
    }
    return;
  }
  const int64_t panels = (g.n + kNr - 1) / kNr;
  // Below about a million multiply-adds a second thread costs more than it saves.
  const int64_t threshold = g.m * g.n * g.k >= (int64_t{1} << 20) ? 2 : panels + 1;
  if (panels >= omp_get_max_threads() || g.m < 2 * kMr) {
    ParallelFor(panels, [&](int64_t p0, int64_t p1) { RunBlock(g, p0, p1, 0, g.m); }, threshold);
    return;
  }
  // Fewer panels than threads (a narrow output): rows are split instead, in whole tiles. Each
  // element's reduction order is the same either way.
  const int64_t tiles = (g.m + kMr - 1) / kMr;
  ParallelFor(tiles, [&](int64_t t0, int64_t t1) { RunBlock(g, 0, panels, t0 * kMr, std::min(g.m, t1 * kMr)); },
              g.m * g.n * g.k >= (int64_t{1} << 20) ? 2 : tiles + 1);
}

}  // namespace strata::cpu::uk
