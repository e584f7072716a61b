// Unary elementwise math and activation functions (ai.onnx opsets 1..18), plus Clip.
#include <cmath>
#include <concepts>
#include <limits>

#include "kernels/cpu/elementwise_common.h"
#include "kernels/cpu/ukernels/vec_math.h"

namespace strata::cpu {
namespace {

using namespace ew;

// ---- op functors: operator()(C) on the compute type C (float for 16-bit floats) ----
// Ops with a vec_math kernel define VecKernel(); float32 inputs then take that path.
using VecMapFn = void (*)(const float*, float*, int64_t);
template <typename Op>
concept HasVecKernel = requires(const Op& op, const vec::Kernels& k) {
  { op.VecKernel(k) } -> std::same_as<VecMapFn>;
};
// The vector kernels cost ~1 ns per element or less: below this many elements one thread is
// cheaper than waking the others.
inline constexpr int64_t kVecParallelThreshold = 1 << 16;

struct OpBase {
  static constexpr bool kBoolOut = false;
  static constexpr int64_t kThreshold = kParallelThreshold;
  Status Init(const KernelInfo&) { return Status::Ok(); }
};
struct HeavyOpBase : OpBase {
  static constexpr int64_t kThreshold = 1 << 12;
};

template <typename C>
inline C WrapNeg(C x) {
  if constexpr (std::is_integral_v<C> && std::is_signed_v<C>) {
    using U = std::make_unsigned_t<C>;
    return static_cast<C>(U(0) - static_cast<U>(x));
  } else if constexpr (std::is_unsigned_v<C>) {
    return static_cast<C>(C(0) - x);
  } else {
    return -x;
  }
}

struct AbsOp : OpBase {
  template <typename C> C operator()(C x) const {
    if constexpr (std::is_unsigned_v<C>) return x;
    else if constexpr (std::is_integral_v<C>) return x < 0 ? WrapNeg(x) : x;
    else return std::fabs(x);
  }
};
struct NegOp : OpBase {
  template <typename C> C operator()(C x) const { return WrapNeg(x); }
};
struct ReciprocalOp : OpBase {
  template <typename C> C operator()(C x) const { return C(1) / x; }
};
struct FloorOp : OpBase {
  template <typename C> C operator()(C x) const { return std::floor(x); }
};
struct CeilOp : OpBase {
  template <typename C> C operator()(C x) const { return std::ceil(x); }
};
struct RoundOp : OpBase {  // half to even
  template <typename C> C operator()(C x) const { return std::nearbyint(x); }
};
struct SqrtOp : OpBase {
  template <typename C> C operator()(C x) const { return std::sqrt(x); }
};
struct ExpOp : HeavyOpBase {
  template <typename C> C operator()(C x) const { return std::exp(x); }
  VecMapFn VecKernel(const vec::Kernels& k) const { return k.exp; }
};
struct LogOp : HeavyOpBase {
  template <typename C> C operator()(C x) const { return std::log(x); }
};
struct SignOp : OpBase {
  template <typename C> C operator()(C x) const {
    if constexpr (std::is_unsigned_v<C>) return x > 0 ? C(1) : C(0);
    else if constexpr (std::is_integral_v<C>) return x > 0 ? C(1) : (x < 0 ? C(-1) : C(0));
    else return x > 0 ? C(1) : (x < 0 ? C(-1) : (x == 0 ? C(0) : x));  // NaN stays NaN
  }
};
struct ErfOp : HeavyOpBase {
  template <typename C> C operator()(C x) const {
    if constexpr (std::is_floating_point_v<C>) return std::erf(x);
    else return CastValue<C, double>(std::erf(static_cast<double>(x)));
  }
  VecMapFn VecKernel(const vec::Kernels& k) const { return k.erf; }
};
#define STRATA_MATH_OP(Name, fn) \
  struct Name : HeavyOpBase {    \
    template <typename C> C operator()(C x) const { return std::fn(x); } \
  };
STRATA_MATH_OP(SinOp, sin)
STRATA_MATH_OP(CosOp, cos)
STRATA_MATH_OP(TanOp, tan)
STRATA_MATH_OP(AsinOp, asin)
STRATA_MATH_OP(AcosOp, acos)
STRATA_MATH_OP(AtanOp, atan)
STRATA_MATH_OP(SinhOp, sinh)
STRATA_MATH_OP(CoshOp, cosh)
STRATA_MATH_OP(AsinhOp, asinh)
STRATA_MATH_OP(AcoshOp, acosh)
STRATA_MATH_OP(AtanhOp, atanh)
#undef STRATA_MATH_OP
struct TanhOp : HeavyOpBase {
  template <typename C> C operator()(C x) const { return std::tanh(x); }
  VecMapFn VecKernel(const vec::Kernels& k) const { return k.tanh; }
};

// Gelu (ONNX opset 20; graph passes insert it into older models): exact erf form or tanh approximation.
struct GeluOp : HeavyOpBase {
  bool tanh_approx = false;
  Status Init(const KernelInfo& info) {
    const std::string a = info.attr_string("approximate", "none");
    if (a != "none" && a != "tanh") return info.Error("approximate must be 'none' or 'tanh', got '" + a + "'");
    tanh_approx = a == "tanh";
    return Status::Ok();
  }
  template <typename C> C operator()(C x) const {
    if (tanh_approx) {
      constexpr C kSqrt2OverPi = C(0.7978845608028654);
      return C(0.5) * x * (C(1) + std::tanh(kSqrt2OverPi * (x + C(0.044715) * x * x * x)));
    }
    return C(0.5) * x * (C(1) + std::erf(x * C(0.7071067811865476)));
  }
  VecMapFn VecKernel(const vec::Kernels& k) const { return tanh_approx ? k.gelu_tanh : k.gelu_erf; }
};

struct IsNaNOp : OpBase {
  static constexpr bool kBoolOut = true;
  template <typename C> bool operator()(C x) const { return x != x; }
};
struct IsInfOp : OpBase {
  static constexpr bool kBoolOut = true;
  bool neg = true, pos = true;
  Status Init(const KernelInfo& info) {
    neg = info.attr_int("detect_negative", 1) != 0;
    pos = info.attr_int("detect_positive", 1) != 0;
    return Status::Ok();
  }
  template <typename C> bool operator()(C x) const {
    return std::isinf(x) && (x > 0 ? pos : neg);
  }
};
struct NotOp : OpBase {
  template <typename C> C operator()(C x) const { return !x; }
};
struct BitwiseNotOp : OpBase {
  template <typename C> C operator()(C x) const { return static_cast<C>(~x); }
};

// ---- activations ----
struct ReluOp : OpBase {
  template <typename C> C operator()(C x) const { return x < C(0) ? C(0) : x; }
};
struct LeakyReluOp : OpBase {
  float alpha = 0.01f;
  Status Init(const KernelInfo& info) { alpha = info.attr_float("alpha", 0.01f); return Status::Ok(); }
  template <typename C> C operator()(C x) const { return x < C(0) ? C(alpha) * x : x; }
};
struct EluOp : HeavyOpBase {
  float alpha = 1.0f;
  Status Init(const KernelInfo& info) { alpha = info.attr_float("alpha", 1.0f); return Status::Ok(); }
  template <typename C> C operator()(C x) const { return x < C(0) ? C(alpha) * std::expm1(x) : x; }
};
struct SeluOp : HeavyOpBase {
  float alpha = 1.67326319217681884765625f, gamma = 1.05070102214813232421875f;
  Status Init(const KernelInfo& info) {
    alpha = info.attr_float("alpha", alpha);
    gamma = info.attr_float("gamma", gamma);
    return Status::Ok();
  }
  template <typename C> C operator()(C x) const {
    return x <= C(0) ? C(gamma) * (C(alpha) * std::exp(x) - C(alpha)) : C(gamma) * x;
  }
};
struct CeluOp : HeavyOpBase {
  float alpha = 1.0f;
  Status Init(const KernelInfo& info) {
    alpha = info.attr_float("alpha", 1.0f);
    if (alpha == 0.0f) return info.Error("Celu alpha must be non-zero");
    return Status::Ok();
  }
  template <typename C> C operator()(C x) const {
    const C a = C(alpha);
    return std::max(C(0), x) + std::min(C(0), a * std::expm1(x / a));
  }
};
struct SigmoidOp : HeavyOpBase {
  template <typename C> C operator()(C x) const {
    if (x >= C(0)) return C(1) / (C(1) + std::exp(-x));
    const C e = std::exp(x);
    return e / (C(1) + e);
  }
  VecMapFn VecKernel(const vec::Kernels& k) const { return k.sigmoid; }
};
struct HardSigmoidOp : OpBase {
  float alpha = 0.2f, beta = 0.5f;
  Status Init(const KernelInfo& info) {
    alpha = info.attr_float("alpha", 0.2f);
    beta = info.attr_float("beta", 0.5f);
    return Status::Ok();
  }
  template <typename C> C operator()(C x) const {
    return std::max(C(0), std::min(C(1), C(alpha) * x + C(beta)));
  }
};
struct HardSwishOp : OpBase {
  template <typename C> C operator()(C x) const {
    return x * std::max(C(0), std::min(C(1), x * C(1.0 / 6.0) + C(0.5)));
  }
};
template <typename C>
inline C SoftplusValue(C x) {
  return x > C(0) ? x + std::log1p(std::exp(-x)) : std::log1p(std::exp(x));
}
struct SoftplusOp : HeavyOpBase {
  template <typename C> C operator()(C x) const { return SoftplusValue(x); }
};
struct SoftsignOp : OpBase {
  template <typename C> C operator()(C x) const { return x / (C(1) + std::fabs(x)); }
};
struct ThresholdedReluOp : OpBase {
  float alpha = 1.0f;
  Status Init(const KernelInfo& info) { alpha = info.attr_float("alpha", 1.0f); return Status::Ok(); }
  template <typename C> C operator()(C x) const { return x > C(alpha) ? x : C(0); }
};
struct ShrinkOp : OpBase {
  float lambd = 0.5f, bias = 0.0f;
  Status Init(const KernelInfo& info) {
    lambd = info.attr_float("lambd", 0.5f);
    bias = info.attr_float("bias", 0.0f);
    return Status::Ok();
  }
  template <typename C> C operator()(C x) const {
    if constexpr (std::is_floating_point_v<C>) {
      return x < C(-lambd) ? x + C(bias) : (x > C(lambd) ? x - C(bias) : C(0));
    } else {
      const double v = static_cast<double>(x);
      const double r = v < -double(lambd) ? v + double(bias) : (v > double(lambd) ? v - double(bias) : 0.0);
      return CastValue<C, double>(r);
    }
  }
};
struct MishOp : HeavyOpBase {
  template <typename C> C operator()(C x) const { return x * std::tanh(SoftplusValue(x)); }
};

template <typename Op, typename Types>
class UnaryKernel final : public OpKernel {
 public:
  Status Init(const KernelInfo& info) {
    RETURN_IF_ERROR(CheckInputDType(info, 0, DTypesOf(Types{})));
    return op_.Init(info);
  }
  Status Compute(KernelContext& ctx) override {
    const Tensor& x = ctx.input_tensor(0);
    return Dispatch(Types{}, x.dtype(), [&](auto* tag) -> Status {
      using T = std::remove_pointer_t<decltype(tag)>;
      using TO = std::conditional_t<Op::kBoolOut, bool, T>;
      ASSIGN_OR_RETURN(Tensor * y, ctx.AllocateOutput(0, DTypeOf<TO>::value, x.shape()));
      if constexpr (HasVecKernel<Op> && std::is_same_v<T, float> && std::is_same_v<TO, float>) {
        const VecMapFn fn = op_.VecKernel(vec::Active());
        const float* xd = x.data<float>();
        float* yd = y->data<float>();
        ParallelFor(x.numel(), [&](int64_t b, int64_t e) { fn(xd + b, yd + b, e - b); }, kVecParallelThreshold);
        return Status::Ok();
      }
      UnaryLoop<T, TO>(x.data<T>(), y->data<TO>(), x.numel(), op_, Op::kThreshold);
      return Status::Ok();
    });
  }

