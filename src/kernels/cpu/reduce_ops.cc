// Reductions: ReduceSum, ReduceMean, ReduceMax, ReduceMin, ReduceProd, ReduceL1, ReduceL2,
// ReduceLogSum, ReduceLogSumExp, ReduceSumSquare (opsets 1..18).
//
// Axes come from the `axes` attribute (ReduceSum before opset 13, the others before 18) or from
// the optional second input (with `noop_with_empty_axes`). Reducing over an empty set of axes
// (noop) still applies the element-wise parts (square, abs, log...), as the reference does.
#include <cmath>
#include <limits>
#include <span>
#include <vector>

#include "kernels/cpu/common.h"
#include "kernels/cpu/reduce_engine.h"
#include "kernels/cpu/ukernels/vec_math.h"

namespace strata::cpu {
namespace {

enum class RK { kSum, kMean, kMax, kMin, kProd, kL1, kL2, kLogSum, kLogSumExp, kSumSquare };

// Accumulator type: float for 16-bit floats, the type itself for float/double, 64-bit for the
// integer kinds that stay integral, double for the integer kinds that need real arithmetic.
template <RK K, typename T>
struct AccOf {
  using type = std::conditional_t<
      std::is_floating_point_v<ComputeType<T>>, ComputeType<T>,
      std::conditional_t<K == RK::kL2 || K == RK::kLogSum || K == RK::kLogSumExp, double,
                         std::conditional_t<std::is_signed_v<T>, int64_t, uint64_t>>>;
};

template <typename T, typename Acc>
Acc LowestOf() {
  if constexpr (std::is_floating_point_v<ComputeType<T>>) return -std::numeric_limits<Acc>::infinity();
  else return static_cast<Acc>(std::numeric_limits<T>::lowest());
}
template <typename T, typename Acc>
Acc HighestOf() {
  if constexpr (std::is_floating_point_v<ComputeType<T>>) return std::numeric_limits<Acc>::infinity();
  else return static_cast<Acc>(std::numeric_limits<T>::max());
}

template <typename Acc>
inline Acc AbsOf(Acc v) {
  if constexpr (std::is_unsigned_v<Acc>) return v;
  else return v < 0 ? -v : v;
}

template <RK K, typename T>
Status RunReduce(const Tensor& x, const ReducePlan& plan, bool keepdims, KernelContext& ctx) {
  using Acc = typename AccOf<K, T>::type;
  ASSIGN_OR_RETURN(Tensor * y, ctx.AllocateOutput(0, x.dtype(), keepdims ? plan.out_shape_keep : plan.out_shape_drop));
  const T* xd = x.data<T>();
  T* yd = y->data<T>();
  const int64_t on = plan.out_numel;
  if constexpr (std::is_same_v<T, float> && (K == RK::kSum || K == RK::kMean || K == RK::kMax || K == RK::kMin)) {
    // float32 over the innermost axes ([rows, len] after simplification): vec_math row kernels.
    const auto& d = plan.dims;
    const size_t nd = d.size();
    if (!plan.empty_input && plan.reduced(nd - 1) && (nd == 1 || (nd == 2 && !plan.reduced(0)))) {
      const int64_t rows = nd == 1 ? 1 : d[0], len = d[nd - 1];
      const vec::Kernels& vk = vec::Active();
      const auto fn = K == RK::kMax ? vk.row_max : K == RK::kMin ? vk.row_min : vk.row_sum;
      const float cnt = static_cast<float>(len);
      ParallelRows(rows, len, [&](int64_t b, int64_t e) {
        for (int64_t k = b; k < e; ++k) {
          const float v = fn(xd + k * len, len);
          yd[k] = K == RK::kMean ? v / cnt : v;
        }
      });
      return Status::Ok();
    }
  }
  // Accumulate in the output itself when it has the accumulator type (float, double, 64-bit ints).
  std::vector<Acc> acc_buf(static_cast<size_t>(std::is_same_v<Acc, T> ? 0 : on));
  Acc* acc;
  if constexpr (std::is_same_v<Acc, T>) acc = yd;
  else acc = acc_buf.data();
  auto plus = [](Acc a, Acc b) { return a + b; };
  auto ident = [](Acc v, int64_t) { return v; };
  auto fill = [&](Acc v) { std::fill(acc, acc + on, v); };
  auto store = [&](auto post) {
    ParallelFor(
        on, [&](int64_t b, int64_t e) {
          for (int64_t i = b; i < e; ++i) yd[i] = CastValue<T, Acc>(post(acc[i], i));
        },
        1 << 16);
  };

  if constexpr (K == RK::kSum || K == RK::kMean || K == RK::kLogSum) {
    fill(Acc(0));
    ReduceInto<Acc>(plan, xd, acc, Acc(0), ident, plus);
    if constexpr (K == RK::kSum) {
      store([](Acc a, int64_t) { return a; });
    } else if constexpr (K == RK::kMean) {
      const int64_t cnt = plan.count;
      store([cnt](Acc a, int64_t) -> Acc {
        if constexpr (std::is_integral_v<Acc>) {
          if (cnt == 0) return Acc(0);
          return static_cast<Acc>(a / static_cast<Acc>(cnt));
        } else {
          return a / static_cast<Acc>(cnt);
        }
      });
    } else {
      store([](Acc a, int64_t) { return static_cast<Acc>(std::log(a)); });
    }
  } else if constexpr (K == RK::kSumSquare || K == RK::kL2) {
    fill(Acc(0));
    ReduceInto<Acc>(plan, xd, acc, Acc(0), [](Acc v, int64_t) { return v * v; }, plus);
    if constexpr (K == RK::kL2) store([](Acc a, int64_t) { return static_cast<Acc>(std::sqrt(a)); });
    else store([](Acc a, int64_t) { return a; });
  } else if constexpr (K == RK::kL1) {
    fill(Acc(0));
    ReduceInto<Acc>(plan, xd, acc, Acc(0), [](Acc v, int64_t) { return AbsOf(v); }, plus);
    store([](Acc a, int64_t) { return a; });
  } else if constexpr (K == RK::kProd) {
    fill(Acc(1));
    ReduceInto<Acc>(plan, xd, acc, Acc(1), ident, [](Acc a, Acc b) { return a * b; });
    store([](Acc a, int64_t) { return a; });
  } else if constexpr (K == RK::kMax || K == RK::kMin) {
    const Acc init = K == RK::kMax ? LowestOf<T, Acc>() : HighestOf<T, Acc>();
    fill(init);
    if constexpr (K == RK::kMax) {
      ReduceInto<Acc>(plan, xd, acc, init, ident, [](Acc a, Acc b) { return (b > a || b != b) ? b : a; });
    } else {
      ReduceInto<Acc>(plan, xd, acc, init, ident, [](Acc a, Acc b) { return (b < a || b != b) ? b : a; });
    }
    store([](Acc a, int64_t) { return a; });
  } else {  // LogSumExp: max first, then sum of exp(x - max)
    std::vector<Acc> shift(static_cast<size_t>(on), -std::numeric_limits<Acc>::infinity());
    ReduceInto<Acc>(plan, xd, shift.data(), -std::numeric_limits<Acc>::infinity(), ident,
                    [](Acc a, Acc b) { return (b > a || b != b) ? b : a; });
    for (Acc& s : shift)
      if (!std::isfinite(s)) s = 0;
    const Acc* sh = shift.data();
    fill(Acc(0));
    ReduceInto<Acc>(plan, xd, acc, Acc(0), [sh](Acc v, int64_t o) { return std::exp(v - sh[o]); }, plus);
    store([sh](Acc a, int64_t i) { return static_cast<Acc>(std::log(a) + sh[i]); });
  }
  return Status::Ok();
}

template <RK K>
class ReduceKernel final : public OpKernel {
 public:
  Status Init(const KernelInfo& info) {
    keepdims_ = info.attr_int("keepdims", 1) != 0;
    const int64_t axes_input_since = K == RK::kSum ? 13 : 18;
    axes_from_input_ = info.opset() >= axes_input_since;
    if (axes_from_input_) {
      noop_ = info.attr_int("noop_with_empty_axes", 0) != 0;
      if (info.has_attr("axes")) return info.Error("'axes' is an input, not an attribute, in this opset");
    } else {
      axes_ = info.attr_ints("axes");
    }
    return CheckInputDType(info, 0, DTypesOf(NumericTypes{}));
  }

