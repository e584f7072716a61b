// Random generators: RandomUniform, RandomNormal, RandomUniformLike, RandomNormalLike, Bernoulli,
// Multinomial. With a `seed` attribute the sequence is reproducible per kernel instance; without one
// each kernel is seeded from std::random_device. (No attempt is made to reproduce numpy's streams.)
#include <algorithm>
#include <cmath>
#include <cstring>
#include <mutex>
#include <random>
#include <string>
#include <vector>

#include "kernels/cpu/common.h"

namespace strata::cpu {
namespace {

using RealTypes = TypeList<float, double, Float16, BFloat16>;

std::mt19937_64 MakeEngine(const KernelInfo& info) {
  if (info.has_attr("seed")) {
    const float s = info.attr_float("seed", 0.0f);
    uint32_t bits;
    std::memcpy(&bits, &s, 4);
    return std::mt19937_64(static_cast<uint64_t>(bits) * 0x9E3779B97F4A7C15ull + 0x1234567ull);
  }
  std::random_device rd;
  return std::mt19937_64((static_cast<uint64_t>(rd()) << 32) ^ rd());
}

bool IsRealDType(DType d) {
  return d == DType::kFloat || d == DType::kDouble || d == DType::kFloat16 || d == DType::kBFloat16;
}

// RandomUniform / RandomNormal and their *Like variants.
class RandomKernel final : public OpKernel {
 public:
  RandomKernel(bool normal, bool like) : normal_(normal), like_(like) {}

  Status Init(const KernelInfo& info) {
    engine_ = MakeEngine(info);
    if (normal_) {
      a_ = info.attr_float("mean", 0.0f);
      b_ = info.attr_float("scale", 1.0f);
      if (!(b_ >= 0)) return info.Error("scale must be non-negative");
    } else {
      a_ = info.attr_float("low", 0.0f);
      b_ = info.attr_float("high", 1.0f);
      if (!(b_ >= a_)) return info.Error("high must be >= low");
    }
    if (info.has_attr("dtype")) {
      dtype_ = static_cast<DType>(info.attr_int("dtype", 1));
      if (!IsRealDType(dtype_)) return info.Error("dtype must be a floating-point type");
    } else if (!like_) {
      dtype_ = DType::kFloat;
    }
    if (!like_) {
      if (!info.has_attr("shape")) return info.Error("missing required attribute 'shape'");
      shape_ = info.attr_ints("shape");
      for (int64_t d : shape_)
        if (d < 0) return info.Error("shape dimensions must be non-negative");
    }
    return Status::Ok();
  }

  Status Compute(KernelContext& ctx) override {
    std::lock_guard<std::mutex> lock(mu_);
    Shape shape = shape_;
    DType dt = dtype_;
    if (like_) {
      if (!ctx.has_input(0) || !ctx.input(0).is_tensor()) return InvalidArgument("input must be a tensor");
      shape = ctx.input_tensor(0).shape();
      if (dt == DType::kUndefined) {
        dt = ctx.input_tensor(0).dtype();
        if (!IsRealDType(dt))
          return InvalidArgument("the input dtype " + std::string(DTypeName(dt)) +
                                 " is not floating-point; set the dtype attribute");
      }
    }
    ASSIGN_OR_RETURN(Tensor* out, ctx.AllocateOutput(0, dt, shape));
    return Dispatch(RealTypes{}, dt, [&](auto* tag) {
      using T = std::remove_pointer_t<decltype(tag)>;
      T* o = out->data<T>();
      const int64_t n = out->numel();
      if (normal_) {
        std::normal_distribution<double> dist(a_, b_);
        for (int64_t i = 0; i < n; ++i) o[i] = static_cast<T>(static_cast<ComputeType<T>>(dist(engine_)));
      } else {
        std::uniform_real_distribution<double> dist(a_, b_);
        for (int64_t i = 0; i < n; ++i) {
          // Rounding to a narrow type may reach `high`; clamp to stay in [low, high).
          T v = static_cast<T>(static_cast<ComputeType<T>>(dist(engine_)));
          if (static_cast<double>(static_cast<ComputeType<T>>(v)) >= b_ && b_ > a_) v = static_cast<T>(static_cast<ComputeType<T>>(a_));
          o[i] = v;
        }
      }
      return Status::Ok();
    });
  }

