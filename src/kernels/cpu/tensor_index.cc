// Indexing ops: Gather, GatherElements, GatherND, Scatter, ScatterElements, ScatterND, OneHot, NonZero.
#include <algorithm>
#include <cmath>

#include "kernels/cpu/tensor_util.h"

namespace strata::cpu {
namespace {

using tensor::DispatchBySize;


// Index i of an int32 or int64 tensor.
inline int64_t IndexAt(const Tensor& t, int64_t i) {
  return t.dtype() == DType::kInt64 ? t.data<int64_t>()[i] : t.data<int32_t>()[i];
}

// Checks that t holds int32/int64 indices in [-dim, dim).
Status CheckIndices(const KernelContext& ctx, const Tensor& t, int64_t dim) {
  if (t.dtype() != DType::kInt64 && t.dtype() != DType::kInt32)
    return InvalidArgument(ctx.Where() + "indices must be int32 or int64, got " + std::string(DTypeName(t.dtype())));
  for (int64_t i = 0; i < t.numel(); ++i) {
    const int64_t x = IndexAt(t, i);
    if (x < -dim || x >= dim)
      return InvalidArgument(ctx.Where() + "index " + std::to_string(x) + " is out of range [" + std::to_string(-dim) +
                             ", " + std::to_string(dim) + ")");
  }
  return Status::Ok();
}

// Reads all indices as int64, wrapping negatives against `dim`; fails on out-of-range values.
Result<std::vector<int64_t>> ReadIndices(const KernelContext& ctx, const Tensor& t, int64_t dim) {
  RETURN_IF_ERROR(CheckIndices(ctx, t, dim));
  std::vector<int64_t> v(static_cast<size_t>(t.numel()));
  for (int64_t i = 0; i < t.numel(); ++i) {
    const int64_t x = IndexAt(t, i);
    v[static_cast<size_t>(i)] = x < 0 ? x + dim : x;
  }
  return v;
}

// Gather, GatherElements and ScatterElements all index `data` along the `axis` attribute (default 0), which
// only exists when data has rank >= 1.
class DataAxisKernel : public OpKernel {
 public:
  Status Init(const KernelInfo& info) {
    axis_ = info.attr_int("axis", 0);
    return Status::Ok();
  }

 protected:
  static Status CheckDataRank(const KernelContext& ctx, const Tensor& x) {
    if (x.rank() == 0) return InvalidArgument(ctx.Where() + "data must have rank >= 1");
    return Status::Ok();
  }

