// Shape-only and generator ops: Reshape, Flatten, Squeeze, Unsqueeze, Shape, Size, Expand,
// ConstantOfShape, EyeLike, Range, Dropout.
#include <algorithm>
#include <cmath>
#include <random>

#include "kernels/cpu/tensor_util.h"

namespace strata::cpu {
namespace {


// ---------------------------------------------------------------- Reshape
class ReshapeKernel final : public OpKernel {
 public:
  Status Init(const KernelInfo& info) {
    opset_ = info.opset();
    allowzero_ = info.attr_int("allowzero", 0) != 0;
    if (opset_ < 5) {
      if (!info.has_attr("shape")) return info.Error("Reshape-1 needs the 'shape' attribute");
      shape_attr_ = info.attr_ints("shape");
    }
    return Status::Ok();
  }
  Status Compute(KernelContext& ctx) override {
    const Tensor& x = ctx.input_tensor(0);
    Shape req;
    if (opset_ < 5) {
      req = shape_attr_;
    } else {
      CHECK_ARG(ctx.has_input(1), ctx.Where() + "missing 'shape' input");
      ASSIGN_OR_RETURN(req, tensor::ReadIntsInput(ctx, 1, "shape"));
    }
    Shape out(req.size());
    int infer = -1;
    int64_t known = 1;
    bool has_zero = false;
    for (size_t i = 0; i < req.size(); ++i) {
      int64_t d = req[i];
      if (d == -1) {
        if (infer >= 0) return InvalidArgument(ctx.Where() + "shape " + ShapeToString(req) + " has more than one -1");
        infer = static_cast<int>(i);
        continue;
      }
      if (d < -1) return InvalidArgument(ctx.Where() + "invalid dimension " + std::to_string(d) + " in shape " + ShapeToString(req));
      if (d == 0 && !allowzero_) {
        if (i >= static_cast<size_t>(x.rank()))
          return InvalidArgument(ctx.Where() + "shape " + ShapeToString(req) + " copies dimension " + std::to_string(i) +
                                 " (0) but the input has rank " + std::to_string(x.rank()));
        d = x.dim(static_cast<int>(i));
      }
      if (d == 0) has_zero = true;
      out[i] = d;
      known *= d;
    }
    if (infer >= 0) {
      if (allowzero_ && has_zero)
        return InvalidArgument(ctx.Where() + "shape " + ShapeToString(req) + " has both 0 and -1 with allowzero=1");
      if (known == 0) {
        if (x.numel() != 0)
          return InvalidArgument(ctx.Where() + "cannot infer -1 in shape " + ShapeToString(req) + " for input of shape " +
                                 ShapeToString(x.shape()));
        out[static_cast<size_t>(infer)] = 0;
      } else {
        if (x.numel() % known != 0)
          return InvalidArgument(ctx.Where() + "cannot reshape " + ShapeToString(x.shape()) + " to " + ShapeToString(req));
        out[static_cast<size_t>(infer)] = x.numel() / known;
      }
    }
    if (NumElements(out) != x.numel())
      return InvalidArgument(ctx.Where() + "cannot reshape " + ShapeToString(x.shape()) + " (" +
                             std::to_string(x.numel()) + " elements) to " + ShapeToString(out));
    ctx.SetOutput(0, x.Reshaped(std::move(out)));
    return Status::Ok();
  }

 private:
  int64_t opset_ = 0;
  bool allowzero_ = false;
  Shape shape_attr_;
};

// ---------------------------------------------------------------- Flatten
class FlattenKernel final : public OpKernel {
 public:
  Status Init(const KernelInfo& info) {
    axis_ = info.attr_int("axis", 1);
    opset_ = info.opset();
    return Status::Ok();
  }
  Status Compute(KernelContext& ctx) override {
    const Tensor& x = ctx.input_tensor(0);
    int64_t axis = axis_;
    const int r = x.rank();
    if (axis < -r || axis > r || (opset_ < 11 && axis < 0))
      return InvalidArgument(ctx.Where() + "axis " + std::to_string(axis_) + " is out of range for rank " + std::to_string(r));
    if (axis < 0) axis += r;
    int64_t a = 1, b = 1;
    for (int i = 0; i < r; ++i) (i < axis ? a : b) *= x.dim(i);
    ctx.SetOutput(0, x.Reshaped({a, b}));
    return Status::Ok();
  }

