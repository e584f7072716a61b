// LayerNormalization (17); float32 with float statistics runs the vec_math layer-norm row kernel.
#include <cmath>
#include <memory>
#include <mutex>
#include <vector>

#include "kernels/cpu/norm_common.h"
#include "kernels/cpu/ukernels/vec_math.h"

namespace strata::cpu {
namespace {

using norm::CheckFloat;
using norm::FromDouble;
using norm::MeanVar;
using norm::ReadParams;
using norm::WriteDoubles;

class LayerNormKernel final : public OpKernel {
 public:
  Status Init(const KernelInfo& info) {
    axis_ = info.attr_int("axis", -1);
    epsilon_ = info.attr_float("epsilon", 1e-5f);
    stash_ = static_cast<DType>(info.attr_int("stash_type", 1));
    if (!IsFloatingPoint(stash_)) return info.Error("stash_type must be a floating-point type");
    constant_params_ = info.constant_input(1) && (!info.input_present(2) || info.constant_input(2));
    return CheckInputDType(info, 0, DTypesOf(FloatTypes{}));
  }

  // Expands a parameter to the normalised shape (it must broadcast to it).
  static Status Expand(const Tensor& t, const Shape& norm_shape, const Shape& full, std::vector<double>& out) {
    Shape s = t.shape();
    while (s.size() > norm_shape.size() && s.front() == 1) s.erase(s.begin());
    if (s.size() > norm_shape.size())
      return InvalidArgument("scale/bias shape " + ShapeToString(t.shape()) +
                             " does not broadcast to the normalised shape " + ShapeToString(norm_shape) + " of " +
                             ShapeToString(full));
    const size_t off = norm_shape.size() - s.size();
    for (size_t i = 0; i < s.size(); ++i)
      if (s[i] != 1 && s[i] != norm_shape[off + i])
        return InvalidArgument("scale/bias shape " + ShapeToString(t.shape()) + " does not broadcast to " +
                               ShapeToString(norm_shape));
    const std::vector<double> v = ReadParams(t);
    const Strides st = BroadcastStrides(s, norm_shape);
    const int64_t M = NumElements(norm_shape);
    out.assign(static_cast<size_t>(M), 0.0);
    std::vector<int64_t> idx(norm_shape.size(), 0);
    for (int64_t i = 0; i < M; ++i) {
      int64_t off_in = 0;
      for (size_t d = 0; d < idx.size(); ++d) off_in += idx[d] * st[d];
      out[static_cast<size_t>(i)] = v[static_cast<size_t>(off_in)];
      for (size_t d = idx.size(); d-- > 0;) {
        if (++idx[d] < norm_shape[d]) break;
        idx[d] = 0;
      }
    }
    return Status::Ok();
  }

  // Scale and bias expanded to the normalised shape, in float, for the vec_math row kernel.
  struct FloatParams {
    Shape norm_shape;
    std::vector<float> scale, bias;  // bias empty when absent
  };
  static Result<std::shared_ptr<const FloatParams>> MakeFloatParams(KernelContext& ctx, const Shape& norm_shape,
                                                                    const Shape& full) {
    auto p = std::make_shared<FloatParams>();
    p->norm_shape = norm_shape;
    std::vector<double> v;
    RETURN_IF_ERROR(Expand(ctx.input_tensor(1), norm_shape, full, v));
    p->scale.assign(v.begin(), v.end());
    if (ctx.has_input(2)) {
      RETURN_IF_ERROR(Expand(ctx.input_tensor(2), norm_shape, full, v));
      p->bias.assign(v.begin(), v.end());
    }
    return std::shared_ptr<const FloatParams>(std::move(p));
  }

