// Resize (opsets 10, 11, 13, 18) and Upsample (1, 7, 9; deprecated in 10).
//
// Each axis gets a plan: for every output index, either "outside" (tf_crop_and_resize extrapolation) or a
// fixed number of (input index, weight) taps. Nearest is a single gather pass; linear/cubic apply the taps
// separably, one axis at a time, in float (double for double inputs).
#include <algorithm>
#include <cmath>
#include <memory>

#include "kernels/cpu/tensor_util.h"

namespace strata::cpu {
namespace {

enum class Mode { kNearest, kLinear, kCubic };
enum class Coord { kHalfPixel, kHalfPixelSymmetric, kPytorchHalfPixel, kAlignCorners, kAsymmetric, kTfHalfPixelForNN,
                   kTfCropAndResize };
enum class NearestMode { kRoundPreferFloor, kRoundPreferCeil, kFloor, kCeil };
enum class AspectPolicy { kStretch, kNotLarger, kNotSmaller };

struct ResizeParams {
  Mode mode = Mode::kNearest;
  Coord coord = Coord::kHalfPixel;
  NearestMode nearest = NearestMode::kRoundPreferFloor;
  double cubic_a = -0.75;
  bool exclude_outside = false;
  double extrapolation = 0.0;
  bool antialias = false;
};

struct AxisPlan {
  int64_t in = 0, out = 0;
  int taps = 1;
  std::vector<int64_t> idx;     // out * taps
  std::vector<double> w;        // out * taps (unused for nearest)
  std::vector<uint8_t> outside; // out
  bool identity = false;
};

double CubicWeight(double x, double a) {
  x = std::fabs(x);
  if (x <= 1) return ((a + 2) * x - (a + 3)) * x * x + 1;
  if (x < 2) return ((a * x - 5 * a) * x + 8 * a) * x - 4 * a;
  return 0.0;
}

AxisPlan BuildAxis(const ResizeParams& p, int64_t in, int64_t out, double scale, double roi_start, double roi_end) {
  AxisPlan a;
  a.in = in;
  a.out = out;
  const bool aa = p.antialias && scale < 1.0 && p.mode != Mode::kNearest;
  const double s = aa ? scale : 1.0;  // filter stretch factor
  int64_t first = 0;                  // first tap offset relative to floor(x)
  if (p.mode == Mode::kNearest) {
    a.taps = 1;
  } else if (p.mode == Mode::kLinear) {
    first = aa ? static_cast<int64_t>(std::floor(-1.0 / s)) + 1 : 0;
    a.taps = static_cast<int>(2 - 2 * first);
  } else {
    first = aa ? static_cast<int64_t>(std::floor(-2.0 / s)) + 1 : -1;
    a.taps = static_cast<int>(2 - 2 * first);
  }
  const auto taps = static_cast<size_t>(a.taps);
  a.idx.assign(static_cast<size_t>(out) * taps, 0);
  if (p.mode != Mode::kNearest) a.w.assign(static_cast<size_t>(out) * taps, 0.0);
  a.outside.assign(static_cast<size_t>(out), 0);
  // As in the spec, length_resized is scale * length_original (not rounded) in the coordinate formulas.
  const double fin = static_cast<double>(in), fout = static_cast<double>(out), len = scale * fin;
  std::vector<double> coeff(taps);
  for (int64_t o = 0; o < out; ++o) {
    const double xr = static_cast<double>(o);
    double x = 0;
    switch (p.coord) {
      case Coord::kHalfPixel: x = (xr + 0.5) / scale - 0.5; break;
      case Coord::kHalfPixelSymmetric: {
        const double adj = fout / (scale * fin);
        const double center = fin / 2;
        x = center * (1 - adj) + (xr + 0.5) / scale - 0.5;
        break;
      }
      case Coord::kPytorchHalfPixel: x = len > 1 ? (xr + 0.5) / scale - 0.5 : 0.0; break;
      case Coord::kAlignCorners: x = len == 1 ? 0.0 : xr * (fin - 1) / (len - 1); break;
      case Coord::kAsymmetric: x = xr / scale; break;
      case Coord::kTfHalfPixelForNN: x = (xr + 0.5) / scale; break;
      case Coord::kTfCropAndResize:
        x = out > 1 ? roi_start * (fin - 1) + xr * (roi_end - roi_start) * (fin - 1) / (fout - 1)
                    : 0.5 * (roi_start + roi_end) * (fin - 1);
        if (x < 0 || x > fin - 1) {
          a.outside[static_cast<size_t>(o)] = 1;
          continue;
        }
        break;
    }
    const size_t base = static_cast<size_t>(o) * taps;
    if (p.mode == Mode::kNearest) {
      double r = 0;
      switch (p.nearest) {
        case NearestMode::kRoundPreferFloor: r = (x - std::floor(x) == 0.5) ? std::floor(x) : std::round(x); break;
        case NearestMode::kRoundPreferCeil: r = (x - std::floor(x) == 0.5) ? std::ceil(x) : std::round(x); break;
        case NearestMode::kFloor: r = std::floor(x); break;
        case NearestMode::kCeil: r = std::ceil(x); break;
      }
      a.idx[base] = std::clamp<int64_t>(static_cast<int64_t>(r), 0, in - 1);
      continue;
    }
    const double fl = std::floor(x);
    const double t = x - fl;
    const auto xi = static_cast<int64_t>(fl);
    double sum = 0;
    for (size_t k = 0; k < taps; ++k) {
      const double d = (static_cast<double>(first) + static_cast<double>(k) - t) * s;  // signed distance (scaled)
      double c;
      if (p.mode == Mode::kLinear) c = std::max(0.0, 1.0 - std::fabs(d));
      else c = CubicWeight(d, p.cubic_a);
      const int64_t src = xi + first + static_cast<int64_t>(k);
      if (p.exclude_outside && (src < 0 || src >= in)) c = 0;
      coeff[k] = c;
      sum += c;
    }
    const bool normalize = aa || p.exclude_outside;
    for (size_t k = 0; k < taps; ++k) {
      a.idx[base + k] = std::clamp<int64_t>(xi + first + static_cast<int64_t>(k), 0, in - 1);
      a.w[base + k] = normalize && sum != 0 ? coeff[k] / sum : coeff[k];
    }
  }
  // Identity: same size, no extrapolation and each output reads exactly input o with weight 1.
  a.identity = in == out;
  for (int64_t o = 0; a.identity && o < out; ++o) {
    if (a.outside[static_cast<size_t>(o)]) { a.identity = false; break; }
    const size_t base = static_cast<size_t>(o) * taps;
    for (size_t k = 0; k < taps; ++k) {
      const double wk = p.mode == Mode::kNearest ? 1.0 : a.w[base + k];
      if (wk == 0) continue;
      if (a.idx[base + k] != o || std::fabs(wk - 1.0) > 1e-12) { a.identity = false; break; }
    }
  }
  return a;
}

template <typename T, typename C>
inline T FromCompute(C v) {
  if constexpr (std::is_integral_v<T>) {
    return CastValue<T>(std::nearbyint(v));
  } else {
    return static_cast<T>(v);
  }
}

Status RunResize(KernelContext& ctx, const ResizeParams& p, const Tensor& x, const std::vector<AxisPlan>& plans) {
  const int r = x.rank();
  Shape out(static_cast<size_t>(r));
  for (int d = 0; d < r; ++d) out[static_cast<size_t>(d)] = plans[static_cast<size_t>(d)].out;
  ASSIGN_OR_RETURN(Tensor * y, ctx.AllocateOutput(0, x.dtype(), out));
  if (y->numel() == 0) return Status::Ok();
  if (x.numel() == 0) return InvalidArgument(ctx.Where() + "cannot resize an empty input to a non-empty output");

  if (p.mode == Mode::kNearest) {
    const Strides cs = ContiguousStrides(x.shape());
    std::vector<std::vector<int64_t>> tab(static_cast<size_t>(r));
    for (size_t d = 0; d < static_cast<size_t>(r); ++d) {
      const AxisPlan& a = plans[d];
      tab[d].resize(static_cast<size_t>(a.out));
      for (size_t o = 0; o < tab[d].size(); ++o) tab[d][o] = a.outside[o] ? -1 : a.idx[o] * cs[d];
    }
    return tensor::DispatchBySize(x.dtype(), [&](auto* tag) {
      using T = std::remove_pointer_t<decltype(tag)>;
      T extrap{};
      if constexpr (!std::is_same_v<T, std::string> && !std::is_same_v<T, tensor::Pod16>) {
        RETURN_IF_ERROR(Dispatch(NumericTypes{}, x.dtype(), [&](auto* t2) {
          using U = std::remove_pointer_t<decltype(t2)>;
          if constexpr (sizeof(U) == sizeof(T)) {
            const U u = CastValue<U>(p.extrapolation);
            std::memcpy(&extrap, &u, sizeof(T));
          }
          return Status::Ok();
        }));
      }
      const T* in = x.data<T>();
      T* o = y->data<T>();
      if (r == 0) { o[0] = in[0]; return Status::Ok(); }
      const size_t last = static_cast<size_t>(r - 1);
      const int64_t inner = out[last];
      const int64_t* it = tab[last].data();
      std::vector<int64_t> idx(static_cast<size_t>(r), 0);
      for (int64_t pos = 0; pos < y->numel(); pos += inner) {
        int64_t off = 0;
        bool fill = false;
        for (size_t d = 0; d < last; ++d) {
          const int64_t v = tab[d][static_cast<size_t>(idx[d])];
          if (v < 0) { fill = true; break; }
          off += v;
        }
        T* dst = o + pos;
        if (fill) {
          for (int64_t k = 0; k < inner; ++k) dst[k] = extrap;
        } else {
          const T* src = in + off;
          for (int64_t k = 0; k < inner; ++k) dst[k] = it[k] < 0 ? extrap : src[it[k]];
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

  return Dispatch(NumericTypes{}, x.dtype(), [&](auto* tag) {
    using T = std::remove_pointer_t<decltype(tag)>;
    using C = std::conditional_t<std::is_same_v<T, double> || std::is_same_v<T, int64_t> ||
                                     std::is_same_v<T, uint64_t> || std::is_same_v<T, int32_t> ||
                                     std::is_same_v<T, uint32_t>,
                                 double, float>;
    constexpr bool kDirect = std::is_same_v<T, C>;  // input/output can be used in place of scratch buffers
    std::vector<int> passes;
    for (int d = 0; d < r; ++d)
      if (!plans[static_cast<size_t>(d)].identity) passes.push_back(d);
    T* o = y->data<T>();
    const T* in = x.data<T>();
    std::unique_ptr<C[]> conv, buf_a, buf_b;
    const C* cur;
    if constexpr (kDirect) {
      cur = in;
    } else {
      conv.reset(new C[static_cast<size_t>(x.numel())]);
      for (int64_t i = 0; i < x.numel(); ++i) conv[static_cast<size_t>(i)] = static_cast<C>(static_cast<ComputeType<T>>(in[i]));
      cur = conv.get();
    }
    if (passes.empty()) {
      for (int64_t i = 0; i < y->numel(); ++i) o[i] = FromCompute<T>(cur[i]);
      return Status::Ok();
    }
    Shape shape = x.shape();
    const C extrap = static_cast<C>(p.extrapolation);
    for (size_t pi = 0; pi < passes.size(); ++pi) {
      const int d = passes[pi];
      const AxisPlan& a = plans[static_cast<size_t>(d)];
      int64_t outer = 1, inner = 1;
      for (int e = 0; e < d; ++e) outer *= shape[static_cast<size_t>(e)];
      for (int e = d + 1; e < r; ++e) inner *= shape[static_cast<size_t>(e)];
      const bool last_pass = pi + 1 == passes.size();
      C* dst_base = nullptr;
      if constexpr (kDirect) {
        if (last_pass) dst_base = o;
      }
      if (!kDirect || !last_pass) {
        auto& buf = (pi % 2 == 0) ? buf_a : buf_b;
        buf.reset(new C[static_cast<size_t>(outer * a.out * inner)]);
        dst_base = buf.get();
      }
      const auto taps = static_cast<size_t>(a.taps);
      std::vector<C> wc(a.w.size());
      for (size_t i = 0; i < wc.size(); ++i) wc[i] = static_cast<C>(a.w[i]);
      const int64_t rows = outer * a.out;
      const C* src_all = cur;
      ParallelRows(rows, inner, [&](int64_t row_begin, int64_t row_end) {
        for (int64_t row = row_begin; row < row_end; ++row) {
          const int64_t b = row / a.out, j = row % a.out;
          const C* src = src_all + b * a.in * inner;
          C* dst = dst_base + row * inner;
          if (a.outside[static_cast<size_t>(j)]) {
            for (int64_t k = 0; k < inner; ++k) dst[k] = extrap;
            continue;
          }
          const size_t base = static_cast<size_t>(j) * taps;
          if (inner == 1) {
            C acc = 0;
            for (size_t t = 0; t < taps; ++t) acc += wc[base + t] * src[a.idx[base + t]];
            dst[0] = acc;
          } else {
            for (int64_t k = 0; k < inner; ++k) dst[k] = C(0);
            for (size_t t = 0; t < taps; ++t) {
              const C wt = wc[base + t];
              if (wt == 0) continue;
              const C* srow = src + a.idx[base + t] * inner;
              for (int64_t k = 0; k < inner; ++k) dst[k] += wt * srow[k];
            }
          }
        }
      }, 1 << 15);
      shape[static_cast<size_t>(d)] = a.out;
      cur = dst_base;
    }
    if constexpr (!kDirect) {
      for (int64_t i = 0; i < y->numel(); ++i) o[i] = FromCompute<T>(cur[i]);
    }
    return Status::Ok();
  });
}

Result<std::vector<double>> ReadFloats(const KernelContext& ctx, const Tensor& t, const char* name) {
  if (!IsFloatingPoint(t.dtype()))
    return InvalidArgument(ctx.Where() + "'" + name + "' must be a floating-point tensor");
  std::vector<double> v(static_cast<size_t>(t.numel()));
  for (int64_t i = 0; i < t.numel(); ++i) v[static_cast<size_t>(i)] = t.GetAsDouble(i);
  return v;
}

// Builds plans for all axes from per-axis scales (and optional output sizes).
Result<std::vector<AxisPlan>> PlanFromScales(const KernelContext& ctx, const ResizeParams& p, const Tensor& x,
                                             const std::vector<double>& scales, const std::vector<int64_t>* sizes,
                                             const std::vector<double>& roi) {
  const int r = x.rank();
  std::vector<AxisPlan> plans;
  for (int d = 0; d < r; ++d) {
    const auto ud = static_cast<size_t>(d);
    const double s = scales[ud];
    if (!(s > 0)) return InvalidArgument(ctx.Where() + "scales must be positive, got " + std::to_string(s));
    const int64_t in = x.dim(d);
    const double rs = roi.empty() ? 0.0 : roi[ud];
    const double re = roi.empty() ? 1.0 : roi[ud + static_cast<size_t>(r)];
    int64_t out;
    if (sizes) {
      out = (*sizes)[ud];
    } else {
      // With tf_crop_and_resize the output covers the roi: floor(in * (roi_end - roi_start) * scale).
      const double o = std::floor(static_cast<double>(in) * (re - rs) * s);
      if (!(o >= 0)) return InvalidArgument(ctx.Where() + "roi/scales give a negative output size");
      if (o > 1e12) return InvalidArgument(ctx.Where() + "output too large");
      out = static_cast<int64_t>(o);
    }
    plans.push_back(BuildAxis(p, in, out, s, rs, re));
  }
  return plans;
}

// ---------------------------------------------------------------- Resize
class ResizeKernel final : public OpKernel {
 public:
  Status Init(const KernelInfo& info) {
    opset_ = info.opset();
    const std::string mode = info.attr_string("mode", "nearest");
    if (mode == "nearest") p_.mode = Mode::kNearest;
    else if (mode == "linear" || (opset_ < 11 && mode == "bilinear")) p_.mode = Mode::kLinear;
    else if (mode == "cubic" && opset_ >= 11) p_.mode = Mode::kCubic;
    else return info.Error("unsupported mode '" + mode + "'");
    if (opset_ < 11) {
      p_.coord = Coord::kAsymmetric;
      p_.nearest = NearestMode::kFloor;
      return Status::Ok();
    }
    const std::string ct = info.attr_string("coordinate_transformation_mode", "half_pixel");
    if (ct == "half_pixel") p_.coord = Coord::kHalfPixel;
    else if (ct == "half_pixel_symmetric") p_.coord = Coord::kHalfPixelSymmetric;
    else if (ct == "pytorch_half_pixel") p_.coord = Coord::kPytorchHalfPixel;
    else if (ct == "align_corners") p_.coord = Coord::kAlignCorners;
    else if (ct == "asymmetric") p_.coord = Coord::kAsymmetric;
    else if (ct == "tf_half_pixel_for_nn" && opset_ < 13) p_.coord = Coord::kTfHalfPixelForNN;
    else if (ct == "tf_crop_and_resize") p_.coord = Coord::kTfCropAndResize;
    else return info.Error("unsupported coordinate_transformation_mode '" + ct + "'");
    const std::string nm = info.attr_string("nearest_mode", "round_prefer_floor");
    if (nm == "round_prefer_floor") p_.nearest = NearestMode::kRoundPreferFloor;
    else if (nm == "round_prefer_ceil") p_.nearest = NearestMode::kRoundPreferCeil;
    else if (nm == "floor") p_.nearest = NearestMode::kFloor;
    else if (nm == "ceil") p_.nearest = NearestMode::kCeil;
    else return info.Error("unsupported nearest_mode '" + nm + "'");
    p_.cubic_a = info.attr_float("cubic_coeff_a", -0.75f);
    p_.exclude_outside = info.attr_int("exclude_outside", 0) != 0;
    p_.extrapolation = info.attr_float("extrapolation_value", 0.0f);
    if (opset_ >= 18) {
      p_.antialias = info.attr_int("antialias", 0) != 0;
      axes_ = info.attr_ints("axes");
      const std::string pol = info.attr_string("keep_aspect_ratio_policy", "stretch");
      if (pol == "stretch") policy_ = AspectPolicy::kStretch;
      else if (pol == "not_larger") policy_ = AspectPolicy::kNotLarger;
      else if (pol == "not_smaller") policy_ = AspectPolicy::kNotSmaller;
      else return info.Error("unsupported keep_aspect_ratio_policy '" + pol + "'");
    }
    return Status::Ok();
  }

  Status Compute(KernelContext& ctx) override {
    const Tensor& x = ctx.input_tensor(0);
    const int r = x.rank();
    if (opset_ < 11) {
      CHECK_ARG(ctx.has_input(1), ctx.Where() + "missing 'scales' input");
      ASSIGN_OR_RETURN(std::vector<double> scales, ReadFloats(ctx, ctx.input_tensor(1), "scales"));
      if (static_cast<int>(scales.size()) != r)
        return InvalidArgument(ctx.Where() + "scales must have one entry per input dimension");
      ASSIGN_OR_RETURN(std::vector<AxisPlan> plans, PlanFromScales(ctx, p_, x, scales, nullptr, {}));
      return RunResize(ctx, p_, x, plans);
    }
    // Axes the scales/sizes/roi refer to.
    std::vector<int> axes;
    if (!axes_.empty()) {
      std::vector<bool> seen(static_cast<size_t>(r), false);
      for (int64_t a : axes_) {
        ASSIGN_OR_RETURN(int ax, NormalizeAxis(a, r, ctx));
        if (seen[static_cast<size_t>(ax)]) return InvalidArgument(ctx.Where() + "duplicate axis in 'axes'");
        seen[static_cast<size_t>(ax)] = true;
        axes.push_back(ax);
      }
    } else {
      for (int d = 0; d < r; ++d) axes.push_back(d);
    }
    const size_t na = axes.size();
    std::vector<double> roi_in, scales_in;
    std::vector<int64_t> sizes_in;
    if (ctx.has_input(1)) {
      ASSIGN_OR_RETURN(roi_in, ReadFloats(ctx, ctx.input_tensor(1), "roi"));
    }
    if (ctx.has_input(2)) {
      ASSIGN_OR_RETURN(scales_in, ReadFloats(ctx, ctx.input_tensor(2), "scales"));
    }
    if (ctx.has_input(3)) {
      ASSIGN_OR_RETURN(sizes_in, tensor::ReadIntsInput(ctx, 3, "sizes"));
    }
    if (!scales_in.empty() && !sizes_in.empty())
      return InvalidArgument(ctx.Where() + "only one of 'scales' and 'sizes' may be given");
    if (scales_in.empty() && sizes_in.empty())
      return InvalidArgument(ctx.Where() + "one of 'scales' and 'sizes' must be given");
    // Full-rank roi / scales / sizes.
    std::vector<double> roi;
    if (p_.coord == Coord::kTfCropAndResize) {
      if (roi_in.size() != 2 * na)
        return InvalidArgument(ctx.Where() + "roi must have 2 * " + std::to_string(na) + " entries for tf_crop_and_resize");
      roi.assign(2 * static_cast<size_t>(r), 0.0);
      for (int d = 0; d < r; ++d) roi[static_cast<size_t>(d + r)] = 1.0;
      for (size_t i = 0; i < na; ++i) {
        roi[static_cast<size_t>(axes[i])] = roi_in[i];
        roi[static_cast<size_t>(axes[i] + r)] = roi_in[i + na];
      }
    }
    std::vector<double> scales(static_cast<size_t>(r), 1.0);
    if (!scales_in.empty()) {
      if (scales_in.size() != na)
        return InvalidArgument(ctx.Where() + "scales has " + std::to_string(scales_in.size()) + " entries, expected " +
                               std::to_string(na));
      for (size_t i = 0; i < na; ++i) scales[static_cast<size_t>(axes[i])] = scales_in[i];
      ASSIGN_OR_RETURN(std::vector<AxisPlan> plans, PlanFromScales(ctx, p_, x, scales, nullptr, roi));
      return RunResize(ctx, p_, x, plans);
    }
    if (sizes_in.size() != na)
      return InvalidArgument(ctx.Where() + "sizes has " + std::to_string(sizes_in.size()) + " entries, expected " +
                             std::to_string(na));
    std::vector<int64_t> sizes(x.shape().begin(), x.shape().end());
    for (size_t i = 0; i < na; ++i) {
      if (sizes_in[i] < 0) return InvalidArgument(ctx.Where() + "negative output size");
      if (x.dim(axes[i]) == 0 && sizes_in[i] != 0) return InvalidArgument(ctx.Where() + "cannot resize an empty axis");
    }
    if (policy_ == AspectPolicy::kStretch) {
      for (size_t i = 0; i < na; ++i) {
        const auto a = static_cast<size_t>(axes[i]);
        sizes[a] = sizes_in[i];
        scales[a] = x.dim(axes[i]) == 0 ? 1.0 : static_cast<double>(sizes_in[i]) / static_cast<double>(x.dim(axes[i]));
      }
    } else {
      double s = policy_ == AspectPolicy::kNotLarger ? 1e300 : 0.0;
      for (size_t i = 0; i < na; ++i) {
        const double si = static_cast<double>(sizes_in[i]) / static_cast<double>(x.dim(axes[i]));
        s = policy_ == AspectPolicy::kNotLarger ? std::min(s, si) : std::max(s, si);
      }
      for (size_t i = 0; i < na; ++i) {
        const auto a = static_cast<size_t>(axes[i]);
        scales[a] = s;
        sizes[a] = static_cast<int64_t>(std::nearbyint(s * static_cast<double>(x.dim(axes[i]))));
      }
    }
    ASSIGN_OR_RETURN(std::vector<AxisPlan> plans, PlanFromScales(ctx, p_, x, scales, &sizes, roi));
    return RunResize(ctx, p_, x, plans);
  }

 private:
  int64_t opset_ = 0;
  ResizeParams p_;
  std::vector<int64_t> axes_;
  AspectPolicy policy_ = AspectPolicy::kStretch;
};

// ---------------------------------------------------------------- Upsample
class UpsampleKernel final : public OpKernel {
 public:
  Status Init(const KernelInfo& info) {
    opset_ = info.opset();
    const std::string mode = info.attr_string("mode", "nearest");
    if (mode == "nearest") p_.mode = Mode::kNearest;
    else if (mode == "linear" || mode == "bilinear") p_.mode = Mode::kLinear;
    else return info.Error("unsupported mode '" + mode + "'");
    p_.coord = Coord::kAsymmetric;
    p_.nearest = NearestMode::kFloor;
    if (opset_ < 7) {
      if (!info.has_attr("height_scale") || !info.has_attr("width_scale"))
        return info.Error("Upsample-1 needs 'height_scale' and 'width_scale'");
      hw_scale_ = {info.attr_float("height_scale", 1.0f), info.attr_float("width_scale", 1.0f)};
    } else if (opset_ < 9) {
      if (!info.has_attr("scales")) return info.Error("Upsample-7 needs the 'scales' attribute");
      for (float f : info.attr_floats("scales")) scales_attr_.push_back(f);
    }
    return Status::Ok();
  }
  Status Compute(KernelContext& ctx) override {
    const Tensor& x = ctx.input_tensor(0);
    const int r = x.rank();
    std::vector<double> scales;
    if (opset_ < 7) {
      if (r != 4) return InvalidArgument(ctx.Where() + "Upsample-1 expects a 4-D input");
      scales = {1.0, 1.0, hw_scale_[0], hw_scale_[1]};
    } else if (opset_ < 9) {
      scales = scales_attr_;
    } else {
      CHECK_ARG(ctx.has_input(1), ctx.Where() + "missing 'scales' input");
      ASSIGN_OR_RETURN(scales, ReadFloats(ctx, ctx.input_tensor(1), "scales"));
    }
    if (static_cast<int>(scales.size()) != r)
      return InvalidArgument(ctx.Where() + "scales must have one entry per input dimension");
    for (double s : scales)
      if (s < 1.0) return InvalidArgument(ctx.Where() + "Upsample scales must be >= 1");
    ASSIGN_OR_RETURN(std::vector<AxisPlan> plans, PlanFromScales(ctx, p_, x, scales, nullptr, {}));
    return RunResize(ctx, p_, x, plans);
  }

 private:
  int64_t opset_ = 0;
  ResizeParams p_;
  std::vector<double> hw_scale_, scales_attr_;
};

const KernelRegistrar kResize{{.op_type = "Resize", .since = 10, .until = 18, .factory = MakeKernel<ResizeKernel>}};
const KernelRegistrar kUpsample{{.op_type = "Upsample", .since = 1, .until = 18, .factory = MakeKernel<UpsampleKernel>}};

}  // namespace
}  // namespace strata::cpu
