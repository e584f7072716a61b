#include "kernels/cpu/ukernels/elementwise_program.h"

#include <immintrin.h>

#include <cmath>

#include "kernels/cpu/ukernels/isa_region.h"

namespace strata::cpu::uk {
namespace {

using Op = ElementwiseOp;

// Compares may trap under the default -ftrapping-math, which keeps the selects from vectorising (no
// kernel here reads the floating-point exception flags).
#pragma GCC push_options
#pragma GCC optimize("no-trapping-math")
namespace scalar {
void SqrtBlock(const float* a, float* d, int64_t n) {
  for (int64_t i = 0; i < n; ++i) d[i] = __builtin_sqrtf(a[i]);
}
#include "kernels/cpu/ukernels/elementwise_program.inc"
}  // namespace scalar
STRATA_BEGIN_AVX2
namespace avx2 {
void SqrtBlock(const float* a, float* d, int64_t n) {
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) _mm256_storeu_ps(d + i, _mm256_sqrt_ps(_mm256_loadu_ps(a + i)));
  for (; i < n; ++i) _mm_store_ss(d + i, _mm_sqrt_ss(_mm_load_ss(a + i)));
}
#include "kernels/cpu/ukernels/elementwise_program.inc"
}  // namespace avx2
STRATA_END_AVX2
STRATA_BEGIN_AVX512
namespace avx512 {
void SqrtBlock(const float* a, float* d, int64_t n) {
  int64_t i = 0;
  for (; i + 16 <= n; i += 16) _mm512_storeu_ps(d + i, _mm512_sqrt_ps(_mm512_loadu_ps(a + i)));
  const auto m = static_cast<__mmask16>((1u << (n - i)) - 1u);
  _mm512_mask_storeu_ps(d + i, m, _mm512_sqrt_ps(_mm512_maskz_loadu_ps(m, a + i)));
}
#include "kernels/cpu/ukernels/elementwise_program.inc"
}  // namespace avx512
STRATA_END_AVX512
#pragma GCC pop_options

void RunInstr(const ElementwiseKernels& k, const ElementwiseInstr& in, const float* a, const float* b, const float* c,
              float* d, int64_t n) {
  switch (in.op) {
    case Op::kExp: return k.math->exp(a, d, n);
    case Op::kTanh: return k.math->tanh(a, d, n);
    case Op::kSigmoid: return k.math->sigmoid(a, d, n);
    case Op::kErf: return k.math->erf(a, d, n);
    case Op::kGelu: return k.math->gelu_erf(a, d, n);
    case Op::kGeluTanh: return k.math->gelu_tanh(a, d, n);
    case Op::kLog:
      for (int64_t i = 0; i < n; ++i) d[i] = std::log(a[i]);
      return;
    case Op::kPow:
      for (int64_t i = 0; i < n; ++i) d[i] = std::pow(a[i], in.alpha);
      return;
    case Op::kPowDouble:
      for (int64_t i = 0; i < n; ++i)
        d[i] = static_cast<float>(std::pow(static_cast<double>(a[i]), static_cast<double>(in.alpha)));
      return;
    default:
      return k.simple(in.op, a, b, c, d, n, in.alpha, in.beta);
  }
}

}  // namespace

const ElementwiseKernels& ElementwiseKernelsFor(vec::Isa isa) {
  // vec::KernelsFor is null for a level this CPU lacks; such a table is never returned.
  static const ElementwiseKernels kScalar{vec::KernelsFor(vec::Isa::kScalar), scalar::Simple, scalar::Convert},
      kAvx2{vec::KernelsFor(vec::Isa::kAvx2), avx2::Simple, avx2::Convert},
      kAvx512{vec::KernelsFor(vec::Isa::kAvx512), avx512::Simple, avx512::Convert};
  return isa == vec::Isa::kAvx512 ? kAvx512 : isa == vec::Isa::kAvx2 ? kAvx2 : kScalar;
}

void RunElementwiseProgram(const ElementwiseKernels& kernels, std::span<const ElementwiseInstr> program, float* regs,
                           int64_t reg_stride, const float* const* inputs, float* out, int64_t n) {
  auto operand = [&](int s) { return s < 0 ? inputs[-s - 1] : regs + static_cast<int64_t>(s) * reg_stride; };
  for (const ElementwiseInstr& in : program) {
    const float* a = operand(in.src[0]);
    const float* b = in.arity > 1 ? operand(in.src[1]) : nullptr;
    const float* c = in.arity > 2 ? operand(in.src[2]) : nullptr;
    float* d = in.dst < 0 ? out : regs + static_cast<int64_t>(in.dst) * reg_stride;
    RunInstr(kernels, in, a, b, c, d, n);
  }
}

}  // namespace strata::cpu::uk
