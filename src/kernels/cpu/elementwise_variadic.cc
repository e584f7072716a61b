// Variadic elementwise ops (Sum Mean Max Min, multi-input broadcasting from opset 8) and Where.
#include <cmath>

#include "kernels/cpu/elementwise_common.h"

namespace strata::cpu {
namespace {

using namespace ew;

enum class VarOp { kSum, kMean, kMax, kMin };

template <VarOp kOp, typename C>
inline C Combine(C a, C b) {
  if constexpr (kOp == VarOp::kSum || kOp == VarOp::kMean) {
    if constexpr (std::is_integral_v<C>) {
      using U = std::make_unsigned_t<C>;
      return static_cast<C>(static_cast<U>(a) + static_cast<U>(b));
    } else {
      return a + b;
    }
  } else if constexpr (kOp == VarOp::kMax) {
    if constexpr (std::is_floating_point_v<C>) {
      if (a != a) return a;  // NaN propagates, as numpy.maximum does
      if (b != b) return b;
    }
    return a < b ? b : a;
  } else {
    if constexpr (std::is_floating_point_v<C>) {
      if (a != a) return a;
      if (b != b) return b;
    }
    return b < a ? b : a;
  }
}

template <VarOp kOp, typename Types>
class VariadicKernel final : public OpKernel {
 public:
  Status Init(const KernelInfo& info) {
    if (info.num_inputs() < 1) return info.Error("needs at least one input");
    for (int i = 0; i < info.num_inputs(); ++i) RETURN_IF_ERROR(CheckInputDType(info, i, DTypesOf(Types{})));
    broadcast_ = info.opset() >= 8;
    return Status::Ok();
  }
  Status Compute(KernelContext& ctx) override {
    const int n = ctx.num_inputs();
    std::vector<const Shape*> shapes;
    for (int i = 0; i < n; ++i) {
      if (!ctx.has_input(i)) return InvalidArgument("input " + std::to_string(i) + " is missing");
      const Tensor& t = ctx.input_tensor(i);
      if (t.dtype() != ctx.input_tensor(0).dtype())
        return InvalidArgument("input " + std::to_string(i) + " has dtype " + std::string(DTypeName(t.dtype())) +
                               ", input 0 has " + std::string(DTypeName(ctx.input_tensor(0).dtype())));
      if (!broadcast_ && t.shape() != ctx.input_tensor(0).shape())
        return InvalidArgument("input shapes differ (" + ShapeToString(ctx.input_tensor(0).shape()) + " vs " +
                               ShapeToString(t.shape()) + "); broadcasting needs opset 8");
      shapes.push_back(&t.shape());
    }
    ASSIGN_OR_RETURN(Shape out_shape, BroadcastShapes(shapes));
    const Tensor& x0 = ctx.input_tensor(0);
    if (n == 1 && kOp != VarOp::kMean) {
      ctx.SetOutput(0, ctx.input(0));
      return Status::Ok();
    }
    return Dispatch(Types{}, x0.dtype(), [&](auto* tag) -> Status {
      using T = std::remove_pointer_t<decltype(tag)>;
      using C = ComputeType<T>;
      ASSIGN_OR_RETURN(Tensor * out, ctx.AllocateOutput(0, x0.dtype(), out_shape));
      if (out->numel() == 0) return Status::Ok();
      auto combine = [](C a, C b) { return Combine<kOp, C>(a, b); };
      if (n == 1) {
        BroadcastPlan<1> p;
        RETURN_IF_ERROR(MakePlan<1>({&x0.shape()}, out_shape, &p));
        const T* in = x0.data<T>();
        T* o = out->data<T>();
        ForEachRun<1>(p, [&](int64_t oo, const std::array<int64_t, 1>& off, int64_t len) {
          for (int64_t k = 0; k < len; ++k) o[oo + k] = in[off[0] + (p.step[0] ? k : 0)];
        });
      } else {
        RETURN_IF_ERROR((BinaryApply<T, T, T>(x0, x0.shape(), ctx.input_tensor(1), ctx.input_tensor(1).shape(), out,
                                              combine)));
        for (int i = 2; i < n; ++i) {
          const Tensor& t = ctx.input_tensor(i);
          RETURN_IF_ERROR((BinaryApply<T, T, T>(*out, out_shape, t, t.shape(), out, combine)));
        }
      }
      if constexpr (kOp == VarOp::kMean) {
        const C inv = static_cast<C>(n);
        T* o = out->data<T>();
        UnaryLoop<T, T>(o, o, out->numel(), [inv](C v) { return v / inv; });
      }
      return Status::Ok();
    });
  }

