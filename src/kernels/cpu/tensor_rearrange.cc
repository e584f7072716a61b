// DepthToSpace, SpaceToDepth, Trilu, ReverseSequence, Compress: block rearrangements and
// masked or reordered copies of rows.
#include <algorithm>
#include <vector>

#include "kernels/cpu/tensor_util.h"

namespace strata::cpu {
namespace {

using tensor::DispatchBySize;
using tensor::PermutedCopy;

// ---------------------------------------------------------------- DepthToSpace / SpaceToDepth
class DepthToSpaceKernel final : public OpKernel {
 public:
  Status Init(const KernelInfo& info) {
    if (!info.has_attr("blocksize")) return info.Error("missing 'blocksize' attribute");
    b_ = info.attr_int("blocksize", 0);
    if (b_ <= 0) return info.Error("blocksize must be positive");
    const std::string mode = info.attr_string("mode", "DCR");
    if (mode != "DCR" && mode != "CRD") return info.Error("unsupported mode '" + mode + "'");
    crd_ = mode == "CRD";
    return Status::Ok();
  }
  Status Compute(KernelContext& ctx) override {
    const Tensor& x = ctx.input_tensor(0);
    if (x.rank() != 4) return InvalidArgument(ctx.Where() + "input must be 4-D, got " + ShapeToString(x.shape()));
    const int64_t n = x.dim(0), c = x.dim(1), h = x.dim(2), w = x.dim(3), b = b_;
    if (c % (b * b) != 0)
      return InvalidArgument(ctx.Where() + "channels (" + std::to_string(c) + ") not divisible by blocksize^2");
    const int64_t c2 = c / (b * b);
    ASSIGN_OR_RETURN(Tensor * y, ctx.AllocateOutput(0, x.dtype(), {n, c2, h * b, w * b}));
    // Output viewed as [n, c2, h, b1, w, b2]; input element strides for each of these.
    const int64_t hw = h * w;
    Strides strides;
    if (crd_)  // input [n, c2, b1, b2, h, w]
      strides = {c * hw, b * b * hw, w, b * hw, 1, hw};
    else  // input [n, b1, b2, c2, h, w]
      strides = {c * hw, hw, w, b * c2 * hw, 1, c2 * hw};
    return PermutedCopy(x, 0, {n, c2, h, b, w, b}, strides, y);
  }

 private:
  int64_t b_ = 0;
  bool crd_ = false;
};

class SpaceToDepthKernel final : public OpKernel {
 public:
  Status Init(const KernelInfo& info) {
    if (!info.has_attr("blocksize")) return info.Error("missing 'blocksize' attribute");
    b_ = info.attr_int("blocksize", 0);
    if (b_ <= 0) return info.Error("blocksize must be positive");
    return Status::Ok();
  }
  Status Compute(KernelContext& ctx) override {
    const Tensor& x = ctx.input_tensor(0);
    if (x.rank() != 4) return InvalidArgument(ctx.Where() + "input must be 4-D, got " + ShapeToString(x.shape()));
    const int64_t n = x.dim(0), c = x.dim(1), h = x.dim(2), w = x.dim(3), b = b_;
    if (h % b != 0 || w % b != 0)
      return InvalidArgument(ctx.Where() + "spatial dims " + ShapeToString(x.shape()) + " not divisible by blocksize");
    const int64_t h2 = h / b, w2 = w / b;
    ASSIGN_OR_RETURN(Tensor * y, ctx.AllocateOutput(0, x.dtype(), {n, c * b * b, h2, w2}));
    // Output viewed as [n, b1, b2, c, h2, w2]; input is [n, c, h2, b1, w2, b2].
    const Strides strides = {c * h * w, w, 1, h * w, b * w, b};
    return PermutedCopy(x, 0, {n, b, b, c, h2, w2}, strides, y);
  }

 private:
  int64_t b_ = 0;
};

// ---------------------------------------------------------------- Trilu
class TriluKernel final : public OpKernel {
 public:
  Status Init(const KernelInfo& info) {
    upper_ = info.attr_int("upper", 1) != 0;
    return Status::Ok();
  }
  Status Compute(KernelContext& ctx) override {
    const Tensor& x = ctx.input_tensor(0);
    if (x.rank() < 2) return InvalidArgument(ctx.Where() + "input must have rank >= 2");
    int64_t k = 0;
    if (ctx.has_input(1)) {
      ASSIGN_OR_RETURN(Shape kv, tensor::ReadIntsInput(ctx, 1, "k"));
      if (kv.size() != 1) return InvalidArgument(ctx.Where() + "k must be a scalar");
      k = kv[0];
    }
    ASSIGN_OR_RETURN(Tensor * y, ctx.AllocateZeroedOutput(0, x.dtype(), x.shape()));
    const int64_t rows = x.dim(x.rank() - 2), cols = x.dim(x.rank() - 1);
    const int64_t mats = rows * cols == 0 ? 0 : x.numel() / (rows * cols);
    return DispatchBySize(x.dtype(), [&](auto* tag) {
      TENSOR_ELEM_T;
      const T* in = x.data<T>();
      T* o = y->data<T>();
      for (int64_t m = 0; m < mats; ++m) {
        for (int64_t i = 0; i < rows; ++i) {
          const T* src = in + (m * rows + i) * cols;
          T* dst = o + (m * rows + i) * cols;
          // Keep j >= i + k (upper) or j <= i + k (lower); the rest stay zero.
          if (upper_) {
            const int64_t j0 = std::clamp<int64_t>(i + k, 0, cols);
            tensor::CopyN(src + j0, cols - j0, dst + j0);
          } else {
            const int64_t j1 = std::clamp<int64_t>(i + k + 1, 0, cols);
            tensor::CopyN(src, j1, dst);
          }
        }
      }
      return Status::Ok();
    });
  }

