// Ordering ops: TopK, ArgMax, ArgMin, CumSum, Unique.
#include <algorithm>
#include <cmath>
#include <numeric>

#include "kernels/cpu/tensor_util.h"

namespace strata::cpu {
namespace {


using OrderTypes = TypeList<float, double, Float16, BFloat16, int8_t, int16_t, int32_t, int64_t, uint8_t, uint16_t,
                            uint32_t, uint64_t>;

// Converts 16-bit floats to float for comparisons; other types pass through.
template <typename T>
inline auto Key(const T& v) {
  if constexpr (std::is_same_v<T, Float16> || std::is_same_v<T, BFloat16>) return static_cast<float>(v);
  else return v;
}

// NaN-aware "a is greater than b" (NaN ranks above every number, as in numpy's sort order).
template <typename C>
inline bool Greater(C a, C b) {
  if constexpr (std::is_floating_point_v<C>) {
    if (std::isnan(a)) return !std::isnan(b);
    if (std::isnan(b)) return false;
  }
  return a > b;
}

// ---------------------------------------------------------------- TopK
class TopKKernel final : public OpKernel {
 public:
  Status Init(const KernelInfo& info) {
    opset_ = info.opset();
    axis_ = info.attr_int("axis", -1);
    if (opset_ < 10) {
      if (!info.has_attr("k")) return info.Error("TopK-1 needs the 'k' attribute");
      k_attr_ = info.attr_int("k", 0);
    }
    largest_ = info.attr_int("largest", 1) != 0;
    return CheckInputDType(info, 0, DTypesOf(OrderTypes{}));
  }
  Status Compute(KernelContext& ctx) override {
    const Tensor& x = ctx.input_tensor(0);
    if (x.rank() == 0) return InvalidArgument(ctx.Where() + "input must have rank >= 1");
    ASSIGN_OR_RETURN(int axis, NormalizeAxis(axis_, x.rank(), ctx));
    int64_t k = k_attr_;
    if (opset_ >= 10) {
      ASSIGN_OR_RETURN(Shape kv, tensor::ReadIntsInput(ctx, 1, "K"));
      if (kv.size() != 1) return InvalidArgument(ctx.Where() + "K must hold exactly one value");
      k = kv[0];
    }
    const int64_t dim = x.dim(axis);
    if (k < 0 || k > dim)
      return InvalidArgument(ctx.Where() + "k = " + std::to_string(k) + " is out of range for axis of size " +
                             std::to_string(dim));
    Shape out = x.shape();
    out[static_cast<size_t>(axis)] = k;
    ASSIGN_OR_RETURN(Tensor * vals, ctx.AllocateOutput(0, x.dtype(), out));
    ASSIGN_OR_RETURN(Tensor * inds, ctx.AllocateOutput(1, DType::kInt64, out));
    int64_t outer = 1, inner = 1;
    for (int d = 0; d < axis; ++d) outer *= x.dim(d);
    for (int d = axis + 1; d < x.rank(); ++d) inner *= x.dim(d);
    if (k == 0) return Status::Ok();
    return Dispatch(OrderTypes{}, x.dtype(), [&](auto* tag) {
      TENSOR_ELEM_T;
      using C = decltype(Key(T{}));
      const T* in = x.data<T>();
      T* ov = vals->data<T>();
      int64_t* oi = inds->data<int64_t>();
      std::vector<int64_t> order(static_cast<size_t>(dim));
      std::vector<C> buf(static_cast<size_t>(dim));
      const bool largest = largest_;
      auto cmp = [&](int64_t a, int64_t b) {
        const C va = buf[static_cast<size_t>(a)], vb = buf[static_cast<size_t>(b)];
        if (largest ? Greater(va, vb) : Greater(vb, va)) return true;
        if (largest ? Greater(vb, va) : Greater(va, vb)) return false;
        return a < b;
      };
      for (int64_t o = 0; o < outer; ++o)
        for (int64_t j = 0; j < inner; ++j) {
          const T* src = in + o * dim * inner + j;
          for (int64_t i = 0; i < dim; ++i) buf[static_cast<size_t>(i)] = Key(src[i * inner]);
          std::iota(order.begin(), order.end(), 0);
          if (k == 1) {
            order[0] = *std::min_element(order.begin(), order.end(), cmp);
          } else {
            std::partial_sort(order.begin(), order.begin() + k, order.end(), cmp);
          }
          for (int64_t i = 0; i < k; ++i) {
            const int64_t src_i = order[static_cast<size_t>(i)];
            ov[(o * k + i) * inner + j] = src[src_i * inner];
            oi[(o * k + i) * inner + j] = src_i;
          }
        }
      return Status::Ok();
    });
  }

