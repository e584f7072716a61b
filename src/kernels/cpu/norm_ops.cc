// Normalisations: BatchNormalization (1..15+), InstanceNormalization, LayerNormalization (17),
// GroupNormalization (18), MeanVarianceNormalization (9+), LRN, LpNormalization.
#include <cmath>
#include <memory>
#include <mutex>
#include <vector>

#include "kernels/cpu/common.h"
#include "kernels/cpu/reduce_engine.h"
#include "kernels/cpu/ukernels/vec_math.h"

namespace strata::cpu {
namespace {

template <typename T>
inline T FromDouble(double v) {
  return T(static_cast<ComputeType<T>>(v));
}

// Reads a small parameter tensor of any float dtype.
std::vector<double> ReadParams(const Tensor& t) {
  std::vector<double> v(static_cast<size_t>(t.numel()));
  for (int64_t i = 0; i < t.numel(); ++i) v[static_cast<size_t>(i)] = t.GetAsDouble(i);
  return v;
}

Status CheckFloat(const Tensor& t, const char* what) {
  if (!IsFloatingPoint(t.dtype()))
    return InvalidArgument(std::string(what) + " must be a floating-point tensor, got " + std::string(DTypeName(t.dtype())));
  return Status::Ok();
}

// Writes doubles into a float tensor of any float dtype.
Status WriteDoubles(Tensor* t, const std::vector<double>& v) {
  return Dispatch(FloatTypes{}, t->dtype(), [&](auto* tag) {
    using T = std::remove_pointer_t<decltype(tag)>;
    T* d = t->data<T>();
    for (size_t i = 0; i < v.size(); ++i) d[i] = FromDouble<T>(v[i]);
    return Status::Ok();
  });
}

// Mean and population variance of a contiguous run (two passes, double accumulation with
// independent partial sums so the loops vectorise).
template <typename T>
inline void MeanVar(const T* x, int64_t n, double& mean, double& var) {
  auto plus = [](double a, double b) { return a + b; };
  const double s = ReduceRow<double>(x, n, 0.0, 0, [](double v, int64_t) { return v; }, plus);
  mean = n > 0 ? s / static_cast<double>(n) : 0.0;
  const double m = mean;
  const double q = ReduceRow<double>(x, n, 0.0, 0, [m](double v, int64_t) { return (v - m) * (v - m); }, plus);
  var = n > 0 ? q / static_cast<double>(n) : 0.0;
}

// y[i] = x[i] * a + b over a contiguous run, in the compute type.
template <typename T>
inline void AffineRun(const T* x, T* y, int64_t n, double a, double b) {
  using C = ComputeType<T>;
  const C ca = static_cast<C>(a), cb = static_cast<C>(b);
  for (int64_t i = 0; i < n; ++i) y[i] = T(static_cast<C>(x[i]) * ca + cb);
}

// ---------------------------------------------------------------------------------------------
// BatchNormalization

class BatchNormKernel final : public OpKernel {
 public:
  Status Init(const KernelInfo& info) {
    const int64_t opset = info.opset();
    epsilon_ = info.attr_float("epsilon", 1e-5f);
    momentum_ = info.attr_float("momentum", 0.9f);
    if (opset < 9) spatial_ = info.attr_int("spatial", 1) != 0;
    if (opset >= 14) {
      training_ = info.attr_int("training_mode", 0) != 0;
    } else if (opset < 7) {
      training_ = info.attr_int("is_test", 0) == 0 && info.num_outputs() > 1;
    } else {
      training_ = info.num_outputs() > 1;
    }
    if (!training_ && opset >= 14 && info.num_outputs() > 1) {
      for (int i = 1; i < info.num_outputs(); ++i)
        if (info.output_requested(i)) return info.Error("running mean/var outputs require training_mode=1");
    }
    return CheckInputDType(info, 0, DTypesOf(FloatTypes{}));
  }

