#include "kernels/cpu/conv_reference.h"

#include <string>

namespace strata::cpu::conv {

Status ComputeConvShape(const SpatialAttrs& a, int64_t group, const Shape& x, const Shape& w, ConvShape& cs) {
  if (x.size() < 3) return InvalidArgument("Conv: X must have rank >= 3, got " + ShapeToString(x));
  if (w.size() != x.size()) return InvalidArgument("Conv: W rank differs from X rank");
  const size_t nsp = x.size() - 2;
  cs.N = x[0];
  cs.C = x[1];
  cs.M = w[0];
  cs.G = group;
  if (cs.C != w[1] * group || cs.M % group != 0)
    return InvalidArgument("Conv: channels do not match: X " + ShapeToString(x) + ", W " + ShapeToString(w) +
                           ", group " + std::to_string(group));
  SpatialGeom& g = cs.geom;
  g.in.assign(x.begin() + 2, x.end());
  g.kernel.assign(w.begin() + 2, w.end());
  if (!a.kernel_shape.empty() && a.kernel_shape != g.kernel)
    return InvalidArgument("Conv: kernel_shape attribute does not match W");
  g.strides = a.strides.empty() ? Shape(nsp, 1) : Shape(a.strides);
  g.dilations = a.dilations.empty() ? Shape(nsp, 1) : Shape(a.dilations);
  RETURN_IF_ERROR(nn::ComputeForwardGeom(a, g, false));
  cs.y_shape = {cs.N, cs.M};
  cs.y_shape.insert(cs.y_shape.end(), g.out.begin(), g.out.end());
  return Status::Ok();
}

Status ComputeConvTShape(const ConvTAttrs& a, const Shape& x, const Shape& w, ConvTShape& cs) {
  if (x.size() < 3) return InvalidArgument("ConvTranspose: X must have rank >= 3, got " + ShapeToString(x));
  if (w.size() != x.size()) return InvalidArgument("ConvTranspose: W rank differs from X rank");
  const size_t nsp = x.size() - 2;
  cs.N = x[0];
  cs.C = x[1];
  cs.G = a.group;
  cs.M = w[1] * a.group;
  if (w[0] != cs.C || cs.C % a.group != 0)
    return InvalidArgument("ConvTranspose: channels do not match: X " + ShapeToString(x) + ", W " + ShapeToString(w));
  SpatialGeom& g = cs.geom;
  g.out.assign(x.begin() + 2, x.end());
  g.kernel.assign(w.begin() + 2, w.end());
  if (!a.sp.kernel_shape.empty() && a.sp.kernel_shape != g.kernel)
    return InvalidArgument("ConvTranspose: kernel_shape attribute does not match W");
  g.strides = a.sp.strides.empty() ? Shape(nsp, 1) : Shape(a.sp.strides);
  g.dilations = a.sp.dilations.empty() ? Shape(nsp, 1) : Shape(a.sp.dilations);
  cs.output_padding = a.output_padding.empty() ? Shape(nsp, 0) : Shape(a.output_padding);
  if (g.strides.size() != nsp || g.dilations.size() != nsp || cs.output_padding.size() != nsp)
    return InvalidArgument("ConvTranspose: strides/dilations/output_padding do not match the spatial rank");
  if (!a.sp.pads.empty() && a.sp.pads.size() != 2 * nsp) return InvalidArgument("ConvTranspose: bad pads length");
  g.in.assign(nsp, 0);
  g.pad_begin.assign(nsp, 0);
  g.pad_end.assign(nsp, 0);
  std::vector<int64_t> oshape;
  if (!a.output_shape.empty()) {
    if (a.output_shape.size() == nsp) oshape = a.output_shape;
    else if (a.output_shape.size() == nsp + 2) oshape.assign(a.output_shape.begin() + 2, a.output_shape.end());
    else return InvalidArgument("ConvTranspose: output_shape has the wrong length");
  }
  for (size_t i = 0; i < nsp; ++i) {
    const int64_t ek = (g.kernel[i] - 1) * g.dilations[i] + 1;
    const int64_t full = g.strides[i] * (g.out[i] - 1) + cs.output_padding[i] + ek;
    if (!oshape.empty() || a.sp.auto_pad == "SAME_UPPER" || a.sp.auto_pad == "SAME_LOWER") {
      const int64_t target = !oshape.empty() ? oshape[i] : g.out[i] * g.strides[i];
      const int64_t total = full - target;
      const int64_t half = total >= 0 ? total / 2 : -((-total + 1) / 2);  // floor(total / 2)
      if (a.sp.auto_pad == "SAME_UPPER") {
        g.pad_begin[i] = half;
        g.pad_end[i] = total - half;
      } else {
        g.pad_begin[i] = total - half;
        g.pad_end[i] = half;
      }
      g.in[i] = target;
    } else {
      if (a.sp.auto_pad == "NOTSET" && !a.sp.pads.empty()) {
        g.pad_begin[i] = a.sp.pads[i];
        g.pad_end[i] = a.sp.pads[i + nsp];
      }
      g.in[i] = full - g.pad_begin[i] - g.pad_end[i];
    }
    if (g.in[i] < 0) return InvalidArgument("ConvTranspose: negative output size");
  }
  cs.y_shape = {cs.N, cs.M};
  cs.y_shape.insert(cs.y_shape.end(), g.in.begin(), g.in.end());
  return Status::Ok();
}

}  // namespace strata::cpu::conv
