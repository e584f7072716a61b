// Shape rules for convolutions, pools, resizing and depth/space rearrangement.
#include <climits>
#include <cmath>

#include "passes/shape_rules.h"

namespace strata::passes::shape {
namespace {

int64_t CeilDiv(int64_t a, int64_t b) { return a / b + (a % b > 0 ? 1 : 0); }  // b > 0

struct Window {
  std::vector<int64_t> kernel, strides, dilations, pads;  // pads: begins then ends
  std::string auto_pad;
  bool ceil_mode = false;
};

// Reads kernel_shape (or `kernel` from the weights), strides, dilations, pads and auto_pad for n spatial dims.
Status ReadWindow(const InferContext& ctx, size_t n, const Dims* weights, Window& w, bool& kernel_known) {
  kernel_known = true;
  if (auto k = ctx.attr_ints("kernel_shape")) {
    w.kernel = *k;
  } else if (weights && weights->size() == n + 2) {
    for (size_t i = 2; i < weights->size(); ++i) {
      if (!(*weights)[i].known()) kernel_known = false;
      w.kernel.push_back((*weights)[i].value);
    }
  } else {
    kernel_known = false;
  }
  if (kernel_known && w.kernel.size() != n)
    return ctx.Error("kernel_shape has " + std::to_string(w.kernel.size()) + " dims for " + std::to_string(n) + " spatial dims");
  w.strides = ctx.attr_ints("strides").value_or(std::vector<int64_t>(n, 1));
  w.dilations = ctx.attr_ints("dilations").value_or(std::vector<int64_t>(n, 1));
  w.pads = ctx.attr_ints("pads").value_or(std::vector<int64_t>(2 * n, 0));
  if (w.strides.size() != n || w.dilations.size() != n || w.pads.size() != 2 * n)
    return ctx.Error("strides/dilations/pads do not match " + std::to_string(n) + " spatial dims");
  for (size_t i = 0; i < n; ++i)
    if (w.strides[i] <= 0 || w.dilations[i] <= 0 || w.strides[i] > INT32_MAX || w.dilations[i] > INT32_MAX)
      return ctx.Error("strides and dilations must be positive");
  for (size_t i = 0; kernel_known && i < n; ++i)
    if (w.kernel[i] <= 0 || w.kernel[i] > INT32_MAX) return ctx.Error("kernel sizes must be positive");
  for (int64_t p : w.pads)
    if (p < -INT32_MAX || p > INT32_MAX) return ctx.Error("pads are out of range");
  w.auto_pad = ctx.attr_string("auto_pad", "NOTSET");
  w.ceil_mode = ctx.attr_int("ceil_mode", 0) != 0;
  return Status::Ok();
}

// Output size of a sliding window over one spatial dim.
ir::Dim WindowOut(const ir::Dim& in, const Window& w, size_t i, bool kernel_known) {
  const int64_t s = w.strides[i];
  if (w.auto_pad == "SAME_UPPER" || w.auto_pad == "SAME_LOWER") {
    if (in.known()) return ir::Dim::Known(CeilDiv(in.value, s));
    return s == 1 ? in : ir::Dim{};
  }
  if (!kernel_known) return {};
  const int64_t eff = (w.kernel[i] - 1) * w.dilations[i] + 1;
  const int64_t pb = w.auto_pad == "VALID" ? 0 : w.pads[i];
  const int64_t pe = w.auto_pad == "VALID" ? 0 : w.pads[i + w.kernel.size()];
  if (!in.known()) return s == 1 && pb + pe == eff - 1 ? in : ir::Dim{};
  if (in.value > (int64_t{1} << 48)) return {};  // absurd sizes: stay clear of overflow
  const int64_t span = in.value + pb + pe - eff;
  if (span < 0) return {};  // the kernel does not fit; the kernel reports it at run time
  int64_t out = (w.ceil_mode ? CeilDiv(span, s) : span / s) + 1;
  // With ceil_mode, a last window that would start inside the end padding is dropped.
  if (w.ceil_mode && (out - 1) * s >= in.value + pb) --out;
  return ir::Dim::Known(out);
}

// Conv, ConvInteger, QLinearConv, pools: [N, C_out, spatial...].
Status ConvPool(InferContext& ctx) {
  const std::string& op = ctx.node().op_type;
  const bool is_conv = op == "Conv" || op == "ConvInteger" || op == "QLinearConv";
  const int x_in = 0, w_in = op == "QLinearConv" ? 3 : 1;
  DType dt = ctx.input_dtype(0);
  if (op == "ConvInteger") dt = DType::kInt32;
  if (op == "QLinearConv") dt = ctx.input_dtype(7);
  const Dims* x = ctx.input_shape(x_in);
  const Dims* wt = is_conv ? ctx.input_shape(w_in) : nullptr;
  if (!x && wt && wt->size() >= 2) {  // the rank follows from the weights
    Dims out(wt->size());
    out[1] = (*wt)[0];
    ctx.SetTensor(0, dt, std::move(out));
    return Status::Ok();
  }
  if (!x) {
    ctx.SetTensor(0, dt, std::nullopt);
    if (op == "MaxPool") ctx.SetTensor(1, DType::kInt64, std::nullopt);
    return Status::Ok();
  }
  if (x->size() < 2) return ctx.Error("input must have rank >= 2 (N, C, ...), got " + DimsToString(*x));
  const size_t n = x->size() - 2;
  Dims out(x->size());
  out[0] = (*x)[0];
  if (is_conv) {
    const int64_t group = ctx.attr_int("group", 1);
    if (wt) {
      if (wt->size() != x->size())
        return ctx.Error("weights " + DimsToString(*wt) + " and input " + DimsToString(*x) + " differ in rank");
      const ir::Dim& c = (*x)[1];
      const ir::Dim& wc = (*wt)[1];
      if (c.known() && wc.known() && group > 0 && c.value != wc.value * group)
        return ctx.Error("input has " + std::to_string(c.value) + " channels but weights " + DimsToString(*wt) +
                         " with group " + std::to_string(group) + " expect " + std::to_string(wc.value * group));
      out[1] = (*wt)[0];
    }
  } else {
    out[1] = (*x)[1];
  }
  if (op.rfind("Global", 0) == 0) {
    for (size_t i = 0; i < n; ++i) out[i + 2] = ir::Dim::Known(1);
  } else {
    Window w;
    bool kernel_known;
    RETURN_IF_ERROR(ReadWindow(ctx, n, wt, w, kernel_known));
    for (size_t i = 0; i < n; ++i) out[i + 2] = WindowOut((*x)[i + 2], w, i, kernel_known);
  }
  ctx.SetTensor(0, dt, out);
  if (op == "MaxPool") ctx.SetTensor(1, DType::kInt64, out);
  return Status::Ok();
}

Status ConvTranspose(InferContext& ctx) {
  const DType dt = ctx.input_dtype(0);
  const Dims* x = ctx.input_shape(0);
  const Dims* wt = ctx.input_shape(1);
  if (!x) {
    ctx.SetTensor(0, dt, wt ? std::optional<Dims>(Dims(wt->size())) : std::nullopt);
    return Status::Ok();
  }
  if (x->size() < 2) return ctx.Error("input must have rank >= 2 (N, C, ...), got " + DimsToString(*x));
  const size_t n = x->size() - 2;
  const int64_t group = ctx.attr_int("group", 1);
  Dims out(x->size());
  out[0] = (*x)[0];
  if (wt && wt->size() == x->size()) out[1] = DimMul((*wt)[1], ir::Dim::Known(group));
  Window w;
  bool kernel_known;
  RETURN_IF_ERROR(ReadWindow(ctx, n, wt, w, kernel_known));
  auto out_pad = ctx.attr_ints("output_padding").value_or(std::vector<int64_t>(n, 0));
  for (int64_t p : out_pad)
    if (p < 0 || p > INT32_MAX) return ctx.Error("output_padding is out of range");
  if (auto os = ctx.attr_ints("output_shape")) {
    if (os->size() < n) return ctx.Error("output_shape has fewer entries than spatial dims");
    for (size_t i = 0; i < n; ++i) out[i + 2] = ir::Dim::Known((*os)[os->size() - n + i]);
  } else if (out_pad.size() == n) {
    for (size_t i = 0; i < n; ++i) {
      const ir::Dim& in = (*x)[i + 2];
      if (!in.known() || in.value > (int64_t{1} << 30)) continue;
      const int64_t s = w.strides[i];
      if (w.auto_pad == "SAME_UPPER" || w.auto_pad == "SAME_LOWER") {
        out[i + 2] = ir::Dim::Known(in.value * s);
      } else if (kernel_known) {
        const int64_t pads = w.auto_pad == "VALID" ? 0 : w.pads[i] + w.pads[i + n];
        const int64_t v = s * (in.value - 1) + out_pad[i] + (w.kernel[i] - 1) * w.dilations[i] + 1 - pads;
        if (v >= 0) out[i + 2] = ir::Dim::Known(v);
      }
    }
  }
  ctx.SetTensor(0, dt, std::move(out));
  return Status::Ok();
}

// Resize (scales or sizes input; axes at 18) and Upsample (scales attr < 9, input >= 9).
Status Resize(InferContext& ctx) {
  const std::string& op = ctx.node().op_type;
  const Dims* x = ctx.input_shape(0);
  if (!x) {
    ctx.SetLike(0, 0, std::nullopt);
    return Status::Ok();
  }
  const size_t r = x->size();
  std::vector<size_t> axes;
  if (auto a = ctx.attr_ints("axes")) {
    for (int64_t ax : *a) {
      if (!ctx.NormalizeAxis(ax, static_cast<int64_t>(r))) return ctx.Error("axis out of range");
      axes.push_back(static_cast<size_t>(ax));
    }
  } else {
    for (size_t i = 0; i < r; ++i) axes.push_back(i);
  }
  Dims out(r);
  for (size_t i = 0; i < r; ++i) out[i] = (*x)[i];
  for (size_t ax : axes) out[ax] = ir::Dim{};

  // Sizes win when present (Resize >= 11, input 3).
  const int sizes_in = op == "Resize" && ctx.opset() >= 11 ? 3 : -1;
  const bool stretch = ctx.attr_string("keep_aspect_ratio_policy", "stretch") == "stretch";
  if (sizes_in >= 0 && ctx.has_input(sizes_in)) {
    const SymValues* v = ctx.input_value(sizes_in);
    if (v && v->size() == axes.size() && stretch)
      for (size_t k = 0; k < axes.size(); ++k) out[axes[k]] = (*v)[k].ToDim();
    ctx.SetLike(0, 0, out);
    return Status::Ok();
  }
  std::vector<double> scales;
  if (op == "Upsample" && ctx.opset() < 9) {
    if (const auto* a = ctx.attr("scales"); a && a->type == ir::Attribute::Type::kFloats)
      scales.assign(a->floats.begin(), a->floats.end());
  } else {
    const int scales_in = op == "Resize" && ctx.opset() >= 11 ? 2 : 1;
    if (const Tensor* t = ctx.input_constant(scales_in); t && IsFloatingPoint(t->dtype()))
      for (int64_t i = 0; i < t->numel(); ++i) scales.push_back(t->GetAsDouble(i));
  }
  if (scales.size() == axes.size()) {
    for (size_t k = 0; k < axes.size(); ++k) {
      const ir::Dim& in = (*x)[axes[k]];
      if (scales[k] == 1.0) out[axes[k]] = in;
      else if (in.known()) out[axes[k]] = ir::Dim::Known(static_cast<int64_t>(std::floor(static_cast<double>(in.value) * scales[k])));
    }
  }
  ctx.SetLike(0, 0, out);
  return Status::Ok();
}

Status DepthSpace(InferContext& ctx) {
  const Dims* x = ctx.input_shape(0);
  const int64_t b = ctx.attr_int("blocksize", 0);
  if (!x || x->size() != 4 || b <= 0 || b > INT32_MAX) {
    ctx.SetLike(0, 0, x ? std::optional<Dims>(Dims(x->size())) : std::nullopt);
    return Status::Ok();
  }
  const ir::Dim bb = ir::Dim::Known(b), b2 = ir::Dim::Known(b * b);
  Dims out = *x;
  if (ctx.node().op_type == "DepthToSpace") {
    out[1] = DimDiv((*x)[1], b2);
    out[2] = DimMul((*x)[2], bb);
    out[3] = DimMul((*x)[3], bb);
  } else {
    out[1] = DimMul((*x)[1], b2);
    out[2] = DimDiv((*x)[2], bb);
    out[3] = DimDiv((*x)[3], bb);
  }
  ctx.SetLike(0, 0, std::move(out));
  return Status::Ok();
}

}  // namespace

void RegisterNnRules(RuleTable& t) {
  for (const char* op : {"Conv", "ConvInteger", "QLinearConv", "MaxPool", "AveragePool", "LpPool", "GlobalAveragePool",
                         "GlobalMaxPool", "GlobalLpPool"})
    t[op] = ConvPool;
  t["ConvTranspose"] = ConvTranspose;
  t["Resize"] = Resize;
  t["Upsample"] = Resize;
  t["DepthToSpace"] = DepthSpace;
  t["SpaceToDepth"] = DepthSpace;
}

}  // namespace strata::passes::shape