  Status Compute(KernelContext& ctx) override {
    const Tensor& x = ctx.input_tensor(0);
    RETURN_IF_ERROR(CheckFloat(x, "X"));
    CHECK_ARG(x.rank() >= 1, "X must have rank >= 1");
    const int64_t N = x.dim(0);
    int64_t C = x.rank() >= 2 ? x.dim(1) : 1;
    int64_t S = 1;
    for (int i = 2; i < x.rank(); ++i) S *= x.dim(i);
    if (!spatial_) {  // per-activation statistics: params have shape (C x D1 x ... x Dn)
      C *= S;
      S = 1;
    }
    std::vector<double> p[4];
    for (int i = 0; i < 4; ++i) {
      CHECK_ARG(ctx.has_input(i + 1), "BatchNormalization needs 5 inputs");
      const Tensor& t = ctx.input_tensor(i + 1);
      RETURN_IF_ERROR(CheckFloat(t, "BatchNormalization parameter"));
      CHECK_ARG(t.numel() == C, "BatchNormalization parameter " + std::to_string(i + 1) + " has " +
                                    std::to_string(t.numel()) + " elements, expected " + std::to_string(C));
      p[i] = ReadParams(t);
    }
    const std::vector<double>&scale = p[0], &bias = p[1];
    std::vector<double> mean = p[2], var = p[3];
    ASSIGN_OR_RETURN(Tensor * y, ctx.AllocateOutput(0, x.dtype(), x.shape()));
    return Dispatch(FloatTypes{}, x.dtype(), [&](auto* tag) -> Status {
      using T = std::remove_pointer_t<decltype(tag)>;
      const T* xd = x.data<T>();
      T* yd = y->data<T>();
      if (training_) {
        std::vector<double> cm(static_cast<size_t>(C)), cv(static_cast<size_t>(C));
        const double cnt = static_cast<double>(N * S);
        for (int64_t c = 0; c < C; ++c) {
          double s = 0, q = 0;
          for (int64_t n = 0; n < N; ++n) {
            const T* r = xd + (n * C + c) * S;
            for (int64_t i = 0; i < S; ++i) s += static_cast<double>(static_cast<ComputeType<T>>(r[i]));
          }
          const double m = cnt > 0 ? s / cnt : 0.0;
          for (int64_t n = 0; n < N; ++n) {
            const T* r = xd + (n * C + c) * S;
            for (int64_t i = 0; i < S; ++i) {
              const double d = static_cast<double>(static_cast<ComputeType<T>>(r[i])) - m;
              q += d * d;
            }
          }
          cm[static_cast<size_t>(c)] = m;
          cv[static_cast<size_t>(c)] = cnt > 0 ? q / cnt : 0.0;
        }
        std::vector<double> rm(static_cast<size_t>(C)), rv(static_cast<size_t>(C));
        for (size_t c = 0; c < static_cast<size_t>(C); ++c) {
          rm[c] = mean[c] * momentum_ + cm[c] * (1.0 - momentum_);
          rv[c] = var[c] * momentum_ + cv[c] * (1.0 - momentum_);
        }
        const Shape pshape = ctx.input_tensor(3).shape();
        const std::vector<double>* outs[4] = {&rm, &rv, &cm, &cv};
        for (int o = 1; o < std::min(ctx.num_outputs(), 5); ++o) {
          ASSIGN_OR_RETURN(Tensor * t, ctx.AllocateOutput(o, ctx.input_tensor(o <= 2 ? o + 2 : 3).dtype(), pshape));
          RETURN_IF_ERROR(WriteDoubles(t, *outs[o - 1]));
        }
        mean = cm;
        var = cv;
      }
      ParallelRows(N * C, S, [&](int64_t b, int64_t e) {
        for (int64_t nc = b; nc < e; ++nc) {
          const size_t c = static_cast<size_t>(nc % C);
          const double a = scale[c] / std::sqrt(var[c] + epsilon_);
          AffineRun(xd + nc * S, yd + nc * S, S, a, bias[c] - mean[c] * a);
        }
      });
      return Status::Ok();
    });
  }

 private:
  double epsilon_ = 1e-5, momentum_ = 0.9;
  bool spatial_ = true;
  bool training_ = false;
};

// ---------------------------------------------------------------------------------------------
// InstanceNormalization and GroupNormalization: statistics per (n, group) over a contiguous run.

// groups == 0: instance norm (one group per channel, params per channel).
class GroupNormKernel final : public OpKernel {
 public:
  explicit GroupNormKernel(bool instance) : instance_(instance) {}
  Status Init(const KernelInfo& info) {
    epsilon_ = info.attr_float("epsilon", 1e-5f);
    if (!instance_) {
      if (!info.has_attr("num_groups")) return info.Error("GroupNormalization needs the num_groups attribute");
      groups_ = info.attr_int("num_groups", 1);
      if (groups_ <= 0) return info.Error("num_groups must be positive");
    }
    return CheckInputDType(info, 0, DTypesOf(FloatTypes{}));
  }

