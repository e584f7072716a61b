// Measures this machine's fp32 FMA peak (GFLOP/s) with AVX-512 (or AVX2)
// on 1..N threads: independent FMA chains, enough of them to hide FMA latency
// on both ports.
//
// The chains start from different values and pass through an empty asm barrier
// each iteration. Without that, GCC proves identical chains equal and keeps
// only one of them: an earlier version of this file did exactly that and
// reported 1.5x the real peak (one latency-bound FMA per iteration, counted as
// twelve).
#include <immintrin.h>
#include <omp.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>

namespace {

constexpr int kChains = 16;

template <typename Vec>
inline void KeepInRegisters(Vec (&a)[kChains]) {
  // GCC allows at most 30 asm operands, and each "+v" counts twice.
  asm volatile(""
               : "+v"(a[0]), "+v"(a[1]), "+v"(a[2]), "+v"(a[3]), "+v"(a[4]), "+v"(a[5]), "+v"(a[6]),
                 "+v"(a[7]));
  asm volatile(""
               : "+v"(a[8]), "+v"(a[9]), "+v"(a[10]), "+v"(a[11]), "+v"(a[12]), "+v"(a[13]), "+v"(a[14]),
                 "+v"(a[15]));
}

__attribute__((target("avx512f"))) double Run512(long iters) {
  const __m512 x = _mm512_set1_ps(0.999999f), y = _mm512_set1_ps(1e-7f);
  __m512 a[kChains];
#pragma GCC unroll 16
  for (int c = 0; c < kChains; ++c) a[c] = _mm512_set1_ps(1e-7f * static_cast<float>(c + 1));
  for (long i = 0; i < iters; ++i) {
#pragma GCC unroll 16
    for (int c = 0; c < kChains; ++c) a[c] = _mm512_fmadd_ps(a[c], x, y);
    KeepInRegisters(a);
  }
  __m512 s = a[0];
#pragma GCC unroll 16
  for (int c = 1; c < kChains; ++c) s = _mm512_add_ps(s, a[c]);
  float out[16];
  _mm512_storeu_ps(out, s);
  return out[0];
}

__attribute__((target("avx2,fma"))) double Run256(long iters) {
  const __m256 x = _mm256_set1_ps(0.999999f), y = _mm256_set1_ps(1e-7f);
  __m256 a[kChains];
#pragma GCC unroll 16
  for (int c = 0; c < kChains; ++c) a[c] = _mm256_set1_ps(1e-7f * static_cast<float>(c + 1));
  for (long i = 0; i < iters; ++i) {
#pragma GCC unroll 16
    for (int c = 0; c < kChains; ++c) a[c] = _mm256_fmadd_ps(a[c], x, y);
    KeepInRegisters(a);
  }
  __m256 s = a[0];
#pragma GCC unroll 16
  for (int c = 1; c < kChains; ++c) s = _mm256_add_ps(s, a[c]);
  float out[8];
  _mm256_storeu_ps(out, s);
  return out[0];
}

}  // namespace

int main(int argc, char **argv) {
  const int max_threads = argc > 1 ? std::atoi(argv[1]) : omp_get_num_procs();
  const bool avx512 = __builtin_cpu_supports("avx512f");
  const int lanes = avx512 ? 16 : 8;
  const long iters = 400'000'000L / lanes;
  for (int t = 1; t <= max_threads; ++t) {
    double best = 0;
    for (int rep = 0; rep < 3; ++rep) {
      double sink = 0;
      const auto t0 = std::chrono::steady_clock::now();
#pragma omp parallel num_threads(t) reduction(+ : sink)
      sink += avx512 ? Run512(iters) : Run256(iters);
      const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
      const double gflops = 2.0 * kChains * lanes * static_cast<double>(iters) * t / s / 1e9;
      if (gflops > best) best = gflops;
      if (sink == 42.0) std::printf(" ");
    }
    std::printf("{\"threads\": %d, \"isa\": \"%s\", \"peak_gflops\": %.1f}\n", t, avx512 ? "avx512" : "avx2",
                best);
  }
}
