// Transpose, Concat, Split: whole-tensor permutations and joins/cuts along one axis.
#include <algorithm>

#include "kernels/cpu/tensor_util.h"

namespace strata::cpu {
namespace {

using tensor::DispatchBySize;
using tensor::PermutedCopy;

// ---------------------------------------------------------------- Transpose
class TransposeKernel final : public OpKernel {
 public:
  Status Init(const KernelInfo& info) {
    has_perm_ = info.has_attr("perm");
    perm_ = info.attr_ints("perm");
    return Status::Ok();
  }
  Status Compute(KernelContext& ctx) override {
    const Tensor& x = ctx.input_tensor(0);
    const int r = x.rank();
    Shape perm = perm_;
    if (!has_perm_) {
      perm.resize(static_cast<size_t>(r));
      for (int i = 0; i < r; ++i) perm[static_cast<size_t>(i)] = r - 1 - i;
    }
    if (static_cast<int>(perm.size()) != r)
      return InvalidArgument(ctx.Where() + "perm " + ShapeToString(perm) + " does not match input rank " + std::to_string(r));
    Shape seen(static_cast<size_t>(r), 0);
    for (int64_t& p : perm) {
      if (p < 0) p += r;
      if (p < 0 || p >= r || seen[static_cast<size_t>(p)])
        return InvalidArgument(ctx.Where() + "perm " + ShapeToString(perm_) + " is not a permutation");
      seen[static_cast<size_t>(p)] = 1;
    }
    const Strides cs = ContiguousStrides(x.shape());
    Shape out(static_cast<size_t>(r));
    Strides strides(static_cast<size_t>(r));
    for (size_t i = 0; i < static_cast<size_t>(r); ++i) {
      out[i] = x.shape()[static_cast<size_t>(perm[i])];
      strides[i] = cs[static_cast<size_t>(perm[i])];
    }
    ASSIGN_OR_RETURN(Tensor * y, ctx.AllocateOutput(0, x.dtype(), out));
    return PermutedCopy(x, 0, out, strides, y);
  }

 private:
  bool has_perm_ = false;
  Shape perm_;
};

// ---------------------------------------------------------------- Concat
class ConcatKernel final : public OpKernel {
 public:
  Status Init(const KernelInfo& info) {
    if (info.opset() >= 4 && !info.has_attr("axis")) return info.Error("Concat needs the 'axis' attribute");
    axis_ = info.attr_int("axis", 1);
    return Status::Ok();
  }
  Status Compute(KernelContext& ctx) override {
    const int n = ctx.num_inputs();
    CHECK_ARG(n >= 1 && ctx.has_input(0), ctx.Where() + "needs at least one input");
    const Tensor& x0 = ctx.input_tensor(0);
    const int r = x0.rank();
    if (r == 0) return InvalidArgument(ctx.Where() + "cannot concatenate scalars");
    ASSIGN_OR_RETURN(int axis, NormalizeAxis(axis_, r, ctx));
    Shape out = x0.shape();
    out[static_cast<size_t>(axis)] = 0;
    for (int i = 0; i < n; ++i) {
      CHECK_ARG(ctx.has_input(i), ctx.Where() + "missing input " + std::to_string(i));
      const Tensor& t = ctx.input_tensor(i);
      if (t.dtype() != x0.dtype()) return InvalidArgument(ctx.Where() + "inputs have different dtypes");
      bool ok = t.rank() == r;
      for (int d = 0; ok && d < r; ++d) ok = d == axis || t.dim(d) == x0.dim(d);
      if (!ok)
        return InvalidArgument(ctx.Where() + "input " + std::to_string(i) + " has shape " + ShapeToString(t.shape()) +
                               ", incompatible with " + ShapeToString(x0.shape()) + " on axis " + std::to_string(axis));
      out[static_cast<size_t>(axis)] += t.dim(axis);
    }
    ASSIGN_OR_RETURN(Tensor * y, ctx.AllocateOutput(0, x0.dtype(), out));
    int64_t outer = 1, inner = 1;
    for (int d = 0; d < axis; ++d) outer *= out[static_cast<size_t>(d)];
    for (int d = axis + 1; d < r; ++d) inner *= out[static_cast<size_t>(d)];
    const int64_t out_row = out[static_cast<size_t>(axis)] * inner;
    return DispatchBySize(x0.dtype(), [&](auto* tag) {
      TENSOR_ELEM_T;
      T* o = y->data<T>();
      int64_t col = 0;
      for (int i = 0; i < n; ++i) {
        const Tensor& t = ctx.input_tensor(i);
        const int64_t row = t.dim(axis) * inner;
        const T* src = t.data<T>();
        for (int64_t b = 0; b < outer; ++b) tensor::CopyN(src + b * row, row, o + b * out_row + col);
        col += row;
      }
      return Status::Ok();
    });
  }

