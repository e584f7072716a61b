// Slice, Tile, Pad: outputs whose every axis maps independently onto the input's (strided,
// repeated or padded views).
#include <algorithm>
#include <string>
#include <vector>

#include "kernels/cpu/tensor_util.h"

namespace strata::cpu {
namespace {

using tensor::DispatchBySize;
using tensor::PermutedCopy;

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

const KernelRegistrar kSlice{{.op_type = "Slice", .since = 1, .until = 18, .factory = MakeKernel<SliceKernel>}};
const KernelRegistrar kTile{{.op_type = "Tile", .since = 1, .until = 18, .factory = MakeKernel<TileKernel>}};
const KernelRegistrar kPad{{.op_type = "Pad", .since = 1, .until = 18, .factory = MakeKernel<PadKernel>}};

}  // namespace
}  // namespace strata::cpu
