// Vector back-ends for vec_math.inc and the run-time choice between them.
//
// Each back-end is a struct of static inline operations. The AVX2 and AVX-512 ones, and the
// kernels built on them, sit in ISA regions (isa_region.h), so they only run after the CPU check in
// BestIsa().
#include "kernels/cpu/ukernels/vec_math.h"

#include <immintrin.h>

#include <atomic>
#include <cstdint>
#include <cstdlib>
#include <cstring>

#include "kernels/cpu/ukernels/isa_region.h"

namespace strata::cpu::vec {
namespace {

// ---------------------------------------------------------------------------------------------
// Scalar back-end: one lane, baseline x86-64 (no FMA instruction, so Fma is an unfused a*b+c;
// the polynomials do not need the fused rounding, SqrLo gets its exactness from double).

#pragma GCC push_options
// Float compares may trap under the default -ftrapping-math, which stops GCC from turning the
// selects into branch-free code and vectorising the maps with baseline SSE2 (~4x faster).
#pragma GCC optimize("no-trapping-math")
namespace scalar {
struct Ops {
  using F = float;
  using M = bool;
  static constexpr int N = 1;
  static F Load(const float* p) { return *p; }
  static F LoadTail(const float* p, int64_t, float) { return *p; }  // unreachable with one lane
  static void Store(float* p, F v) { *p = v; }
  static void StoreTail(float* p, F v, int64_t) { *p = v; }
  static F Set1(float v) { return v; }
  static F Add(F a, F b) { return a + b; }
  static F Sub(F a, F b) { return a - b; }
  static F Mul(F a, F b) { return a * b; }
  static F Div(F a, F b) { return a / b; }
  static F Fma(F a, F b, F c) { return a * b + c; }
  static F SqrLo(F a, F a2) { return static_cast<float>(static_cast<double>(a) * a - a2); }
  // Same operand order rules as SSE maxps/minps: the second operand wins on NaN.
  static F Max(F a, F b) { return a > b ? a : b; }
  static F Min(F a, F b) { return a < b ? a : b; }
  static uint32_t Bits(F a) { return __builtin_bit_cast(uint32_t, a); }
  static F FromBits(uint32_t b) { return __builtin_bit_cast(float, b); }
  static F Abs(F a) { return FromBits(Bits(a) & 0x7fffffffu); }
  static F Neg(F a) { return FromBits(Bits(a) ^ 0x80000000u); }
  static F CopySign(F mag, F sign) { return FromBits((Bits(mag) & 0x7fffffffu) | (Bits(sign) & 0x80000000u)); }
  // Round to nearest (even) for |a| < 2^22 without libm: adding 1.5 * 2^23 drops the fraction.
  // (Without -ffast-math the compiler keeps both roundings.)
  static F Round(F a) { return (a + 12582912.0f) - 12582912.0f; }
  // p * 2^n for integer n in [-150, 128], in two steps so each factor is a normal float.
  static F Scale2(F p, F n) {
    const int32_t ni = static_cast<int32_t>(n), n1 = ni >> 1, n2 = ni - n1;
    return p * FromBits(static_cast<uint32_t>(n1 + 127) << 23) * FromBits(static_cast<uint32_t>(n2 + 127) << 23);
  }
  static M CmpLt(F a, F b) { return a < b; }
  static M CmpGt(F a, F b) { return a > b; }
  static M CmpGe(F a, F b) { return a >= b; }
  static M IsNan(F a) { return a != a; }
  static F Select(M m, F t, F f) { return m ? t : f; }
  static M MOr(M a, M b) { return a || b; }
  static bool Any(M m) { return m; }
  static float ReduceAdd(F a) { return a; }
  static float ReduceMax(F a) { return a; }
  static float ReduceMin(F a) { return a; }
};
using V = Ops;
#include "kernels/cpu/ukernels/vec_math.inc"
}  // namespace scalar
#pragma GCC pop_options

// ---------------------------------------------------------------------------------------------
// AVX2 + FMA back-end: 8 lanes.

STRATA_BEGIN_AVX2
namespace avx2 {
struct Ops {
  using F = __m256;
  using M = __m256;
  static constexpr int N = 8;
  static __m256i TailMask(int64_t n) {
    return _mm256_cmpgt_epi32(_mm256_set1_epi32(static_cast<int>(n)), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
  }
  static F Load(const float* p) { return _mm256_loadu_ps(p); }
  static F LoadTail(const float* p, int64_t n, float fill) {
    const __m256i m = TailMask(n);
    return _mm256_blendv_ps(_mm256_set1_ps(fill), _mm256_maskload_ps(p, m), _mm256_castsi256_ps(m));
  }
  static void Store(float* p, F v) { _mm256_storeu_ps(p, v); }
  static void StoreTail(float* p, F v, int64_t n) { _mm256_maskstore_ps(p, TailMask(n), v); }
  static F Set1(float v) { return _mm256_set1_ps(v); }
  static F Add(F a, F b) { return _mm256_add_ps(a, b); }
  static F Sub(F a, F b) { return _mm256_sub_ps(a, b); }
  static F Mul(F a, F b) { return _mm256_mul_ps(a, b); }
  static F Div(F a, F b) { return _mm256_div_ps(a, b); }
  static F Fma(F a, F b, F c) { return _mm256_fmadd_ps(a, b, c); }
  static F SqrLo(F a, F a2) { return _mm256_fmsub_ps(a, a, a2); }
  static F Max(F a, F b) { return _mm256_max_ps(a, b); }
  static F Min(F a, F b) { return _mm256_min_ps(a, b); }
  static F Abs(F a) { return _mm256_andnot_ps(_mm256_set1_ps(-0.0f), a); }
  static F Neg(F a) { return _mm256_xor_ps(a, _mm256_set1_ps(-0.0f)); }
  static F CopySign(F mag, F sign) {
    const F s = _mm256_set1_ps(-0.0f);
    return _mm256_or_ps(_mm256_andnot_ps(s, mag), _mm256_and_ps(s, sign));
  }
  static F Round(F a) { return _mm256_round_ps(a, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC); }
  static F Scale2(F p, F n) {
    const __m256i ni = _mm256_cvtps_epi32(n);
    const __m256i n1 = _mm256_srai_epi32(ni, 1), n2 = _mm256_sub_epi32(ni, n1);
    const __m256i bias = _mm256_set1_epi32(127);
    const F f1 = _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_add_epi32(n1, bias), 23));
    const F f2 = _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_add_epi32(n2, bias), 23));
    return _mm256_mul_ps(_mm256_mul_ps(p, f1), f2);
  }
  static M CmpLt(F a, F b) { return _mm256_cmp_ps(a, b, _CMP_LT_OQ); }
  static M CmpGt(F a, F b) { return _mm256_cmp_ps(a, b, _CMP_GT_OQ); }
  static M CmpGe(F a, F b) { return _mm256_cmp_ps(a, b, _CMP_GE_OQ); }
  static M IsNan(F a) { return _mm256_cmp_ps(a, a, _CMP_UNORD_Q); }
  static F Select(M m, F t, F f) { return _mm256_blendv_ps(f, t, m); }
  static M MOr(M a, M b) { return _mm256_or_ps(a, b); }
  static bool Any(M m) { return _mm256_movemask_ps(m) != 0; }
  static __m128 Fold(F a, bool max, bool min) {
    const __m128 lo = _mm256_castps256_ps128(a), hi = _mm256_extractf128_ps(a, 1);
    __m128 s = max ? _mm_max_ps(lo, hi) : min ? _mm_min_ps(lo, hi) : _mm_add_ps(lo, hi);
    const __m128 h = _mm_movehl_ps(s, s);
    s = max ? _mm_max_ps(s, h) : min ? _mm_min_ps(s, h) : _mm_add_ps(s, h);
    const __m128 o = _mm_shuffle_ps(s, s, 1);
    return max ? _mm_max_ss(s, o) : min ? _mm_min_ss(s, o) : _mm_add_ss(s, o);
  }
  static float ReduceAdd(F a) { return _mm_cvtss_f32(Fold(a, false, false)); }
  static float ReduceMax(F a) { return _mm_cvtss_f32(Fold(a, true, false)); }
  static float ReduceMin(F a) { return _mm_cvtss_f32(Fold(a, false, true)); }
};
using V = Ops;
#include "kernels/cpu/ukernels/vec_math.inc"
}  // namespace avx2
STRATA_END_AVX2