  Status Compute(KernelContext& ctx) override {
    const Tensor& x = ctx.input_tensor(0);
    RETURN_IF_ERROR(CheckFloat(x, "X"));
    CHECK_ARG(x.rank() >= 1, "X must have rank >= 1");
    ASSIGN_OR_RETURN(int axis, NormalizeAxis(axis_, x.rank()));
    const Shape norm_shape(x.shape().begin() + axis, x.shape().end());
    const int64_t M = NumElements(norm_shape);
    const int64_t outer = M == 0 ? 0 : x.numel() / M;
    CHECK_ARG(ctx.has_input(1), "Scale input is required");
    RETURN_IF_ERROR(CheckFloat(ctx.input_tensor(1), "Scale"));
    if (ctx.has_input(2)) RETURN_IF_ERROR(CheckFloat(ctx.input_tensor(2), "B"));
    Shape stat_shape(x.shape().begin(), x.shape().begin() + axis);
    stat_shape.resize(static_cast<size_t>(x.rank()), 1);
    ASSIGN_OR_RETURN(Tensor * y, ctx.AllocateOutput(0, x.dtype(), x.shape()));
    Tensor* mean_t = nullptr;
    Tensor* inv_t = nullptr;
    if (ctx.num_outputs() > 1) {
      ASSIGN_OR_RETURN(mean_t, ctx.AllocateOutput(1, stash_, stat_shape));
    }
    if (ctx.num_outputs() > 2) {
      ASSIGN_OR_RETURN(inv_t, ctx.AllocateOutput(2, stash_, stat_shape));
    }
    const double eps = epsilon_;
    const bool dbl = stash_ == DType::kDouble;
    const bool want_stats = mean_t || inv_t;
    std::vector<double> means(want_stats ? static_cast<size_t>(outer) : 0), invs(means.size());
    if (x.dtype() == DType::kFloat && !dbl && M > 0) {
      // float32 with float statistics: the vec_math row kernel, in float throughout. Constant
      // scale/bias (the usual case) are expanded once, not on every run.
      std::shared_ptr<const FloatParams> params;
      if (constant_params_) {
        std::lock_guard<std::mutex> lock(mu_);
        if (!cached_params_) {
          ASSIGN_OR_RETURN(cached_params_, MakeFloatParams(ctx, norm_shape, x.shape()));
        }
        params = cached_params_;
      }
      if (!params || params->norm_shape != norm_shape) {
        ASSIGN_OR_RETURN(params, MakeFloatParams(ctx, norm_shape, x.shape()));
      }
      const float* xd = x.data<float>();
      float* yd = y->data<float>();
      const auto row = vec::Active().layer_norm_row;
      const float feps = static_cast<float>(eps);
      const float* bp = params->bias.empty() ? nullptr : params->bias.data();
      ParallelRows(outer, M, [&](int64_t b, int64_t e) {
        for (int64_t o = b; o < e; ++o) {
          float mean, rstd;
          row(xd + o * M, yd + o * M, M, params->scale.data(), bp, feps, &mean, &rstd);
          if (want_stats) {
            means[static_cast<size_t>(o)] = mean;
            invs[static_cast<size_t>(o)] = rstd;
          }
        }
      });
      if (mean_t) RETURN_IF_ERROR(WriteDoubles(mean_t, means));
      if (inv_t) RETURN_IF_ERROR(WriteDoubles(inv_t, invs));
      return Status::Ok();
    }
    std::vector<double> scale, bias;
    RETURN_IF_ERROR(Expand(ctx.input_tensor(1), norm_shape, x.shape(), scale));
    if (ctx.has_input(2)) {
      RETURN_IF_ERROR(Expand(ctx.input_tensor(2), norm_shape, x.shape(), bias));
    } else {
      bias.assign(static_cast<size_t>(M), 0.0);
    }
    if (!want_stats) {
      means.resize(static_cast<size_t>(outer));
      invs.resize(static_cast<size_t>(outer));
    }
    const Status st = Dispatch(FloatTypes{}, x.dtype(), [&](auto* tag) -> Status {
      using T = std::remove_pointer_t<decltype(tag)>;
      using Cm = ComputeType<T>;
      const T* xd = x.data<T>();
      T* yd = y->data<T>();
      ParallelRows(
          outer, M,
          [&](int64_t b, int64_t e) {
            for (int64_t o = b; o < e; ++o) {
              double mean, var;
              MeanVar(xd + o * M, M, mean, var);
              double inv = 1.0 / std::sqrt(var + eps);
              if (!dbl) {  // statistics are stashed in float precision
                mean = static_cast<float>(mean);
                inv = static_cast<float>(inv);
              }
              means[static_cast<size_t>(o)] = mean;
              invs[static_cast<size_t>(o)] = inv;
              const T* xr = xd + o * M;
              T* yr = yd + o * M;
              for (int64_t i = 0; i < M; ++i) {
                const double nrm = (static_cast<double>(static_cast<Cm>(xr[i])) - mean) * inv;
                yr[i] = FromDouble<T>(nrm * scale[static_cast<size_t>(i)] + bias[static_cast<size_t>(i)]);
              }
            }
          },
          1 << 15);
      return Status::Ok();
    });
    RETURN_IF_ERROR(st);
    if (mean_t) RETURN_IF_ERROR(WriteDoubles(mean_t, means));
    if (inv_t) RETURN_IF_ERROR(WriteDoubles(inv_t, invs));
    return Status::Ok();
  }

 private:
  int64_t axis_ = -1;
  double epsilon_ = 1e-5;
  DType stash_ = DType::kFloat;
  bool constant_params_ = false;
  std::mutex mu_;
  std::shared_ptr<const FloatParams> cached_params_;  // set once; concurrent runs share it
};

const KernelRegistrar kLayerNorm{{.op_type = "LayerNormalization", .since = 17, .until = 18,
                                  .dtypes = DTypesOf(FloatTypes{}), .factory = MakeKernel<LayerNormKernel>}};

}  // namespace
}  // namespace strata::cpu
