// GridSample (opset 16, 4-D: bilinear/nearest/bicubic, zeros/border/reflection) and NonMaxSuppression.
#include <algorithm>
#include <cmath>
#include <numeric>

#include "kernels/cpu/nn_common.h"

namespace strata::cpu {
namespace {

using GridTypes = TypeList<float, double, Float16, BFloat16>;

enum class Interp { kBilinear, kNearest, kBicubic };
enum class Padding { kZeros, kBorder, kReflection };

template <typename A>
A Reflect(A x, A lo, A hi) {
  const A range = hi - lo;
  if (range <= 0) return lo;
  if (x < lo) {
    const A dx = lo - x;
    const int64_t n = static_cast<int64_t>(dx / range);
    const A r = dx - static_cast<A>(n) * range;
    return n % 2 == 0 ? lo + r : hi - r;
  }
  if (x > hi) {
    const A dx = x - hi;
    const int64_t n = static_cast<int64_t>(dx / range);
    const A r = dx - static_cast<A>(n) * range;
    return n % 2 == 0 ? hi - r : lo + r;
  }
  return x;
}

template <typename A>
void CubicCoeffs(A t, A c[4]) {
  constexpr A a = A(-0.75);
  A x = t + 1;
  c[0] = ((a * x - 5 * a) * x + 8 * a) * x - 4 * a;
  x = t;
  c[1] = ((a + 2) * x - (a + 3)) * x * x + 1;
  x = 1 - t;
  c[2] = ((a + 2) * x - (a + 3)) * x * x + 1;
  x = 2 - t;
  c[3] = ((a * x - 5 * a) * x + 8 * a) * x - 4 * a;
}

class GridSampleKernel final : public OpKernel {
 public:
  Status Init(const KernelInfo& info) {
    RETURN_IF_ERROR(CheckInputDType(info, 0, DTypesOf(GridTypes{})));
    const std::string mode = info.attr_string("mode", "bilinear");
    if (mode == "bilinear" || mode == "linear") interp_ = Interp::kBilinear;
    else if (mode == "nearest") interp_ = Interp::kNearest;
    else if (mode == "bicubic" || mode == "cubic") interp_ = Interp::kBicubic;
    else return info.Error("unknown mode '" + mode + "'");
    const std::string pad = info.attr_string("padding_mode", "zeros");
    if (pad == "zeros") padding_ = Padding::kZeros;
    else if (pad == "border") padding_ = Padding::kBorder;
    else if (pad == "reflection") padding_ = Padding::kReflection;
    else return info.Error("unknown padding_mode '" + pad + "'");
    align_corners_ = info.attr_int("align_corners", 0) != 0;
    return Status::Ok();
  }

