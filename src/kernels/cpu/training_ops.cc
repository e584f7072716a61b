// Optimizers of the ai.onnx.preview.training domain (opset 1): Adagrad, Adam, Momentum.
// Gradient lives in autodiff_gradient.cc.
#include <cmath>
#include <string>
#include <vector>

#include "kernels/cpu/common.h"

namespace strata::cpu {
namespace {

constexpr const char* kTraining = "ai.onnx.preview.training";

enum class Optim { kAdagrad, kAdam, kMomentum };

class OptimizerKernel final : public OpKernel {
 public:
  explicit OptimizerKernel(Optim o) : o_(o) {}

  Status Init(const KernelInfo& info) {
    // Number of per-tensor input groups: Adagrad X,G,H; Adam X,G,V,H; Momentum X,G,V.
    groups_ = o_ == Optim::kAdam ? 4 : 3;
    const int rest = info.num_inputs() - 2;
    if (rest <= 0 || rest % groups_ != 0)
      return info.Error("expects R, T and " + std::to_string(groups_) + " equally long lists of tensors");
    n_ = rest / groups_;
    norm_ = info.attr_float("norm_coefficient", 0.0f);
    epsilon_ = info.attr_float("epsilon", 1e-6f);
    if (o_ == Optim::kAdagrad) {
      decay_ = info.attr_float("decay_factor", 0.0f);
    } else if (o_ == Optim::kAdam) {
      alpha_ = info.attr_float("alpha", 0.9f);
      beta_ = info.attr_float("beta", 0.999f);
      norm_post_ = info.attr_float("norm_coefficient_post", 0.0f);
    } else {
      for (const char* a : {"alpha", "beta", "norm_coefficient", "mode"})
        if (!info.has_attr(a)) return info.Error(std::string("missing required attribute '") + a + "'");
      alpha_ = info.attr_float("alpha", 0);
      beta_ = info.attr_float("beta", 0);
      const std::string mode = info.attr_string("mode", "standard");
      if (mode == "nesterov") nesterov_ = true;
      else if (mode != "standard") return info.Error("mode must be 'standard' or 'nesterov', got '" + mode + "'");
    }
    return Status::Ok();
  }

  Status Compute(KernelContext& ctx) override {
    for (int i = 0; i < ctx.num_inputs(); ++i)
      if (!ctx.has_input(i) || !ctx.input(i).is_tensor()) return InvalidArgument("input " + std::to_string(i) + " must be a tensor");
    const Tensor& Rt = ctx.input_tensor(0);
    const Tensor& Tt = ctx.input_tensor(1);
    if (Rt.numel() != 1 || !IsFloatingPoint(Rt.dtype())) return InvalidArgument("R must be a floating-point scalar");
    if (Tt.numel() != 1 || Tt.dtype() != DType::kInt64) return InvalidArgument("T must be an int64 scalar");
    const double R = Rt.GetAsDouble(0);
    const int64_t T = Tt.GetAsInt64(0);
    for (int k = 0; k < n_; ++k) {
      const Tensor& X = ctx.input_tensor(2 + k);
      for (int g = 1; g < groups_; ++g) {
        const Tensor& o = ctx.input_tensor(2 + g * n_ + k);
        if (o.shape() != X.shape() || o.dtype() != X.dtype())
          return InvalidArgument("tensor group " + std::to_string(k) + ": shapes/dtypes differ (" +
                                 ShapeToString(X.shape()) + " vs " + ShapeToString(o.shape()) + ")");
      }
      RETURN_IF_ERROR(Dispatch(TypeList<float, double>{}, X.dtype(), [&](auto* tag) {
        using E = std::remove_pointer_t<decltype(tag)>;
        return Step<E>(ctx, k, R, T);
      }));
    }
    return Status::Ok();
  }