  int64_t axis_ = 0;
};

// ---------------------------------------------------------------- Gather
class GatherKernel final : public DataAxisKernel {
 public:
  Status Compute(KernelContext& ctx) override {
    const Tensor& x = ctx.input_tensor(0);
    const Tensor& ind = ctx.input_tensor(1);
    RETURN_IF_ERROR(CheckDataRank(ctx, x));
    ASSIGN_OR_RETURN(int axis, NormalizeAxis(axis_, x.rank(), ctx));
    const int64_t dim = x.dim(axis);
    RETURN_IF_ERROR(CheckIndices(ctx, ind, dim));
    Shape out(x.shape().begin(), x.shape().begin() + axis);
    out.insert(out.end(), ind.shape().begin(), ind.shape().end());
    out.insert(out.end(), x.shape().begin() + axis + 1, x.shape().end());
    ASSIGN_OR_RETURN(Tensor * y, ctx.AllocateOutput(0, x.dtype(), out));
    int64_t outer = 1, inner = 1;
    for (int d = 0; d < axis; ++d) outer *= x.dim(d);
    for (int d = axis + 1; d < x.rank(); ++d) inner *= x.dim(d);
    const int64_t n = ind.numel();
    // Indices are read in place (checked above), so a run allocates nothing here.
    return DispatchBySize(x.dtype(), [&](auto* tag) {
      TENSOR_ELEM_T;
      const T* in = x.data<T>();
      T* o = y->data<T>();
      for (int64_t b = 0; b < outer; ++b) {
        const T* src = in + b * dim * inner;
        for (int64_t i = 0; i < n; ++i) {
          int64_t k = IndexAt(ind, i);
          if (k < 0) k += dim;
          if (inner == 1) o[i] = src[k];
          else tensor::CopyN(src + k * inner, inner, o + i * inner);
        }
        o += n * inner;
      }
      return Status::Ok();
    });
  }
};

// Iterates over all positions of `shape`, calling f(linear_pos, offset_a, offset_b, axis_index) where the offsets
// use strides sa/sb on every dimension except `axis` (which contributes nothing).
template <typename F>
void ForEachExceptAxis(const Shape& shape, int axis, const Strides& sa, const Strides& sb, F&& f) {
  const int rank = static_cast<int>(shape.size());
  const int64_t total = NumElements(shape);
  if (total == 0) return;
  Shape idx(static_cast<size_t>(rank), 0);
  int64_t oa = 0, ob = 0;
  for (int64_t p = 0; p < total; ++p) {
    f(p, oa, ob, idx[static_cast<size_t>(axis)]);
    for (int d = rank - 1; d >= 0; --d) {
      const auto ud = static_cast<size_t>(d);
      const int64_t ka = d == axis ? 0 : sa[ud], kb = d == axis ? 0 : sb[ud];
      ++idx[ud];
      oa += ka;
      ob += kb;
      if (idx[ud] < shape[ud]) break;
      oa -= ka * shape[ud];
      ob -= kb * shape[ud];
      idx[ud] = 0;
    }
  }
}

// ---------------------------------------------------------------- GatherElements
class GatherElementsKernel final : public DataAxisKernel {
 public:
  Status Compute(KernelContext& ctx) override {
    const Tensor& x = ctx.input_tensor(0);
    const Tensor& ind = ctx.input_tensor(1);
    const int r = x.rank();
    RETURN_IF_ERROR(CheckDataRank(ctx, x));
    if (ind.rank() != r)
      return InvalidArgument(ctx.Where() + "indices rank " + std::to_string(ind.rank()) + " != data rank " +
                             std::to_string(r));
    ASSIGN_OR_RETURN(int axis, NormalizeAxis(axis_, r, ctx));
    for (int d = 0; d < r; ++d)
      if (d != axis && ind.dim(d) > x.dim(d))
        return InvalidArgument(ctx.Where() + "indices shape " + ShapeToString(ind.shape()) + " exceeds data shape " +
                               ShapeToString(x.shape()) + " outside the axis");
    ASSIGN_OR_RETURN(std::vector<int64_t> idx, ReadIndices(ctx, ind, x.dim(axis)));
    ASSIGN_OR_RETURN(Tensor * y, ctx.AllocateOutput(0, x.dtype(), ind.shape()));
    const Strides xs = ContiguousStrides(x.shape());
    const int64_t as = xs[static_cast<size_t>(axis)];
    return DispatchBySize(x.dtype(), [&](auto* tag) {
      TENSOR_ELEM_T;
      const T* in = x.data<T>();
      T* o = y->data<T>();
      ForEachExceptAxis(ind.shape(), axis, xs, xs, [&](int64_t p, int64_t off, int64_t, int64_t) {
        o[p] = in[off + idx[static_cast<size_t>(p)] * as];
      });
      return Status::Ok();
    });
  }
};

// ---------------------------------------------------------------- GatherND
class GatherNDKernel final : public OpKernel {
 public:
  Status Init(const KernelInfo& info) {
    batch_dims_ = info.attr_int("batch_dims", 0);
    if (batch_dims_ < 0) return info.Error("batch_dims must be >= 0");
    return Status::Ok();
  }
  Status Compute(KernelContext& ctx) override {
    const Tensor& x = ctx.input_tensor(0);
    const Tensor& ind = ctx.input_tensor(1);
    const int64_t r = x.rank(), q = ind.rank(), b = batch_dims_;
    if (r < 1 || q < 1) return InvalidArgument(ctx.Where() + "data and indices must have rank >= 1");
    if (b >= std::min(r, q)) return InvalidArgument(ctx.Where() + "batch_dims must be less than min(rank(data), rank(indices))");
    for (int d = 0; d < b; ++d)
      if (x.dim(d) != ind.dim(d))
        return InvalidArgument(ctx.Where() + "batch dimensions of data " + ShapeToString(x.shape()) +
                               " and indices " + ShapeToString(ind.shape()) + " differ");
    const int64_t k = ind.dim(static_cast<int>(q - 1));
    if (k < 1 || k > r - b)
      return InvalidArgument(ctx.Where() + "last dimension of indices (" + std::to_string(k) + ") must be in [1, " +
                             std::to_string(r - b) + "]");
    if (ind.dtype() != DType::kInt64) return InvalidArgument(ctx.Where() + "indices must be int64");
    Shape out(ind.shape().begin(), ind.shape().end() - 1);
    out.insert(out.end(), x.shape().begin() + b + k, x.shape().end());
    ASSIGN_OR_RETURN(Tensor * y, ctx.AllocateOutput(0, x.dtype(), out));
    int64_t batch = 1, slice = 1;
    for (int d = 0; d < b; ++d) batch *= x.dim(d);
    for (int64_t d = b + k; d < r; ++d) slice *= x.dim(static_cast<int>(d));
    const Strides xs = ContiguousStrides(x.shape());
    const int64_t batch_stride = b > 0 ? xs[static_cast<size_t>(b - 1)] : x.numel();
    const int64_t n_tuples = ind.numel() / k;
    const int64_t per_batch = batch > 0 ? n_tuples / batch : 0;
    // Resolve each index tuple to a data offset first (with bounds checks).
    std::vector<int64_t> offs(static_cast<size_t>(n_tuples));
    const int64_t* id = ind.data<int64_t>();
    for (int64_t t = 0; t < n_tuples; ++t) {
      int64_t off = per_batch > 0 ? (t / per_batch) * batch_stride : 0;
      for (int64_t j = 0; j < k; ++j) {
        int64_t v = id[t * k + j];
        const int64_t dim = x.dim(static_cast<int>(b + j));
        if (!tensor::WrapIndex(v, dim))
          return InvalidArgument(ctx.Where() + "index " + std::to_string(id[t * k + j]) + " is out of range for dimension " +
                                 std::to_string(b + j) + " of size " + std::to_string(dim));
        off += v * xs[static_cast<size_t>(b + j)];
      }
      offs[static_cast<size_t>(t)] = off;
    }
    return DispatchBySize(x.dtype(), [&](auto* tag) {
      TENSOR_ELEM_T;
      const T* in = x.data<T>();
      T* o = y->data<T>();
      for (int64_t t = 0; t < n_tuples; ++t) tensor::CopyN(in + offs[static_cast<size_t>(t)], slice, o + t * slice);
      return Status::Ok();
    });
  }

