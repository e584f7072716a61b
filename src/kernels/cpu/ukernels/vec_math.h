// Vectorised f32 micro-kernels over contiguous arrays, with run-time ISA dispatch.
//
// Each kernel exists three times, built from one body (vec_math.inc) over three vector back-ends:
// AVX-512 F/DQ/VL/BW (16 lanes), AVX2+FMA (8 lanes) and portable scalar code. The best level this CPU
// supports is chosen once, on first use; the binary itself only assumes baseline x86-64 (the
// wide variants are compiled in ISA regions, isa_region.h). The environment variable
// STRATA_ISA=scalar|avx2|avx512 lowers the level (for benchmarks), ForceIsa() does so in tests.
//
// The transcendental functions are Strata's own polynomial approximations, not libm; their
// measured maximum errors (against a double-precision reference, over all ISAs; the bounds
// vec_math_test.cc asserts are in brackets) are:
//   exp      1.26 ulp [2]  subnormal results kept; exp(-inf) = 0, exp(x > 88.7228) = inf
//   tanh     1.49 ulp [2]  saturates to +-1, tanh(-0) = -0
//   sigmoid  2.26 ulp [3]  tiny results for large negative x stay accurate (no flush to 0)
//   erf      2.24 ulp [3], absolute 1.17e-7 [1.2e-7]
//   gelu     absolute 1.34e-7 * max(1, |x|) [2e-7] (erf and tanh forms)
// NaN inputs give NaN outputs.
#pragma once

#include <cstdint>

namespace strata::cpu::vec {

// exp returns exactly 0 for x below this (e^-104 is under half the smallest subnormal float), which
// callers may rely on to skip terms that cannot contribute.
inline constexpr float kExpZeroBelow = -104.0f;

enum class Isa : int { kScalar = 0, kAvx2 = 1, kAvx512 = 2 };
const char* IsaName(Isa isa);

// The best level this CPU (and OS) supports.
Isa BestIsa();

// Every kernel of one ISA level. Unary maps accept n == 0 and allow y == x (in place).
struct Kernels {
  Isa isa;
  void (*exp)(const float* x, float* y, int64_t n);
  void (*tanh)(const float* x, float* y, int64_t n);
  void (*sigmoid)(const float* x, float* y, int64_t n);
  void (*erf)(const float* x, float* y, int64_t n);
  void (*gelu_erf)(const float* x, float* y, int64_t n);   // 0.5 x (1 + erf(x / sqrt 2))
  void (*gelu_tanh)(const float* x, float* y, int64_t n);  // 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))
  // Row reductions: max/min are -inf/+inf for n == 0 and NaN if any element is NaN; sum is 0 for n == 0.
  float (*row_max)(const float* x, int64_t n);
  float (*row_min)(const float* x, int64_t n);
  float (*row_sum)(const float* x, int64_t n);
  // y = softmax(x) / log_softmax(x) over one row of n > 0 elements (max subtracted first); y may be x.
  void (*softmax_row)(const float* x, float* y, int64_t n);
  void (*log_softmax_row)(const float* x, float* y, int64_t n);
  // y = (x - mean) * rstd * scale + bias over one row of n > 0 elements, rstd = 1 / sqrt(var + eps)
  // (two-pass population variance). bias may be null. Writes the statistics to *mean and *rstd.
  void (*layer_norm_row)(const float* x, float* y, int64_t n, const float* scale, const float* bias, float eps,
                         float* mean, float* rstd);
};

// The kernels of the active level (BestIsa() unless lowered).
const Kernels& Active();
// The kernels of one level, or nullptr when this CPU lacks it. For tests.
const Kernels* KernelsFor(Isa isa);
// Makes `isa` (clamped to BestIsa()) the active level; returns the level now active. For tests
// and benchmarks: not meant to be called while kernels run on other threads.
Isa ForceIsa(Isa isa);

}  // namespace strata::cpu::vec