 private:
  bool normal_, like_;
  std::mutex mu_;  // concurrent runs of one session share the engine
  std::mt19937_64 engine_;
  double a_ = 0, b_ = 1;
  DType dtype_ = DType::kUndefined;
  Shape shape_;
};

template <bool Normal, bool Like>
Result<std::unique_ptr<OpKernel>> MakeRandom(const KernelInfo& info) {
  auto k = std::make_unique<RandomKernel>(Normal, Like);
  RETURN_IF_ERROR(k->Init(info));
  return std::unique_ptr<OpKernel>(std::move(k));
}

class BernoulliKernel final : public OpKernel {
 public:
  Status Init(const KernelInfo& info) {
    engine_ = MakeEngine(info);
    if (info.has_attr("dtype")) {
      dtype_ = static_cast<DType>(info.attr_int("dtype", 1));
      if (dtype_ == DType::kString || dtype_ == DType::kComplex64 || dtype_ == DType::kComplex128 ||
          DTypeSize(dtype_) == 0)
        return info.Error("unsupported dtype attribute");
    }
    return Status::Ok();
  }
  Status Compute(KernelContext& ctx) override {
    std::lock_guard<std::mutex> lock(mu_);
    if (!ctx.has_input(0) || !ctx.input(0).is_tensor()) return InvalidArgument("input must be a tensor");
    const Tensor& x = ctx.input_tensor(0);
    if (!IsRealDType(x.dtype())) return InvalidArgument("Bernoulli input must be floating-point");
    const DType dt = dtype_ == DType::kUndefined ? x.dtype() : dtype_;
    const int64_t n = x.numel();
    std::vector<uint8_t> bits(static_cast<size_t>(n));
    std::uniform_real_distribution<double> u(0.0, 1.0);
    for (int64_t i = 0; i < n; ++i) {
      const double p = x.GetAsDouble(i);
      if (!(p >= 0.0 && p <= 1.0)) return InvalidArgument("Bernoulli probabilities must lie in [0, 1]");
      bits[static_cast<size_t>(i)] = u(engine_) < p ? 1 : 0;
    }
    ASSIGN_OR_RETURN(Tensor* out, ctx.AllocateOutput(0, dt, x.shape()));
    using OutTypes = TypeList<float, double, Float16, BFloat16, int8_t, int16_t, int32_t, int64_t, uint8_t, uint16_t,
                              uint32_t, uint64_t, bool>;
    return Dispatch(OutTypes{}, dt, [&](auto* tag) {
      using T = std::remove_pointer_t<decltype(tag)>;
      T* o = out->data<T>();
      for (int64_t i = 0; i < n; ++i) o[i] = CastValue<T, float>(static_cast<float>(bits[static_cast<size_t>(i)]));
      return Status::Ok();
    });
  }

 private:
  std::mutex mu_;  // concurrent runs of one session share the engine
  std::mt19937_64 engine_;
  DType dtype_ = DType::kUndefined;
};

class MultinomialKernel final : public OpKernel {
 public:
  Status Init(const KernelInfo& info) {
    engine_ = MakeEngine(info);
    dtype_ = static_cast<DType>(info.attr_int("dtype", static_cast<int64_t>(DType::kInt32)));
    if (dtype_ != DType::kInt32 && dtype_ != DType::kInt64) return info.Error("dtype must be int32 or int64");
    samples_ = info.attr_int("sample_size", 1);
    if (samples_ < 0) return info.Error("sample_size must be non-negative");
    return Status::Ok();
  }
  Status Compute(KernelContext& ctx) override {
    std::lock_guard<std::mutex> lock(mu_);
    if (!ctx.has_input(0) || !ctx.input(0).is_tensor()) return InvalidArgument("input must be a tensor");
    const Tensor& x = ctx.input_tensor(0);
    if (!IsRealDType(x.dtype())) return InvalidArgument("Multinomial input must be floating-point");
    if (x.rank() != 2) return InvalidArgument("Multinomial input must be [batch_size, class_size]");
    const int64_t B = x.dim(0), C = x.dim(1);
    if (C == 0 && samples_ > 0) return InvalidArgument("Multinomial: class_size is 0");
    ASSIGN_OR_RETURN(Tensor* out, ctx.AllocateOutput(0, dtype_, {B, samples_}));
    std::vector<double> cdf(static_cast<size_t>(C));
    std::uniform_real_distribution<double> u(0.0, 1.0);
    for (int64_t b = 0; b < B; ++b) {
      double mx = -INFINITY;
      for (int64_t c = 0; c < C; ++c) mx = std::max(mx, x.GetAsDouble(b * C + c));
      double acc = 0;
      for (int64_t c = 0; c < C; ++c) {
        acc += std::exp(x.GetAsDouble(b * C + c) - mx);
        cdf[static_cast<size_t>(c)] = acc;
      }
      for (int64_t s = 0; s < samples_; ++s) {
        const double r = u(engine_) * acc;
        auto it = std::upper_bound(cdf.begin(), cdf.end(), r);
        int64_t idx = std::min<int64_t>(static_cast<int64_t>(it - cdf.begin()), C - 1);
        if (dtype_ == DType::kInt32) out->data<int32_t>()[b * samples_ + s] = static_cast<int32_t>(idx);
        else out->data<int64_t>()[b * samples_ + s] = idx;
      }
    }
    return Status::Ok();
  }

 private:
  std::mutex mu_;  // concurrent runs of one session share the engine
  std::mt19937_64 engine_;
  DType dtype_ = DType::kInt32;
  int64_t samples_ = 1;
};

const KernelRegistrar kRU{{.op_type = "RandomUniform", .since = 1, .until = 18, .factory = MakeRandom<false, false>}};
const KernelRegistrar kRN{{.op_type = "RandomNormal", .since = 1, .until = 18, .factory = MakeRandom<true, false>}};
const KernelRegistrar kRUL{{.op_type = "RandomUniformLike", .since = 1, .until = 18, .factory = MakeRandom<false, true>}};
const KernelRegistrar kRNL{{.op_type = "RandomNormalLike", .since = 1, .until = 18, .factory = MakeRandom<true, true>}};
const KernelRegistrar kBern{{.op_type = "Bernoulli", .since = 15, .until = 18, .factory = MakeKernel<BernoulliKernel>}};
const KernelRegistrar kMulti{{.op_type = "Multinomial", .since = 7, .until = 18, .factory = MakeKernel<MultinomialKernel>}};

}  // namespace
}  // namespace strata::cpu
