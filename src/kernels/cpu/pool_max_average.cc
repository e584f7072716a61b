// MaxPool, AveragePool and LpPool over 1-D/2-D/3-D windows, handled as 3-D (missing leading dims
// have size 1). float32 MaxPool (without Indices) and AveragePool take a row-wise fast path;
// everything else walks each output's window. The com.strata MaxPool/AveragePool forms (written by
// the conv-layout pass) may read and write channels-last data (attribute "layout").
#include <cmath>
#include <limits>
#include <new>
#include <type_traits>

#include "kernels/cpu/nn_common.h"
#include "kernels/cpu/pool_common.h"
#include "kernels/cpu/ukernels/pool_rows.h"
#include "kernels/cpu/ukernels/vec_math.h"

namespace strata::cpu {
namespace {

using nn::SpatialAttrs;
using nn::SpatialGeom;
using pool::PlaneThreshold;
using pool::PoolFloatTypes;
using pool::ReadLayout;
using uk::MaxBeats;
using uk::PoolTapRange;

// 3-D padded view of a pooling geometry.
struct Geom3 {
  int64_t in[3], out[3], k[3], s[3], d[3], pb[3], pe[3];
  int nsp = 0;
  int64_t in_size() const { return in[0] * in[1] * in[2]; }
  int64_t out_size() const { return out[0] * out[1] * out[2]; }
};

Geom3 To3(const SpatialGeom& g) {
  Geom3 r;
  r.nsp = static_cast<int>(g.in.size());
  const int off = 3 - r.nsp;
  for (int i = 0; i < 3; ++i) {
    const int j = i - off;
    const bool real = j >= 0;
    const size_t u = static_cast<size_t>(real ? j : 0);
    r.in[i] = real ? g.in[u] : 1;
    r.out[i] = real ? g.out[u] : 1;
    r.k[i] = real ? g.kernel[u] : 1;
    r.s[i] = real ? g.strides[u] : 1;
    r.d[i] = real ? g.dilations[u] : 1;
    r.pb[i] = real ? g.pad_begin[u] : 0;
    r.pe[i] = real ? g.pad_end[u] : 0;
  }
  return r;
}

// Computes the pooling geometry for X [N, C, spatial...].
Status PoolGeom(const SpatialAttrs& a, const Shape& x, bool allow_dilation, SpatialGeom& g, Shape& y_shape) {
  if (x.size() < 3) return InvalidArgument("pooling input must have rank >= 3, got " + ShapeToString(x));
  const size_t nsp = x.size() - 2;
  if (nsp > 3) return Unsupported("pooling over more than 3 spatial dimensions is not supported");
  if (a.kernel_shape.size() != nsp)
    return InvalidArgument("kernel_shape has " + std::to_string(a.kernel_shape.size()) + " values, input has " +
                           std::to_string(nsp) + " spatial dims");
  g.in.assign(x.begin() + 2, x.end());
  g.kernel = a.kernel_shape;
  g.strides = a.strides.empty() ? Shape(nsp, 1) : Shape(a.strides);
  g.dilations = (a.dilations.empty() || !allow_dilation) ? Shape(nsp, 1) : Shape(a.dilations);
  RETURN_IF_ERROR(nn::ComputeForwardGeom(a, g, a.ceil_mode));
  y_shape = {x[0], x[1]};
  y_shape.insert(y_shape.end(), g.out.begin(), g.out.end());
  return Status::Ok();
}

// Visits the valid input offsets of the window for one output position.
template <typename F>
inline void ForWindow(const Geom3& g, int64_t o0, int64_t o1, int64_t o2, F&& f) {
  const int64_t b0 = o0 * g.s[0] - g.pb[0], b1 = o1 * g.s[1] - g.pb[1], b2 = o2 * g.s[2] - g.pb[2];
  int64_t l0, h0, l1, h1, l2, h2;
  PoolTapRange(b0, g.k[0], g.d[0], g.in[0], l0, h0);
  PoolTapRange(b1, g.k[1], g.d[1], g.in[1], l1, h1);
  PoolTapRange(b2, g.k[2], g.d[2], g.in[2], l2, h2);
  for (int64_t k0 = l0; k0 < h0; ++k0) {
    const int64_t i0 = b0 + k0 * g.d[0];
    for (int64_t k1 = l1; k1 < h1; ++k1) {
      const int64_t i1 = b1 + k1 * g.d[1];
      for (int64_t k2 = l2; k2 < h2; ++k2) f(i0, i1, b2 + k2 * g.d[2]);
    }
  }
}

// Number of window taps inside the padded extent [-pb, in + pe) along one dim.
inline int64_t PaddedTaps(const Geom3& g, int dim, int64_t o) {
  const int64_t b = o * g.s[dim] - g.pb[dim];
  if (b >= -g.pb[dim] && b + (g.k[dim] - 1) * g.d[dim] < g.in[dim] + g.pe[dim]) return g.k[dim];
  int64_t c = 0;
  for (int64_t k = 0; k < g.k[dim]; ++k) {
    const int64_t i = b + k * g.d[dim];
    if (i >= -g.pb[dim] && i < g.in[dim] + g.pe[dim]) ++c;
  }
  return c;
}

// Runs f(plane_index, out_offset, o0, o1, o2) over all planes and output positions in parallel.
template <typename F>
void ForOutputs(const Geom3& g, int64_t planes, F&& f) {
  const int64_t os = g.out_size();
  ParallelFor(
      planes,
      [&](int64_t begin, int64_t end) {
        for (int64_t p = begin; p < end; ++p)
          for (int64_t o0 = 0; o0 < g.out[0]; ++o0)
            for (int64_t o1 = 0; o1 < g.out[1]; ++o1)
              for (int64_t o2 = 0; o2 < g.out[2]; ++o2)
                f(p, p * os + (o0 * g.out[1] + o1) * g.out[2] + o2, o0, o1, o2);
      },
      PlaneThreshold(os, 4096));
}

// ---- float32 fast path ----
//
// Max and average pooling of float32 without the Indices output, over NCHW or channels-last data.
// Both reduce whole rows of contiguous floats at a time (uk::PoolRowsF32): channels-last reduces the
// C channels of every tap of one output position; NCHW first reduces the input rows under the
// window's leading dims into one row, then walks the last dim's taps along that row. The generic
// per-output walk above costs ~30x more (index bookkeeping per tap). Max propagates NaN from any
// tap and takes +0 over -0 (uk::MaxBeats: the generic path does the same, so the result depends on
// neither the tap order nor the ISA); the average sums taps in the generic path's order (except the
// NCHW row split) and divides by the same count.

enum class PoolKind { kMax, kAvg };

// Tap pointers are reduced in batches of this many (windows larger than that are rare).
constexpr int64_t kTapBatch = 64;

// Reduces `rows` (nrows of them, n floats each) into y: max, or sum times 1/divisor; `accumulate`
// folds y's previous contents in (the callers reduce long windows in batches of kTapBatch).
inline void ReduceRows(const uk::PoolRowsF32& ops, PoolKind kind, const float* const* rows, int64_t nrows, int64_t n,
                       float* y, bool accumulate, float divisor) {
  if (kind == PoolKind::kMax) ops.max(rows, nrows, n, y, accumulate);
  else ops.sum(rows, nrows, n, y, accumulate, divisor);
}

// Output value of a window without any tap inside the input (as the generic path).
inline float EmptyWindow(PoolKind kind) {
  return kind == PoolKind::kMax ? -std::numeric_limits<float>::infinity() : 0.f;
}

// Averaging divisor of one window: its taps inside the input, or inside the padded extent.
inline int64_t AvgCount(const Geom3& g, bool include_pad, const int64_t* o, const int64_t* lo, const int64_t* hi) {
  if (!include_pad) return (hi[0] - lo[0]) * (hi[1] - lo[1]) * (hi[2] - lo[2]);
  return PaddedTaps(g, 0, o[0]) * PaddedTaps(g, 1, o[1]) * PaddedTaps(g, 2, o[2]);
}

// X [planes, in0, in1, in2] -> Y [planes, out0, out1, out2].
void PoolNchwF32(const Geom3& g, PoolKind kind, bool include_pad, int64_t planes, const float* x, float* y) {
  const uk::PoolRowsF32 ops = uk::PoolRowsF32For(vec::Active().isa);
  const int64_t out_rows = planes * g.out[0] * g.out[1], is = g.in_size();
  const int64_t row_work = std::max<int64_t>(1, (g.in[2] + g.out[2]) * g.k[0] * g.k[1]);
  ParallelFor(
      out_rows,
      [&](int64_t begin, int64_t end) {
        float* tmp = ThreadScratch(0, static_cast<size_t>(g.in[2]));
        if (!tmp) throw std::bad_alloc();  // ParallelFor rethrows it on the caller's thread
        const float* rows[kTapBatch];
        for (int64_t r = begin; r < end; ++r) {
          const int64_t p = r / (g.out[0] * g.out[1]), o0 = (r / g.out[1]) % g.out[0], o1 = r % g.out[1];
          const float* xp = x + p * is;
          float* yr = y + r * g.out[2];
          const int64_t b0 = o0 * g.s[0] - g.pb[0], b1 = o1 * g.s[1] - g.pb[1];
          int64_t lo[3], hi[3];
          PoolTapRange(b0, g.k[0], g.d[0], g.in[0], lo[0], hi[0]);
          PoolTapRange(b1, g.k[1], g.d[1], g.in[1], lo[1], hi[1]);
          if (lo[0] == hi[0] || lo[1] == hi[1]) {
            for (int64_t o2 = 0; o2 < g.out[2]; ++o2) yr[o2] = EmptyWindow(kind);
            continue;
          }
          // Rows under the window's leading dims, reduced into tmp.
          int64_t nrows = 0;
          bool accumulate = false;
          for (int64_t k0 = lo[0]; k0 < hi[0]; ++k0)
            for (int64_t k1 = lo[1]; k1 < hi[1]; ++k1) {
              rows[nrows++] = xp + ((b0 + k0 * g.d[0]) * g.in[1] + b1 + k1 * g.d[1]) * g.in[2];
              if (nrows == kTapBatch) {
                ReduceRows(ops, kind, rows, nrows, g.in[2], tmp, accumulate, 1.f);
                nrows = 0;
                accumulate = true;
              }
            }
          ReduceRows(ops, kind, rows, nrows, g.in[2], tmp, accumulate, 1.f);
          if (kind == PoolKind::kMax) {
            uk::MaxPoolRow1dF32(tmp, g.in[2], g.k[2], g.s[2], g.d[2], g.pb[2], yr, g.out[2]);
            continue;
          }
          for (int64_t o2 = 0; o2 < g.out[2]; ++o2) {
            const int64_t b2 = o2 * g.s[2] - g.pb[2];  // may be negative: index tmp only at valid taps
            PoolTapRange(b2, g.k[2], g.d[2], g.in[2], lo[2], hi[2]);
            float sum = 0.f;
            for (int64_t k2 = lo[2]; k2 < hi[2]; ++k2) sum += tmp[b2 + k2 * g.d[2]];
            const int64_t o[3] = {o0, o1, o2};
            const int64_t cnt = AvgCount(g, include_pad, o, lo, hi);
            yr[o2] = cnt > 0 && hi[2] > lo[2] ? sum / static_cast<float>(cnt) : 0.f;
          }
        }
      },
      PlaneThreshold(row_work, 1 << 15));
}

// Channels-last X [n, in0, in1, in2, c] -> Y [n, out0, out1, out2, c].
void PoolNhwcF32(const Geom3& g, PoolKind kind, bool include_pad, int64_t n, int64_t c, const float* x, float* y) {
  const uk::PoolRowsF32 ops = uk::PoolRowsF32For(vec::Active().isa);
  const int64_t out_rows = n * g.out[0] * g.out[1], is = g.in_size() * c;
  const int64_t row_work = std::max<int64_t>(1, g.out[2] * g.k[0] * g.k[1] * g.k[2] * c);
  ParallelFor(
      out_rows,
      [&](int64_t begin, int64_t end) {
        const float* rows[kTapBatch];
        for (int64_t r = begin; r < end; ++r) {
          const int64_t b = r / (g.out[0] * g.out[1]), o0 = (r / g.out[1]) % g.out[0], o1 = r % g.out[1];
          const float* xb = x + b * is;
          const int64_t b0 = o0 * g.s[0] - g.pb[0], b1 = o1 * g.s[1] - g.pb[1];
          int64_t lo[3], hi[3];
          PoolTapRange(b0, g.k[0], g.d[0], g.in[0], lo[0], hi[0]);
          PoolTapRange(b1, g.k[1], g.d[1], g.in[1], lo[1], hi[1]);
          for (int64_t o2 = 0; o2 < g.out[2]; ++o2) {
            float* yp = y + (r * g.out[2] + o2) * c;
            const int64_t b2 = o2 * g.s[2] - g.pb[2];
            PoolTapRange(b2, g.k[2], g.d[2], g.in[2], lo[2], hi[2]);
            const int64_t o[3] = {o0, o1, o2};
            const int64_t cnt = kind == PoolKind::kAvg ? AvgCount(g, include_pad, o, lo, hi) : 1;
            const bool empty = lo[0] == hi[0] || lo[1] == hi[1] || lo[2] == hi[2];
            if (empty || cnt <= 0) {
              for (int64_t i = 0; i < c; ++i) yp[i] = EmptyWindow(kind);
              continue;
            }
            const float divisor = static_cast<float>(cnt);
            int64_t nrows = 0;
            bool accumulate = false;
            for (int64_t k0 = lo[0]; k0 < hi[0]; ++k0)
              for (int64_t k1 = lo[1]; k1 < hi[1]; ++k1) {
                const float* line = xb + ((b0 + k0 * g.d[0]) * g.in[1] + b1 + k1 * g.d[1]) * g.in[2] * c;
                for (int64_t k2 = lo[2]; k2 < hi[2]; ++k2) {
                  rows[nrows++] = line + (b2 + k2 * g.d[2]) * c;
                  if (nrows == kTapBatch) {
                    ReduceRows(ops, kind, rows, nrows, c, yp, accumulate, 1.f);
                    nrows = 0;
                    accumulate = true;
                  }
                }
              }
            ReduceRows(ops, kind, rows, nrows, c, yp, accumulate, divisor);
          }
        }
      },
      PlaneThreshold(row_work, 1 << 15));
}

// Runs the float32 fast path into an already allocated Y. Returns an error for layouts it cannot
// take (a channels-last X must be 4-D float32).
Status PoolF32(const Tensor& X, Tensor& Y, const Geom3& g, PoolKind kind, bool include_pad, bool nhwc) {
  if (nhwc) {
    if (X.dtype() != DType::kFloat || X.rank() != 4)
      return InvalidArgument("channels-last pooling needs a 4-D float32 input, got " + ShapeToString(X.shape()));
    PoolNhwcF32(g, kind, include_pad, X.dim(0), X.dim(1), X.data<float>(), Y.data<float>());
  } else {
    PoolNchwF32(g, kind, include_pad, X.dim(0) * X.dim(1), X.data<float>(), Y.data<float>());
  }
  return Status::Ok();
}

using MaxPoolTypes = TypeList<float, double, Float16, BFloat16, int8_t, uint8_t>;

class MaxPoolKernel final : public OpKernel {
 public:
  Status Init(const KernelInfo& info) {
    RETURN_IF_ERROR(CheckInputDType(info, 0, DTypesOf(MaxPoolTypes{})));
    RETURN_IF_ERROR(a_.Load(info, info.opset() >= 10, info.opset() >= 10));
    if (a_.kernel_shape.empty()) return info.Error("kernel_shape is required");
    storage_order_ = info.attr_int("storage_order", 0);
    if (storage_order_ != 0 && storage_order_ != 1) return info.Error("storage_order must be 0 or 1");
    RETURN_IF_ERROR(ReadLayout(info, nhwc_));
    if (nhwc_ && info.num_outputs() > 1 && info.output_requested(1))
      return info.Error("the NHWC layout cannot return Indices");
    return Status::Ok();
  }
  Status Compute(KernelContext& ctx) override {
    const Tensor& X = ctx.input_tensor(0);
    SpatialGeom sg;
    Shape ys;
    RETURN_IF_ERROR(PoolGeom(a_, X.shape(), true, sg, ys));
    const Geom3 g = To3(sg);
    ASSIGN_OR_RETURN(Tensor * Y, ctx.AllocateOutput(0, X.dtype(), ys));
    const bool want_indices = ctx.num_outputs() > 1 && ctx.output_requested(1);
    if (nhwc_ || (X.dtype() == DType::kFloat && !want_indices))
      return PoolF32(X, *Y, g, PoolKind::kMax, false, nhwc_);
    int64_t* ind = nullptr;
    if (want_indices) {
      ASSIGN_OR_RETURN(Tensor * I, ctx.AllocateOutput(1, DType::kInt64, ys));
      ind = I->data<int64_t>();
    }
    const int64_t planes = X.dim(0) * X.dim(1), is = g.in_size();
    // Strides of the spatial dims in the index output (row- or column-major over the real dims).
    int64_t ist[3] = {0, 0, 0};
    {
      int64_t acc = 1;
      if (storage_order_ == 0) {
        for (int i = 2; i >= 0; --i) { ist[i] = acc; acc *= g.in[i]; }
      } else {
        for (int i = 3 - g.nsp; i < 3; ++i) { ist[i] = acc; acc *= g.in[i]; }
      }
    }
    return Dispatch(MaxPoolTypes{}, X.dtype(), [&](auto* tag) -> Status {
      using T = std::remove_pointer_t<decltype(tag)>;
      using A = ComputeType<T>;
      const T* x = X.data<T>();
      T* y = Y->data<T>();
      ForOutputs(g, planes, [&](int64_t p, int64_t oo, int64_t o0, int64_t o1, int64_t o2) {
        const T* xp = x + p * is;
        A best = std::numeric_limits<A>::lowest();
        if constexpr (std::is_floating_point_v<A>) best = -std::numeric_limits<A>::infinity();
        int64_t bi = -1;
        ForWindow(g, o0, o1, o2, [&](int64_t i0, int64_t i1, int64_t i2) {
          const A v = static_cast<A>(xp[(i0 * g.in[1] + i1) * g.in[2] + i2]);
          if (bi < 0 || MaxBeats(v, best)) {
            best = v;
            bi = i0 * ist[0] + i1 * ist[1] + i2 * ist[2];
          }
        });
        y[oo] = static_cast<T>(best);
        if (ind) ind[oo] = p * is + std::max<int64_t>(bi, 0);
      });
      return Status::Ok();
    });
  }