  Status Compute(KernelContext& ctx) override {
    const Tensor& x = ctx.input_tensor(0);
    std::span<const int64_t> axes = axes_;
    std::vector<int64_t> axes_read;  // int32 axes (accepted, though ONNX specifies int64)
    if (axes_from_input_ && ctx.has_input(1)) {
      const Tensor& t = ctx.input_tensor(1);
      if (t.dtype() == DType::kInt64) {
        axes = {t.data<int64_t>(), static_cast<size_t>(t.numel())};
      } else {
        ASSIGN_OR_RETURN(axes_read, ReadInt64s(t));
        axes = axes_read;
      }
    }
    for (int64_t a : axes) RETURN_IF_ERROR(NormalizeAxis(a, x.rank(), "reduction ").status());
    // No axes reduce over all of them, unless noop_with_empty_axes (then only the element-wise
    // parts apply).
    const ReducePlan plan = axes.empty() && !noop_ ? MakeReduceAllPlan(x.shape()) : MakeReducePlan(x.shape(), axes);
    return Dispatch(NumericTypes{}, x.dtype(), [&](auto* tag) {
      using T = std::remove_pointer_t<decltype(tag)>;
      return RunReduce<K, T>(x, plan, keepdims_, ctx);
    });
  }

 private:
  bool keepdims_ = true;
  bool noop_ = false;  // noop_with_empty_axes (only when axes are an input)
  bool axes_from_input_ = false;
  std::vector<int64_t> axes_;
};

#define STRATA_REDUCE(NAME, KIND)                                                                    \
  const KernelRegistrar k##NAME{{.op_type = #NAME, .since = 1, .until = 18,                         \
                                 .dtypes = DTypesOf(NumericTypes{}), .factory = MakeKernel<ReduceKernel<KIND>>}};
STRATA_REDUCE(ReduceSum, RK::kSum)
STRATA_REDUCE(ReduceMean, RK::kMean)
STRATA_REDUCE(ReduceMax, RK::kMax)
STRATA_REDUCE(ReduceMin, RK::kMin)
STRATA_REDUCE(ReduceProd, RK::kProd)
STRATA_REDUCE(ReduceL1, RK::kL1)
STRATA_REDUCE(ReduceL2, RK::kL2)
STRATA_REDUCE(ReduceLogSum, RK::kLogSum)
STRATA_REDUCE(ReduceLogSumExp, RK::kLogSumExp)
STRATA_REDUCE(ReduceSumSquare, RK::kSumSquare)
#undef STRATA_REDUCE

}  // namespace
}  // namespace strata::cpu
