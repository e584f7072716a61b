#include "kernels/cpu/nn_common.h"

#include <atomic>
#include <string>

namespace strata::cpu::nn {

namespace {
std::atomic<bool> conv_reference_forced{false};
}  // namespace

void ForceConvReference(bool on) { conv_reference_forced = on; }
bool ConvReferenceForced() { return conv_reference_forced; }

Status SpatialAttrs::Load(const KernelInfo& info, bool with_dilations, bool with_ceil) {
  auto_pad = info.attr_string("auto_pad", "NOTSET");
  if (auto_pad.empty()) auto_pad = "NOTSET";
  if (auto_pad != "NOTSET" && auto_pad != "VALID" && auto_pad != "SAME_UPPER" && auto_pad != "SAME_LOWER")
    return info.Error("unknown auto_pad '" + auto_pad + "'");
  kernel_shape = info.attr_ints("kernel_shape");
  strides = info.attr_ints("strides");
  dilations = with_dilations ? info.attr_ints("dilations") : std::vector<int64_t>{};
  pads = info.attr_ints("pads");
  ceil_mode = with_ceil && info.attr_int("ceil_mode", 0) != 0;
  for (int64_t v : kernel_shape)
    if (v <= 0) return info.Error("kernel_shape values must be positive");
  for (int64_t v : strides)
    if (v <= 0) return info.Error("strides must be positive");
  for (int64_t v : dilations)
    if (v <= 0) return info.Error("dilations must be positive");
  for (int64_t v : pads)
    if (v < 0) return info.Error("pads must be non-negative");
  return Status::Ok();
}

Status ComputeForwardGeom(const SpatialAttrs& a, SpatialGeom& g, bool ceil_mode) {
  const size_t n = g.in.size();
  if (g.kernel.size() != n || g.strides.size() != n || g.dilations.size() != n)
    return InvalidArgument("kernel_shape/strides/dilations do not match the input's spatial rank " + std::to_string(n));
  g.out.assign(n, 0);
  g.pad_begin.assign(n, 0);
  g.pad_end.assign(n, 0);
  if (a.auto_pad == "NOTSET" && !a.pads.empty() && a.pads.size() != 2 * n)
    return InvalidArgument("pads must have " + std::to_string(2 * n) + " values");
  for (size_t i = 0; i < n; ++i) {
    const int64_t in = g.in[i], s = g.strides[i];
    const int64_t ek = (g.kernel[i] - 1) * g.dilations[i] + 1;
    int64_t out;
    if (a.auto_pad == "SAME_UPPER" || a.auto_pad == "SAME_LOWER") {
      out = (in + s - 1) / s;
      const int64_t total = std::max<int64_t>(0, (out - 1) * s + ek - in);
      const int64_t small = total / 2;
      g.pad_begin[i] = a.auto_pad == "SAME_UPPER" ? small : total - small;
      g.pad_end[i] = total - g.pad_begin[i];
    } else {
      if (a.auto_pad == "NOTSET" && !a.pads.empty()) {
        g.pad_begin[i] = a.pads[i];
        g.pad_end[i] = a.pads[i + n];
      }
      const int64_t span = in + g.pad_begin[i] + g.pad_end[i] - ek;
      if (span < 0)
        return InvalidArgument("window (" + std::to_string(ek) + ") is larger than the padded input (" +
                               std::to_string(in + g.pad_begin[i] + g.pad_end[i]) + ")");
      if (ceil_mode) {
        out = (span + s - 1) / s + 1;
        // The last window must start inside the input or the left padding.
        if ((out - 1) * s >= in + g.pad_begin[i]) --out;
      } else {
        out = span / s + 1;
      }
    }
    g.out[i] = out;
  }
  return Status::Ok();
}

}  // namespace strata::cpu::nn