 private:
  SpatialAttrs a_;
  int64_t storage_order_ = 0;
  bool nhwc_ = false;
};

// AveragePool and LpPool differ only in how one window is reduced; the geometry, output allocation, dtype
// dispatch and parallel walk over the outputs are shared here. reduce(g, plane, o0, o1, o2) returns the
// window's value in ComputeType<T> for the input plane `plane` (a const T*).
template <typename Reduce>
Status PoolWindows(KernelContext& ctx, const SpatialAttrs& a, bool allow_dilation, const Reduce& reduce) {
  const Tensor& X = ctx.input_tensor(0);
  SpatialGeom sg;
  Shape ys;
  RETURN_IF_ERROR(PoolGeom(a, X.shape(), allow_dilation, sg, ys));
  const Geom3 g = To3(sg);
  ASSIGN_OR_RETURN(Tensor * Y, ctx.AllocateOutput(0, X.dtype(), ys));
  const int64_t planes = X.dim(0) * X.dim(1), is = g.in_size();
  return Dispatch(PoolFloatTypes{}, X.dtype(), [&](auto* tag) -> Status {
    using T = std::remove_pointer_t<decltype(tag)>;
    const T* x = X.data<T>();
    T* y = Y->data<T>();
    ForOutputs(g, planes, [&](int64_t p, int64_t oo, int64_t o0, int64_t o1, int64_t o2) {
      y[oo] = static_cast<T>(reduce(g, x + p * is, o0, o1, o2));
    });
    return Status::Ok();
  });
}

class AveragePoolKernel final : public OpKernel {
 public:
  Status Init(const KernelInfo& info) {
    RETURN_IF_ERROR(CheckInputDType(info, 0, DTypesOf(PoolFloatTypes{})));
    RETURN_IF_ERROR(a_.Load(info, info.opset() >= 19, info.opset() >= 10));
    if (a_.kernel_shape.empty()) return info.Error("kernel_shape is required");
    count_include_pad_ = info.attr_int("count_include_pad", 0) != 0;
    return ReadLayout(info, nhwc_);
  }
  Status Compute(KernelContext& ctx) override {
    const Tensor& X = ctx.input_tensor(0);
    if (nhwc_ || X.dtype() == DType::kFloat) {
      SpatialGeom sg;
      Shape ys;
      RETURN_IF_ERROR(PoolGeom(a_, X.shape(), false, sg, ys));
      ASSIGN_OR_RETURN(Tensor * Y, ctx.AllocateOutput(0, X.dtype(), ys));
      return PoolF32(X, *Y, To3(sg), PoolKind::kAvg, count_include_pad_, nhwc_);
    }
    return PoolWindows(ctx, a_, false, [&](const Geom3& g, const auto* xp, int64_t o0, int64_t o1, int64_t o2) {
      using A = ComputeType<std::remove_cv_t<std::remove_pointer_t<decltype(xp)>>>;
      A sum = 0;
      int64_t cnt = 0;
      ForWindow(g, o0, o1, o2, [&](int64_t i0, int64_t i1, int64_t i2) {
        sum += static_cast<A>(xp[(i0 * g.in[1] + i1) * g.in[2] + i2]);
        ++cnt;
      });
      if (count_include_pad_) cnt = PaddedTaps(g, 0, o0) * PaddedTaps(g, 1, o1) * PaddedTaps(g, 2, o2);
      return cnt > 0 ? sum / static_cast<A>(cnt) : A(0);
    });
  }

