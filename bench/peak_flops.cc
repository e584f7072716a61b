// Measures this machine's fp32 FMA peak (GFLOP/s) for AVX2+FMA and, where the CPU has it, AVX-512,
// on 1..N threads: independent FMA chains, enough of them to hide FMA latency on both FMA pipes.
//
//   strata_peak_flops [MAX_THREADS] [all|avx2|avx512]
//
// prints one JSON line per ISA and thread count (bench/compare.py reads them):
//   {"isa": "avx2", "threads": 2, "peak_gflops": 225.1, "per_thread_gflops": 112.6, "chains": 12}
//
// Chains: an FMA has 4-5 cycles of latency and two pipes issue one each per cycle, so at least
// 8-10 independent accumulators are in flight at once. AVX2 has 16 ymm registers: 12 accumulators
// plus the two operands (14) fit. An earlier version used 16 ymm accumulators, which with the two
// operands is 18 registers: GCC spilled three of them to the stack every iteration and the loop
// measured a fraction of the real AVX2 peak. AVX-512 has 32 zmm registers: 16 accumulators fit.
// Check with `objdump -d`: the AVX2 loop must be FMAs only, no vmovaps to or from (%rsp).
//
// The chains start from different values and pass through an empty asm barrier each iteration.
// Without that, GCC proves identical chains equal and keeps only one of them: an earlier version
// of this file did exactly that and reported 1.5x the real peak (one latency-bound FMA per
// iteration, counted as twelve).
#include <immintrin.h>
#include <omp.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>

namespace {

constexpr int kChains256 = 12;  // + 2 operands = 14 of the 16 ymm registers
constexpr int kChains512 = 16;  // + 2 operands = 18 of the 32 zmm registers

// "+v" on every accumulator: the compiler must assume the asm changed each one, so it can neither
// merge chains nor hoist the FMAs out of the loop. Groups of four keep far below GCC's limit of 30
// asm operands (each "+v" counts twice). An empty asm emits no instruction.
template <typename Vec>
inline void Barrier4(Vec &a, Vec &b, Vec &c, Vec &d) {
  asm volatile("" : "+v"(a), "+v"(b), "+v"(c), "+v"(d));
}

template <typename Vec, int N>
inline void KeepInRegisters(Vec (&a)[N]) {
  static_assert(N % 4 == 0, "chains come in groups of four");
#pragma GCC unroll 16
  for (int c = 0; c < N; c += 4) Barrier4(a[c], a[c + 1], a[c + 2], a[c + 3]);
}

__attribute__((target("avx512f"))) double Run512(long iters) {
  const __m512 x = _mm512_set1_ps(0.999999f), y = _mm512_set1_ps(1e-7f);
  __m512 a[kChains512];
#pragma GCC unroll 16
  for (int c = 0; c < kChains512; ++c) a[c] = _mm512_set1_ps(1e-7f * static_cast<float>(c + 1));
  for (long i = 0; i < iters; ++i) {
#pragma GCC unroll 16
    for (int c = 0; c < kChains512; ++c) a[c] = _mm512_fmadd_ps(a[c], x, y);
    KeepInRegisters(a);
  }
  __m512 s = a[0];
#pragma GCC unroll 16
  for (int c = 1; c < kChains512; ++c) s = _mm512_add_ps(s, a[c]);
  float out[16];
  _mm512_storeu_ps(out, s);
  return out[0];
}

// Compiled for AVX2+FMA only (no AVX-512VL), so it gets the 16 ymm registers an AVX2 machine has.
__attribute__((target("avx2,fma"))) double Run256(long iters) {
  const __m256 x = _mm256_set1_ps(0.999999f), y = _mm256_set1_ps(1e-7f);
  __m256 a[kChains256];
#pragma GCC unroll 16
  for (int c = 0; c < kChains256; ++c) a[c] = _mm256_set1_ps(1e-7f * static_cast<float>(c + 1));
  for (long i = 0; i < iters; ++i) {
#pragma GCC unroll 16
    for (int c = 0; c < kChains256; ++c) a[c] = _mm256_fmadd_ps(a[c], x, y);
    KeepInRegisters(a);
  }
  __m256 s = a[0];
#pragma GCC unroll 16
  for (int c = 1; c < kChains256; ++c) s = _mm256_add_ps(s, a[c]);
  float out[8];
  _mm256_storeu_ps(out, s);
  return out[0];
}

struct Isa {
  const char *name;
  int lanes, chains;
  double (*run)(long);
};

// Best of `reps` timed runs of `iters` iterations on `threads` threads, in GFLOP/s (2 per FMA lane).
double Measure(const Isa &isa, int threads, long iters, int reps) {
  double best = 0;
  for (int rep = 0; rep < reps; ++rep) {
    double sink = 0;
    const auto t0 = std::chrono::steady_clock::now();
#pragma omp parallel num_threads(threads) reduction(+ : sink)
    sink += isa.run(iters);
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    const double gflops = 2.0 * isa.chains * isa.lanes * static_cast<double>(iters) * threads / s / 1e9;
    if (gflops > best) best = gflops;
    if (sink == 42.0) std::printf(" ");  // keeps the result live
  }
  return best;
}

}  // namespace

int main(int argc, char **argv) {
  const int max_threads = argc > 1 ? std::atoi(argv[1]) : omp_get_num_procs();
  const char *want = argc > 2 ? argv[2] : "all";
  if (max_threads < 1 || (std::strcmp(want, "all") != 0 && std::strcmp(want, "avx2") != 0 &&
                          std::strcmp(want, "avx512") != 0)) {
    std::fprintf(stderr, "usage: %s [MAX_THREADS] [all|avx2|avx512]\n", argv[0]);
    return 2;
  }
  __builtin_cpu_init();
  const bool has_avx2 = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
  const bool has_avx512 = __builtin_cpu_supports("avx512f");
  const Isa isas[] = {{"avx2", 8, kChains256, Run256}, {"avx512", 16, kChains512, Run512}};
  const bool present[] = {has_avx2, has_avx512};
  int printed = 0;
  for (int k = 0; k < 2; ++k) {
    if (!present[k] || (std::strcmp(want, "all") != 0 && std::strcmp(want, isas[k].name) != 0)) continue;
    // About 5e8 FMA instructions per thread per run: ~0.1 s at two FMAs a cycle.
    const long iters = 500'000'000L / isas[k].chains;
    Measure(isas[k], max_threads, iters / 10, 1);  // warm up: clocks, thread pool
    for (int t = 1; t <= max_threads; ++t) {
      const double best = Measure(isas[k], t, iters, 5);
      std::printf("{\"isa\": \"%s\", \"threads\": %d, \"peak_gflops\": %.1f, \"per_thread_gflops\": %.1f, "
                  "\"chains\": %d}\n",
                  isas[k].name, t, best, best / t, isas[k].chains);
      std::fflush(stdout);
      ++printed;
    }
  }
  if (printed == 0) {
    std::fprintf(stderr, "this CPU has no %s (AVX2+FMA: %s, AVX-512F: %s)\n", want, has_avx2 ? "yes" : "no",
                 has_avx512 ? "yes" : "no");
    return 1;
  }
}