 private:
  int64_t batch_dims_ = 0;
};

// ---------------------------------------------------------------- Scatter reductions
enum class Reduction { kNone, kAdd, kMul, kMax, kMin };

Status ParseReduction(const KernelInfo& info, Reduction& red) {
  const std::string s = info.attr_string("reduction", "none");
  if (s == "none") red = Reduction::kNone;
  else if (s == "add" && info.opset() >= 16) red = Reduction::kAdd;
  else if (s == "mul" && info.opset() >= 16) red = Reduction::kMul;
  else if (s == "max" && info.opset() >= 18) red = Reduction::kMax;
  else if (s == "min" && info.opset() >= 18) red = Reduction::kMin;
  else return info.Error("unsupported reduction '" + s + "'");
  return Status::Ok();
}

template <typename T>
inline void Reduce(T& dst, const T& src, Reduction red) {
  if constexpr (std::is_same_v<T, std::string> || std::is_same_v<T, tensor::Pod16>) {
    dst = src;  // only 'none' is allowed for strings (checked by the caller)
  } else if constexpr (std::is_same_v<T, bool>) {
    switch (red) {
      case Reduction::kNone: dst = src; break;
      case Reduction::kAdd: case Reduction::kMax: dst = dst || src; break;
      case Reduction::kMul: case Reduction::kMin: dst = dst && src; break;
    }
  } else {
    using C = ComputeType<T>;
    const C a = static_cast<C>(dst), b = static_cast<C>(src);
    switch (red) {
      case Reduction::kNone: dst = src; break;
      case Reduction::kAdd: dst = static_cast<T>(static_cast<C>(a + b)); break;
      case Reduction::kMul: dst = static_cast<T>(static_cast<C>(a * b)); break;
      case Reduction::kMax: dst = static_cast<T>(std::max(a, b)); break;
      case Reduction::kMin: dst = static_cast<T>(std::min(a, b)); break;
    }
  }
}

template <typename F>
Status DispatchScatter(DType dt, Reduction red, const KernelContext& ctx, F&& f) {
  if (red == Reduction::kNone) return DispatchBySize(dt, f);
  if (dt == DType::kString) return InvalidArgument(ctx.Where() + "reductions are not defined for strings");
  return Dispatch(TypeList<float, double, Float16, BFloat16, int8_t, int16_t, int32_t, int64_t, uint8_t, uint16_t,
                           uint32_t, uint64_t, bool>{},
                  dt, f);
}

// ---------------------------------------------------------------- ScatterElements / Scatter
class ScatterElementsKernel final : public DataAxisKernel {
 public:
  Status Init(const KernelInfo& info) {
    RETURN_IF_ERROR(DataAxisKernel::Init(info));
    return ParseReduction(info, red_);
  }
  Status Compute(KernelContext& ctx) override {
    const Tensor& x = ctx.input_tensor(0);
    const Tensor& ind = ctx.input_tensor(1);
    const Tensor& upd = ctx.input_tensor(2);
    const int r = x.rank();
    RETURN_IF_ERROR(CheckDataRank(ctx, x));
    if (ind.rank() != r || ind.shape() != upd.shape())
      return InvalidArgument(ctx.Where() + "indices " + ShapeToString(ind.shape()) + " and updates " +
                             ShapeToString(upd.shape()) + " must have the same shape and the rank of data " +
                             ShapeToString(x.shape()));
    if (upd.dtype() != x.dtype()) return InvalidArgument(ctx.Where() + "updates dtype differs from data");
    ASSIGN_OR_RETURN(int axis, NormalizeAxis(axis_, r, ctx));
    for (int d = 0; d < r; ++d)
      if (d != axis && ind.dim(d) > x.dim(d))
        return InvalidArgument(ctx.Where() + "indices shape " + ShapeToString(ind.shape()) + " exceeds data shape " +
                               ShapeToString(x.shape()));
    ASSIGN_OR_RETURN(std::vector<int64_t> idx, ReadIndices(ctx, ind, x.dim(axis)));
    Tensor out = x.Clone();
    const Strides xs = ContiguousStrides(x.shape());
    const int64_t as = xs[static_cast<size_t>(axis)];
    RETURN_IF_ERROR(DispatchScatter(x.dtype(), red_, ctx, [&](auto* tag) {
      TENSOR_ELEM_T;
      T* o = out.data<T>();
      const T* u = upd.data<T>();
      const Reduction red = red_;
      ForEachExceptAxis(ind.shape(), axis, xs, xs, [&](int64_t p, int64_t off, int64_t, int64_t) {
        Reduce(o[off + idx[static_cast<size_t>(p)] * as], u[p], red);
      });
      return Status::Ok();
    }));
    ctx.SetOutput(0, std::move(out));
    return Status::Ok();
  }