 private:
  SpatialAttrs a_;
  bool count_include_pad_ = false;
  bool nhwc_ = false;
};

class LpPoolKernel final : public OpKernel {
 public:
  Status Init(const KernelInfo& info) {
    RETURN_IF_ERROR(CheckInputDType(info, 0, DTypesOf(PoolFloatTypes{})));
    RETURN_IF_ERROR(a_.Load(info, info.opset() >= 18, info.opset() >= 18));
    if (a_.kernel_shape.empty()) return info.Error("kernel_shape is required");
    p_ = pool::ReadP(info);
    if (!(p_ > 0)) return info.Error("p must be positive");
    return Status::Ok();
  }
  Status Compute(KernelContext& ctx) override {
    return PoolWindows(ctx, a_, true, [&](const Geom3& g, const auto* xp, int64_t o0, int64_t o1, int64_t o2) {
      using A = ComputeType<std::remove_cv_t<std::remove_pointer_t<decltype(xp)>>>;
      A sum = 0;
      ForWindow(g, o0, o1, o2, [&](int64_t i0, int64_t i1, int64_t i2) {
        sum += pool::LpTerm(static_cast<A>(xp[(i0 * g.in[1] + i1) * g.in[2] + i2]), p_);
      });
      return pool::LpFinish(sum, p_);
    });
  }