  Status Compute(KernelContext& ctx) override {
    const Tensor& X = ctx.input_tensor(0);
    const Tensor& G = ctx.input_tensor(1);
    if (X.rank() != 4) return Unsupported("GridSample: only 4-D inputs are supported");
    if (G.rank() != 4 || G.dim(0) != X.dim(0) || G.dim(3) != 2 || G.dtype() != X.dtype())
      return InvalidArgument("GridSample: grid must be [N, H_out, W_out, 2] of X's dtype");
    const int64_t N = X.dim(0), C = X.dim(1), H = X.dim(2), W = X.dim(3), HO = G.dim(1), WO = G.dim(2);
    ASSIGN_OR_RETURN(Tensor * Y, ctx.AllocateOutput(0, X.dtype(), {N, C, HO, WO}));
    if (Y->numel() == 0) return Status::Ok();
    if (H == 0 || W == 0) return InvalidArgument("GridSample: empty spatial input");
    return Dispatch(GridTypes{}, X.dtype(), [&](auto* tag) -> Status {
      using T = std::remove_pointer_t<decltype(tag)>;
      using A = ComputeType<T>;
      const T* x = X.data<T>();
      const T* g = G.data<T>();
      T* y = Y->data<T>();
      const A xmin = align_corners_ ? A(0) : A(-0.5), xmax = align_corners_ ? A(W - 1) : A(W) - A(0.5);
      const A ymin = align_corners_ ? A(0) : A(-0.5), ymax = align_corners_ ? A(H - 1) : A(H) - A(0.5);
      auto pixel = [&](const T* img, int64_t r, int64_t c) -> A {
        if (padding_ == Padding::kZeros) {
          if (c < 0 || c >= W || r < 0 || r >= H) return A(0);
        } else if (padding_ == Padding::kBorder) {
          c = std::clamp<int64_t>(c, 0, W - 1);
          r = std::clamp<int64_t>(r, 0, H - 1);
        } else {
          c = static_cast<int64_t>(Reflect(static_cast<A>(c), xmin, xmax));
          r = static_cast<int64_t>(Reflect(static_cast<A>(r), ymin, ymax));
          c = std::clamp<int64_t>(c, 0, W - 1);
          r = std::clamp<int64_t>(r, 0, H - 1);
        }
        return static_cast<A>(img[r * W + c]);
      };
      ParallelRows(N, C * HO * WO, [&](int64_t n_begin, int64_t n_end) {
        for (int64_t n = n_begin; n < n_end; ++n) {
          for (int64_t oy = 0; oy < HO; ++oy)
            for (int64_t ox = 0; ox < WO; ++ox) {
              const T* gp = g + ((n * HO + oy) * WO + ox) * 2;
              const A gx = static_cast<A>(gp[0]), gy = static_cast<A>(gp[1]);
              A fx = align_corners_ ? (gx + 1) / 2 * A(W - 1) : ((gx + 1) * A(W) - 1) / 2;
              A fy = align_corners_ ? (gy + 1) / 2 * A(H - 1) : ((gy + 1) * A(H) - 1) / 2;
              if (interp_ == Interp::kNearest) {
                fx = std::nearbyint(fx);
                fy = std::nearbyint(fy);
              }
              if (fx < xmin || fx > xmax || fy < ymin || fy > ymax) {
                if (padding_ == Padding::kBorder) {
                  fx = std::clamp(fx, A(0), A(W - 1));
                  fy = std::clamp(fy, A(0), A(H - 1));
                } else if (padding_ == Padding::kReflection) {
                  fx = Reflect(fx, xmin, xmax);
                  fy = Reflect(fy, ymin, ymax);
                }
              }
              for (int64_t c = 0; c < C; ++c) {
                const T* img = x + (n * C + c) * H * W;
                A v;
                if (interp_ == Interp::kNearest) {
                  v = pixel(img, static_cast<int64_t>(fy), static_cast<int64_t>(fx));
                } else if (interp_ == Interp::kBilinear) {
                  const A x1 = std::floor(fx), y1 = std::floor(fy);
                  const int64_t ix = static_cast<int64_t>(x1), iy = static_cast<int64_t>(y1);
                  const A dx1 = fx - x1, dx2 = A(1) - dx1, dy1 = fy - y1, dy2 = A(1) - dy1;
                  v = dy2 * (dx2 * pixel(img, iy, ix) + dx1 * pixel(img, iy, ix + 1)) +
                      dy1 * (dx2 * pixel(img, iy + 1, ix) + dx1 * pixel(img, iy + 1, ix + 1));
                } else {
                  const A x0 = std::floor(fx) - 1, y0 = std::floor(fy) - 1;
                  const int64_t ix = static_cast<int64_t>(x0), iy = static_cast<int64_t>(y0);
                  A cx[4], cy[4];
                  CubicCoeffs(fx - x0 - 1, cx);
                  CubicCoeffs(fy - y0 - 1, cy);
                  v = 0;
                  for (int i = 0; i < 4; ++i) {
                    A row = 0;
                    for (int j = 0; j < 4; ++j) row += cx[j] * pixel(img, iy + i, ix + j);
                    v += cy[i] * row;
                  }
                }
                y[((n * C + c) * HO + oy) * WO + ox] = static_cast<T>(v);
              }
            }
        }
      }, 4096);
      return Status::Ok();
    });
  }

 private:
  Interp interp_ = Interp::kBilinear;
  Padding padding_ = Padding::kZeros;
  bool align_corners_ = false;
};

class NonMaxSuppressionKernel final : public OpKernel {
 public:
  Status Init(const KernelInfo& info) {
    RETURN_IF_ERROR(CheckInputDType(info, 0, {DType::kFloat}));
    center_ = info.attr_int("center_point_box", 0);
    if (center_ != 0 && center_ != 1) return info.Error("center_point_box must be 0 or 1");
    return Status::Ok();
  }