 private:
  Op op_;
};

template <typename Op, typename Types>
KernelDef UnaryDef(const char* name, int since, int until = 18) {
  return KernelDef{.op_type = name, .since = since, .until = until, .dtypes = DTypesOf(Types{}),
                   .factory = MakeKernel<UnaryKernel<Op, Types>>};
}

// Types: float types for the math ops; some allow integers.
using F = FloatTypes;
using N = NumericTypes;
using SN = SignedNumericTypes;
using ReluTypes = TypeList<float, double, Float16, BFloat16, int8_t, int16_t, int32_t, int64_t>;

const KernelRegistrar kUnary[] = {
    KernelRegistrar{UnaryDef<AbsOp, N>("Abs", 1)},
    KernelRegistrar{UnaryDef<NegOp, SN>("Neg", 1)},
    KernelRegistrar{UnaryDef<ReciprocalOp, F>("Reciprocal", 1)},
    KernelRegistrar{UnaryDef<FloorOp, F>("Floor", 1)},
    KernelRegistrar{UnaryDef<CeilOp, F>("Ceil", 1)},
    KernelRegistrar{UnaryDef<RoundOp, F>("Round", 11)},
    KernelRegistrar{UnaryDef<SqrtOp, F>("Sqrt", 1)},
    KernelRegistrar{UnaryDef<ExpOp, F>("Exp", 1)},
    KernelRegistrar{UnaryDef<LogOp, F>("Log", 1)},
    KernelRegistrar{UnaryDef<SignOp, N>("Sign", 9)},
    KernelRegistrar{UnaryDef<ErfOp, N>("Erf", 9)},
    KernelRegistrar{UnaryDef<SinOp, F>("Sin", 7)},
    KernelRegistrar{UnaryDef<CosOp, F>("Cos", 7)},
    KernelRegistrar{UnaryDef<TanOp, F>("Tan", 7)},
    KernelRegistrar{UnaryDef<AsinOp, F>("Asin", 7)},
    KernelRegistrar{UnaryDef<AcosOp, F>("Acos", 7)},
    KernelRegistrar{UnaryDef<AtanOp, F>("Atan", 7)},
    KernelRegistrar{UnaryDef<SinhOp, F>("Sinh", 9)},
    KernelRegistrar{UnaryDef<CoshOp, F>("Cosh", 9)},
    KernelRegistrar{UnaryDef<TanhOp, F>("Tanh", 1)},
    KernelRegistrar{UnaryDef<AsinhOp, F>("Asinh", 9)},
    KernelRegistrar{UnaryDef<AcoshOp, F>("Acosh", 9)},
    KernelRegistrar{UnaryDef<AtanhOp, F>("Atanh", 9)},
    KernelRegistrar{UnaryDef<IsNaNOp, F>("IsNaN", 9)},
    KernelRegistrar{UnaryDef<IsInfOp, F>("IsInf", 10)},
    KernelRegistrar{UnaryDef<NotOp, BoolTypes>("Not", 1)},
    KernelRegistrar{UnaryDef<BitwiseNotOp, IntTypes>("BitwiseNot", 18)},
    KernelRegistrar{UnaryDef<ReluOp, ReluTypes>("Relu", 1)},
    KernelRegistrar{UnaryDef<LeakyReluOp, F>("LeakyRelu", 1)},
    KernelRegistrar{UnaryDef<EluOp, F>("Elu", 1)},
    KernelRegistrar{UnaryDef<SeluOp, F>("Selu", 1)},
    KernelRegistrar{UnaryDef<CeluOp, F>("Celu", 12)},
    KernelRegistrar{UnaryDef<SigmoidOp, F>("Sigmoid", 1)},
    KernelRegistrar{UnaryDef<HardSigmoidOp, F>("HardSigmoid", 1)},
    KernelRegistrar{UnaryDef<HardSwishOp, F>("HardSwish", 14)},
    KernelRegistrar{UnaryDef<SoftplusOp, F>("Softplus", 1)},
    KernelRegistrar{UnaryDef<SoftsignOp, F>("Softsign", 1)},
    KernelRegistrar{UnaryDef<ThresholdedReluOp, F>("ThresholdedRelu", 10)},
    KernelRegistrar{UnaryDef<ShrinkOp, N>("Shrink", 9)},
    KernelRegistrar{UnaryDef<MishOp, F>("Mish", 18)},
    KernelRegistrar{UnaryDef<GeluOp, F>("Gelu", 20, 20)},
};

// ---- Clip ----
// Opset < 11: `min`/`max` float attributes. Opset >= 11: optional scalar inputs 1 and 2 of type T.
class ClipKernel final : public OpKernel {
 public:
  Status Init(const KernelInfo& info) {
    legacy_ = info.opset() < 11;
    if (legacy_) {
      min_ = info.attr_float("min", -std::numeric_limits<float>::infinity());
      max_ = info.attr_float("max", std::numeric_limits<float>::infinity());
      return CheckInputDType(info, 0, DTypesOf(FloatTypes{}));
    }
    return CheckInputDType(info, 0, DTypesOf(NumericTypes{}));
  }
  Status Compute(KernelContext& ctx) override {
    const Tensor& x = ctx.input_tensor(0);
    return Dispatch(NumericTypes{}, x.dtype(), [&](auto* tag) -> Status {
      using T = std::remove_pointer_t<decltype(tag)>;
      using C = ComputeType<T>;
      C lo, hi;
      if constexpr (kIsFloat<T>) {
        lo = -std::numeric_limits<C>::infinity();
        hi = std::numeric_limits<C>::infinity();
      } else {
        lo = std::numeric_limits<C>::lowest();
        hi = std::numeric_limits<C>::max();
      }
      if (legacy_) {
        if constexpr (kIsFloat<T>) {
          lo = static_cast<C>(min_);
          hi = static_cast<C>(max_);
        } else {
          return Unsupported("Clip before opset 11 only supports floating-point inputs");
        }
      } else {
        for (int i = 1; i <= 2; ++i) {
          if (!ctx.has_input(i)) continue;
          const Value& v = ctx.input(i);
          if (v.is_none()) continue;
          const Tensor& t = v.tensor();
          if (t.dtype() != x.dtype())
            return InvalidArgument("Clip: " + std::string(i == 1 ? "min" : "max") + " has dtype " +
                                   std::string(DTypeName(t.dtype())) + ", input has " +
                                   std::string(DTypeName(x.dtype())));
          if (t.numel() != 1)
            return InvalidArgument("Clip: " + std::string(i == 1 ? "min" : "max") + " must be a scalar, got shape " +
                                   ShapeToString(t.shape()));
          (i == 1 ? lo : hi) = Load(t.data<T>()[0]);
        }
      }
      ASSIGN_OR_RETURN(Tensor * y, ctx.AllocateOutput(0, x.dtype(), x.shape()));
      UnaryLoop<T, T>(x.data<T>(), y->data<T>(), x.numel(), [lo, hi](C v) { return std::min(std::max(v, lo), hi); });
      return Status::Ok();
    });
  }

 private:
  bool legacy_ = false;
  float min_ = 0, max_ = 0;
};

const KernelRegistrar kClip{{.op_type = "Clip", .since = 1, .until = 18, .dtypes = DTypesOf(NumericTypes{}),
                             .factory = MakeKernel<ClipKernel>}};

}  // namespace
}  // namespace strata::cpu