  Status Compute(KernelContext& ctx) override {
    const Tensor& x = ctx.input_tensor(0);
    RETURN_IF_ERROR(CheckFloat(x, "X"));
    CHECK_ARG(x.rank() >= 2, "input must have rank >= 2 (N x C x ...)");
    CHECK_ARG(ctx.has_input(1) && ctx.has_input(2), "scale and bias inputs are required");
    const int64_t N = x.dim(0), C = x.dim(1);
    int64_t S = 1;
    for (int i = 2; i < x.rank(); ++i) S *= x.dim(i);
    const int64_t G = instance_ ? C : groups_;
    CHECK_ARG(C % G == 0, "channels (" + std::to_string(C) + ") must be divisible by num_groups (" +
                              std::to_string(G) + ")");
    const int64_t cpg = C / G;
    const Tensor& ts = ctx.input_tensor(1);
    const Tensor& tb = ctx.input_tensor(2);
    RETURN_IF_ERROR(CheckFloat(ts, "scale"));
    RETURN_IF_ERROR(CheckFloat(tb, "bias"));
    // Params per channel (InstanceNorm, GroupNorm-21) or per group (GroupNorm-18).
    auto expand = [&](const Tensor& t, std::vector<double>& out) -> Status {
      std::vector<double> v = ReadParams(t);
      if (t.numel() == C) {
        out = std::move(v);
      } else if (!instance_ && t.numel() == G) {
        out.resize(static_cast<size_t>(C));
        for (int64_t c = 0; c < C; ++c) out[static_cast<size_t>(c)] = v[static_cast<size_t>(c / cpg)];
      } else {
        return InvalidArgument("scale/bias have " + std::to_string(t.numel()) + " elements, expected " +
                               std::to_string(C) + (instance_ ? "" : " or " + std::to_string(G)));
      }
      return Status::Ok();
    };
    std::vector<double> scale, bias;
    RETURN_IF_ERROR(expand(ts, scale));
    RETURN_IF_ERROR(expand(tb, bias));
    ASSIGN_OR_RETURN(Tensor * y, ctx.AllocateOutput(0, x.dtype(), x.shape()));
    const double eps = epsilon_;
    return Dispatch(FloatTypes{}, x.dtype(), [&](auto* tag) -> Status {
      using T = std::remove_pointer_t<decltype(tag)>;
      const T* xd = x.data<T>();
      T* yd = y->data<T>();
      const int64_t run = cpg * S;
      ParallelRows(
          N * G, run,
          [&](int64_t b, int64_t e) {
            for (int64_t ng = b; ng < e; ++ng) {
              double mean, var;
              MeanVar(xd + ng * run, run, mean, var);
              const double inv = 1.0 / std::sqrt(var + eps);
              const int64_t g = ng % G;
              for (int64_t k = 0; k < cpg; ++k) {
                const size_t c = static_cast<size_t>(g * cpg + k);
                const double a = scale[c] * inv;
                AffineRun(xd + ng * run + k * S, yd + ng * run + k * S, S, a, bias[c] - mean * a);
              }
            }
          },
          1 << 15);
      return Status::Ok();
    });
  }

 private:
  bool instance_;
  double epsilon_ = 1e-5;
  int64_t groups_ = 0;
};

Result<std::unique_ptr<OpKernel>> MakeInstanceNorm(const KernelInfo& info) {
  auto k = std::make_unique<GroupNormKernel>(true);
  RETURN_IF_ERROR(k->Init(info));
  return std::unique_ptr<OpKernel>(std::move(k));
}
Result<std::unique_ptr<OpKernel>> MakeGroupNorm(const KernelInfo& info) {
  auto k = std::make_unique<GroupNormKernel>(false);
  RETURN_IF_ERROR(k->Init(info));
  return std::unique_ptr<OpKernel>(std::move(k));
}

// ---------------------------------------------------------------------------------------------
// LayerNormalization (opset 17)

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

const std::vector<DType> kFloatDTypes = DTypesOf(FloatTypes{});
const KernelRegistrar kBatchNorm{{.op_type = "BatchNormalization", .since = 1, .until = 18, .dtypes = kFloatDTypes,
                                  .factory = MakeKernel<BatchNormKernel>}};
const KernelRegistrar kInstanceNorm{{.op_type = "InstanceNormalization", .since = 1, .until = 18,
                                     .dtypes = kFloatDTypes, .factory = MakeInstanceNorm}};
const KernelRegistrar kGroupNorm{{.op_type = "GroupNormalization", .since = 18, .until = 18, .dtypes = kFloatDTypes,
                                  .factory = MakeGroupNorm}};
const KernelRegistrar kLayerNorm{{.op_type = "LayerNormalization", .since = 17, .until = 18, .dtypes = kFloatDTypes,
                                  .factory = MakeKernel<LayerNormKernel>}};
const KernelRegistrar kMvn{{.op_type = "MeanVarianceNormalization", .since = 9, .until = 18, .dtypes = kFloatDTypes,
                            .factory = MakeKernel<MvnKernel>}};
const KernelRegistrar kLrn{{.op_type = "LRN", .since = 1, .until = 18, .dtypes = kFloatDTypes,
                            .factory = MakeKernel<LrnKernel>}};
const KernelRegistrar kLpNorm{{.op_type = "LpNormalization", .since = 1, .until = 18, .dtypes = kFloatDTypes,
                               .factory = MakeKernel<LpNormKernel>}};

}  // namespace
}  // namespace strata::cpu
