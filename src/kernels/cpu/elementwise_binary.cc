// Binary elementwise ops with numpy broadcasting (and the pre-opset-7 broadcast/axis attributes):
// Add Sub Mul Div Mod Pow BitShift Bitwise{And,Or,Xor} And Or Xor Equal Greater Less
// GreaterOrEqual LessOrEqual PRelu.
#include <cmath>
#include <limits>

#include "kernels/cpu/elementwise_common.h"

namespace strata::cpu {
namespace {

using namespace ew;

// Integer arithmetic in the unsigned domain, so overflow wraps instead of being UB.
template <typename C> struct WrapTraits { using U = C; };
template <> struct WrapTraits<int8_t> { using U = uint32_t; };
template <> struct WrapTraits<int16_t> { using U = uint32_t; };
template <> struct WrapTraits<int32_t> { using U = uint32_t; };
template <> struct WrapTraits<int64_t> { using U = uint64_t; };
template <> struct WrapTraits<uint8_t> { using U = uint32_t; };   // avoid int promotion of uint8*uint8
template <> struct WrapTraits<uint16_t> { using U = uint32_t; };  // (uint16*uint16 overflows int)
template <typename C> using WrapU = typename WrapTraits<C>::U;

struct BinOpBase {
  static constexpr bool kBoolOut = false;
  Status Init(const KernelInfo&) { return Status::Ok(); }
  template <typename T> Status Check(const Tensor&) const { return Status::Ok(); }
};

struct AddOp : BinOpBase {
  template <typename C> C operator()(C a, C b) const {
    if constexpr (std::is_integral_v<C>) return static_cast<C>(static_cast<WrapU<C>>(a) + static_cast<WrapU<C>>(b));
    else return a + b;
  }
};
struct SubOp : BinOpBase {
  template <typename C> C operator()(C a, C b) const {
    if constexpr (std::is_integral_v<C>) return static_cast<C>(static_cast<WrapU<C>>(a) - static_cast<WrapU<C>>(b));
    else return a - b;
  }
};
struct MulOp : BinOpBase {
  template <typename C> C operator()(C a, C b) const {
    if constexpr (std::is_integral_v<C>) return static_cast<C>(static_cast<WrapU<C>>(a) * static_cast<WrapU<C>>(b));
    else return a * b;
  }
};

template <typename T>
Status CheckNoZeroDivisor(const Tensor& b, const char* op) {
  if constexpr (std::is_integral_v<T>) {
    const T* p = b.data<T>();
    bool zero = false;
    for (int64_t i = 0; i < b.numel(); ++i) zero |= p[i] == 0;
    if (zero) return InvalidArgument(std::string(op) + ": integer division by zero");
  }
  return Status::Ok();
}

struct DivOp : BinOpBase {
  template <typename T> Status Check(const Tensor& b) const { return CheckNoZeroDivisor<T>(b, "Div"); }
  template <typename C> C operator()(C a, C b) const {
    if constexpr (std::is_integral_v<C> && std::is_signed_v<C>) {
      if (b == -1) return static_cast<C>(WrapU<C>(0) - static_cast<WrapU<C>>(a));  // INT_MIN / -1 wraps
      return static_cast<C>(a / b);
    } else {
      return static_cast<C>(a / b);
    }
  }
};

struct ModOp : BinOpBase {
  bool fmod = false;
  Status Init(const KernelInfo& info) {
    const int64_t f = info.attr_int("fmod", 0);
    if (f != 0 && f != 1) return info.Error("fmod must be 0 or 1");
    fmod = f == 1;
    return Status::Ok();
  }
  template <typename T> Status Check(const Tensor& b) const { return CheckNoZeroDivisor<T>(b, "Mod"); }
  template <typename C> C operator()(C a, C b) const {
    if constexpr (std::is_floating_point_v<C>) {
      C r = std::fmod(a, b);
      if (!fmod && r != 0 && ((r < 0) != (b < 0))) r += b;
      return r;
    } else if constexpr (std::is_signed_v<C>) {
      if (b == -1) return C(0);
      C r = static_cast<C>(a % b);
      if (!fmod && r != 0 && ((r < 0) != (b < 0))) r = static_cast<C>(r + b);
      return r;
    } else {
      return static_cast<C>(a % b);
    }
  }
};

struct BitShiftOp : BinOpBase {
  bool left = true;
  Status Init(const KernelInfo& info) {
    const std::string d = info.attr_string("direction", "");
    if (d == "LEFT") left = true;
    else if (d == "RIGHT") left = false;
    else return info.Error("BitShift direction must be LEFT or RIGHT, got '" + d + "'");
    return Status::Ok();
  }
  template <typename C> C operator()(C a, C b) const {
    constexpr C bits = static_cast<C>(sizeof(C) * 8);
    if (b >= bits) return C(0);
    return left ? static_cast<C>(static_cast<WrapU<C>>(a) << b) : static_cast<C>(a >> b);
  }
};
struct BitAndOp : BinOpBase {
  template <typename C> C operator()(C a, C b) const { return static_cast<C>(a & b); }
};
struct BitOrOp : BinOpBase {
  template <typename C> C operator()(C a, C b) const { return static_cast<C>(a | b); }
};
struct BitXorOp : BinOpBase {
  template <typename C> C operator()(C a, C b) const { return static_cast<C>(a ^ b); }
};
struct AndOp : BinOpBase {
  bool operator()(bool a, bool b) const { return a && b; }
};
struct OrOp : BinOpBase {
  bool operator()(bool a, bool b) const { return a || b; }
};
struct XorOp : BinOpBase {
  bool operator()(bool a, bool b) const { return a != b; }
};
struct CmpBase : BinOpBase {
  static constexpr bool kBoolOut = true;
};
struct EqualOp : CmpBase {
  template <typename C> bool operator()(const C& a, const C& b) const { return a == b; }
};
struct GreaterOp : CmpBase {
  template <typename C> bool operator()(C a, C b) const { return a > b; }
};
struct LessOp : CmpBase {
  template <typename C> bool operator()(C a, C b) const { return a < b; }
};
struct GreaterOrEqualOp : CmpBase {
  template <typename C> bool operator()(C a, C b) const { return a >= b; }
};
struct LessOrEqualOp : CmpBase {
  template <typename C> bool operator()(C a, C b) const { return a <= b; }
};

// Both inputs share the dtype T; output is T (or bool for comparisons).
template <typename Op, typename Types>
class BinaryKernel final : public OpKernel {
 public:
  Status Init(const KernelInfo& info) {
    RETURN_IF_ERROR(CheckInputDType(info, 0, DTypesOf(Types{})));
    RETURN_IF_ERROR(CheckInputDType(info, 1, DTypesOf(Types{})));
    bcast_.Init(info);
    return op_.Init(info);
  }
  Status Compute(KernelContext& ctx) override {
    const Tensor& a = ctx.input_tensor(0);
    const Tensor& b = ctx.input_tensor(1);
    if (a.dtype() != b.dtype())
      return InvalidArgument("inputs have different dtypes: " + std::string(DTypeName(a.dtype())) + " and " +
                             std::string(DTypeName(b.dtype())));
    ASSIGN_OR_RETURN(BinaryShapes s, bcast_.Resolve(a.shape(), b.shape()));
    return Dispatch(Types{}, a.dtype(), [&](auto* tag) -> Status {
      using T = std::remove_pointer_t<decltype(tag)>;
      using TO = std::conditional_t<Op::kBoolOut, bool, T>;
      ASSIGN_OR_RETURN(Tensor * out, ctx.AllocateOutput(0, DTypeOf<TO>::value, s.out));
      if (out->numel() == 0) return Status::Ok();
      RETURN_IF_ERROR(op_.template Check<T>(b));
      return BinaryApply<T, T, TO>(a, s.a, b, s.b, out, op_);
    });
  }