 private:
  Reduction red_ = Reduction::kNone;
};

// ---------------------------------------------------------------- ScatterND
class ScatterNDKernel final : public OpKernel {
 public:
  Status Init(const KernelInfo& info) { return ParseReduction(info, red_); }
  Status Compute(KernelContext& ctx) override {
    const Tensor& x = ctx.input_tensor(0);
    const Tensor& ind = ctx.input_tensor(1);
    const Tensor& upd = ctx.input_tensor(2);
    const int r = x.rank(), q = ind.rank();
    if (r < 1 || q < 1) return InvalidArgument(ctx.Where() + "data and indices must have rank >= 1");
    if (ind.dtype() != DType::kInt64) return InvalidArgument(ctx.Where() + "indices must be int64");
    if (upd.dtype() != x.dtype()) return InvalidArgument(ctx.Where() + "updates dtype differs from data");
    const int64_t k = ind.dim(q - 1);
    if (k < 1 || k > r)
      return InvalidArgument(ctx.Where() + "last dimension of indices (" + std::to_string(k) + ") must be in [1, " +
                             std::to_string(r) + "]");
    Shape want(ind.shape().begin(), ind.shape().end() - 1);
    want.insert(want.end(), x.shape().begin() + k, x.shape().end());
    if (upd.shape() != want)
      return InvalidArgument(ctx.Where() + "updates shape " + ShapeToString(upd.shape()) + " should be " +
                             ShapeToString(want));
    const Strides xs = ContiguousStrides(x.shape());
    int64_t slice = 1;
    for (int d = static_cast<int>(k); d < r; ++d) slice *= x.dim(d);
    const int64_t n_tuples = ind.numel() / k;
    std::vector<int64_t> offs(static_cast<size_t>(n_tuples));
    const int64_t* id = ind.data<int64_t>();
    for (int64_t t = 0; t < n_tuples; ++t) {
      int64_t off = 0;
      for (int64_t j = 0; j < k; ++j) {
        int64_t v = id[t * k + j];
        const int64_t dim = x.dim(static_cast<int>(j));
        if (!tensor::WrapIndex(v, dim))
          return InvalidArgument(ctx.Where() + "index " + std::to_string(id[t * k + j]) + " is out of range for dimension " +
                                 std::to_string(j) + " of size " + std::to_string(dim));
        off += v * xs[static_cast<size_t>(j)];
      }
      offs[static_cast<size_t>(t)] = off;
    }
    Tensor out = x.Clone();
    RETURN_IF_ERROR(DispatchScatter(x.dtype(), red_, ctx, [&](auto* tag) {
      TENSOR_ELEM_T;
      T* o = out.data<T>();
      const T* u = upd.data<T>();
      for (int64_t t = 0; t < n_tuples; ++t) {
        T* dst = o + offs[static_cast<size_t>(t)];
        const T* src = u + t * slice;
        if (red_ == Reduction::kNone) {
          tensor::CopyN(src, slice, dst);
        } else {
          for (int64_t i = 0; i < slice; ++i) Reduce(dst[i], src[i], red_);
        }
      }
      return Status::Ok();
    }));
    ctx.SetOutput(0, std::move(out));
    return Status::Ok();
  }

