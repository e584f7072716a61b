// Softmax, LogSoftmax, Hardmax (opsets 1..18).
//
// Before opset 13 the input is coerced to 2-D at `axis` (default 1) and the op works on rows;
// from opset 13 it works along the single axis `axis` (default -1). Either way the data is viewed
// as [outer, L, inner] and normalised along L. Softmax subtracts the maximum for stability.
#include <cmath>
#include <limits>
#include <vector>

#include "kernels/cpu/common.h"
#include "kernels/cpu/ukernels/vec_math.h"

namespace strata::cpu {
namespace {

enum class SM { kSoftmax, kLogSoftmax, kHardmax };

// exp in place: the vec_math kernel for float, libm for double.
template <typename C>
void ExpInPlace(C* v, int64_t n) {
  if constexpr (std::is_same_v<C, float>) {
    vec::Active().exp(v, v, n);
  } else {
    for (int64_t i = 0; i < n; ++i) v[i] = std::exp(v[i]);
  }
}

// One [L, inner] block. buf holds L*inner compute values (scratch for 16-bit floats); m, s and t
// hold `inner` values each.
template <SM M, typename T>
void SoftmaxBlock(const T* x, T* y, int64_t L, int64_t inner, ComputeType<T>* buf, ComputeType<T>* m,
                  ComputeType<T>* s, ComputeType<T>* t) {
  using C = ComputeType<T>;
  const int64_t n = L * inner;
  if constexpr (M == SM::kHardmax) {
    for (int64_t j = 0; j < inner; ++j) {
      int64_t best = 0;
      C bv = static_cast<C>(x[j]);
      for (int64_t l = 1; l < L; ++l) {
        const C v = static_cast<C>(x[l * inner + j]);
        if (v > bv) {
          bv = v;
          best = l;
        }
      }
      for (int64_t l = 0; l < L; ++l) y[l * inner + j] = T(static_cast<C>(l == best ? 1 : 0));
    }
    return;
  } else {
    // Work on compute-type values: the input itself for float/double, a converted copy otherwise.
    const C* xs;
    if constexpr (std::is_same_v<T, C>) {
      xs = x;
    } else {
      for (int64_t i = 0; i < n; ++i) buf[i] = static_cast<C>(x[i]);
      xs = buf;
    }
    if constexpr (std::is_same_v<C, float> && !std::is_same_v<T, C>) {
      if (inner == 1) {  // one contiguous row of 16-bit floats: the vec_math row kernel, in place in buf
        const vec::Kernels& k = vec::Active();
        (M == SM::kSoftmax ? k.softmax_row : k.log_softmax_row)(buf, buf, n);
        for (int64_t i = 0; i < n; ++i) y[i] = T(buf[i]);
        return;
      }
    }
    for (int64_t j = 0; j < inner; ++j) {
      m[j] = -std::numeric_limits<C>::infinity();
      s[j] = 0;
    }
    for (int64_t l = 0; l < L; ++l) {
      const C* xr = xs + l * inner;
      for (int64_t j = 0; j < inner; ++j) m[j] = xr[j] > m[j] ? xr[j] : m[j];
    }
    // e = exp(x - m): kept in the output (float/double) or in buf (converted in place) for
    // Softmax, in the scratch row t for LogSoftmax.
    C* e = std::is_same_v<T, C> ? reinterpret_cast<C*>(y) : buf;
    for (int64_t l = 0; l < L; ++l) {
      const C* xr = xs + l * inner;
      C* er = M == SM::kSoftmax ? e + l * inner : t;
      for (int64_t j = 0; j < inner; ++j) er[j] = xr[j] - m[j];
      ExpInPlace(er, inner);
      for (int64_t j = 0; j < inner; ++j) s[j] += er[j];
    }
    if constexpr (M == SM::kSoftmax) {
      for (int64_t j = 0; j < inner; ++j) s[j] = C(1) / s[j];
      for (int64_t l = 0; l < L; ++l) {
        const C* er = e + l * inner;
        T* yr = y + l * inner;
        for (int64_t j = 0; j < inner; ++j) yr[j] = T(er[j] * s[j]);
      }
    } else {
      for (int64_t j = 0; j < inner; ++j) s[j] = m[j] + std::log(s[j]);
      for (int64_t l = 0; l < L; ++l) {
        const C* xr = xs + l * inner;
        T* yr = y + l * inner;
        for (int64_t j = 0; j < inner; ++j) yr[j] = T(xr[j] - s[j]);
      }
    }
  }
}

template <SM M, typename T>
void RunSoftmax(const T* x, T* y, int64_t outer, int64_t L, int64_t inner) {
  using C = ComputeType<T>;
  const int64_t block = L * inner;
  if constexpr (std::is_same_v<T, float> && M != SM::kHardmax) {
    if (inner == 1) {  // contiguous rows (attention scores): the vec_math row kernels
      const vec::Kernels& k = vec::Active();
      const auto row = M == SM::kSoftmax ? k.softmax_row : k.log_softmax_row;
      ParallelRows(outer, L, [&](int64_t b, int64_t e) {
        for (int64_t o = b; o < e; ++o) row(x + o * L, y + o * L, L);
      });
      return;
    }
  }
  ParallelRows(
      outer, block,
      [&](int64_t b, int64_t e) {
        std::vector<C> buf(static_cast<size_t>(M == SM::kHardmax || std::is_same_v<T, C> ? 0 : block));
        std::vector<C> mst(static_cast<size_t>(3 * inner));
        for (int64_t o = b; o < e; ++o)
          SoftmaxBlock<M, T>(x + o * block, y + o * block, L, inner, buf.data(), mst.data(), mst.data() + inner,
                             mst.data() + 2 * inner);
      },
      1 << 15);
}

template <SM M>
class SoftmaxKernel final : public OpKernel {
 public:
  Status Init(const KernelInfo& info) {
    coerce_2d_ = info.opset() < 13;
    axis_ = info.attr_int("axis", coerce_2d_ ? 1 : -1);
    return CheckInputDType(info, 0, DTypesOf(FloatTypes{}));
  }

