// Convolution shapes (Conv and ConvTranspose shape inference) and the reference convolutions:
// im2col/col2im plus the reference GEMM. They run every dtype and shape oneDNN does not
// (conv_float.cc), and everything in ConvInteger, QLinearConv and Col2Im (conv_integer.cc).
#pragma once

#include <algorithm>
#include <cstdint>
#include <vector>

#include "kernels/cpu/nn_common.h"

namespace strata::cpu::conv {

using nn::SpatialAttrs;
using nn::SpatialGeom;

// Shapes of one convolution: X [N, C, in...], W [M, C/G, k...], Y [N, M, out...].
struct ConvShape {
  int64_t N = 0, C = 0, M = 0, G = 1;
  SpatialGeom geom;
  Shape y_shape;
};

Status ComputeConvShape(const SpatialAttrs& a, int64_t group, const Shape& x, const Shape& w, ConvShape& cs);

// Shapes of one transposed convolution: X [N, C, in...], W [C, M/G, k...], Y [N, M, out...].
struct ConvTShape {
  int64_t N = 0, C = 0, M = 0, G = 1;
  // Adjoint forward geometry: in = output image, out = input positions.
  SpatialGeom geom;
  Shape output_padding;
  Shape y_shape;
};

struct ConvTAttrs {
  SpatialAttrs sp;
  std::vector<int64_t> output_padding, output_shape;
  int64_t group = 1;
};

Status ComputeConvTShape(const ConvTAttrs& a, const Shape& x, const Shape& w, ConvTShape& cs);

// For im2col and col2im: the image row (a line along the innermost dim) that window tap `kidx` of
// output position `oidx` reads, over every dim but the innermost; false when it falls in the padding.
inline bool TapLine(const SpatialGeom& g, int nd, const Shape& oidx, const Shape& kidx, int64_t& line) {
  bool valid = true;
  line = 0;
  for (int d = 0; d < nd - 1; ++d) {
    const int64_t ic = oidx[static_cast<size_t>(d)] * g.strides[d] - g.pad_begin[d] + kidx[static_cast<size_t>(d)] * g.dilations[d];
    if (ic < 0 || ic >= g.in[d]) valid = false;
    line = line * g.in[d] + ic;
  }
  return valid;
}

// Advances `oidx` to the next output line (all dims but the innermost).
inline void NextOutputLine(const SpatialGeom& g, int nd, Shape& oidx) {
  for (int d = nd - 2; d >= 0; --d) {
    if (++oidx[static_cast<size_t>(d)] < g.out[d]) break;
    oidx[static_cast<size_t>(d)] = 0;
  }
}

// im2col: `geom.in` is the image, `geom.out` the window positions. col is [C*ks, out_size].
template <typename T>
void Im2Col(const SpatialGeom& g, int64_t channels, const T* img, T* col) {
  const int nd = static_cast<int>(g.in.size());
  const int64_t ks = g.kernel_size(), os = g.out_size(), is = g.in_size();
  const int64_t ol = g.out[nd - 1], il = g.in[nd - 1];
  const int64_t sl = g.strides[nd - 1], dl = g.dilations[nd - 1], pl = g.pad_begin[nd - 1];
  ParallelRows(channels * ks, os, [&](int64_t row_begin, int64_t row_end) {
    for (int64_t row = row_begin; row < row_end; ++row) {
      const int64_t c = row / ks;
      Shape kidx(static_cast<size_t>(nd)), oidx(static_cast<size_t>(nd), 0);
      int64_t rem = row % ks;
      for (int d = nd - 1; d >= 0; --d) {
        kidx[static_cast<size_t>(d)] = rem % g.kernel[d];
        rem /= g.kernel[d];
      }
      const T* src = img + c * is;
      T* dst = col + row * os;
      const int64_t kl = kidx[static_cast<size_t>(nd - 1)] * dl - pl;
      for (int64_t base = 0; base < os; base += ol) {
        int64_t off = 0;
        const bool valid = TapLine(g, nd, oidx, kidx, off);
        T* out = dst + base;
        if (!valid) {
          for (int64_t o = 0; o < ol; ++o) out[o] = T(0);
        } else {
          const T* line = src + off * il;
          for (int64_t o = 0; o < ol; ++o) {
            const int64_t ic = o * sl + kl;
            out[o] = (ic >= 0 && ic < il) ? line[ic] : T(0);
          }
        }
        NextOutputLine(g, nd, oidx);
      }
    }
  }, 1 << 18);
}

// col2im: adds col [C*ks, out_size] into the image (`geom.in`), the adjoint of Im2Col.
template <typename T>
void Col2ImAdd(const SpatialGeom& g, int64_t channels, const T* col, T* img) {
  const int nd = static_cast<int>(g.in.size());
  const int64_t ks = g.kernel_size(), os = g.out_size(), is = g.in_size();
  const int64_t ol = g.out[nd - 1], il = g.in[nd - 1];
  const int64_t sl = g.strides[nd - 1], dl = g.dilations[nd - 1], pl = g.pad_begin[nd - 1];
  ParallelRows(channels, ks * os, [&](int64_t c_begin, int64_t c_end) {
    for (int64_t c = c_begin; c < c_end; ++c) {
      Shape kidx(static_cast<size_t>(nd)), oidx(static_cast<size_t>(nd), 0);
      T* dstimg = img + c * is;
      for (int64_t kk = 0; kk < ks; ++kk) {
        int64_t rem = kk;
        for (int d = nd - 1; d >= 0; --d) {
          kidx[static_cast<size_t>(d)] = rem % g.kernel[d];
          rem /= g.kernel[d];
        }
        std::fill(oidx.begin(), oidx.end(), 0);
        const T* src = col + (c * ks + kk) * os;
        const int64_t kl = kidx[static_cast<size_t>(nd - 1)] * dl - pl;
        for (int64_t base = 0; base < os; base += ol) {
          int64_t off = 0;
          if (TapLine(g, nd, oidx, kidx, off)) {
            T* line = dstimg + off * il;
            const T* in = src + base;
            for (int64_t o = 0; o < ol; ++o) {
              const int64_t ic = o * sl + kl;
              if (ic >= 0 && ic < il) line[ic] += in[o];
            }
          }
          NextOutputLine(g, nd, oidx);
        }
      }
    }
  }, 1 << 18);
}

// Reference convolution on already-widened data: y[N, M, out] = conv(x, w) (+ bias).
template <typename T>
void ConvRef(const ConvShape& cs, const T* x, const T* w, const T* bias, T* y) {
  const SpatialGeom& g = cs.geom;
  const int64_t cg = cs.C / cs.G, mg = cs.M / cs.G, ks = g.kernel_size(), os = g.out_size(), is = g.in_size();
  std::vector<T> col(static_cast<size_t>(cg * ks * os));
  for (int64_t n = 0; n < cs.N; ++n) {
    for (int64_t gi = 0; gi < cs.G; ++gi) {
      Im2Col(g, cg, x + (n * cs.C + gi * cg) * is, col.data());
      nn::GemmRef<T>(mg, os, cg * ks, w + gi * mg * cg * ks, col.data(), y + (n * cs.M + gi * mg) * os, false);
    }
    if (bias)
      for (int64_t m = 0; m < cs.M; ++m) {
        T* yy = y + (n * cs.M + m) * os;
        for (int64_t i = 0; i < os; ++i) yy[i] += bias[m];
      }
  }
}

// Reference transposed convolution, the adjoint of ConvRef: col2im of W^T times x (+ bias).
template <typename T>
void ConvTransposeRef(const ConvTShape& cs, const T* x, const T* w, const T* bias, T* y) {
  const SpatialGeom& g = cs.geom;
  const int64_t cg = cs.C / cs.G, mg = cs.M / cs.G, ks = g.kernel_size();
  const int64_t xs = g.out_size(), ys = g.in_size();
  std::vector<T> col(static_cast<size_t>(mg * ks * xs)), wt(static_cast<size_t>(mg * ks * cg));
  std::fill(y, y + cs.N * cs.M * ys, T(0));
  for (int64_t gi = 0; gi < cs.G; ++gi) {
    // wt = W_g^T: [mg*ks, cg]
    const T* wg = w + gi * cg * mg * ks;
    for (int64_t c = 0; c < cg; ++c)
      for (int64_t r = 0; r < mg * ks; ++r) wt[static_cast<size_t>(r * cg + c)] = wg[c * mg * ks + r];
    for (int64_t n = 0; n < cs.N; ++n) {
      nn::GemmRef<T>(mg * ks, xs, cg, wt.data(), x + (n * cs.C + gi * cg) * xs, col.data(), false);
      Col2ImAdd(g, mg, col.data(), y + (n * cs.M + gi * mg) * ys);
    }
  }
  if (bias)
    for (int64_t n = 0; n < cs.N; ++n)
      for (int64_t m = 0; m < cs.M; ++m) {
        T* yy = y + (n * cs.M + m) * ys;
        for (int64_t i = 0; i < ys; ++i) yy[i] += bias[m];
      }
}

}  // namespace strata::cpu::conv
