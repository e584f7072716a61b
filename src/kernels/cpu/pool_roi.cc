// RoiAlign (opset 10 and 16: avg/max modes, coordinate_transformation_mode) and MaxRoiPool.
#include <algorithm>
#include <cmath>
#include <vector>

#include "kernels/cpu/nn_common.h"

namespace strata::cpu {
namespace {

using RoiTypes = TypeList<float, double, Float16, BFloat16>;

class RoiAlignKernel final : public OpKernel {
 public:
  Status Init(const KernelInfo& info) {
    RETURN_IF_ERROR(CheckInputDType(info, 0, DTypesOf(RoiTypes{})));
    const std::string mode = info.attr_string("mode", "avg");
    if (mode != "avg" && mode != "max") return info.Error("mode must be 'avg' or 'max'");
    max_ = mode == "max";
    oh_ = info.attr_int("output_height", 1);
    ow_ = info.attr_int("output_width", 1);
    if (oh_ <= 0 || ow_ <= 0) return info.Error("output_height/output_width must be positive");
    sampling_ratio_ = info.attr_int("sampling_ratio", 0);
    if (sampling_ratio_ < 0) return info.Error("sampling_ratio must be >= 0");
    scale_ = info.attr_float("spatial_scale", 1.f);
    const std::string ctm =
        info.attr_string("coordinate_transformation_mode", info.opset() >= 16 ? "half_pixel" : "output_half_pixel");
    if (ctm != "half_pixel" && ctm != "output_half_pixel")
      return info.Error("coordinate_transformation_mode must be 'half_pixel' or 'output_half_pixel'");
    half_pixel_ = ctm == "half_pixel";
    return Status::Ok();
  }