 private:
  int64_t opset_ = 0, axis_ = -1, k_attr_ = 0;
  bool largest_ = true;
};

// ---------------------------------------------------------------- ArgMax / ArgMin
template <bool kMax>
class ArgKernel final : public OpKernel {
 public:
  Status Init(const KernelInfo& info) {
    axis_ = info.attr_int("axis", 0);
    keepdims_ = info.attr_int("keepdims", 1) != 0;
    last_ = info.attr_int("select_last_index", 0) != 0;
    return CheckInputDType(info, 0, DTypesOf(OrderTypes{}));
  }
  Status Compute(KernelContext& ctx) override {
    const Tensor& x = ctx.input_tensor(0);
    if (x.rank() == 0) return InvalidArgument(ctx.Where() + "input must have rank >= 1");
    ASSIGN_OR_RETURN(int axis, NormalizeAxis(axis_, x.rank(), ctx));
    const int64_t dim = x.dim(axis);
    if (dim == 0) return InvalidArgument(ctx.Where() + "cannot reduce an empty axis");
    Shape out = x.shape();
    if (keepdims_) out[static_cast<size_t>(axis)] = 1;
    else out.erase(out.begin() + axis);
    ASSIGN_OR_RETURN(Tensor * y, ctx.AllocateOutput(0, DType::kInt64, out));
    int64_t outer = 1, inner = 1;
    for (int d = 0; d < axis; ++d) outer *= x.dim(d);
    for (int d = axis + 1; d < x.rank(); ++d) inner *= x.dim(d);
    return Dispatch(OrderTypes{}, x.dtype(), [&](auto* tag) {
      TENSOR_ELEM_T;
      using C = decltype(Key(T{}));
      const T* in = x.data<T>();
      int64_t* o = y->data<int64_t>();
      std::vector<C> best(static_cast<size_t>(inner));
      std::vector<int64_t> bi(static_cast<size_t>(inner));
      const bool last = last_;
      for (int64_t b = 0; b < outer; ++b) {
        const T* src = in + b * dim * inner;
        for (int64_t j = 0; j < inner; ++j) {
          best[static_cast<size_t>(j)] = Key(src[j]);
          bi[static_cast<size_t>(j)] = 0;
        }
        for (int64_t i = 1; i < dim; ++i) {
          const T* row = src + i * inner;
          for (int64_t j = 0; j < inner; ++j) {
            const C v = Key(row[j]);
            C& cur = best[static_cast<size_t>(j)];
            const bool better = kMax ? Greater(v, cur) : Greater(cur, v);
            const bool equal = !Greater(v, cur) && !Greater(cur, v);
            if (better || (last && equal)) {
              cur = v;
              bi[static_cast<size_t>(j)] = i;
            }
          }
        }
        std::copy(bi.begin(), bi.end(), o + b * inner);
      }
      return Status::Ok();
    });
  }

