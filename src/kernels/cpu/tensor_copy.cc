// Data-movement ops: Transpose, Concat, Split, Slice, Tile, Pad, DepthToSpace, SpaceToDepth, Trilu,
// ReverseSequence, Compress.
#include <algorithm>
#include <cmath>

#include "kernels/cpu/tensor_util.h"

namespace strata::cpu {
namespace {

using tensor::DispatchBySize;
using tensor::StridedCopy;

#define TENSOR_ELEM_T using T = std::remove_pointer_t<decltype(tag)>

// Copies `in` into a freshly allocated output with a permuted/strided view described by out_shape and in_strides.
Status PermutedCopy(const Tensor& in, int64_t base, Shape shape, Strides strides, Tensor* out) {
  tensor::CoalesceDims(shape, strides);
  return DispatchBySize(in.dtype(), [&](auto* tag) {
    TENSOR_ELEM_T;
    StridedCopy(in.data<T>(), base, shape, strides, out->data<T>());
    return Status::Ok();
  });
}

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
  int64_t opset_ = 0, axis_ = 0;
  bool has_split_attr_ = false, has_num_outputs_ = false;
  Shape split_attr_;
  int64_t num_outputs_ = 0;
};

// ---------------------------------------------------------------- Slice
class SliceKernel final : public OpKernel {
 public:
  Status Init(const KernelInfo& info) {
    opset_ = info.opset();
    if (opset_ < 10) {
      if (!info.has_attr("starts") || !info.has_attr("ends")) return info.Error("Slice-1 needs 'starts' and 'ends'");
      starts_ = info.attr_ints("starts");
      ends_ = info.attr_ints("ends");
      has_axes_ = info.has_attr("axes");
      axes_ = info.attr_ints("axes");
    }
    return Status::Ok();
  }
  Status Compute(KernelContext& ctx) override {
    const Tensor& x = ctx.input_tensor(0);
    const int r = x.rank();
    Shape starts = starts_, ends = ends_, axes = axes_, steps;
    bool has_axes = has_axes_;
    if (opset_ >= 10) {
      CHECK_ARG(ctx.has_input(1) && ctx.has_input(2), ctx.Where() + "missing starts/ends");
      ASSIGN_OR_RETURN(starts, tensor::ReadIntsInput(ctx, 1, "starts"));
      ASSIGN_OR_RETURN(ends, tensor::ReadIntsInput(ctx, 2, "ends"));
      if (ctx.has_input(3)) {
        ASSIGN_OR_RETURN(axes, tensor::ReadIntsInput(ctx, 3, "axes"));
        has_axes = true;
      }
      if (ctx.has_input(4)) {
        ASSIGN_OR_RETURN(steps, tensor::ReadIntsInput(ctx, 4, "steps"));
      }
    }
    const size_t n = starts.size();
    if (ends.size() != n) return InvalidArgument(ctx.Where() + "starts and ends differ in length");
    if (!has_axes) {
      axes.resize(n);
      for (size_t i = 0; i < n; ++i) axes[i] = static_cast<int64_t>(i);
    }
    if (axes.size() != n) return InvalidArgument(ctx.Where() + "axes and starts differ in length");
    if (steps.empty()) steps.assign(n, 1);
    if (steps.size() != n) return InvalidArgument(ctx.Where() + "steps and starts differ in length");

    const Strides cs = ContiguousStrides(x.shape());
    Shape out = x.shape();
    Strides strides = cs;
    Shape seen(static_cast<size_t>(r), 0);
    int64_t base = 0;
    for (size_t i = 0; i < n; ++i) {
      ASSIGN_OR_RETURN(int ax, NormalizeAxis(axes[i], r, ctx));
      const auto ua = static_cast<size_t>(ax);
      if (seen[ua]) return InvalidArgument(ctx.Where() + "duplicate axis " + std::to_string(axes[i]));
      seen[ua] = 1;
      const int64_t dim = x.dim(ax), step = steps[i];
      if (step == 0) return InvalidArgument(ctx.Where() + "step must not be 0");
      int64_t s = starts[i], e = ends[i];
      if (s < 0) s += dim;
      if (e < 0) e += dim;
      int64_t len;
      if (step > 0) {
        s = std::clamp<int64_t>(s, 0, dim);
        e = std::clamp<int64_t>(e, 0, dim);
        len = e > s ? (e - s + step - 1) / step : 0;
      } else {
        s = std::clamp<int64_t>(s, 0, dim - 1);
        e = std::clamp<int64_t>(e, -1, dim - 1);
        len = s > e ? (s - e + (-step) - 1) / (-step) : 0;
      }
      out[ua] = len;
      if (len > 0) base += s * cs[ua];
      strides[ua] = cs[ua] * step;
    }
    ASSIGN_OR_RETURN(Tensor * y, ctx.AllocateOutput(0, x.dtype(), out));
    if (y->numel() == 0) return Status::Ok();
    return PermutedCopy(x, base, out, strides, y);
  }