// ---------------------------------------------------------------------------------------------
// AVX-512 back-end: 16 lanes, masked tails, scalef for 2^n (exact subnormal results).

STRATA_BEGIN_AVX512
namespace avx512 {
struct Ops {
  using F = __m512;
  using M = __mmask16;
  static constexpr int N = 16;
  static __mmask16 TailMask(int64_t n) { return static_cast<__mmask16>((1u << n) - 1u); }
  static F Load(const float* p) { return _mm512_loadu_ps(p); }
  static F LoadTail(const float* p, int64_t n, float fill) {
    return _mm512_mask_loadu_ps(_mm512_set1_ps(fill), TailMask(n), p);
  }
  static void Store(float* p, F v) { _mm512_storeu_ps(p, v); }
  static void StoreTail(float* p, F v, int64_t n) { _mm512_mask_storeu_ps(p, TailMask(n), v); }
  static F Set1(float v) { return _mm512_set1_ps(v); }
  static F Add(F a, F b) { return _mm512_add_ps(a, b); }
  static F Sub(F a, F b) { return _mm512_sub_ps(a, b); }
  static F Mul(F a, F b) { return _mm512_mul_ps(a, b); }
  static F Div(F a, F b) { return _mm512_div_ps(a, b); }
  static F Fma(F a, F b, F c) { return _mm512_fmadd_ps(a, b, c); }
  static F SqrLo(F a, F a2) { return _mm512_fmsub_ps(a, a, a2); }
  static F Max(F a, F b) { return _mm512_max_ps(a, b); }
  static F Min(F a, F b) { return _mm512_min_ps(a, b); }
  static __m512i I(F a) { return _mm512_castps_si512(a); }
  static F Fl(__m512i a) { return _mm512_castsi512_ps(a); }
  static F Abs(F a) { return Fl(_mm512_and_si512(I(a), _mm512_set1_epi32(0x7fffffff))); }
  static F Neg(F a) { return Fl(_mm512_xor_si512(I(a), _mm512_set1_epi32(INT32_MIN))); }
  static F CopySign(F mag, F sign) {
    // Bitwise select a ? b : c with a = the sign-bit mask: truth table 0xCA.
    return Fl(_mm512_ternarylogic_epi32(_mm512_set1_epi32(INT32_MIN), I(sign), I(mag), 0xCA));
  }
  static F Round(F a) { return _mm512_roundscale_ps(a, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC); }
  static F Scale2(F p, F n) { return _mm512_scalef_ps(p, n); }
  static M CmpLt(F a, F b) { return _mm512_cmp_ps_mask(a, b, _CMP_LT_OQ); }
  static M CmpGt(F a, F b) { return _mm512_cmp_ps_mask(a, b, _CMP_GT_OQ); }
  static M CmpGe(F a, F b) { return _mm512_cmp_ps_mask(a, b, _CMP_GE_OQ); }
  static M IsNan(F a) { return _mm512_cmp_ps_mask(a, a, _CMP_UNORD_Q); }
  static F Select(M m, F t, F f) { return _mm512_mask_blend_ps(m, f, t); }
  static M MOr(M a, M b) { return static_cast<M>(a | b); }
  static bool Any(M m) { return m != 0; }
  static float ReduceAdd(F a) { return _mm512_reduce_add_ps(a); }
  static float ReduceMax(F a) { return _mm512_reduce_max_ps(a); }
  static float ReduceMin(F a) { return _mm512_reduce_min_ps(a); }
};
using V = Ops;
#include "kernels/cpu/ukernels/vec_math.inc"
}  // namespace avx512
STRATA_END_AVX512