 private:
  int64_t axis_ = 0;
  bool keepdims_ = true, last_ = false;
};

// ---------------------------------------------------------------- CumSum
class CumSumKernel final : public OpKernel {
 public:
  Status Init(const KernelInfo& info) {
    exclusive_ = info.attr_int("exclusive", 0) != 0;
    reverse_ = info.attr_int("reverse", 0) != 0;
    return CheckInputDType(info, 0, DTypesOf(NumericTypes{}));
  }
  Status Compute(KernelContext& ctx) override {
    const Tensor& x = ctx.input_tensor(0);
    ASSIGN_OR_RETURN(Shape av, tensor::ReadIntsInput(ctx, 1, "axis"));
    if (av.size() != 1) return InvalidArgument(ctx.Where() + "axis must be a scalar");
    if (x.rank() == 0) return InvalidArgument(ctx.Where() + "input must have rank >= 1");
    ASSIGN_OR_RETURN(int axis, NormalizeAxis(av[0], x.rank(), ctx));
    ASSIGN_OR_RETURN(Tensor * y, ctx.AllocateOutput(0, x.dtype(), x.shape()));
    const int64_t dim = x.dim(axis);
    int64_t outer = 1, inner = 1;
    for (int d = 0; d < axis; ++d) outer *= x.dim(d);
    for (int d = axis + 1; d < x.rank(); ++d) inner *= x.dim(d);
    return Dispatch(NumericTypes{}, x.dtype(), [&](auto* tag) {
      TENSOR_ELEM_T;
      using C = ComputeType<T>;
      const T* in = x.data<T>();
      T* o = y->data<T>();
      std::vector<C> acc(static_cast<size_t>(inner));
      for (int64_t b = 0; b < outer; ++b) {
        std::fill(acc.begin(), acc.end(), C(0));
        for (int64_t s = 0; s < dim; ++s) {
          const int64_t i = reverse_ ? dim - 1 - s : s;
          const T* src = in + (b * dim + i) * inner;
          T* dst = o + (b * dim + i) * inner;
          if (exclusive_) {
            for (int64_t j = 0; j < inner; ++j) {
              dst[j] = static_cast<T>(acc[static_cast<size_t>(j)]);
              acc[static_cast<size_t>(j)] = static_cast<C>(acc[static_cast<size_t>(j)] + static_cast<C>(src[j]));
            }
          } else {
            for (int64_t j = 0; j < inner; ++j) {
              acc[static_cast<size_t>(j)] = static_cast<C>(acc[static_cast<size_t>(j)] + static_cast<C>(src[j]));
              dst[j] = static_cast<T>(acc[static_cast<size_t>(j)]);
            }
          }
        }
      }
      return Status::Ok();
    });
  }