 private:
  bool broadcast_ = true;
};

const KernelRegistrar kVariadic[] = {
    KernelRegistrar{{.op_type = "Sum", .since = 1, .until = 18, .dtypes = DTypesOf(FloatTypes{}),
                     .factory = MakeKernel<VariadicKernel<VarOp::kSum, FloatTypes>>}},
    KernelRegistrar{{.op_type = "Mean", .since = 1, .until = 18, .dtypes = DTypesOf(FloatTypes{}),
                     .factory = MakeKernel<VariadicKernel<VarOp::kMean, FloatTypes>>}},
    KernelRegistrar{{.op_type = "Max", .since = 1, .until = 18, .dtypes = DTypesOf(NumericTypes{}),
                     .factory = MakeKernel<VariadicKernel<VarOp::kMax, NumericTypes>>}},
    KernelRegistrar{{.op_type = "Min", .since = 1, .until = 18, .dtypes = DTypesOf(NumericTypes{}),
                     .factory = MakeKernel<VariadicKernel<VarOp::kMin, NumericTypes>>}},
};

// ---- Where(condition, X, Y) ----
class WhereKernel final : public OpKernel {
 public:
  Status Init(const KernelInfo& info) {
    RETURN_IF_ERROR(CheckInputDType(info, 0, {DType::kBool}));
    return CheckInputDType(info, 1, DTypesOf(AllTypes{}));
  }
  Status Compute(KernelContext& ctx) override {
    const Tensor& c = ctx.input_tensor(0);
    const Tensor& x = ctx.input_tensor(1);
    const Tensor& y = ctx.input_tensor(2);
    if (c.dtype() != DType::kBool)
      return InvalidArgument("Where: condition must be bool, got " + std::string(DTypeName(c.dtype())));
    if (x.dtype() != y.dtype())
      return InvalidArgument("Where: X and Y dtypes differ (" + std::string(DTypeName(x.dtype())) + ", " +
                             std::string(DTypeName(y.dtype())) + ")");
    ASSIGN_OR_RETURN(Shape out_shape, BroadcastShapes({&c.shape(), &x.shape(), &y.shape()}));
    return Dispatch(AllTypes{}, x.dtype(), [&](auto* tag) -> Status {
      using T = std::remove_pointer_t<decltype(tag)>;
      ASSIGN_OR_RETURN(Tensor * out, ctx.AllocateOutput(0, x.dtype(), out_shape));
      BroadcastPlan<3> p;
      RETURN_IF_ERROR(MakePlan<3>({&c.shape(), &x.shape(), &y.shape()}, out_shape, &p));
      const bool* pc = c.data<bool>();
      const T* px = x.data<T>();
      const T* py = y.data<T>();
      T* po = out->data<T>();
      const bool all = p.step[0] && p.step[1] && p.step[2];
      const int64_t sc = p.step[0], sx = p.step[1], sy = p.step[2];
      ForEachRun<3>(p, [&](int64_t oo, const std::array<int64_t, 3>& off, int64_t len) {
        const bool* c0 = pc + off[0];
        const T* x0 = px + off[1];
        const T* y0 = py + off[2];
        T* o = po + oo;
        if (all) {
          for (int64_t k = 0; k < len; ++k) o[k] = c0[k] ? x0[k] : y0[k];
        } else {
          for (int64_t k = 0; k < len; ++k) o[k] = c0[k * sc] ? x0[k * sx] : y0[k * sy];
        }
      });
      return Status::Ok();
    });
  }
};

const KernelRegistrar kWhere{{.op_type = "Where", .since = 9, .until = 18, .dtypes = {DType::kBool},
                              .factory = MakeKernel<WhereKernel>}};

}  // namespace
}  // namespace strata::cpu