 private:
  SpatialAttrs a_;
  float p_ = 2.f;
};

const KernelRegistrar kMaxPool{{.op_type = "MaxPool", .since = 1, .until = 18, .dtypes = DTypesOf(MaxPoolTypes{}),
                                .factory = MakeKernel<MaxPoolKernel>}};
const KernelRegistrar kAveragePool{{.op_type = "AveragePool", .since = 1, .until = 18,
                                    .dtypes = DTypesOf(PoolFloatTypes{}), .factory = MakeKernel<AveragePoolKernel>}};
const KernelRegistrar kLpPool{{.op_type = "LpPool", .since = 1, .until = 18, .dtypes = DTypesOf(PoolFloatTypes{}),
                               .factory = MakeKernel<LpPoolKernel>}};
// The channels-last forms the conv-layout pass writes (attribute "layout"; docs/passes.md). The node
// keeps the ONNX opset it was written for in its opset override, so the attributes mean the same.
const KernelRegistrar kStrataMaxPool{{.op_type = "MaxPool", .domain = "com.strata", .since = 1, .until = 18,
                                      .dtypes = {DType::kFloat}, .factory = MakeKernel<MaxPoolKernel>}};
const KernelRegistrar kStrataAveragePool{{.op_type = "AveragePool", .domain = "com.strata", .since = 1, .until = 18,
                                          .dtypes = {DType::kFloat}, .factory = MakeKernel<AveragePoolKernel>}};

}  // namespace
}  // namespace strata::cpu
