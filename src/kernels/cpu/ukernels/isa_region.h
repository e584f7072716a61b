// Regions of a source file compiled for one vec::Isa level (vec_math.h). Functions defined between
// STRATA_BEGIN_AVX512 and STRATA_END_AVX512 carry that target, so the binary still runs on any
// x86-64; they may only be called once vec::Active() reports the level. The target strings here are
// exactly what vec::BestIsa() checks for, so no region can use an instruction the check did not see.
//
// Keep the standard library out of these regions: an inline function instantiated inside could be
// merged with, and replace, the baseline copy.
#pragma once

#define STRATA_ISA_PRAGMA(x) _Pragma(#x)

// AVX2 + FMA.
#define STRATA_BEGIN_AVX2 STRATA_ISA_PRAGMA(GCC push_options) STRATA_ISA_PRAGMA(GCC target("avx2,fma"))
#define STRATA_END_AVX2 STRATA_ISA_PRAGMA(GCC pop_options)

// AVX-512 F, DQ, VL and BW (every AVX-512 CPU since Skylake-SP and Zen 4), with AVX2 + FMA.
// GCC 12's avx512fintrin.h self-initialises `__Y = __Y` in its _mm512_undefined_* helpers, which
// trips -W(maybe-)uninitialized once inlined (GCC bug 105593, fixed in 12.3): the warning is about
// the header, so it is silenced inside the region.
#define STRATA_BEGIN_AVX512                                                              \
  STRATA_ISA_PRAGMA(GCC push_options)                                                    \
  STRATA_ISA_PRAGMA(GCC target("avx512f,avx512dq,avx512vl,avx512bw,avx2,fma"))           \
  STRATA_ISA_PRAGMA(GCC diagnostic push)                                                 \
  STRATA_ISA_PRAGMA(GCC diagnostic ignored "-Wuninitialized")                            \
  STRATA_ISA_PRAGMA(GCC diagnostic ignored "-Wmaybe-uninitialized")
#define STRATA_END_AVX512 STRATA_ISA_PRAGMA(GCC diagnostic pop) STRATA_ISA_PRAGMA(GCC pop_options)
