// BatchNormalization (1..15+), InstanceNormalization and GroupNormalization (18): per-channel
// scale and shift from batch, instance or group statistics.
#include <algorithm>
#include <cmath>
#include <memory>
#include <string>
#include <vector>

#include "kernels/cpu/norm_common.h"

namespace strata::cpu {
namespace {

using norm::AffineRun;
using norm::CheckFloat;
using norm::MeanVar;
using norm::ReadParams;
using norm::WriteDoubles;

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

const KernelRegistrar kBatchNorm{{.op_type = "BatchNormalization", .since = 1, .until = 18,
                                  .dtypes = DTypesOf(FloatTypes{}), .factory = MakeKernel<BatchNormKernel>}};
const KernelRegistrar kInstanceNorm{{.op_type = "InstanceNormalization", .since = 1, .until = 18,
                                     .dtypes = DTypesOf(FloatTypes{}), .factory = MakeInstanceNorm}};
const KernelRegistrar kGroupNorm{{.op_type = "GroupNormalization", .since = 18, .until = 18,
                                  .dtypes = DTypesOf(FloatTypes{}), .factory = MakeGroupNorm}};

}  // namespace
}  // namespace strata::cpu
