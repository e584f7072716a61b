// Register tiles of scaled dot-product attention over one head: K^T packing, score tiles
// S = scale * Q K^T, the score mask, and P V. Graph-free (pointers, strides, sizes), so any engine
// can drive them; com.strata:Attention (attention.cc) loops over batches, heads and blocks of query
// rows and calls them, with the vec_math softmax row kernel in between.
//
// Tiles per ISA level (vec_math.h): AVX-512 4 x 64 (16 zmm accumulators), AVX2 + FMA 4 x 24 (12 ymm
// accumulators, 3 key vectors and one broadcast: all 16 registers), and scalar loops.
#pragma once

#include <cstdint>
#include <limits>

#include "kernels/cpu/ukernels/vec_math.h"

namespace strata::cpu::uk {

// Query rows one Scores / WeightedValues call takes at most.
inline constexpr int64_t kAttentionTileRows = 4;
// Packed K^T rows are padded to a multiple of this many keys (zeros), so that score tiles of every
// ISA read and write whole vectors.
inline constexpr int64_t kAttentionKeyAlign = 16;

inline constexpr int64_t AttentionPackedKeys(int64_t sk) {
  return (sk + kAttentionKeyAlign - 1) / kAttentionKeyAlign * kAttentionKeyAlign;
}

struct AttentionTileKernels {
  vec::Isa isa;
  // kt[c][j] = K(j, c) = k[j * k_s + c * k_d] for c < d, j < sk, and 0 for j in [sk, ldk), with
  // ldk = AttentionPackedKeys(sk): K^T with the key axis contiguous.
  void (*pack_keys_transposed)(const float* k, int64_t k_s, int64_t k_d, int64_t sk, int64_t d, float* kt,
                               int64_t ldk);
  // s[r][j] = scale * sum_{c < d} q[r * q_s + c] kt[c * ldk + j] for r < rows <= kAttentionTileRows and
  // j < n <= ldk. Writes s rows up to n rounded up to kAttentionKeyAlign (lds must allow that).
  void (*scores)(const float* q, int64_t q_s, const float* kt, int64_t ldk, int64_t d, float scale, float* s,
                 int64_t lds, int64_t rows, int64_t n);
  // y[r * y_s + c] = sum_{j < n} p[r * ldp + j] v[j * v_s + c] for r < rows <= kAttentionTileRows and
  // c < dv; writes nothing else.
  void (*weighted_values)(const float* p, int64_t ldp, int64_t n, const float* v, int64_t v_s, int64_t dv, float* y,
                          int64_t y_s, int64_t rows);
};

// The tiles of `isa`, which this CPU must support (vec::KernelsFor(isa) != nullptr).
const AttentionTileKernels& AttentionTilesFor(vec::Isa isa);

// A mask over one head's scores: element (i, j) at i * query_stride + j * key_stride (strides are 0
// along broadcast dims).
struct AttentionMask {
  const float* add = nullptr;  // added to the scores
  const bool* keep = nullptr;  // keeps a score where true and puts `fill` elsewhere; not read when causal
  int64_t query_stride = 0, key_stride = 0;
  float fill = -std::numeric_limits<float>::infinity();
  bool causal = false;  // key j hidden from query i (score `fill`) when j > i
};

// Applies `mask` to score rows s[r][0, n) of queries first_query + r, r < rows.
void MaskScores(const AttentionMask& mask, int64_t first_query, float* s, int64_t lds, int64_t rows, int64_t n);

}  // namespace strata::cpu::uk