 private:
  int64_t opset_ = 0;
  bool has_axes_ = false;
  Shape starts_, ends_, axes_;
};

// ---------------------------------------------------------------- Tile
class TileKernel final : public OpKernel {
 public:
  Status Init(const KernelInfo& info) {
    opset_ = info.opset();
    return Status::Ok();
  }
  Status Compute(KernelContext& ctx) override {
    const Tensor& x = ctx.input_tensor(0);
    const int r = x.rank();
    Shape reps(static_cast<size_t>(r), 1);
    if (opset_ < 6) {
      CHECK_ARG(ctx.has_input(1) && ctx.has_input(2), ctx.Where() + "Tile-1 needs 'tiles' and 'axis' inputs");
      // Tile-1: 'tiles' and 'axis' are scalars of the data type.
      const Tensor& tiles = ctx.input_tensor(1);
      const Tensor& ax = ctx.input_tensor(2);
      if (tiles.numel() != 1 || ax.numel() != 1 || tiles.dtype() == DType::kString || ax.dtype() == DType::kString)
        return InvalidArgument(ctx.Where() + "tiles and axis must be numeric scalars");
      ASSIGN_OR_RETURN(int a, NormalizeAxis(ax.GetAsInt64(0), r, ctx));
      reps[static_cast<size_t>(a)] = tiles.GetAsInt64(0);
    } else {
      ASSIGN_OR_RETURN(reps, tensor::ReadIntsInput(ctx, 1, "repeats"));
      if (static_cast<int>(reps.size()) != r)
        return InvalidArgument(ctx.Where() + "repeats " + ShapeToString(reps) + " must have one entry per input dimension (" +
                               std::to_string(r) + ")");
    }
    Shape out(static_cast<size_t>(r));
    Shape view;
    Strides strides;
    const Strides cs = ContiguousStrides(x.shape());
    for (size_t i = 0; i < static_cast<size_t>(r); ++i) {
      if (reps[i] < 0) return InvalidArgument(ctx.Where() + "negative repeat count in " + ShapeToString(reps));
      out[i] = x.shape()[i] * reps[i];
      view.push_back(reps[i]);
      strides.push_back(0);
      view.push_back(x.shape()[i]);
      strides.push_back(cs[i]);
    }
    ASSIGN_OR_RETURN(Tensor * y, ctx.AllocateOutput(0, x.dtype(), out));
    if (y->numel() == 0) return Status::Ok();
    return PermutedCopy(x, 0, view, strides, y);
  }