 private:
  template <typename E>
  Status Step(KernelContext& ctx, int k, double R, int64_t T) {
    const Tensor& X = ctx.input_tensor(2 + k);
    const Tensor& G = ctx.input_tensor(2 + n_ + k);
    const int64_t n = X.numel();
    const E* x = X.data<E>();
    const E* g = G.data<E>();
    ASSIGN_OR_RETURN(Tensor* xo, ctx.AllocateOutput(k, X.dtype(), X.shape()));
    E* xn = xo->data<E>();
    const E norm = static_cast<E>(norm_);
    if (o_ == Optim::kAdagrad) {
      const E* h = ctx.input_tensor(2 + 2 * n_ + k).data<E>();
      ASSIGN_OR_RETURN(Tensor* ho, ctx.AllocateOutput(n_ + k, X.dtype(), X.shape()));
      E* hn = ho->data<E>();
      const E r = static_cast<E>(R / (1.0 + static_cast<double>(T) * decay_));
      const E eps = static_cast<E>(epsilon_);
      for (int64_t i = 0; i < n; ++i) {
        const E gr = norm * x[i] + g[i];
        const E hv = h[i] + gr * gr;
        hn[i] = hv;
        xn[i] = x[i] - r * gr / (std::sqrt(hv) + eps);
      }
    } else if (o_ == Optim::kAdam) {
      const E* v = ctx.input_tensor(2 + 2 * n_ + k).data<E>();
      const E* h = ctx.input_tensor(2 + 3 * n_ + k).data<E>();
      ASSIGN_OR_RETURN(Tensor* vo, ctx.AllocateOutput(n_ + k, X.dtype(), X.shape()));
      ASSIGN_OR_RETURN(Tensor* ho, ctx.AllocateOutput(2 * n_ + k, X.dtype(), X.shape()));
      E* vn = vo->data<E>();
      E* hn = ho->data<E>();
      const double a = alpha_, b = beta_;
      const E r_adj = static_cast<E>(T > 0 ? R * std::sqrt(1.0 - std::pow(b, static_cast<double>(T))) /
                                                 (1.0 - std::pow(a, static_cast<double>(T)))
                                           : R);
      const E ea = static_cast<E>(a), eb = static_cast<E>(b), eps = static_cast<E>(epsilon_);
      const E post = static_cast<E>(1.0 - norm_post_);
      for (int64_t i = 0; i < n; ++i) {
        const E gr = norm * x[i] + g[i];
        const E vv = ea * v[i] + (E(1) - ea) * gr;
        const E hv = eb * h[i] + (E(1) - eb) * gr * gr;
        vn[i] = vv;
        hn[i] = hv;
        xn[i] = post * (x[i] - r_adj * vv / (std::sqrt(hv) + eps));
      }
    } else {
      const E* v = ctx.input_tensor(2 + 2 * n_ + k).data<E>();
      ASSIGN_OR_RETURN(Tensor* vo, ctx.AllocateOutput(n_ + k, X.dtype(), X.shape()));
      E* vn = vo->data<E>();
      const E ea = static_cast<E>(alpha_);
      const E eb = static_cast<E>(T > 0 ? beta_ : 1.0f);
      const E r = static_cast<E>(R);
      for (int64_t i = 0; i < n; ++i) {
        const E gr = norm * x[i] + g[i];
        const E vv = ea * v[i] + eb * gr;
        vn[i] = vv;
        xn[i] = nesterov_ ? x[i] - r * (gr + ea * vv) : x[i] - r * vv;
      }
    }
    return Status::Ok();
  }

  Optim o_;
  int groups_ = 3, n_ = 0;
  float norm_ = 0, epsilon_ = 1e-6f, decay_ = 0, alpha_ = 0, beta_ = 0, norm_post_ = 0;
  bool nesterov_ = false;
};


template <Optim O>
Result<std::unique_ptr<OpKernel>> MakeOptim(const KernelInfo& info) {
  auto k = std::make_unique<OptimizerKernel>(O);
  RETURN_IF_ERROR(k->Init(info));
  return std::unique_ptr<OpKernel>(std::move(k));
}

const KernelRegistrar kAdagrad{{.op_type = "Adagrad", .domain = kTraining, .since = 1, .until = 18,
                                .factory = MakeOptim<Optim::kAdagrad>}};
const KernelRegistrar kAdam{{.op_type = "Adam", .domain = kTraining, .since = 1, .until = 18,
                             .factory = MakeOptim<Optim::kAdam>}};
const KernelRegistrar kMomentum{{.op_type = "Momentum", .domain = kTraining, .since = 1, .until = 18,
                                 .factory = MakeOptim<Optim::kMomentum>}};

}  // namespace
}  // namespace strata::cpu
