// NegativeLogLikelihoodLoss and SoftmaxCrossEntropyLoss (opsets 12..18).
//
// Input/scores are [N, C, d1..dk], target/labels [N, d1..dk] (int32/int64), optional weight [C].
// reduction: none (loss per sample), sum, mean (sum / total weight of non-ignored samples).
#include <cmath>
#include <limits>
#include <optional>
#include <vector>

#include "kernels/cpu/common.h"

namespace strata::cpu {
namespace {

enum class Reduction { kNone, kSum, kMean };

class LossKernel final : public OpKernel {
 public:
  explicit LossKernel(bool softmax) : softmax_(softmax) {}

  Status Init(const KernelInfo& info) {
    const std::string r = info.attr_string("reduction", "mean");
    if (r == "none") reduction_ = Reduction::kNone;
    else if (r == "sum") reduction_ = Reduction::kSum;
    else if (r == "mean") reduction_ = Reduction::kMean;
    else return info.Error("unknown reduction '" + r + "' (expected none, sum or mean)");
    if (info.has_attr("ignore_index")) ignore_index_ = info.attr_int("ignore_index", 0);
    RETURN_IF_ERROR(CheckInputDType(info, 1, {DType::kInt32, DType::kInt64}));
    return CheckInputDType(info, 0, DTypesOf(FloatTypes{}));
  }

  Status Compute(KernelContext& ctx) override {
    const Tensor& x = ctx.input_tensor(0);
    const Tensor& target = ctx.input_tensor(1);
    CHECK_ARG(x.rank() >= 2, "input must have shape (N, C, d1, ..., dk)");
    CHECK_ARG(target.dtype() == DType::kInt32 || target.dtype() == DType::kInt64,
              "target must be int32 or int64, got " + std::string(DTypeName(target.dtype())));
    const int64_t N = x.dim(0), C = x.dim(1);
    Shape want_t{N};
    for (int i = 2; i < x.rank(); ++i) want_t.push_back(x.dim(i));
    CHECK_ARG(target.shape() == want_t, "target shape " + ShapeToString(target.shape()) + " does not match input " +
                                            ShapeToString(x.shape()) + " (expected " + ShapeToString(want_t) + ")");
    const int64_t D = NumElements(want_t) / std::max<int64_t>(N, 1);
    const Tensor* w = ctx.has_input(2) ? &ctx.input_tensor(2) : nullptr;
    if (w) {
      CHECK_ARG(w->rank() == 1 && w->dim(0) == C, "weight must have shape (C)");
      CHECK_ARG(w->dtype() == x.dtype(), "weight dtype must match input dtype");
    }
    return Dispatch(FloatTypes{}, x.dtype(), [&](auto* tag) -> Status {
      using T = std::remove_pointer_t<decltype(tag)>;
      return Run<T>(ctx, x, target, w, N, C, D, want_t);
    });
  }