 private:
  int64_t axis_ = 1;
  int64_t opset_ = 0;
};

// ---------------------------------------------------------------- Squeeze / Unsqueeze
class SqueezeKernel final : public OpKernel {
 public:
  Status Init(const KernelInfo& info) {
    opset_ = info.opset();
    if (opset_ < 13) {
      has_axes_ = info.has_attr("axes");
      axes_ = info.attr_ints("axes");
    }
    return Status::Ok();
  }
  Status Compute(KernelContext& ctx) override {
    const Tensor& x = ctx.input_tensor(0);
    Shape axes = axes_;
    bool has = has_axes_;
    if (opset_ >= 13 && ctx.has_input(1)) {
      ASSIGN_OR_RETURN(axes, tensor::ReadIntsInput(ctx, 1, "axes"));
      has = true;
    }
    const int r = x.rank();
    Shape drop(static_cast<size_t>(r), 0);
    if (!has) {
      for (int i = 0; i < r; ++i) drop[static_cast<size_t>(i)] = x.dim(i) == 1 ? 1 : 0;
    } else {
      for (int64_t a : axes) {
        ASSIGN_OR_RETURN(int ax, NormalizeAxis(a, r, ctx));
        if (x.dim(ax) != 1)
          return InvalidArgument(ctx.Where() + "cannot squeeze axis " + std::to_string(a) + " of size " +
                                 std::to_string(x.dim(ax)) + " (shape " + ShapeToString(x.shape()) + ")");
        drop[static_cast<size_t>(ax)] = 1;
      }
    }
    Shape out;
    for (int i = 0; i < r; ++i)
      if (!drop[static_cast<size_t>(i)]) out.push_back(x.dim(i));
    ctx.SetOutput(0, x.Reshaped(std::move(out)));
    return Status::Ok();
  }

 private:
  int64_t opset_ = 0;
  bool has_axes_ = false;
  Shape axes_;
};

class UnsqueezeKernel final : public OpKernel {
 public:
  Status Init(const KernelInfo& info) {
    opset_ = info.opset();
    if (opset_ < 13) {
      if (!info.has_attr("axes")) return info.Error("Unsqueeze needs the 'axes' attribute");
      axes_ = info.attr_ints("axes");
    }
    return Status::Ok();
  }
  Status Compute(KernelContext& ctx) override {
    const Tensor& x = ctx.input_tensor(0);
    Shape axes = axes_;
    if (opset_ >= 13) {
      CHECK_ARG(ctx.has_input(1), ctx.Where() + "missing 'axes' input");
      ASSIGN_OR_RETURN(axes, tensor::ReadIntsInput(ctx, 1, "axes"));
    }
    const int out_rank = x.rank() + static_cast<int>(axes.size());
    Shape ins(static_cast<size_t>(out_rank), 0);
    for (int64_t a : axes) {
      ASSIGN_OR_RETURN(int ax, NormalizeAxis(a, out_rank, ctx));
      if (ins[static_cast<size_t>(ax)]) return InvalidArgument(ctx.Where() + "duplicate axis " + std::to_string(a));
      ins[static_cast<size_t>(ax)] = 1;
    }
    Shape out(static_cast<size_t>(out_rank));
    int j = 0;
    for (int i = 0; i < out_rank; ++i) out[static_cast<size_t>(i)] = ins[static_cast<size_t>(i)] ? 1 : x.dim(j++);
    ctx.SetOutput(0, x.Reshaped(std::move(out)));
    return Status::Ok();
  }

 private:
  int64_t opset_ = 0;
  Shape axes_;
};

// ---------------------------------------------------------------- Shape / Size
class ShapeKernel final : public OpKernel {
 public:
  Status Init(const KernelInfo& info) {
    if (info.opset() >= 15) {
      start_ = info.attr_int("start", 0);
      has_end_ = info.has_attr("end");
      end_ = info.attr_int("end", 0);
    }
    return Status::Ok();
  }
  Status Compute(KernelContext& ctx) override {
    const Tensor& x = ctx.input_tensor(0);
    const int64_t r = x.rank();
    auto clamp = [r](int64_t v) {
      if (v < 0) v += r;
      return std::clamp<int64_t>(v, 0, r);
    };
    const int64_t s = clamp(start_);
    const int64_t e = has_end_ ? clamp(end_) : r;
    const int64_t n = std::max<int64_t>(e - s, 0);
    ASSIGN_OR_RETURN(Tensor * y, ctx.AllocateOutput(0, DType::kInt64, {n}));
    for (int64_t i = 0; i < n; ++i) y->data<int64_t>()[i] = x.dim(static_cast<int>(s + i));
    return Status::Ok();
  }