 private:
  int64_t axis_ = 1;
};

// ---------------------------------------------------------------- Split
class SplitKernel final : public OpKernel {
 public:
  Status Init(const KernelInfo& info) {
    opset_ = info.opset();
    axis_ = info.attr_int("axis", 0);
    if (opset_ < 13) {
      has_split_attr_ = info.has_attr("split");
      split_attr_ = info.attr_ints("split");
    }
    if (opset_ >= 18) {
      has_num_outputs_ = info.has_attr("num_outputs");
      num_outputs_ = info.attr_int("num_outputs", 0);
      if (has_num_outputs_ && num_outputs_ != info.num_outputs())
        return info.Error("num_outputs (" + std::to_string(num_outputs_) + ") does not match the node's " +
                          std::to_string(info.num_outputs()) + " outputs");
    }
    return Status::Ok();
  }
  Status Compute(KernelContext& ctx) override {
    const Tensor& x = ctx.input_tensor(0);
    const int r = x.rank();
    ASSIGN_OR_RETURN(int axis, NormalizeAxis(axis_, r, ctx));
    const int64_t dim = x.dim(axis);
    const int nout = ctx.num_outputs();
    ASSIGN_OR_RETURN(const Shape split, SplitSizes(ctx, axis, dim));
    int64_t outer = 1, inner = 1;
    for (int d = 0; d < axis; ++d) outer *= x.dim(d);
    for (int d = axis + 1; d < r; ++d) inner *= x.dim(d);
    const int64_t in_row = dim * inner;
    int64_t col = 0;
    for (int i = 0; i < nout; ++i) {
      Shape s = x.shape();
      s[static_cast<size_t>(axis)] = split[static_cast<size_t>(i)];
      const int64_t row = split[static_cast<size_t>(i)] * inner;
      if (ctx.output_requested(i)) {
        ASSIGN_OR_RETURN(Tensor * y, ctx.AllocateOutput(i, x.dtype(), s));
        RETURN_IF_ERROR(DispatchBySize(x.dtype(), [&](auto* tag) {
          TENSOR_ELEM_T;
          const T* src = x.data<T>();
          T* o = y->data<T>();
          for (int64_t b = 0; b < outer; ++b) tensor::CopyN(src + b * in_row + col, row, o + b * row);
          return Status::Ok();
        }));
      }
      col += row;
    }
    return Status::Ok();
  }

 private:
  // The output sizes along the axis: the split input or attribute, else equal parts.
  Result<Shape> SplitSizes(const KernelContext& ctx, int axis, int64_t dim) const {
    const int nout = ctx.num_outputs();
    Shape split;
    bool has_split = false;
    if ((opset_ == 1 || opset_ >= 13) && ctx.has_input(1)) {
      ASSIGN_OR_RETURN(split, tensor::ReadIntsInput(ctx, 1, "split"));
      has_split = true;
    } else if (has_split_attr_) {
      split = split_attr_;
      has_split = true;
    }
    if (has_split) {
      if (static_cast<int>(split.size()) != nout)
        return InvalidArgument(ctx.Where() + "split " + ShapeToString(split) + " has " + std::to_string(split.size()) +
                               " entries but the node has " + std::to_string(nout) + " outputs");
      int64_t sum = 0;
      for (int64_t s : split) {
        if (s < 0) return InvalidArgument(ctx.Where() + "negative split size in " + ShapeToString(split));
        sum += s;
      }
      if (sum != dim)
        return InvalidArgument(ctx.Where() + "split " + ShapeToString(split) + " sums to " + std::to_string(sum) +
                               " but axis " + std::to_string(axis) + " has size " + std::to_string(dim));
    } else {
      split.resize(static_cast<size_t>(nout));
      if (opset_ >= 18) {
        const int64_t chunk = (dim + nout - 1) / nout;
        int64_t left = dim;
        for (auto& s : split) {
          s = std::min(chunk, left);
          left -= s;
        }
      } else {
        if (dim % nout != 0)
          return InvalidArgument(ctx.Where() + "axis of size " + std::to_string(dim) + " cannot be split evenly into " +
                                 std::to_string(nout) + " outputs");
        for (auto& s : split) s = dim / nout;
      }
    }
    return split;
  }

  int64_t opset_ = 0, axis_ = 0;
  bool has_split_attr_ = false, has_num_outputs_ = false;
  Shape split_attr_;
  int64_t num_outputs_ = 0;
};

const KernelRegistrar kTranspose{
    {.op_type = "Transpose", .since = 1, .until = 18, .factory = MakeKernel<TransposeKernel>}};
const KernelRegistrar kConcat{{.op_type = "Concat", .since = 1, .until = 18, .factory = MakeKernel<ConcatKernel>}};
const KernelRegistrar kSplit{{.op_type = "Split", .since = 1, .until = 18, .factory = MakeKernel<SplitKernel>}};

}  // namespace
}  // namespace strata::cpu