  Status Compute(KernelContext& ctx) override {
    const Tensor& X = ctx.input_tensor(0);
    const Tensor& R = ctx.input_tensor(1);
    const Tensor& BI = ctx.input_tensor(2);
    if (X.rank() != 4) return InvalidArgument("RoiAlign: X must be 4-D");
    if (R.rank() != 2 || R.dim(1) != 4 || R.dtype() != X.dtype())
      return InvalidArgument("RoiAlign: rois must be [num_rois, 4] of X's dtype");
    if (BI.rank() != 1 || BI.dim(0) != R.dim(0) || (BI.dtype() != DType::kInt64 && BI.dtype() != DType::kInt32))
      return InvalidArgument("RoiAlign: batch_indices must be int64 [num_rois]");
    const int64_t N = X.dim(0), C = X.dim(1), H = X.dim(2), W = X.dim(3), nr = R.dim(0);
    for (int64_t i = 0; i < nr; ++i) {
      const int64_t b = BI.GetAsInt64(i);
      if (b < 0 || b >= N) return InvalidArgument("RoiAlign: batch index " + std::to_string(b) + " out of range");
    }
    ASSIGN_OR_RETURN(Tensor * Y, ctx.AllocateOutput(0, X.dtype(), {nr, C, oh_, ow_}));
    return Dispatch(RoiTypes{}, X.dtype(), [&](auto* tag) -> Status {
      using T = std::remove_pointer_t<decltype(tag)>;
      using A = ComputeType<T>;
      const T* x = X.data<T>();
      const T* r = R.data<T>();
      T* y = Y->data<T>();
      ParallelRows(nr, C * oh_ * ow_, [&](int64_t n_begin, int64_t n_end) {
        for (int64_t n = n_begin; n < n_end; ++n) {
          const int64_t b = BI.GetAsInt64(n);
          const A off = half_pixel_ ? A(0.5) : A(0);
          const A sw = static_cast<A>(r[n * 4 + 0]) * static_cast<A>(scale_) - off;
          const A sh = static_cast<A>(r[n * 4 + 1]) * static_cast<A>(scale_) - off;
          const A ew = static_cast<A>(r[n * 4 + 2]) * static_cast<A>(scale_) - off;
          const A eh = static_cast<A>(r[n * 4 + 3]) * static_cast<A>(scale_) - off;
          A rw = ew - sw, rh = eh - sh;
          if (!half_pixel_) {
            rw = std::max(rw, A(1));
            rh = std::max(rh, A(1));
          }
          const A bh = rh / static_cast<A>(oh_), bw = rw / static_cast<A>(ow_);
          const int64_t gh = sampling_ratio_ > 0 ? sampling_ratio_ : static_cast<int64_t>(std::ceil(rh / static_cast<A>(oh_)));
          const int64_t gw = sampling_ratio_ > 0 ? sampling_ratio_ : static_cast<int64_t>(std::ceil(rw / static_cast<A>(ow_)));
          const A count = static_cast<A>(std::max<int64_t>(gh * gw, 1));
          // Precompute the bilinear taps of every sample for this roi (shared by all channels).
          struct Tap { int64_t p1, p2, p3, p4; A w1, w2, w3, w4; };
          std::vector<Tap> taps;
          taps.reserve(static_cast<size_t>(oh_ * ow_ * std::max<int64_t>(gh, 0) * std::max<int64_t>(gw, 0)));
          for (int64_t ph = 0; ph < oh_; ++ph)
            for (int64_t pw = 0; pw < ow_; ++pw)
              for (int64_t iy = 0; iy < gh; ++iy) {
                const A yy0 = sh + static_cast<A>(ph) * bh + (static_cast<A>(iy) + A(0.5)) * bh / static_cast<A>(gh);
                for (int64_t ix = 0; ix < gw; ++ix) {
                  A xx = sw + static_cast<A>(pw) * bw + (static_cast<A>(ix) + A(0.5)) * bw / static_cast<A>(gw);
                  A yy = yy0;
                  Tap t{0, 0, 0, 0, 0, 0, 0, 0};
                  if (yy < A(-1) || yy > static_cast<A>(H) || xx < A(-1) || xx > static_cast<A>(W)) {
                    taps.push_back(t);
                    continue;
                  }
                  if (yy <= 0) yy = 0;
                  if (xx <= 0) xx = 0;
                  int64_t yl = static_cast<int64_t>(yy), xl = static_cast<int64_t>(xx), yh, xh;
                  if (yl >= H - 1) { yh = yl = H - 1; yy = static_cast<A>(yl); } else { yh = yl + 1; }
                  if (xl >= W - 1) { xh = xl = W - 1; xx = static_cast<A>(xl); } else { xh = xl + 1; }
                  const A ly = yy - static_cast<A>(yl), lx = xx - static_cast<A>(xl), hy = A(1) - ly, hx = A(1) - lx;
                  t = {yl * W + xl, yl * W + xh, yh * W + xl, yh * W + xh, hy * hx, hy * lx, ly * hx, ly * lx};
                  taps.push_back(t);
                }
              }
          const int64_t per_bin = gh * gw;
          for (int64_t c = 0; c < C; ++c) {
            const T* xp = x + (b * C + c) * H * W;
            T* yp = y + (n * C + c) * oh_ * ow_;
            for (int64_t bin = 0; bin < oh_ * ow_; ++bin) {
              const Tap* tb = taps.data() + bin * per_bin;
              A acc = 0;
              for (int64_t s = 0; s < per_bin; ++s) {
                const Tap& t = tb[s];
                const A v1 = t.w1 * static_cast<A>(xp[t.p1]), v2 = t.w2 * static_cast<A>(xp[t.p2]);
                const A v3 = t.w3 * static_cast<A>(xp[t.p3]), v4 = t.w4 * static_cast<A>(xp[t.p4]);
                if (max_) {
                  const A m = std::max(std::max(v1, v2), std::max(v3, v4));
                  acc = s == 0 ? m : std::max(acc, m);
                } else {
                  acc += v1 + v2 + v3 + v4;
                }
              }
              yp[bin] = static_cast<T>(max_ ? acc : acc / count);
            }
          }
        }
      }, 4096);
      return Status::Ok();
    });
  }