 private:
  int64_t start_ = 0, end_ = 0;
  bool has_end_ = false;
};

class SizeKernel final : public OpKernel {
 public:
  Status Init(const KernelInfo&) { return Status::Ok(); }
  Status Compute(KernelContext& ctx) override {
    ASSIGN_OR_RETURN(Tensor * y, ctx.AllocateOutput(0, DType::kInt64, {}));
    y->data<int64_t>()[0] = ctx.input_tensor(0).numel();
    return Status::Ok();
  }
};

// ---------------------------------------------------------------- Expand
class ExpandKernel final : public OpKernel {
 public:
  Status Init(const KernelInfo&) { return Status::Ok(); }
  Status Compute(KernelContext& ctx) override {
    const Tensor& x = ctx.input_tensor(0);
    ASSIGN_OR_RETURN(Shape shape, tensor::ReadIntsInput(ctx, 1, "shape"));
    for (int64_t d : shape)
      if (d < 0) return InvalidArgument(ctx.Where() + "negative dimension in shape " + ShapeToString(shape));
    auto bs = BroadcastShapes(x.shape(), shape);
    if (!bs.ok()) return bs.status().WithContext(ctx.Where());
    Shape out = *bs;
    if (out == x.shape()) {
      ctx.SetOutput(0, x);
      return Status::Ok();
    }
    ASSIGN_OR_RETURN(Tensor * y, ctx.AllocateOutput(0, x.dtype(), out));
    Strides strides = BroadcastStrides(x.shape(), out);
    tensor::CoalesceDims(out, strides);
    return tensor::DispatchBySize(x.dtype(), [&](auto* tag) {
      using T = std::remove_pointer_t<decltype(tag)>;
      tensor::StridedCopy(x.data<T>(), 0, out, strides, y->data<T>());
      return Status::Ok();
    });
  }
};

// ---------------------------------------------------------------- ConstantOfShape
class ConstantOfShapeKernel final : public OpKernel {
 public:
  Status Init(const KernelInfo& info) {
    if (const ir::Attribute* a = info.attr("value")) {
      if (a->t.numel() != 1) return info.Error("'value' must hold exactly one element");
      value_ = a->t;
    } else {
      value_ = Tensor::Scalar<float>(0.0f);
    }
    return Status::Ok();
  }
  Status Compute(KernelContext& ctx) override {
    ASSIGN_OR_RETURN(Shape shape, tensor::ReadIntsInput(ctx, 0, "input"));
    for (int64_t d : shape)
      if (d < 0) return InvalidArgument(ctx.Where() + "negative dimension in shape " + ShapeToString(shape));
    ASSIGN_OR_RETURN(Tensor * y, ctx.AllocateOutput(0, value_.dtype(), shape));
    return tensor::DispatchBySize(value_.dtype(), [&](auto* tag) {
      using T = std::remove_pointer_t<decltype(tag)>;
      const T v = value_.data<T>()[0];
      T* o = y->data<T>();
      const int64_t n = y->numel();
      for (int64_t i = 0; i < n; ++i) o[i] = v;
      return Status::Ok();
    });
  }

 private:
  Tensor value_;
};

// ---------------------------------------------------------------- EyeLike
class EyeLikeKernel final : public OpKernel {
 public:
  Status Init(const KernelInfo& info) {
    k_ = info.attr_int("k", 0);
    if (info.has_attr("dtype")) dtype_ = static_cast<DType>(info.attr_int("dtype", 1));
    return Status::Ok();
  }
  Status Compute(KernelContext& ctx) override {
    const Tensor& x = ctx.input_tensor(0);
    if (x.rank() != 2) return InvalidArgument(ctx.Where() + "input must be 2-D, got shape " + ShapeToString(x.shape()));
    const DType dt = dtype_ == DType::kUndefined ? x.dtype() : dtype_;
    ASSIGN_OR_RETURN(Tensor * y, ctx.AllocateZeroedOutput(0, dt, x.shape()));
    const int64_t rows = x.dim(0), cols = x.dim(1);
    return Dispatch(TypeList<float, double, Float16, BFloat16, int8_t, int16_t, int32_t, int64_t, uint8_t, uint16_t,
                             uint32_t, uint64_t, bool>{},
                    dt, [&](auto* tag) {
                      using T = std::remove_pointer_t<decltype(tag)>;
                      T* o = y->data<T>();
                      for (int64_t i = 0; i < rows; ++i) {
                        const int64_t j = i + k_;
                        if (j >= 0 && j < cols) o[i * cols + j] = CastValue<T>(1);
                      }
                      return Status::Ok();
                    });
  }