  Status Compute(KernelContext& ctx) override {
    const Tensor& x = ctx.input_tensor(0);
    const int rank = x.rank();
    int64_t outer = 1, L = 1, inner = 1;
    if (coerce_2d_) {
      if (axis_ < -rank || axis_ > rank)
        return InvalidArgument("axis " + std::to_string(axis_) + " is out of range for rank " + std::to_string(rank));
      const int a = static_cast<int>(axis_ < 0 ? axis_ + rank : axis_);
      for (int i = 0; i < rank; ++i) (i < a ? outer : L) *= x.dim(i);
    } else {
      CHECK_ARG(rank >= 1, "input must have rank >= 1");
      ASSIGN_OR_RETURN(int a, NormalizeAxis(axis_, rank));
      for (int i = 0; i < rank; ++i) {
        if (i < a) outer *= x.dim(i);
        else if (i == a) L = x.dim(i);
        else inner *= x.dim(i);
      }
    }
    ASSIGN_OR_RETURN(Tensor * y, ctx.AllocateOutput(0, x.dtype(), x.shape()));
    if (x.numel() == 0) return Status::Ok();
    return Dispatch(FloatTypes{}, x.dtype(), [&](auto* tag) {
      using T = std::remove_pointer_t<decltype(tag)>;
      RunSoftmax<M, T>(x.data<T>(), y->data<T>(), outer, L, inner);
      return Status::Ok();
    });
  }

 private:
  bool coerce_2d_ = false;
  int64_t axis_ = -1;
};

const KernelRegistrar kSoftmax{{.op_type = "Softmax", .since = 1, .until = 18, .dtypes = DTypesOf(FloatTypes{}),
                                .factory = MakeKernel<SoftmaxKernel<SM::kSoftmax>>}};
const KernelRegistrar kLogSoftmax{{.op_type = "LogSoftmax", .since = 1, .until = 18,
                                   .dtypes = DTypesOf(FloatTypes{}),
                                   .factory = MakeKernel<SoftmaxKernel<SM::kLogSoftmax>>}};
const KernelRegistrar kHardmax{{.op_type = "Hardmax", .since = 1, .until = 18, .dtypes = DTypesOf(FloatTypes{}),
                                .factory = MakeKernel<SoftmaxKernel<SM::kHardmax>>}};

}  // namespace
}  // namespace strata::cpu
