// MeanVarianceNormalization (9+), LRN, LpNormalization: normalisation over reduced axes or a
// window across channels.
#include <algorithm>
#include <cmath>
#include <vector>

#include "kernels/cpu/norm_common.h"

namespace strata::cpu {
namespace {

using norm::CheckFloat;
using norm::FromDouble;

// ---------------------------------------------------------------------------------------------
// MeanVarianceNormalization (opset 9+): (X - mean) / (sqrt(var) + 1e-9) over `axes`.

class MvnKernel final : public OpKernel {
 public:
  Status Init(const KernelInfo& info) {
    axes_ = info.attr_ints("axes", {0, 2, 3});
    return CheckInputDType(info, 0, DTypesOf(FloatTypes{}));
  }

  Status Compute(KernelContext& ctx) override {
    const Tensor& x = ctx.input_tensor(0);
    RETURN_IF_ERROR(CheckFloat(x, "X"));
    for (int64_t a : axes_) RETURN_IF_ERROR(NormalizeAxis(a, x.rank(), "MeanVarianceNormalization ").status());
    const ReducePlan plan = MakeReducePlan(x.shape(), axes_);
    ASSIGN_OR_RETURN(Tensor * y, ctx.AllocateOutput(0, x.dtype(), x.shape()));
    if (x.numel() == 0) return Status::Ok();
    return Dispatch(FloatTypes{}, x.dtype(), [&](auto* tag) -> Status {
      using T = std::remove_pointer_t<decltype(tag)>;
      const T* xd = x.data<T>();
      T* yd = y->data<T>();
      const size_t on = static_cast<size_t>(plan.out_numel);
      const double cnt = static_cast<double>(plan.count);
      std::vector<double> mean(on, 0.0), var(on, 0.0);
      auto plus = [](double a, double b) { return a + b; };
      ReduceInto<double>(plan, xd, mean.data(), 0.0, [](double v, int64_t) { return v; }, plus);
      for (double& m : mean) m /= cnt;
      const double* mp = mean.data();
      ReduceInto<double>(
          plan, xd, var.data(), 0.0, [mp](double v, int64_t o) { return (v - mp[o]) * (v - mp[o]); }, plus);
      for (double& v : var) v = 1.0 / (std::sqrt(v / cnt) + 1e-9);
      const Strides sx = ContiguousStrides(x.shape());
      const Strides sm = BroadcastStrides(plan.out_shape_keep, x.shape());
      ForEachBroadcast2(x.shape(), sx, sm, [&](int64_t i, int64_t ix, int64_t im) {
        const double v = static_cast<double>(static_cast<ComputeType<T>>(xd[ix]));
        yd[i] = FromDouble<T>((v - mean[static_cast<size_t>(im)]) * var[static_cast<size_t>(im)]);
      });
      return Status::Ok();
    });
  }

 private:
  std::vector<int64_t> axes_;
};

// ---------------------------------------------------------------------------------------------
// LRN: y = x / (bias + alpha/size * sum_{window over C} x^2)^beta

class LrnKernel final : public OpKernel {
 public:
  Status Init(const KernelInfo& info) {
    if (!info.has_attr("size")) return info.Error("LRN needs the size attribute");
    size_ = info.attr_int("size", 1);
    if (size_ <= 0) return info.Error("size must be positive");
    alpha_ = info.attr_float("alpha", 1e-4f);
    beta_ = info.attr_float("beta", 0.75f);
    bias_ = info.attr_float("bias", 1.0f);
    return CheckInputDType(info, 0, DTypesOf(FloatTypes{}));
  }