 private:
  int64_t k_ = 0;
  DType dtype_ = DType::kUndefined;
};

// ---------------------------------------------------------------- Range
class RangeKernel final : public OpKernel {
 public:
  Status Init(const KernelInfo&) { return Status::Ok(); }
  Status Compute(KernelContext& ctx) override {
    const Tensor& s = ctx.input_tensor(0);
    const Tensor& l = ctx.input_tensor(1);
    const Tensor& d = ctx.input_tensor(2);
    if (s.numel() != 1 || l.numel() != 1 || d.numel() != 1)
      return InvalidArgument(ctx.Where() + "start, limit and delta must be scalars");
    if (l.dtype() != s.dtype() || d.dtype() != s.dtype())
      return InvalidArgument(ctx.Where() + "start, limit and delta must have the same dtype");
    return Dispatch(TypeList<float, double, int16_t, int32_t, int64_t, Float16, BFloat16>{}, s.dtype(), [&](auto* tag) {
      using T = std::remove_pointer_t<decltype(tag)>;
      using C = ComputeType<T>;
      const C start = static_cast<C>(s.data<T>()[0]), limit = static_cast<C>(l.data<T>()[0]),
              delta = static_cast<C>(d.data<T>()[0]);
      if (delta == C(0)) return InvalidArgument(ctx.Where() + "delta must not be zero");
      double nd = std::ceil((static_cast<double>(limit) - static_cast<double>(start)) / static_cast<double>(delta));
      if (!(nd > 0)) nd = 0;
      if (nd > 1e12) return InvalidArgument(ctx.Where() + "range has too many elements");
      const auto n = static_cast<int64_t>(nd);
      ASSIGN_OR_RETURN(Tensor * y, ctx.AllocateOutput(0, s.dtype(), {n}));
      T* o = y->data<T>();
      for (int64_t i = 0; i < n; ++i) o[i] = static_cast<T>(static_cast<C>(start + static_cast<C>(i) * delta));
      return Status::Ok();
    });
  }
};

// ---------------------------------------------------------------- Dropout
// numpy-compatible MT19937 so a given seed reproduces np.random.seed(seed); np.random.uniform(...).
class MT19937 {
 public:
  explicit MT19937(uint32_t seed) {
    mt_[0] = seed;
    for (int i = 1; i < 624; ++i) mt_[i] = 1812433253u * (mt_[i - 1] ^ (mt_[i - 1] >> 30)) + static_cast<uint32_t>(i);
    idx_ = 624;
  }
  uint32_t Next() {
    if (idx_ >= 624) Twist();
    uint32_t y = mt_[idx_++];
    y ^= y >> 11;
    y ^= (y << 7) & 0x9d2c5680u;
    y ^= (y << 15) & 0xefc60000u;
    y ^= y >> 18;
    return y;
  }
  double NextDouble() {  // genrand_res53
    const uint32_t a = Next() >> 5, b = Next() >> 6;
    return (a * 67108864.0 + b) / 9007199254740992.0;
  }