// ---------------------------------------------------------------------------------------------
// Tables and dispatch.

#define STRATA_VEC_TABLE(ns, level)                                                                          \
  Kernels {                                                                                                \
    level, ns::ExpArray, ns::TanhArray, ns::SigmoidArray, ns::ErfArray, ns::GeluErfArray, ns::GeluTanhArray, \
        ns::RowMax, ns::RowMin, ns::RowSum, ns::SoftmaxRow, ns::LogSoftmaxRow, ns::LayerNormRow               \
  }
const Kernels kScalar = STRATA_VEC_TABLE(scalar, Isa::kScalar);
const Kernels kAvx2 = STRATA_VEC_TABLE(avx2, Isa::kAvx2);
const Kernels kAvx512 = STRATA_VEC_TABLE(avx512, Isa::kAvx512);
#undef STRATA_VEC_TABLE

const Kernels& TableOf(Isa isa) {
  switch (isa) {
    case Isa::kAvx512: return kAvx512;
    case Isa::kAvx2: return kAvx2;
    case Isa::kScalar: break;
  }
  return kScalar;
}

Isa DetectIsa() {
  __builtin_cpu_init();
  if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx512vl") &&
      __builtin_cpu_supports("avx512bw"))  // what STRATA_BEGIN_AVX512 compiles for
    return Isa::kAvx512;
  if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) return Isa::kAvx2;
  return Isa::kScalar;
}

// STRATA_ISA lowers the level for benchmarks; unknown values are ignored.
Isa InitialIsa() {
  const Isa best = BestIsa();
  const char* env = std::getenv("STRATA_ISA");
  if (env == nullptr) return best;
  Isa want = best;
  if (std::strcmp(env, "scalar") == 0) want = Isa::kScalar;
  else if (std::strcmp(env, "avx2") == 0) want = Isa::kAvx2;
  return want < best ? want : best;
}

std::atomic<const Kernels*> g_active{nullptr};

}  // namespace

const char* IsaName(Isa isa) {
  switch (isa) {
    case Isa::kAvx512: return "avx512";
    case Isa::kAvx2: return "avx2";
    case Isa::kScalar: break;
  }
  return "scalar";
}

Isa BestIsa() {
  static const Isa best = DetectIsa();
  return best;
}

const Kernels& Active() {
  const Kernels* k = g_active.load(std::memory_order_acquire);
  if (k == nullptr) {
    k = &TableOf(InitialIsa());
    g_active.store(k, std::memory_order_release);
  }
  return *k;
}

const Kernels* KernelsFor(Isa isa) { return isa <= BestIsa() ? &TableOf(isa) : nullptr; }

Isa ForceIsa(Isa isa) {
  const Isa best = BestIsa();
  const Kernels& k = TableOf(isa < best ? isa : best);
  g_active.store(&k, std::memory_order_release);
  return k.isa;
}

}  // namespace strata::cpu::vec