 private:
  bool max_ = false, half_pixel_ = true;
  int64_t oh_ = 1, ow_ = 1, sampling_ratio_ = 0;
  float scale_ = 1.f;
};

class MaxRoiPoolKernel final : public OpKernel {
 public:
  Status Init(const KernelInfo& info) {
    RETURN_IF_ERROR(CheckInputDType(info, 0, DTypesOf(RoiTypes{})));
    pooled_ = info.attr_ints("pooled_shape");
    if (pooled_.size() != 2 || pooled_[0] <= 0 || pooled_[1] <= 0)
      return info.Error("pooled_shape must hold two positive values");
    scale_ = info.attr_float("spatial_scale", 1.f);
    return Status::Ok();
  }
  Status Compute(KernelContext& ctx) override {
    const Tensor& X = ctx.input_tensor(0);
    const Tensor& R = ctx.input_tensor(1);
    if (X.rank() != 4) return InvalidArgument("MaxRoiPool: X must be 4-D");
    if (R.rank() != 2 || R.dim(1) != 5 || R.dtype() != X.dtype())
      return InvalidArgument("MaxRoiPool: rois must be [num_rois, 5] of X's dtype");
    const int64_t C = X.dim(1), H = X.dim(2), W = X.dim(3), nr = R.dim(0), PH = pooled_[0], PW = pooled_[1];
    ASSIGN_OR_RETURN(Tensor * Y, ctx.AllocateOutput(0, X.dtype(), {nr, C, PH, PW}));
    return Dispatch(RoiTypes{}, X.dtype(), [&](auto* tag) -> Status {
      using T = std::remove_pointer_t<decltype(tag)>;
      using A = ComputeType<T>;
      const T* x = X.data<T>();
      const T* r = R.data<T>();
      T* y = Y->data<T>();
      for (int64_t n = 0; n < nr; ++n) {
        const int64_t b = static_cast<int64_t>(static_cast<A>(r[n * 5]));
        if (b < 0 || b >= X.dim(0)) return InvalidArgument("MaxRoiPool: roi batch index out of range");
        const int64_t x1 = static_cast<int64_t>(std::round(static_cast<A>(r[n * 5 + 1]) * scale_));
        const int64_t y1 = static_cast<int64_t>(std::round(static_cast<A>(r[n * 5 + 2]) * scale_));
        const int64_t x2 = static_cast<int64_t>(std::round(static_cast<A>(r[n * 5 + 3]) * scale_));
        const int64_t y2 = static_cast<int64_t>(std::round(static_cast<A>(r[n * 5 + 4]) * scale_));
        const int64_t rw = std::max<int64_t>(x2 - x1 + 1, 1), rh = std::max<int64_t>(y2 - y1 + 1, 1);
        const double bh = static_cast<double>(rh) / static_cast<double>(PH);
        const double bw = static_cast<double>(rw) / static_cast<double>(PW);
        for (int64_t c = 0; c < C; ++c) {
          const T* xp = x + (b * C + c) * H * W;
          for (int64_t ph = 0; ph < PH; ++ph)
            for (int64_t pw = 0; pw < PW; ++pw) {
              int64_t hs = static_cast<int64_t>(std::floor(static_cast<double>(ph) * bh)) + y1;
              int64_t he = static_cast<int64_t>(std::ceil(static_cast<double>(ph + 1) * bh)) + y1;
              int64_t ws = static_cast<int64_t>(std::floor(static_cast<double>(pw) * bw)) + x1;
              int64_t we = static_cast<int64_t>(std::ceil(static_cast<double>(pw + 1) * bw)) + x1;
              hs = std::clamp<int64_t>(hs, 0, H);
              he = std::clamp<int64_t>(he, 0, H);
              ws = std::clamp<int64_t>(ws, 0, W);
              we = std::clamp<int64_t>(we, 0, W);
              A best = 0;
              bool any = false;
              for (int64_t h = hs; h < he; ++h)
                for (int64_t w = ws; w < we; ++w) {
                  const A v = static_cast<A>(xp[h * W + w]);
                  if (!any || v > best) { best = v; any = true; }
                }
              y[((n * C + c) * PH + ph) * PW + pw] = static_cast<T>(any ? best : A(0));
            }
        }
      }
      return Status::Ok();
    });
  }

 private:
  std::vector<int64_t> pooled_;
  float scale_ = 1.f;
};

const KernelRegistrar kRoiAlign{{.op_type = "RoiAlign", .since = 10, .until = 18, .dtypes = DTypesOf(RoiTypes{}),
                                 .factory = MakeKernel<RoiAlignKernel>}};
const KernelRegistrar kMaxRoiPool{{.op_type = "MaxRoiPool", .since = 1, .until = 18,
                                   .dtypes = DTypesOf(RoiTypes{}), .factory = MakeKernel<MaxRoiPoolKernel>}};

}  // namespace
}  // namespace strata::cpu