  Status Compute(KernelContext& ctx) override {
    const Tensor& x = ctx.input_tensor(0);
    RETURN_IF_ERROR(CheckFloat(x, "X"));
    CHECK_ARG(x.rank() >= 2, "input must have rank >= 2 (N x C x ...)");
    const int64_t N = x.dim(0), C = x.dim(1);
    int64_t S = 1;
    for (int i = 2; i < x.rank(); ++i) S *= x.dim(i);
    ASSIGN_OR_RETURN(Tensor * y, ctx.AllocateOutput(0, x.dtype(), x.shape()));
    const int64_t lo = (size_ - 1) / 2, hi = size_ - 1 - lo;
    return Dispatch(FloatTypes{}, x.dtype(), [&](auto* tag) -> Status {
      using T = std::remove_pointer_t<decltype(tag)>;
      using Cm = ComputeType<T>;
      const T* xd = x.data<T>();
      T* yd = y->data<T>();
      const Cm k = static_cast<Cm>(alpha_ / static_cast<double>(size_)), b = static_cast<Cm>(bias_),
               be = static_cast<Cm>(beta_);
      ParallelRows(N * C, S, [&](int64_t nc_begin, int64_t nc_end) {
        std::vector<Cm> sq(static_cast<size_t>(S));
        for (int64_t nc = nc_begin; nc < nc_end; ++nc) {
          const int64_t n = nc / C, c = nc % C;
          std::fill(sq.begin(), sq.end(), Cm(0));
          for (int64_t j = std::max<int64_t>(0, c - lo); j <= std::min(C - 1, c + hi); ++j) {
            const T* r = xd + (n * C + j) * S;
            for (int64_t i = 0; i < S; ++i) {
              const Cm v = static_cast<Cm>(r[i]);
              sq[static_cast<size_t>(i)] += v * v;
            }
          }
          const T* r = xd + nc * S;
          T* o = yd + nc * S;
          for (int64_t i = 0; i < S; ++i)
            o[i] = T(static_cast<Cm>(r[i]) / std::pow(b + k * sq[static_cast<size_t>(i)], be));
        }
      }, 1 << 15);
      return Status::Ok();
    });
  }

 private:
  int64_t size_ = 1;
  double alpha_ = 1e-4, beta_ = 0.75, bias_ = 1.0;
};

// ---------------------------------------------------------------------------------------------
// LpNormalization: x / ||x||_p along `axis` (p = 1 or 2).

class LpNormKernel final : public OpKernel {
 public:
  Status Init(const KernelInfo& info) {
    axis_ = info.attr_int("axis", -1);
    p_ = info.attr_int("p", 2);
    if (p_ != 1 && p_ != 2) return info.Error("p must be 1 or 2");
    return CheckInputDType(info, 0, DTypesOf(FloatTypes{}));
  }

  Status Compute(KernelContext& ctx) override {
    const Tensor& x = ctx.input_tensor(0);
    RETURN_IF_ERROR(CheckFloat(x, "X"));
    CHECK_ARG(x.rank() >= 1, "input must have rank >= 1");
    RETURN_IF_ERROR(NormalizeAxis(axis_, x.rank()).status());
    const ReducePlan plan = MakeReducePlan(x.shape(), {&axis_, 1});
    ASSIGN_OR_RETURN(Tensor * y, ctx.AllocateOutput(0, x.dtype(), x.shape()));
    if (x.numel() == 0) return Status::Ok();
    const bool l1 = p_ == 1;
    return Dispatch(FloatTypes{}, x.dtype(), [&](auto* tag) -> Status {
      using T = std::remove_pointer_t<decltype(tag)>;
      const T* xd = x.data<T>();
      T* yd = y->data<T>();
      std::vector<double> nrm(static_cast<size_t>(plan.out_numel), 0.0);
      ReduceInto<double>(
          plan, xd, nrm.data(), 0.0, [l1](double v, int64_t) { return l1 ? std::fabs(v) : v * v; },
          [](double a, double b) { return a + b; });
      for (double& v : nrm) {
        if (!l1) v = std::sqrt(v);
        v = v == 0.0 ? 0.0 : 1.0 / v;
      }
      const Strides sx = ContiguousStrides(x.shape());
      const Strides sm = BroadcastStrides(plan.out_shape_keep, x.shape());
      ForEachBroadcast2(x.shape(), sx, sm, [&](int64_t i, int64_t ix, int64_t im) {
        yd[i] = FromDouble<T>(static_cast<double>(static_cast<ComputeType<T>>(xd[ix])) * nrm[static_cast<size_t>(im)]);
      });
      return Status::Ok();
    });
  }

 private:
  int64_t axis_ = -1;
  int64_t p_ = 2;
};


const KernelRegistrar kMvn{{.op_type = "MeanVarianceNormalization", .since = 9, .until = 18,
                            .dtypes = DTypesOf(FloatTypes{}), .factory = MakeKernel<MvnKernel>}};
const KernelRegistrar kLrn{{.op_type = "LRN", .since = 1, .until = 18, .dtypes = DTypesOf(FloatTypes{}),
                            .factory = MakeKernel<LrnKernel>}};
const KernelRegistrar kLpNorm{{.op_type = "LpNormalization", .since = 1, .until = 18, .dtypes = DTypesOf(FloatTypes{}),
                               .factory = MakeKernel<LpNormKernel>}};

}  // namespace
}  // namespace strata::cpu