 private:
  template <typename T>
  Status Run(KernelContext& ctx, const Tensor& x, const Tensor& target, const Tensor* w, int64_t N, int64_t C,
             int64_t D, const Shape& tshape) {
    using Cm = ComputeType<T>;
    const T* xd = x.data<T>();
    // Log-probabilities: the input itself (NLL) or log-softmax over C (SCE).
    std::vector<Cm> logp;
    if (softmax_) {
      logp.resize(static_cast<size_t>(x.numel()));
      std::vector<Cm> m(static_cast<size_t>(D)), s(static_cast<size_t>(D));
      for (int64_t n = 0; n < N; ++n) {
        const T* xb = xd + n * C * D;
        Cm* lb = logp.data() + n * C * D;
        std::fill(m.begin(), m.end(), -std::numeric_limits<Cm>::infinity());
        std::fill(s.begin(), s.end(), Cm(0));
        for (int64_t c = 0; c < C; ++c)
          for (int64_t d = 0; d < D; ++d) {
            const Cm v = static_cast<Cm>(xb[c * D + d]);
            m[static_cast<size_t>(d)] = v > m[static_cast<size_t>(d)] ? v : m[static_cast<size_t>(d)];
          }
        for (int64_t c = 0; c < C; ++c)
          for (int64_t d = 0; d < D; ++d) {
            const Cm v = static_cast<Cm>(xb[c * D + d]) - m[static_cast<size_t>(d)];
            lb[c * D + d] = v;
            s[static_cast<size_t>(d)] += std::exp(v);
          }
        for (int64_t d = 0; d < D; ++d) s[static_cast<size_t>(d)] = std::log(s[static_cast<size_t>(d)]);
        for (int64_t c = 0; c < C; ++c)
          for (int64_t d = 0; d < D; ++d) lb[c * D + d] -= s[static_cast<size_t>(d)];
      }
      if (ctx.num_outputs() > 1) {
        ASSIGN_OR_RETURN(Tensor * lp, ctx.AllocateOutput(1, x.dtype(), x.shape()));
        T* o = lp->data<T>();
        for (size_t i = 0; i < logp.size(); ++i) o[i] = T(logp[i]);
      }
    }
    auto logp_at = [&](int64_t i) -> double {
      return softmax_ ? static_cast<double>(logp[static_cast<size_t>(i)]) : static_cast<double>(static_cast<Cm>(xd[i]));
    };
    const T* wd = w ? w->data<T>() : nullptr;
    const int64_t ns = N * D;
    std::vector<double> loss(static_cast<size_t>(reduction_ == Reduction::kNone ? ns : 0));
    double total = 0, wsum = 0;
    for (int64_t i = 0; i < ns; ++i) {
      const int64_t t = target.GetAsInt64(i);
      double li = 0, wi = 0;
      if (!(ignore_index_ && t == *ignore_index_)) {
        if (t < 0 || t >= C)
          return InvalidArgument("target value " + std::to_string(t) + " is out of range [0, " + std::to_string(C) + ")");
        wi = wd ? static_cast<double>(static_cast<Cm>(wd[t])) : 1.0;
        const int64_t n = i / D, d = i % D;
        li = -logp_at((n * C + t) * D + d) * wi;
      }
      if (reduction_ == Reduction::kNone) loss[static_cast<size_t>(i)] = li;
      total += li;
      wsum += wi;
    }
    if (reduction_ == Reduction::kNone) {
      ASSIGN_OR_RETURN(Tensor * out, ctx.AllocateOutput(0, x.dtype(), tshape));
      T* o = out->data<T>();
      for (int64_t i = 0; i < ns; ++i) o[i] = T(static_cast<Cm>(loss[static_cast<size_t>(i)]));
    } else {
      ASSIGN_OR_RETURN(Tensor * out, ctx.AllocateOutput(0, x.dtype(), {}));
      const double v = reduction_ == Reduction::kSum ? total : total / wsum;
      *out->data<T>() = T(static_cast<Cm>(v));
    }
    return Status::Ok();
  }

  bool softmax_;
  Reduction reduction_ = Reduction::kMean;
  std::optional<int64_t> ignore_index_;
};

Result<std::unique_ptr<OpKernel>> MakeNll(const KernelInfo& info) {
  auto k = std::make_unique<LossKernel>(false);
  RETURN_IF_ERROR(k->Init(info));
  return std::unique_ptr<OpKernel>(std::move(k));
}
Result<std::unique_ptr<OpKernel>> MakeSce(const KernelInfo& info) {
  auto k = std::make_unique<LossKernel>(true);
  RETURN_IF_ERROR(k->Init(info));
  return std::unique_ptr<OpKernel>(std::move(k));
}

const KernelRegistrar kNll{{.op_type = "NegativeLogLikelihoodLoss", .since = 12, .until = 18,
                            .dtypes = DTypesOf(FloatTypes{}), .factory = MakeNll}};
const KernelRegistrar kSce{{.op_type = "SoftmaxCrossEntropyLoss", .since = 12, .until = 18,
                            .dtypes = DTypesOf(FloatTypes{}), .factory = MakeSce}};

}  // namespace
}  // namespace strata::cpu