 private:
  LegacyBroadcast bcast_;
  Op op_;
};

template <typename Op, typename Types>
KernelDef BinaryDef(const char* name, int since) {
  return KernelDef{.op_type = name, .since = since, .until = 18, .dtypes = DTypesOf(Types{}),
                   .factory = MakeKernel<BinaryKernel<Op, Types>>};
}

using N = NumericTypes;
using EqualTypes = TypeList<float, double, Float16, BFloat16, int8_t, int16_t, int32_t, int64_t, uint8_t, uint16_t,
                            uint32_t, uint64_t, bool, std::string>;

const KernelRegistrar kBinary[] = {
    KernelRegistrar{BinaryDef<AddOp, N>("Add", 1)},
    KernelRegistrar{BinaryDef<SubOp, N>("Sub", 1)},
    KernelRegistrar{BinaryDef<MulOp, N>("Mul", 1)},
    KernelRegistrar{BinaryDef<DivOp, N>("Div", 1)},
    KernelRegistrar{BinaryDef<ModOp, N>("Mod", 10)},
    KernelRegistrar{BinaryDef<BitShiftOp, UnsignedIntTypes>("BitShift", 11)},
    KernelRegistrar{BinaryDef<BitAndOp, IntTypes>("BitwiseAnd", 18)},
    KernelRegistrar{BinaryDef<BitOrOp, IntTypes>("BitwiseOr", 18)},
    KernelRegistrar{BinaryDef<BitXorOp, IntTypes>("BitwiseXor", 18)},
    KernelRegistrar{BinaryDef<AndOp, BoolTypes>("And", 1)},
    KernelRegistrar{BinaryDef<OrOp, BoolTypes>("Or", 1)},
    KernelRegistrar{BinaryDef<XorOp, BoolTypes>("Xor", 1)},
    KernelRegistrar{BinaryDef<EqualOp, EqualTypes>("Equal", 1)},
    KernelRegistrar{BinaryDef<GreaterOp, N>("Greater", 1)},
    KernelRegistrar{BinaryDef<LessOp, N>("Less", 1)},
    KernelRegistrar{BinaryDef<GreaterOrEqualOp, N>("GreaterOrEqual", 12)},
    KernelRegistrar{BinaryDef<LessOrEqualOp, N>("LessOrEqual", 12)},
};

// ---- Pow: base type T, exponent type T1 (may differ from opset 12); output has the base type ----
template <typename CA, typename CB>
inline CA PowValue(CA a, CB b) {
  if constexpr (std::is_integral_v<CA> && std::is_integral_v<CB>) {
    using U = std::make_unsigned_t<CA>;
    if constexpr (std::is_signed_v<CB>) {
      if (b < 0) {  // integer result of a^-n truncates to 0 unless |a| == 1
        if (a == 1) return CA(1);
        if constexpr (std::is_signed_v<CA>) {
          if (a == -1) return (b % 2 == 0) ? CA(1) : CA(-1);
        }
        return CA(0);
      }
    }
    U result = 1, base = static_cast<U>(a);
    auto e = static_cast<std::make_unsigned_t<CB>>(b);
    while (e) {
      if (e & 1) result = static_cast<U>(result * base);
      base = static_cast<U>(base * base);
      e >>= 1;
    }
    return static_cast<CA>(result);
  } else if constexpr (std::is_same_v<CA, float> && std::is_same_v<CB, float>) {
    return std::pow(a, b);
  } else {
    return CastValue<CA, double>(std::pow(static_cast<double>(a), static_cast<double>(b)));
  }
}

using PowBaseTypes = TypeList<float, double, Float16, BFloat16, int32_t, int64_t>;

class PowKernel final : public OpKernel {
 public:
  Status Init(const KernelInfo& info) {
    RETURN_IF_ERROR(CheckInputDType(info, 0, DTypesOf(PowBaseTypes{})));
    RETURN_IF_ERROR(CheckInputDType(info, 1, DTypesOf(NumericTypes{})));
    bcast_.Init(info);
    return Status::Ok();
  }
  Status Compute(KernelContext& ctx) override {
    const Tensor& a = ctx.input_tensor(0);
    const Tensor& b = ctx.input_tensor(1);
    ASSIGN_OR_RETURN(BinaryShapes s, bcast_.Resolve(a.shape(), b.shape()));
    return Dispatch(PowBaseTypes{}, a.dtype(), [&](auto* ta) -> Status {
      using TA = std::remove_pointer_t<decltype(ta)>;
      return Dispatch(NumericTypes{}, b.dtype(), [&](auto* tb) -> Status {
        using TB = std::remove_pointer_t<decltype(tb)>;
        ASSIGN_OR_RETURN(Tensor * out, ctx.AllocateOutput(0, a.dtype(), s.out));
        using CA = ComputeType<TA>;
        using CB = ComputeType<TB>;
        if constexpr (std::is_floating_point_v<CA>) {
          if (b.numel() == 1 && static_cast<double>(Load(b.data<TB>()[0])) == 2.0)
            return BinaryApply<TA, TB, TA>(a, s.a, b, s.b, out, [](CA x, CB) { return x * x; });
        }
        return BinaryApply<TA, TB, TA>(a, s.a, b, s.b, out, [](CA x, CB y) { return PowValue<CA, CB>(x, y); });
      });
    });
  }