 private:
  bool exclusive_ = false, reverse_ = false;
};

// ---------------------------------------------------------------- Unique
class UniqueKernel final : public OpKernel {
 public:
  Status Init(const KernelInfo& info) {
    sorted_ = info.attr_int("sorted", 1) != 0;
    has_axis_ = info.has_attr("axis");
    axis_ = info.attr_int("axis", 0);
    return Status::Ok();
  }
  Status Compute(KernelContext& ctx) override {
    const Tensor& x = ctx.input_tensor(0);
    int axis = 0;
    int64_t outer = 1, n = x.numel(), inner = 1;
    if (has_axis_) {
      if (x.rank() == 0) return InvalidArgument(ctx.Where() + "axis given for a scalar input");
      ASSIGN_OR_RETURN(axis, NormalizeAxis(axis_, x.rank(), ctx));
      n = x.dim(axis);
      for (int d = 0; d < axis; ++d) outer *= x.dim(d);
      for (int d = axis + 1; d < x.rank(); ++d) inner *= x.dim(d);
    }
    return Dispatch(AllTypes{}, x.dtype(), [&](auto* tag) {
      TENSOR_ELEM_T;
      const T* in = x.data<T>();
      // Slice s is { in[(o * n + s) * inner + j] } in (o, j) order; compare lexicographically.
      auto cmp3 = [&](int64_t a, int64_t b) -> int {
        for (int64_t o = 0; o < outer; ++o) {
          const T* pa = in + (o * n + a) * inner;
          const T* pb = in + (o * n + b) * inner;
          for (int64_t j = 0; j < inner; ++j) {
            const auto va = Key(pa[j]), vb = Key(pb[j]);
            if (va < vb) return -1;
            if (vb < va) return 1;
          }
        }
        return 0;
      };
      std::vector<int64_t> order(static_cast<size_t>(n));
      std::iota(order.begin(), order.end(), 0);
      std::stable_sort(order.begin(), order.end(), [&](int64_t a, int64_t b) { return cmp3(a, b) < 0; });
      // Groups of equal slices, in sorted order; first element of each group is the first occurrence.
      std::vector<int64_t> group_first, group_count;
      std::vector<int64_t> group_of(static_cast<size_t>(n));
      for (size_t i = 0; i < order.size(); ++i) {
        if (i == 0 || cmp3(order[i - 1], order[i]) != 0) {
          group_first.push_back(order[i]);
          group_count.push_back(0);
        }
        group_of[static_cast<size_t>(order[i])] = static_cast<int64_t>(group_first.size()) - 1;
        ++group_count.back();
      }
      const auto u = static_cast<int64_t>(group_first.size());
      // Output position of each group.
      std::vector<int64_t> pos(static_cast<size_t>(u));
      std::iota(pos.begin(), pos.end(), 0);
      if (!sorted_) {
        std::vector<int64_t> g(static_cast<size_t>(u));
        std::iota(g.begin(), g.end(), 0);
        std::sort(g.begin(), g.end(),
                  [&](int64_t a, int64_t b) { return group_first[static_cast<size_t>(a)] < group_first[static_cast<size_t>(b)]; });
        for (int64_t i = 0; i < u; ++i) pos[static_cast<size_t>(g[static_cast<size_t>(i)])] = i;
      }
      Shape yshape;
      if (has_axis_) {
        yshape = x.shape();
        yshape[static_cast<size_t>(axis)] = u;
      } else {
        yshape = {u};
      }
      ASSIGN_OR_RETURN(Tensor * y, ctx.AllocateOutput(0, x.dtype(), yshape));
      ASSIGN_OR_RETURN(Tensor * idx, ctx.AllocateOutput(1, DType::kInt64, {u}));
      ASSIGN_OR_RETURN(Tensor * inv, ctx.AllocateOutput(2, DType::kInt64, {n}));
      ASSIGN_OR_RETURN(Tensor * cnt, ctx.AllocateOutput(3, DType::kInt64, {u}));
      T* yo = y->data<T>();
      for (int64_t g = 0; g < u; ++g) {
        const int64_t p = pos[static_cast<size_t>(g)];
        const int64_t s = group_first[static_cast<size_t>(g)];
        idx->data<int64_t>()[p] = s;
        cnt->data<int64_t>()[p] = group_count[static_cast<size_t>(g)];
        for (int64_t o = 0; o < outer; ++o) tensor::CopyN(in + (o * n + s) * inner, inner, yo + (o * u + p) * inner);
      }
      for (int64_t i = 0; i < n; ++i)
        inv->data<int64_t>()[i] = pos[static_cast<size_t>(group_of[static_cast<size_t>(i)])];
      return Status::Ok();
    });
  }

 private:
  bool sorted_ = true, has_axis_ = false;
  int64_t axis_ = 0;
};

const KernelRegistrar kTopK{{.op_type = "TopK", .since = 1, .until = 18, .factory = MakeKernel<TopKKernel>}};
const KernelRegistrar kArgMax{{.op_type = "ArgMax", .since = 1, .until = 18, .factory = MakeKernel<ArgKernel<true>>}};
const KernelRegistrar kArgMin{{.op_type = "ArgMin", .since = 1, .until = 18, .factory = MakeKernel<ArgKernel<false>>}};
const KernelRegistrar kCumSum{{.op_type = "CumSum", .since = 11, .until = 18, .factory = MakeKernel<CumSumKernel>}};
const KernelRegistrar kUnique{{.op_type = "Unique", .since = 11, .until = 18, .factory = MakeKernel<UniqueKernel>}};

}  // namespace
}  // namespace strata::cpu