  Status Compute(KernelContext& ctx) override {
    const Tensor& B = ctx.input_tensor(0);
    const Tensor& S = ctx.input_tensor(1);
    if (B.dtype() != DType::kFloat || S.dtype() != DType::kFloat)
      return InvalidArgument("NonMaxSuppression: boxes and scores must be float");
    if (B.rank() != 3 || B.dim(2) != 4) return InvalidArgument("NonMaxSuppression: boxes must be [batch, boxes, 4]");
    if (S.rank() != 3 || S.dim(0) != B.dim(0) || S.dim(2) != B.dim(1))
      return InvalidArgument("NonMaxSuppression: scores must be [batch, classes, boxes]");
    int64_t max_out = 0;
    float iou_th = 0.f, score_th = 0.f;
    bool has_score_th = false;
    if (ctx.has_input(2) && ctx.input_tensor(2).numel() > 0) max_out = ctx.input_tensor(2).GetAsInt64(0);
    if (ctx.has_input(3) && ctx.input_tensor(3).numel() > 0)
      iou_th = static_cast<float>(ctx.input_tensor(3).GetAsDouble(0));
    if (ctx.has_input(4) && ctx.input_tensor(4).numel() > 0) {
      score_th = static_cast<float>(ctx.input_tensor(4).GetAsDouble(0));
      has_score_th = true;
    }
    if (iou_th < 0.f || iou_th > 1.f) return InvalidArgument("NonMaxSuppression: iou_threshold must be in [0, 1]");
    const int64_t nb = B.dim(0), nbox = B.dim(1), ncls = S.dim(1);
    std::vector<int64_t> sel;
    if (max_out > 0) {
      // Normalised corners [y1, x1, y2, x2] with y1 <= y2, x1 <= x2.
      std::vector<float> corners(static_cast<size_t>(nb * nbox * 4));
      const float* bp = B.data<float>();
      for (int64_t i = 0; i < nb * nbox; ++i) {
        const float* b = bp + i * 4;
        float y1, x1, y2, x2;
        if (center_ == 0) {
          y1 = std::min(b[0], b[2]); y2 = std::max(b[0], b[2]);
          x1 = std::min(b[1], b[3]); x2 = std::max(b[1], b[3]);
        } else {
          x1 = b[0] - b[2] / 2; x2 = b[0] + b[2] / 2;
          y1 = b[1] - b[3] / 2; y2 = b[1] + b[3] / 2;
        }
        float* c = corners.data() + i * 4;
        c[0] = y1; c[1] = x1; c[2] = y2; c[3] = x2;
      }
      std::vector<int64_t> order, picked;
      for (int64_t bi = 0; bi < nb; ++bi)
        for (int64_t ci = 0; ci < ncls; ++ci) {
          const float* sc = S.data<float>() + (bi * ncls + ci) * nbox;
          order.clear();
          for (int64_t k = 0; k < nbox; ++k)
            if (!has_score_th || sc[k] > score_th) order.push_back(k);
          std::stable_sort(order.begin(), order.end(), [&](int64_t a, int64_t b) { return sc[a] > sc[b]; });
          picked.clear();
          for (int64_t k : order) {
            if (static_cast<int64_t>(picked.size()) >= max_out) break;
            const float* ck = corners.data() + (bi * nbox + k) * 4;
            bool keep = true;
            for (int64_t p : picked) {
              const float* cp = corners.data() + (bi * nbox + p) * 4;
              const float ih = std::min(ck[2], cp[2]) - std::max(ck[0], cp[0]);
              const float iw = std::min(ck[3], cp[3]) - std::max(ck[1], cp[1]);
              if (ih <= 0 || iw <= 0) continue;
              const float inter = ih * iw;
              const float uni = (ck[2] - ck[0]) * (ck[3] - ck[1]) + (cp[2] - cp[0]) * (cp[3] - cp[1]) - inter;
              if (uni > 0 && inter / uni > iou_th) { keep = false; break; }
            }
            if (keep) {
              picked.push_back(k);
              sel.push_back(bi);
              sel.push_back(ci);
              sel.push_back(k);
            }
          }
        }
    }
    const int64_t ns = static_cast<int64_t>(sel.size() / 3);
    ASSIGN_OR_RETURN(Tensor * Y, ctx.AllocateOutput(0, DType::kInt64, {ns, 3}));
    std::copy(sel.begin(), sel.end(), Y->data<int64_t>());
    return Status::Ok();
  }

 private:
  int64_t center_ = 0;
};

const KernelRegistrar kGridSample{{.op_type = "GridSample", .since = 16, .until = 18, .dtypes = DTypesOf(GridTypes{}),
                                   .factory = MakeKernel<GridSampleKernel>}};
const KernelRegistrar kNonMaxSuppression{{.op_type = "NonMaxSuppression", .since = 10, .until = 18,
                                          .dtypes = {DType::kFloat},
                                          .factory = MakeKernel<NonMaxSuppressionKernel>}};

}  // namespace
}  // namespace strata::cpu
