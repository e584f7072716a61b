// Strata's own float32 GEMM for AVX2+FMA CPUs: C = alpha * A * B (+ beta * C) + bias, then a
// per-tile epilogue, with B packed once (at model load) into 16-column panels.
//
// Why: on AVX2, oneDNN 2.6's matmul is its jit sgemm, which repacks the whole weight matrix on every
// call; BERT-base's FFN matmuls ran at ~42% of the AVX2 FMA peak there. AVX-512 CPUs keep oneDNN's
// brgemm (94-98% of peak; src/kernels/cpu/README.md).
//
// Each element's sum over K is taken in the same order whatever M, the thread count or the rows it
// is computed with, so a row's result does not depend on what it is batched with.
#pragma once

#include <cstdint>

namespace strata::cpu::uk {

// Whether GemmF32 runs on the active ISA level (AVX2 without AVX-512, or AVX-512 lowered by STRATA_ISA).
bool GemmF32Available();

// Floats the packed form of a [K, N] matrix takes: ceil(N / 16) panels of K x 16 (columns past N zero).
int64_t GemmF32PackedFloats(int64_t k, int64_t n);
// Packs B ([K, N] row-major, or [N, K] when `transposed`) into `packed`.
void GemmF32PackB(const float* b, int64_t k, int64_t n, bool transposed, float* packed);
// The inverse: packed back to [K, N] row-major (or [N, K] when `transposed`).
void GemmF32UnpackB(const float* packed, int64_t k, int64_t n, bool transposed, float* b);

// Called once per finished tile of C (its rows x cols block at `c`, row stride ldc, after bias), from
// the thread that computed it, while the tile is still in cache.
struct GemmF32Epilogue {
  void (*apply)(const void* ctx, float* c, int64_t ldc, int64_t rows, int64_t cols);
  const void* ctx;
};

struct GemmF32Args {
  int64_t m = 0, n = 0, k = 0;
  const float* a = nullptr;  // [m, k], row stride lda
  int64_t lda = 0;
  const float* packed_b = nullptr;  // GemmF32PackB's output
  float* c = nullptr;  // [m, n], row stride ldc
  int64_t ldc = 0;
  float alpha = 1.f;
  float beta = 0.f;  // 0: C's prior contents are ignored (C may hold NaN)
  const float* bias = nullptr;  // [n], added after alpha * A * B + beta * C
  const GemmF32Epilogue* epilogue = nullptr;
};

// Splits the columns across the active OpenMP threads. Requires GemmF32Available().
void GemmF32(const GemmF32Args& args);

}  // namespace strata::cpu::uk