 private:
  bool upper_ = true;
};

// ---------------------------------------------------------------- ReverseSequence
class ReverseSequenceKernel final : public OpKernel {
 public:
  Status Init(const KernelInfo& info) {
    batch_axis_ = info.attr_int("batch_axis", 1);
    time_axis_ = info.attr_int("time_axis", 0);
    if (!((batch_axis_ == 0 && time_axis_ == 1) || (batch_axis_ == 1 && time_axis_ == 0)))
      return info.Error("batch_axis and time_axis must be 0 and 1 in some order");
    return Status::Ok();
  }
  Status Compute(KernelContext& ctx) override {
    const Tensor& x = ctx.input_tensor(0);
    if (x.rank() < 2) return InvalidArgument(ctx.Where() + "input must have rank >= 2");
    ASSIGN_OR_RETURN(Shape lens, tensor::ReadIntsInput(ctx, 1, "sequence_lens"));
    const int64_t batch = x.dim(static_cast<int>(batch_axis_)), time = x.dim(static_cast<int>(time_axis_));
    if (static_cast<int64_t>(lens.size()) != batch)
      return InvalidArgument(ctx.Where() + "sequence_lens has " + std::to_string(lens.size()) + " entries, batch is " +
                             std::to_string(batch));
    for (int64_t l : lens)
      if (l < 0 || l > time)
        return InvalidArgument(ctx.Where() + "sequence length " + std::to_string(l) + " out of range [0, " +
                               std::to_string(time) + "]");
    ASSIGN_OR_RETURN(Tensor * y, ctx.AllocateOutput(0, x.dtype(), x.shape()));
    int64_t inner = 1;
    for (int d = 2; d < x.rank(); ++d) inner *= x.dim(d);
    const int64_t bs = batch_axis_ == 0 ? time * inner : inner;
    const int64_t ts = time_axis_ == 0 ? batch * inner : inner;
    return DispatchBySize(x.dtype(), [&](auto* tag) {
      TENSOR_ELEM_T;
      const T* in = x.data<T>();
      T* o = y->data<T>();
      for (int64_t b = 0; b < batch; ++b) {
        const int64_t len = lens[static_cast<size_t>(b)];
        for (int64_t t = 0; t < time; ++t) {
          const int64_t st = t < len ? len - 1 - t : t;
          tensor::CopyN(in + b * bs + st * ts, inner, o + b * bs + t * ts);
        }
      }
      return Status::Ok();
    });
  }

 private:
  int64_t batch_axis_ = 1, time_axis_ = 0;
};

// ---------------------------------------------------------------- Compress
class CompressKernel final : public OpKernel {
 public:
  Status Init(const KernelInfo& info) {
    has_axis_ = info.has_attr("axis");
    axis_ = info.attr_int("axis", 0);
    return Status::Ok();
  }
  Status Compute(KernelContext& ctx) override {
    const Tensor& x0 = ctx.input_tensor(0);
    const Tensor& c = ctx.input_tensor(1);
    if (c.dtype() != DType::kBool) return InvalidArgument(ctx.Where() + "condition must be bool");
    if (c.rank() != 1) return InvalidArgument(ctx.Where() + "condition must be 1-D");
    const Tensor x = has_axis_ ? x0 : x0.Reshaped({x0.numel()});
    ASSIGN_OR_RETURN(int axis, NormalizeAxis(axis_, x.rank(), ctx));
    const int64_t dim = x.dim(axis);
    const bool* cond = c.data<bool>();
    std::vector<int64_t> sel;
    for (int64_t i = 0; i < c.numel(); ++i) {
      if (!cond[i]) continue;
      if (i >= dim)
        return InvalidArgument(ctx.Where() + "condition selects index " + std::to_string(i) + " beyond axis size " +
                               std::to_string(dim));
      sel.push_back(i);
    }
    Shape out = x.shape();
    out[static_cast<size_t>(axis)] = static_cast<int64_t>(sel.size());
    ASSIGN_OR_RETURN(Tensor * y, ctx.AllocateOutput(0, x.dtype(), out));
    int64_t outer = 1, inner = 1;
    for (int d = 0; d < axis; ++d) outer *= x.dim(d);
    for (int d = axis + 1; d < x.rank(); ++d) inner *= x.dim(d);
    return DispatchBySize(x.dtype(), [&](auto* tag) {
      TENSOR_ELEM_T;
      const T* in = x.data<T>();
      T* o = y->data<T>();
      for (int64_t b = 0; b < outer; ++b)
        for (int64_t s : sel) {
          tensor::CopyN(in + (b * dim + s) * inner, inner, o);
          o += inner;
        }
      return Status::Ok();
    });
  }

 private:
  bool has_axis_ = false;
  int64_t axis_ = 0;
};

const KernelRegistrar kDepthToSpace{
    {.op_type = "DepthToSpace", .since = 1, .until = 18, .factory = MakeKernel<DepthToSpaceKernel>}};
const KernelRegistrar kSpaceToDepth{
    {.op_type = "SpaceToDepth", .since = 1, .until = 18, .factory = MakeKernel<SpaceToDepthKernel>}};
const KernelRegistrar kTrilu{{.op_type = "Trilu", .since = 14, .until = 18, .factory = MakeKernel<TriluKernel>}};
const KernelRegistrar kReverseSequence{
    {.op_type = "ReverseSequence", .since = 10, .until = 18, .factory = MakeKernel<ReverseSequenceKernel>}};
const KernelRegistrar kCompress{{.op_type = "Compress", .since = 9, .until = 18, .factory = MakeKernel<CompressKernel>}};

}  // namespace
}  // namespace strata::cpu