 private:
  LegacyBroadcast bcast_;
};

const KernelRegistrar kPow{{.op_type = "Pow", .since = 1, .until = 18, .dtypes = DTypesOf(PowBaseTypes{}),
                            .factory = MakeKernel<PowKernel>}};

// ---- PRelu: slope broadcasts unidirectionally to X (before opset 7: a per-channel 1-D slope) ----
using PReluTypes = TypeList<float, double, Float16, BFloat16, int32_t, int64_t, uint32_t, uint64_t>;

class PReluKernel final : public OpKernel {
 public:
  Status Init(const KernelInfo& info) { return CheckInputDType(info, 0, DTypesOf(PReluTypes{})); }
  Status Compute(KernelContext& ctx) override {
    const Tensor& x = ctx.input_tensor(0);
    const Tensor& slope = ctx.input_tensor(1);
    if (x.dtype() != slope.dtype())
      return InvalidArgument("PRelu: slope dtype " + std::string(DTypeName(slope.dtype())) + " differs from X " +
                             std::string(DTypeName(x.dtype())));
    Shape view = slope.shape();
    auto fits = [&](const Shape& v) {
      if (v.size() > x.shape().size()) return false;
      const size_t off = x.shape().size() - v.size();
      for (size_t i = 0; i < v.size(); ++i)
        if (v[i] != 1 && v[i] != x.shape()[off + i]) return false;
      return true;
    };
    if (!fits(view)) {
      // Legacy per-channel slope: [C] against [N, C, ...].
      if (slope.rank() == 1 && x.rank() >= 2 && slope.dim(0) == x.dim(1)) {
        view.assign(static_cast<size_t>(x.rank() - 1), 1);
        view[0] = slope.dim(0);
      } else if (slope.numel() == 1) {
        view.clear();
      } else {
        return InvalidArgument("PRelu: slope shape " + ShapeToString(slope.shape()) +
                               " does not broadcast to X shape " + ShapeToString(x.shape()));
      }
    }
    return Dispatch(PReluTypes{}, x.dtype(), [&](auto* tag) -> Status {
      using T = std::remove_pointer_t<decltype(tag)>;
      using C = ComputeType<T>;
      ASSIGN_OR_RETURN(Tensor * out, ctx.AllocateOutput(0, x.dtype(), x.shape()));
      return BinaryApply<T, T, T>(x, x.shape(), slope, view, out, [](C v, C s) {
        if constexpr (std::is_unsigned_v<C>) {
          (void)s;
          return v;
        } else {
          return v < C(0) ? static_cast<C>(s * v) : v;
        }
      });
    });
  }
};

const KernelRegistrar kPRelu{{.op_type = "PRelu", .since = 1, .until = 18, .dtypes = DTypesOf(PReluTypes{}),
                              .factory = MakeKernel<PReluKernel>}};

}  // namespace
}  // namespace strata::cpu