 private:
  Reduction red_ = Reduction::kNone;
};

// ---------------------------------------------------------------- OneHot
class OneHotKernel final : public OpKernel {
 public:
  Status Init(const KernelInfo& info) {
    axis_ = info.attr_int("axis", -1);
    return Status::Ok();
  }
  Status Compute(KernelContext& ctx) override {
    const Tensor& ind = ctx.input_tensor(0);
    const Tensor& dep = ctx.input_tensor(1);
    const Tensor& vals = ctx.input_tensor(2);
    if (dep.numel() != 1) return InvalidArgument(ctx.Where() + "depth must be a scalar");
    if (vals.numel() != 2) return InvalidArgument(ctx.Where() + "values must hold [off_value, on_value]");
    if (ind.dtype() == DType::kString || dep.dtype() == DType::kString)
      return InvalidArgument(ctx.Where() + "indices and depth must be numeric");
    const double dd = dep.GetAsDouble(0);
    if (!(dd >= 1) || dd > 1e12) return InvalidArgument(ctx.Where() + "depth must be positive");
    const auto depth = static_cast<int64_t>(dd);
    const int out_rank = ind.rank() + 1;
    ASSIGN_OR_RETURN(int axis, NormalizeAxis(axis_, out_rank, ctx));
    Shape out = ind.shape();
    out.insert(out.begin() + axis, depth);
    ASSIGN_OR_RETURN(Tensor * y, ctx.AllocateOutput(0, vals.dtype(), out));
    int64_t outer = 1, inner = 1;
    for (int d = 0; d < axis; ++d) outer *= ind.dim(d);
    for (int d = axis; d < ind.rank(); ++d) inner *= ind.dim(d);
    return DispatchBySize(vals.dtype(), [&](auto* tag) {
      TENSOR_ELEM_T;
      const T off = vals.data<T>()[0], on = vals.data<T>()[1];
      T* o = y->data<T>();
      const int64_t n = y->numel();
      for (int64_t i = 0; i < n; ++i) o[i] = off;
      for (int64_t b = 0; b < outer; ++b)
        for (int64_t j = 0; j < inner; ++j) {
          const double dv = ind.GetAsDouble(b * inner + j);
          if (std::isnan(dv)) continue;
          auto v = static_cast<int64_t>(dv);
          if (v < 0) v += depth;
          if (v < 0 || v >= depth) continue;
          o[(b * depth + v) * inner + j] = on;
        }
      return Status::Ok();
    });
  }