 private:
  void Twist() {
    for (int i = 0; i < 624; ++i) {
      const uint32_t y = (mt_[i] & 0x80000000u) | (mt_[(i + 1) % 624] & 0x7fffffffu);
      mt_[i] = mt_[(i + 397) % 624] ^ (y >> 1) ^ ((y & 1u) ? 0x9908b0dfu : 0u);
    }
    idx_ = 0;
  }
  uint32_t mt_[624];
  int idx_;
};

class DropoutKernel final : public OpKernel {
 public:
  Status Init(const KernelInfo& info) {
    opset_ = info.opset();
    ratio_ = info.attr_float("ratio", 0.5f);
    has_seed_ = info.has_attr("seed");
    seed_ = info.attr_int("seed", 0);
    return CheckInputDType(info, 0, DTypesOf(FloatTypes{}));
  }
  Status Compute(KernelContext& ctx) override {
    const Tensor& x = ctx.input_tensor(0);
    float ratio = ratio_;
    bool training = false;
    if (opset_ >= 12) {
      ratio = 0.5f;
      if (ctx.has_input(1)) {
        const Tensor& r = ctx.input_tensor(1);
        if (r.numel() != 1 || !IsFloatingPoint(r.dtype()))
          return InvalidArgument(ctx.Where() + "ratio must be a floating-point scalar");
        ratio = static_cast<float>(r.GetAsDouble(0));
      }
      if (ctx.has_input(2)) {
        const Tensor& t = ctx.input_tensor(2);
        if (t.numel() != 1 || t.dtype() != DType::kBool)
          return InvalidArgument(ctx.Where() + "training_mode must be a bool scalar");
        training = t.data<bool>()[0];
      }
      if (training && (ratio < 0.0f || ratio > 1.0f))
        return InvalidArgument(ctx.Where() + "ratio must be in [0, 1], got " + std::to_string(ratio));
    }
    const bool want_mask = ctx.output_requested(1);
    const DType mask_dt = opset_ >= 10 ? DType::kBool : x.dtype();
    if (!training || ratio == 0.0f) {
      ctx.SetOutput(0, x);
      if (want_mask) {
        ASSIGN_OR_RETURN(Tensor * m, ctx.AllocateOutput(1, mask_dt, x.shape()));
        return Dispatch(TypeList<bool, float, double, Float16, BFloat16>{}, mask_dt, [&](auto* tag) {
          using T = std::remove_pointer_t<decltype(tag)>;
          T* o = m->data<T>();
          for (int64_t i = 0; i < m->numel(); ++i) o[i] = CastValue<T>(1);
          return Status::Ok();
        });
      }
      return Status::Ok();
    }
    ASSIGN_OR_RETURN(Tensor * y, ctx.AllocateOutput(0, x.dtype(), x.shape()));
    bool* mask = nullptr;
    if (want_mask) {
      ASSIGN_OR_RETURN(Tensor * m, ctx.AllocateOutput(1, DType::kBool, x.shape()));
      mask = m->data<bool>();
    }
    uint32_t seed = has_seed_ ? static_cast<uint32_t>(seed_) : std::random_device{}();
    MT19937 rng(seed);
    return Dispatch(FloatTypes{}, x.dtype(), [&](auto* tag) {
      using T = std::remove_pointer_t<decltype(tag)>;
      using C = ComputeType<T>;
      const C scale = static_cast<C>(1.0 / (1.0 - static_cast<double>(ratio)));
      const T* in = x.data<T>();
      T* o = y->data<T>();
      for (int64_t i = 0; i < x.numel(); ++i) {
        const bool keep = rng.NextDouble() >= static_cast<double>(ratio);
        o[i] = keep && ratio < 1.0f ? static_cast<T>(static_cast<C>(in[i]) * scale) : static_cast<T>(C(0));
        if (mask) mask[i] = keep;
      }
      return Status::Ok();
    });
  }

 private:
  int64_t opset_ = 0;
  float ratio_ = 0.5f;
  bool has_seed_ = false;
  int64_t seed_ = 0;
};

const auto kAll = DTypesOf(AllTypes{});

const KernelRegistrar kReshape{{.op_type = "Reshape", .since = 1, .until = 18, .factory = MakeKernel<ReshapeKernel>}};
const KernelRegistrar kFlatten{{.op_type = "Flatten", .since = 1, .until = 18, .factory = MakeKernel<FlattenKernel>}};
const KernelRegistrar kSqueeze{{.op_type = "Squeeze", .since = 1, .until = 18, .factory = MakeKernel<SqueezeKernel>}};
const KernelRegistrar kUnsqueeze{
    {.op_type = "Unsqueeze", .since = 1, .until = 18, .factory = MakeKernel<UnsqueezeKernel>}};
const KernelRegistrar kShape{{.op_type = "Shape", .since = 1, .until = 18, .factory = MakeKernel<ShapeKernel>}};
const KernelRegistrar kSize{{.op_type = "Size", .since = 1, .until = 18, .factory = MakeKernel<SizeKernel>}};
const KernelRegistrar kExpand{{.op_type = "Expand", .since = 8, .until = 18, .factory = MakeKernel<ExpandKernel>}};
const KernelRegistrar kConstantOfShape{
    {.op_type = "ConstantOfShape", .since = 9, .until = 18, .factory = MakeKernel<ConstantOfShapeKernel>}};
const KernelRegistrar kEyeLike{{.op_type = "EyeLike", .since = 9, .until = 18, .factory = MakeKernel<EyeLikeKernel>}};
const KernelRegistrar kRange{{.op_type = "Range", .since = 11, .until = 18, .factory = MakeKernel<RangeKernel>}};
const KernelRegistrar kDropout{{.op_type = "Dropout", .since = 1, .until = 18, .factory = MakeKernel<DropoutKernel>}};

}  // namespace
}  // namespace strata::cpu