 private:
  int64_t opset_ = 0;
};

// ---------------------------------------------------------------- Pad
enum class PadMode { kConstant, kReflect, kEdge, kWrap };

class PadKernel final : public OpKernel {
 public:
  Status Init(const KernelInfo& info) {
    opset_ = info.opset();
    const std::string mode = info.attr_string("mode", "constant");
    if (mode == "constant") mode_ = PadMode::kConstant;
    else if (mode == "reflect") mode_ = PadMode::kReflect;
    else if (mode == "edge") mode_ = PadMode::kEdge;
    else if (mode == "wrap") mode_ = PadMode::kWrap;
    else return info.Error("unsupported pad mode '" + mode + "'");
    if (opset_ < 11) {
      const char* name = opset_ < 2 ? "paddings" : "pads";
      if (!info.has_attr(name)) return info.Error(std::string("Pad needs the '") + name + "' attribute");
      pads_attr_ = info.attr_ints(name);
      value_attr_ = info.attr_float("value", 0.0f);
    }
    return Status::Ok();
  }
  Status Compute(KernelContext& ctx) override {
    const Tensor& x = ctx.input_tensor(0);
    const int r = x.rank();
    Shape pads = pads_attr_;
    Shape axes;
    if (opset_ >= 11) {
      CHECK_ARG(ctx.has_input(1), ctx.Where() + "missing 'pads' input");
      ASSIGN_OR_RETURN(pads, tensor::ReadIntsInput(ctx, 1, "pads"));
      if (opset_ >= 18 && ctx.has_input(3)) {
        ASSIGN_OR_RETURN(axes, tensor::ReadIntsInput(ctx, 3, "axes"));
      }
    }
    Shape begin(static_cast<size_t>(r), 0), end(static_cast<size_t>(r), 0);
    if (!axes.empty()) {
      if (pads.size() != 2 * axes.size())
        return InvalidArgument(ctx.Where() + "pads " + ShapeToString(pads) + " must have 2 entries per axis in " + ShapeToString(axes));
      for (size_t i = 0; i < axes.size(); ++i) {
        ASSIGN_OR_RETURN(int a, NormalizeAxis(axes[i], r, ctx));
        begin[static_cast<size_t>(a)] = pads[i];
        end[static_cast<size_t>(a)] = pads[i + axes.size()];
      }
    } else {
      if (pads.size() != 2 * static_cast<size_t>(r))
        return InvalidArgument(ctx.Where() + "pads " + ShapeToString(pads) + " must have 2 * rank (" + std::to_string(2 * r) +
                               ") entries");
      for (size_t i = 0; i < static_cast<size_t>(r); ++i) {
        begin[i] = pads[i];
        end[i] = pads[i + static_cast<size_t>(r)];
      }
    }
    Shape out(static_cast<size_t>(r));
    // Per-dimension map from output index to input index (-1: constant fill).
    std::vector<std::vector<int64_t>> maps(static_cast<size_t>(r));
    for (size_t d = 0; d < static_cast<size_t>(r); ++d) {
      const int64_t dim = x.shape()[d];
      out[d] = dim + begin[d] + end[d];
      if (out[d] < 0)
        return InvalidArgument(ctx.Where() + "pads " + ShapeToString(pads) + " crop more than the input shape " +
                               ShapeToString(x.shape()));
      if (mode_ != PadMode::kConstant && dim == 0 && out[d] > 0)
        return InvalidArgument(ctx.Where() + "cannot pad an empty dimension in non-constant mode");
      auto& m = maps[d];
      m.resize(static_cast<size_t>(out[d]));
      for (int64_t o = 0; o < out[d]; ++o) {
        int64_t i = o - begin[d];
        if (i < 0 || i >= dim) {
          switch (mode_) {
            case PadMode::kConstant: i = -1; break;
            case PadMode::kEdge: i = std::clamp<int64_t>(i, 0, dim - 1); break;
            case PadMode::kWrap: i = ((i % dim) + dim) % dim; break;
            case PadMode::kReflect:
              if (dim == 1) {
                i = 0;
              } else {
                const int64_t period = 2 * (dim - 1);
                i = ((i % period) + period) % period;
                if (i >= dim) i = period - i;
              }
              break;
          }
        }
        m[static_cast<size_t>(o)] = i;
      }
    }
    ASSIGN_OR_RETURN(Tensor * y, ctx.AllocateOutput(0, x.dtype(), out));
    if (y->numel() == 0) return Status::Ok();
    const Strides cs = ContiguousStrides(x.shape());
    return DispatchBySize(x.dtype(), [&](auto* tag) {
      TENSOR_ELEM_T;
      T value{};
      if constexpr (!std::is_same_v<T, std::string>) {
        if (mode_ == PadMode::kConstant) {
          if (opset_ >= 11) {
            if (ctx.has_input(2)) {
              const Tensor& v = ctx.input_tensor(2);
              if (v.numel() > 1) return InvalidArgument(ctx.Where() + "constant_value must be a scalar");
              if (v.numel() == 1) {
                if (v.dtype() != x.dtype()) return InvalidArgument(ctx.Where() + "constant_value dtype differs from data");
                std::memcpy(&value, v.raw(), sizeof(T));
              }
            }
          } else {
            RETURN_IF_ERROR(Dispatch(NumericTypes{}, x.dtype(), [&](auto* tag2) {
              using U = std::remove_pointer_t<decltype(tag2)>;
              if constexpr (sizeof(U) == sizeof(T)) {
                const U u = CastValue<U>(value_attr_);
                std::memcpy(&value, &u, sizeof(T));
              }
              return Status::Ok();
            }));
          }
        }
      } else {
        if (mode_ == PadMode::kConstant && opset_ >= 11 && ctx.has_input(2) && ctx.input_tensor(2).numel() == 1)
          value = ctx.input_tensor(2).data<std::string>()[0];
      }
      const T* in = x.data<T>();
      T* o = y->data<T>();
      if (r == 0) {
        o[0] = in[0];
        return Status::Ok();
      }
      const size_t last = static_cast<size_t>(r - 1);
      const int64_t inner = out[last];
      const int64_t* im = maps[last].data();
      Shape idx(static_cast<size_t>(r), 0);
      const int64_t total = y->numel();
      for (int64_t pos = 0; pos < total; pos += inner) {
        int64_t off = 0;
        bool fill = false;
        for (size_t d = 0; d < last; ++d) {
          const int64_t i = maps[d][static_cast<size_t>(idx[d])];
          if (i < 0) { fill = true; break; }
          off += i * cs[d];
        }
        T* dst = o + pos;
        if (fill) {
          for (int64_t k = 0; k < inner; ++k) dst[k] = value;
        } else {
          const T* src = in + off;
          for (int64_t k = 0; k < inner; ++k) dst[k] = im[k] < 0 ? value : src[im[k]];
        }
        for (int d = r - 2; d >= 0; --d) {
          const auto ud = static_cast<size_t>(d);
          if (++idx[ud] < out[ud]) break;
          idx[ud] = 0;
        }
      }
      return Status::Ok();
    });
  }

 private:
  int64_t opset_ = 0;
  PadMode mode_ = PadMode::kConstant;
  Shape pads_attr_;
  float value_attr_ = 0.0f;
};

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

const KernelRegistrar kTranspose{
    {.op_type = "Transpose", .since = 1, .until = 18, .factory = MakeKernel<TransposeKernel>}};
const KernelRegistrar kConcat{{.op_type = "Concat", .since = 1, .until = 18, .factory = MakeKernel<ConcatKernel>}};
const KernelRegistrar kSplit{{.op_type = "Split", .since = 1, .until = 18, .factory = MakeKernel<SplitKernel>}};
const KernelRegistrar kSlice{{.op_type = "Slice", .since = 1, .until = 18, .factory = MakeKernel<SliceKernel>}};
const KernelRegistrar kTile{{.op_type = "Tile", .since = 1, .until = 18, .factory = MakeKernel<TileKernel>}};
const KernelRegistrar kPad{{.op_type = "Pad", .since = 1, .until = 18, .factory = MakeKernel<PadKernel>}};
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