 private:
  int64_t axis_ = -1;
};

// ---------------------------------------------------------------- NonZero
class NonZeroKernel final : public OpKernel {
 public:
  Status Init(const KernelInfo&) { return Status::Ok(); }
  Status Compute(KernelContext& ctx) override {
    const Tensor& x = ctx.input_tensor(0);
    const int r = std::max(x.rank(), 1);
    Shape shape = x.rank() == 0 ? Shape{1} : x.shape();
    std::vector<int64_t> pos;
    RETURN_IF_ERROR(Dispatch(TypeList<float, double, Float16, BFloat16, int8_t, int16_t, int32_t, int64_t, uint8_t,
                                      uint16_t, uint32_t, uint64_t, bool>{},
                             x.dtype(), [&](auto* tag) {
                               TENSOR_ELEM_T;
                               const T* in = x.data<T>();
                               for (int64_t i = 0; i < x.numel(); ++i)
                                 if (static_cast<ComputeType<T>>(in[i]) != ComputeType<T>(0)) pos.push_back(i);
                               return Status::Ok();
                             }));
    const auto nnz = static_cast<int64_t>(pos.size());
    ASSIGN_OR_RETURN(Tensor * y, ctx.AllocateOutput(0, DType::kInt64, {r, nnz}));
    int64_t* o = y->data<int64_t>();
    for (int64_t j = 0; j < nnz; ++j) {
      int64_t p = pos[static_cast<size_t>(j)];
      for (int d = r - 1; d >= 0; --d) {
        const int64_t dim = shape[static_cast<size_t>(d)];
        o[d * nnz + j] = p % dim;
        p /= dim;
      }
    }
    return Status::Ok();
  }
};

const KernelRegistrar kGather{{.op_type = "Gather", .since = 1, .until = 18, .factory = MakeKernel<GatherKernel>}};
const KernelRegistrar kGatherElements{
    {.op_type = "GatherElements", .since = 11, .until = 18, .factory = MakeKernel<GatherElementsKernel>}};
const KernelRegistrar kGatherND{{.op_type = "GatherND", .since = 11, .until = 18, .factory = MakeKernel<GatherNDKernel>}};
const KernelRegistrar kScatter{
    {.op_type = "Scatter", .since = 9, .until = 18, .factory = MakeKernel<ScatterElementsKernel>}};
const KernelRegistrar kScatterElements{
    {.op_type = "ScatterElements", .since = 11, .until = 18, .factory = MakeKernel<ScatterElementsKernel>}};
const KernelRegistrar kScatterND{{.op_type = "ScatterND", .since = 11, .until = 18, .factory = MakeKernel<ScatterNDKernel>}};
const KernelRegistrar kOneHot{{.op_type = "OneHot", .since = 9, .until = 18, .factory = MakeKernel<OneHotKernel>}};
const KernelRegistrar kNonZero{{.op_type = "NonZero", .since = 9, .until = 18, .factory = MakeKernel<NonZeroKernel>}};

}  // namespace
}  // namespace strata::cpu
