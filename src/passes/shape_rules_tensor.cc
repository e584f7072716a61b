// Shape rules for ops that move data or compute shapes: Reshape, Flatten, Transpose, Squeeze, Unsqueeze,
// Concat, Split, Slice, Gather*, Expand, Shape, Size, ConstantOfShape, Range, Tile, Pad, Constant, ...
// Ops that produce shape-like integer tensors also produce their symbolic value.
#include <algorithm>
#include <climits>
#include <cmath>

#include "passes/shape_rules.h"

namespace strata::passes::shape {
namespace {

SymValues ValuesOfDims(const Dims& d) {
  SymValues v;
  for (const auto& x : d) v.push_back(SymInt::FromDim(x));
  return v;
}

Dims DimsOfValues(const SymValues& v) {
  Dims d;
  for (const auto& x : v) d.push_back(x.ToDim());
  return d;
}

// Length of a 1-D input from its shape, when known.
std::optional<int64_t> Length1D(const InferContext& ctx, int i) {
  if (const SymValues* v = ctx.input_value(i)) return static_cast<int64_t>(v->size());
  const Dims* s = ctx.input_shape(i);
  if (s && s->size() == 1 && (*s)[0].known()) return (*s)[0].value;
  return std::nullopt;
}

bool IsSmall(const Dims& shape) {
  if (shape.size() > 1) return false;
  return shape.empty() || (shape[0].known() && shape[0].value <= kMaxTrackedElements);
}

// ---- Constant, Shape, Size, ConstantOfShape, Range -----------------------------------------------

Status Constant(InferContext& ctx) {
  const auto& attrs = ctx.node().attributes;
  if (attrs.size() != 1) return Status::Ok();
  const ir::Attribute& a = attrs[0];
  using T = ir::Attribute::Type;
  if (a.name == "value" && a.type == T::kTensor && a.t.defined()) {
    Dims shape;
    for (int64_t d : a.t.shape()) shape.push_back(ir::Dim::Known(d));
    ctx.SetTensor(0, a.t.dtype(), shape);
    if (IsInteger(a.t.dtype()) && a.t.rank() <= 1 && a.t.numel() <= kMaxTrackedElements) {
      SymValues v;
      for (int64_t i = 0; i < a.t.numel(); ++i) v.push_back(SymInt::Of(a.t.GetAsInt64(i)));
      ctx.SetValue(0, std::move(v));
    }
  } else if (a.name == "value_int" && a.type == T::kInt) {
    ctx.SetTensor(0, DType::kInt64, Dims{});
    ctx.SetValue(0, {SymInt::Of(a.i)});
  } else if (a.name == "value_ints" && a.type == T::kInts) {
    ctx.SetTensor(0, DType::kInt64, Dims{ir::Dim::Known(static_cast<int64_t>(a.ints.size()))});
    SymValues v;
    for (int64_t x : a.ints) v.push_back(SymInt::Of(x));
    ctx.SetValue(0, std::move(v));
  } else if (a.name == "value_float" && a.type == T::kFloat) {
    ctx.SetTensor(0, DType::kFloat, Dims{});
  } else if (a.name == "value_floats" && a.type == T::kFloats) {
    ctx.SetTensor(0, DType::kFloat, Dims{ir::Dim::Known(static_cast<int64_t>(a.floats.size()))});
  } else if (a.name == "value_string" && a.type == T::kString) {
    ctx.SetTensor(0, DType::kString, Dims{});
  } else if (a.name == "value_strings" && a.type == T::kStrings) {
    ctx.SetTensor(0, DType::kString, Dims{ir::Dim::Known(static_cast<int64_t>(a.strings.size()))});
  }
  return Status::Ok();
}

Status ShapeOp(InferContext& ctx) {
  const Dims* in = ctx.input_shape(0);
  if (!in) {
    ctx.SetTensor(0, DType::kInt64, Dims{ir::Dim{}});
    return Status::Ok();
  }
  const int64_t r = static_cast<int64_t>(in->size());
  int64_t start = 0, end = r;
  if (ctx.opset() >= 15) {
    start = ctx.attr_int("start", 0);
    end = ctx.attr_int("end", r);
    if (start < 0) start += r;
    if (end < 0) end += r;
    start = std::clamp<int64_t>(start, 0, r);
    end = std::clamp<int64_t>(end, 0, r);
    if (end < start) end = start;
  }
  const Dims part(in->begin() + start, in->begin() + end);
  ctx.SetTensor(0, DType::kInt64, Dims{ir::Dim::Known(end - start)});
  ctx.SetValue(0, ValuesOfDims(part));
  return Status::Ok();
}

Status Size(InferContext& ctx) {
  ctx.SetTensor(0, DType::kInt64, Dims{});
  if (const Dims* in = ctx.input_shape(0)) ctx.SetValue(0, {SymInt::FromDim(DimProduct(*in, 0, in->size()))});
  return Status::Ok();
}

Status ConstantOfShape(InferContext& ctx) {
  DType dt = DType::kFloat;
  const ir::Attribute* a = ctx.attr("value");
  if (a && a->type == ir::Attribute::Type::kTensor && a->t.defined()) dt = a->t.dtype();
  std::optional<Dims> shape;
  if (const SymValues* v = ctx.input_value(0)) shape = DimsOfValues(*v);
  else if (auto n = Length1D(ctx, 0); n && *n <= kMaxTrackedElements) shape = Dims(static_cast<size_t>(*n));
  ctx.SetTensor(0, dt, shape);
  if (shape && IsInteger(dt) && IsSmall(*shape) && (shape->empty() || (*shape)[0].known())) {
    const int64_t fill = a && a->t.defined() && a->t.numel() == 1 ? a->t.GetAsInt64(0) : 0;
    const int64_t n = shape->empty() ? 1 : (*shape)[0].value;
    ctx.SetValue(0, SymValues(static_cast<size_t>(n), SymInt::Of(fill)));
  }
  return Status::Ok();
}

Status Range(InferContext& ctx) {
  const DType dt = ctx.input_dtype(0);
  ir::Dim len;
  auto start = ctx.input_scalar(0), limit = ctx.input_scalar(1), delta = ctx.input_scalar(2);
  if (start && limit && delta && *delta != 0) {
    const double n = std::ceil((*limit - *start) / *delta);
    if (!std::isnan(n) && n < 1e15) len = ir::Dim::Known(n > 0 ? static_cast<int64_t>(n) : 0);
  } else if (start && *start == 0 && delta && *delta == 1) {
    if (const SymValues* lv = ctx.input_value(1); lv && lv->size() == 1) len = (*lv)[0].ToDim();  // arange(seq)
  }
  ctx.SetTensor(0, dt, Dims{len});
  if (IsInteger(dt) && len.known() && len.value <= kMaxTrackedElements && start && delta) {
    SymValues v;
    for (int64_t i = 0; i < len.value; ++i) v.push_back(SymInt::Of(static_cast<int64_t>(*start + static_cast<double>(i) * *delta)));
    ctx.SetValue(0, std::move(v));
  }
  return Status::Ok();
}

// ---- Reshape, Flatten, Transpose, Squeeze, Unsqueeze -----------------------------------------------

Status Reshape(InferContext& ctx) {
  const Dims* in = ctx.input_shape(0);
  std::optional<SymValues> target;
  if (ctx.opset() < 5) {
    if (auto s = ctx.attr_ints("shape")) {
      target.emplace();
      for (int64_t x : *s) target->push_back(SymInt::Of(x));
    }
  } else if (const SymValues* v = ctx.input_value(1)) {
    target = *v;
  } else if (auto n = Length1D(ctx, 1); n && *n <= kMaxTrackedElements) {
    target = SymValues(static_cast<size_t>(*n));  // the rank is known, the sizes are not
  }
  if (!target) {
    ctx.SetLike(0, 0, std::nullopt);
    return Status::Ok();
  }
  const bool allowzero = ctx.opset() >= 14 && ctx.attr_int("allowzero", 0) != 0;
  Dims out(target->size());
  int infer_at = -1;
  for (size_t i = 0; i < target->size(); ++i) {
    const SymInt& t = (*target)[i];
    if (!t.known()) { out[i] = t.ToDim(); continue; }
    const int64_t v = *t.v;
    if (v == 0 && !allowzero) {
      if (in && i < in->size()) out[i] = (*in)[i];
      else if (in) return ctx.Error("target shape copies dimension " + std::to_string(i) + " but the input has rank " + std::to_string(in->size()));
    } else if (v == -1) {
      if (infer_at >= 0) return ctx.Error("target shape has more than one -1");
      infer_at = static_cast<int>(i);
    } else if (v < -1) {
      return ctx.Error("target shape has invalid size " + std::to_string(v));
    } else {
      out[i] = ir::Dim::Known(v);
    }
  }
  if (in) {
    const SymInt total = SymInt::FromDim(DimProduct(*in, 0, in->size()));
    SymInt rest = SymInt::Of(1);
    for (size_t i = 0; i < out.size(); ++i)
      if (static_cast<int>(i) != infer_at) rest = SymMul(rest, SymInt::FromDim(out[i]));
    // Any unknown target dim makes `rest` unknown, and then nothing is checked.
    bool rest_complete = true;
    for (size_t i = 0; i < out.size(); ++i)
      if (static_cast<int>(i) != infer_at && !IsKnownOrSymbolic(out[i])) rest_complete = false;
    if (rest_complete && total.known() && rest.known()) {
      if (infer_at >= 0) {
        if (*rest.v == 0 || *total.v % *rest.v != 0)
          return ctx.Error("cannot reshape " + DimsToString(*in) + " (" + std::to_string(*total.v) + " elements) to " +
                           DimsToString(out) + " with -1");
        out[static_cast<size_t>(infer_at)] = ir::Dim::Known(*total.v / *rest.v);
      } else if (*total.v != *rest.v) {
        return ctx.Error("cannot reshape " + DimsToString(*in) + " (" + std::to_string(*total.v) + " elements) to " +
                         DimsToString(out));
      }
    } else if (rest_complete && infer_at >= 0) {
      out[static_cast<size_t>(infer_at)] = SymDiv(total, rest).ToDim();
    }
  }
  ctx.SetLike(0, 0, out);
  if (const SymValues* v = ctx.input_value(0); v && out.size() <= 1) ctx.SetValue(0, *v);
  return Status::Ok();
}

Status Flatten(InferContext& ctx) {
  const Dims* in = ctx.input_shape(0);
  if (!in) {
    ctx.SetLike(0, 0, Dims(2));
    return Status::Ok();
  }
  const int64_t r = static_cast<int64_t>(in->size());
  int64_t axis = ctx.attr_int("axis", 1);
  if (axis < 0) axis += r;
  if (axis < 0 || axis > r) return ctx.Error("axis " + std::to_string(ctx.attr_int("axis", 1)) + " is out of range for rank " + std::to_string(r));
  ctx.SetLike(0, 0, Dims{DimProduct(*in, 0, static_cast<size_t>(axis)), DimProduct(*in, static_cast<size_t>(axis), in->size())});
  return Status::Ok();
}

Status Transpose(InferContext& ctx) {
  const Dims* in = ctx.input_shape(0);
  auto perm = ctx.attr_ints("perm");
  if (!in) {
    ctx.SetLike(0, 0, perm ? std::optional<Dims>(Dims(perm->size())) : std::nullopt);
    return Status::Ok();
  }
  const size_t r = in->size();
  if (!perm) {
    perm.emplace();
    for (size_t i = 0; i < r; ++i) perm->push_back(static_cast<int64_t>(r - 1 - i));
  }
  if (perm->size() != r) return ctx.Error("perm has " + std::to_string(perm->size()) + " entries for rank " + std::to_string(r));
  Dims out(r);
  std::vector<bool> seen(r, false);
  for (size_t i = 0; i < r; ++i) {
    int64_t p = (*perm)[i];
    if (!ctx.NormalizeAxis(p, static_cast<int64_t>(r)) || seen[static_cast<size_t>(p)])
      return ctx.Error("perm is not a permutation of 0.." + std::to_string(r - 1));
    seen[static_cast<size_t>(p)] = true;
    out[i] = (*in)[static_cast<size_t>(p)];
  }
  ctx.SetLike(0, 0, std::move(out));
  return Status::Ok();
}

// Axes from the attribute (before `input_from`) or from input 1. Unset: not given. `unknown`: given but not constant.
std::optional<std::vector<int64_t>> AxesArg(const InferContext& ctx, int64_t input_from, bool& unknown) {
  unknown = false;
  if (ctx.opset() < input_from) return ctx.attr_ints("axes");
  if (!ctx.has_input(1)) return std::nullopt;
  auto v = ctx.input_ints(1);
  if (!v) unknown = true;
  return v;
}

Status Squeeze(InferContext& ctx) {
  const Dims* in = ctx.input_shape(0);
  bool unknown;
  auto axes = AxesArg(ctx, 13, unknown);
  if (!in || unknown) {
    ctx.SetLike(0, 0, std::nullopt);
    return Status::Ok();
  }
  const int64_t r = static_cast<int64_t>(in->size());
  std::vector<bool> drop(static_cast<size_t>(r), false);
  if (!axes || axes->empty()) {
    for (int64_t i = 0; i < r; ++i) {
      const ir::Dim& d = (*in)[static_cast<size_t>(i)];
      if (!d.known()) {  // might be 1: the rank is not known
        ctx.SetLike(0, 0, std::nullopt);
        return Status::Ok();
      }
      drop[static_cast<size_t>(i)] = d.value == 1;
    }
  } else {
    for (int64_t a : *axes) {
      if (!ctx.NormalizeAxis(a, r)) return ctx.Error("axis " + std::to_string(a) + " is out of range for rank " + std::to_string(r));
      const ir::Dim& d = (*in)[static_cast<size_t>(a)];
      if (d.known() && d.value != 1)
        return ctx.Error("cannot squeeze axis " + std::to_string(a) + " of size " + std::to_string(d.value) + " in " + DimsToString(*in));
      drop[static_cast<size_t>(a)] = true;
    }
  }
  Dims out;
  for (int64_t i = 0; i < r; ++i)
    if (!drop[static_cast<size_t>(i)]) out.push_back((*in)[static_cast<size_t>(i)]);
  ctx.SetLike(0, 0, std::move(out));
  if (const SymValues* v = ctx.input_value(0)) ctx.SetValue(0, *v);
  return Status::Ok();
}

Status Unsqueeze(InferContext& ctx) {
  const Dims* in = ctx.input_shape(0);
  bool unknown;
  auto axes = AxesArg(ctx, 13, unknown);
  if (!in || !axes) {
    // With unknown axes the rank still follows from their count.
    std::optional<Dims> out;
    if (in && unknown)
      if (auto n = Length1D(ctx, 1)) out = Dims(in->size() + static_cast<size_t>(*n));
    ctx.SetLike(0, 0, out);
    return Status::Ok();
  }
  const int64_t r = static_cast<int64_t>(in->size() + axes->size());
  std::vector<bool> inserted(static_cast<size_t>(r), false);
  for (int64_t a : *axes) {
    if (!ctx.NormalizeAxis(a, r)) return ctx.Error("axis " + std::to_string(a) + " is out of range for output rank " + std::to_string(r));
    if (inserted[static_cast<size_t>(a)]) return ctx.Error("axis " + std::to_string(a) + " is repeated");
    inserted[static_cast<size_t>(a)] = true;
  }
  Dims out;
  size_t k = 0;
  for (int64_t i = 0; i < r; ++i) out.push_back(inserted[static_cast<size_t>(i)] ? ir::Dim::Known(1) : (*in)[k++]);
  ctx.SetLike(0, 0, std::move(out));
  if (const SymValues* v = ctx.input_value(0)) ctx.SetValue(0, *v);
  return Status::Ok();
}

// ---- Concat, Split, Slice ---------------------------------------------------------------------------

Status Concat(InferContext& ctx) {
  DType dt = DType::kUndefined;
  for (int i = 0; i < ctx.num_inputs() && dt == DType::kUndefined; ++i) dt = ctx.input_dtype(i);
  std::optional<int64_t> rank;
  for (int i = 0; i < ctx.num_inputs(); ++i)
    if (auto r = ctx.input_rank(i)) {
      if (rank && *rank != *r) return ctx.Error("inputs have different ranks (" + std::to_string(*rank) + " and " + std::to_string(*r) + ")");
      rank = r;
    }
  if (!rank) {
    ctx.SetTensor(0, dt, std::nullopt);
    return Status::Ok();
  }
  int64_t axis = ctx.attr_int("axis", ctx.opset() < 4 ? 1 : 0);
  if (!ctx.NormalizeAxis(axis, *rank)) return ctx.Error("axis " + std::to_string(axis) + " is out of range for rank " + std::to_string(*rank));
  Dims out(static_cast<size_t>(*rank));
  SymInt sum = SymInt::Of(0);
  bool first = true;
  for (int i = 0; i < ctx.num_inputs(); ++i) {
    if (!ctx.has_input(i)) continue;
    const Dims* s = ctx.input_shape(i);
    if (!s) { sum = SymInt::Unknown(); continue; }
    for (size_t k = 0; k < s->size(); ++k) {
      const ir::Dim& d = (*s)[k];
      if (static_cast<int64_t>(k) == axis) continue;
      ir::Dim& o = out[k];
      if (first || (!o.known() && (d.known() || o.symbol.empty()))) o = d;
      else if (o.known() && d.known() && o.value != d.value)
        return ctx.Error("inputs differ in dimension " + std::to_string(k) + " (" + std::to_string(o.value) + " vs " + std::to_string(d.value) + ")");
    }
    sum = SymAdd(sum, SymInt::FromDim((*s)[static_cast<size_t>(axis)]));
    if (!IsKnownOrSymbolic((*s)[static_cast<size_t>(axis)])) sum = SymInt::Unknown();
    first = false;
  }
  out[static_cast<size_t>(axis)] = sum.ToDim();
  ctx.SetTensor(0, dt, out);
  if (*rank == 1) {
    SymValues v;
    for (int i = 0; i < ctx.num_inputs(); ++i) {
      if (!ctx.has_input(i)) continue;
      const SymValues* iv = ctx.input_value(i);
      if (!iv) return Status::Ok();
      v.insert(v.end(), iv->begin(), iv->end());
    }
    ctx.SetValue(0, std::move(v));
  }
  return Status::Ok();
}

Status Split(InferContext& ctx) {
  const Dims* in = ctx.input_shape(0);
  const int n = ctx.num_outputs();
  if (n == 0) return Status::Ok();
  if (!in) {
    for (int i = 0; i < n; ++i) ctx.SetLike(i, 0, std::nullopt);
    return Status::Ok();
  }
  const int64_t r = static_cast<int64_t>(in->size());
  int64_t axis = ctx.attr_int("axis", 0);
  if (!ctx.NormalizeAxis(axis, r)) return ctx.Error("axis " + std::to_string(axis) + " is out of range for rank " + std::to_string(r));
  const ir::Dim& d = (*in)[static_cast<size_t>(axis)];
  std::optional<std::vector<int64_t>> split;
  bool split_unknown = false;
  if (ctx.opset() >= 13) {
    if (ctx.has_input(1)) {
      split = ctx.input_ints(1);
      split_unknown = !split;
    }
  } else if (ctx.opset() >= 2 || !ctx.has_input(1)) {
    split = ctx.attr_ints("split");
  } else {
    split = ctx.input_ints(1);  // Split-1 could take the sizes as a second input
    split_unknown = ctx.has_input(1) && !split;
  }
  std::vector<ir::Dim> sizes(static_cast<size_t>(n));
  if (split && !split->empty()) {
    if (static_cast<int>(split->size()) != n)
      return ctx.Error("split has " + std::to_string(split->size()) + " sizes for " + std::to_string(n) + " outputs");
    int64_t total = 0;
    for (size_t i = 0; i < split->size(); ++i) {
      if ((*split)[i] < 0) return ctx.Error("split sizes must be >= 0");
      sizes[i] = ir::Dim::Known((*split)[i]);
      total += (*split)[i];
    }
    if (d.known() && total != d.value)
      return ctx.Error("split sizes add up to " + std::to_string(total) + " but the axis has size " + std::to_string(d.value));
  } else if (!split_unknown) {
    if (n == 1) sizes[0] = d;
    else if (d.known()) {
      const int64_t chunk = (d.value + n - 1) / n;
      if (d.value % n == 0) std::fill(sizes.begin(), sizes.end(), ir::Dim::Known(d.value / n));
      else if (ctx.opset() >= 18) {
        std::fill(sizes.begin(), sizes.end(), ir::Dim::Known(chunk));
        sizes.back() = ir::Dim::Known(std::max<int64_t>(0, d.value - chunk * (n - 1)));
      }
    } else {
      std::fill(sizes.begin(), sizes.end(), DimDiv(d, ir::Dim::Known(n)));
    }
  }
  for (int i = 0; i < n; ++i) {
    Dims out = *in;
    out[static_cast<size_t>(axis)] = sizes[static_cast<size_t>(i)];
    ctx.SetLike(i, 0, std::move(out));
  }
  // Splitting a tracked 1-D value (a shape) into known pieces.
  const SymValues* v = ctx.input_value(0);
  if (v && r == 1) {
    size_t off = 0;
    for (int i = 0; i < n; ++i) {
      const ir::Dim& s = sizes[static_cast<size_t>(i)];
      if (!s.known() || off + static_cast<size_t>(s.value) > v->size()) return Status::Ok();
      ctx.SetValue(i, SymValues(v->begin() + static_cast<ptrdiff_t>(off), v->begin() + static_cast<ptrdiff_t>(off + static_cast<size_t>(s.value))));
      off += static_cast<size_t>(s.value);
    }
  }
  return Status::Ok();
}

// Elements selected by start/end/step over a dim of known size (ONNX clamping rules).
int64_t SliceLength(int64_t dim, int64_t start, int64_t end, int64_t step, int64_t* first) {
  *first = 0;
  if (dim == 0) return 0;
  if (start < 0) start += dim;
  if (end < 0) end += dim;
  if (step > 0) {
    start = std::clamp<int64_t>(start, 0, dim);
    end = std::clamp<int64_t>(end, 0, dim);
  } else {
    start = std::clamp<int64_t>(start, 0, dim - 1);
    end = std::clamp<int64_t>(end, -1, dim - 1);
  }
  *first = start;
  if (step > 0) return end > start ? (end - start - 1) / step + 1 : 0;
  const int64_t mag = step == INT64_MIN ? INT64_MAX : -step;
  return start > end ? (start - end - 1) / mag + 1 : 0;
}

// min(e, d) as a dimension: `e` itself when it is d, else a "min(e,d)" symbol. Broadcasting that
// symbol against `e` gives `e` (see Broadcast), which is how causal masks sliced to [:seq] resolve.
ir::Dim MinDim(const SymInt& e, const ir::Dim& d) {
  if (SameSym(e, SymInt::FromDim(d))) return d;
  if (e.sym.empty() || !IsKnownOrSymbolic(d)) return {};
  return ir::Dim::Symbol("min(" + e.sym + "," + (d.known() ? std::to_string(d.value) : d.symbol) + ")");
}

Status Slice(InferContext& ctx) {
  const Dims* in = ctx.input_shape(0);
  if (!in) {
    ctx.SetLike(0, 0, std::nullopt);
    return Status::Ok();
  }
  const int64_t r = static_cast<int64_t>(in->size());
  // starts, ends and steps as (possibly symbolic) values; axes must be known.
  std::optional<SymValues> starts, ends, steps;
  std::optional<std::vector<int64_t>> axes;
  auto from_ints = [](const std::optional<std::vector<int64_t>>& v) {
    std::optional<SymValues> out;
    if (v) {
      out.emplace();
      for (int64_t x : *v) out->push_back(SymInt::Of(x));
    }
    return out;
  };
  if (ctx.opset() < 10) {
    starts = from_ints(ctx.attr_ints("starts"));
    ends = from_ints(ctx.attr_ints("ends"));
    axes = ctx.attr_ints("axes");
  } else {
    if (const SymValues* v = ctx.input_value(1)) starts = *v;
    if (const SymValues* v = ctx.input_value(2)) ends = *v;
    if (ctx.has_input(3)) {
      axes = ctx.input_ints(3);
      if (!axes) {  // which axes are sliced is unknown: any dim may change
        ctx.SetLike(0, 0, Dims(static_cast<size_t>(r)));
        return Status::Ok();
      }
    }
    if (ctx.has_input(4)) {
      if (const SymValues* v = ctx.input_value(4)) steps = *v;
      else if (auto n = Length1D(ctx, 4)) steps = SymValues(static_cast<size_t>(*n));  // all unknown
    }
  }
  std::optional<int64_t> count;
  if (starts) count = static_cast<int64_t>(starts->size());
  else if (ends) count = static_cast<int64_t>(ends->size());
  else if (ctx.opset() >= 10) count = Length1D(ctx, 1);
  Dims out = *in;
  if (!count) {
    if (axes) {
      for (int64_t a : *axes)
        if (ctx.NormalizeAxis(a, r)) out[static_cast<size_t>(a)] = ir::Dim{};
    } else {
      out = Dims(static_cast<size_t>(r));
    }
    ctx.SetLike(0, 0, out);
    return Status::Ok();
  }
  if (!axes) {
    axes.emplace();
    for (int64_t i = 0; i < *count; ++i) axes->push_back(i);
  }
  const auto n = static_cast<size_t>(*count);
  if (axes->size() != n || (starts && starts->size() != n) || (ends && ends->size() != n) || (steps && steps->size() != n))
    return ctx.Error("starts, ends, axes and steps have different lengths");
  bool value_ok = true;
  int64_t v_first = 0, v_step = 1, v_len = -1;
  for (size_t k = 0; k < n; ++k) {
    int64_t a = (*axes)[k];
    if (!ctx.NormalizeAxis(a, r)) return ctx.Error("axis " + std::to_string((*axes)[k]) + " is out of range for rank " + std::to_string(r));
    const ir::Dim& d = (*in)[static_cast<size_t>(a)];
    const SymInt st = starts ? (*starts)[k] : SymInt::Unknown();
    const SymInt en = ends ? (*ends)[k] : SymInt::Unknown();
    const SymInt sp = steps ? (*steps)[k] : SymInt::Of(1);
    if (sp.known() && *sp.v == 0) return ctx.Error("slice step cannot be 0");
    ir::Dim res;
    if (st.known() && en.known() && sp.known()) {
      if (d.known()) {
        int64_t first;
        res = ir::Dim::Known(SliceLength(d.value, *st.v, *en.v, *sp.v, &first));
        if (a == 0) v_first = first, v_step = *sp.v, v_len = res.value;
      } else if (*sp.v == 1 && *st.v == 0 && *en.v >= INT32_MAX) {
        res = d;  // x[0:] of a symbolic dim
      }
    } else if (st.known() && *st.v == 0 && sp.known() && *sp.v == 1 && !en.sym.empty()) {
      res = MinDim(en, d);  // x[0:n] with a symbolic n
    }
    if (a == 0 && !res.known()) value_ok = false;
    out[static_cast<size_t>(a)] = res;
  }
  ctx.SetLike(0, 0, out);
  const SymValues* v = ctx.input_value(0);
  if (v && r == 1 && value_ok && v_len >= 0) {
    SymValues sel;
    for (int64_t i = 0; i < v_len; ++i) {
      const int64_t idx = v_first + i * v_step;
      if (idx < 0 || idx >= static_cast<int64_t>(v->size())) return Status::Ok();
      sel.push_back((*v)[static_cast<size_t>(idx)]);
    }
    ctx.SetValue(0, std::move(sel));
  }
  return Status::Ok();
}

// ---- Gather family, Expand, Tile, Pad -------------------------------------------------------------

Status Gather(InferContext& ctx) {
  const Dims* data = ctx.input_shape(0);
  const Dims* idx = ctx.input_shape(1);
  if (!data || !idx) {
    ctx.SetLike(0, 0, std::nullopt);
    return Status::Ok();
  }
  const int64_t r = static_cast<int64_t>(data->size());
  int64_t axis = ctx.attr_int("axis", 0);
  if (!ctx.NormalizeAxis(axis, r)) return ctx.Error("axis " + std::to_string(axis) + " is out of range for rank " + std::to_string(r));
  Dims out(data->begin(), data->begin() + axis);
  out.insert(out.end(), idx->begin(), idx->end());
  out.insert(out.end(), data->begin() + axis + 1, data->end());
  ctx.SetLike(0, 0, out);
  const SymValues* v = ctx.input_value(0);
  auto iv = ctx.input_ints(1);
  if (v && r == 1 && iv) {
    SymValues sel;
    const int64_t n = static_cast<int64_t>(v->size());
    for (int64_t i : *iv) {
      if (i < 0) i += n;
      if (i < 0 || i >= n) return Status::Ok();  // out of range: the kernel reports it
      sel.push_back((*v)[static_cast<size_t>(i)]);
    }
    ctx.SetValue(0, std::move(sel));
  }
  return Status::Ok();
}

Status GatherElements(InferContext& ctx) {
  ctx.SetLike(0, 0, ctx.input_shape_copy(1));
  return Status::Ok();
}

Status GatherND(InferContext& ctx) {
  const Dims* data = ctx.input_shape(0);
  const Dims* idx = ctx.input_shape(1);
  const int64_t b = ctx.attr_int("batch_dims", 0);
  if (!data || !idx || idx->empty() || !idx->back().known()) {
    ctx.SetLike(0, 0, std::nullopt);
    return Status::Ok();
  }
  const int64_t m = idx->back().value;
  if (b < 0 || b + m > static_cast<int64_t>(data->size()))
    return ctx.Error("indices " + DimsToString(*idx) + " do not fit data " + DimsToString(*data) + " with batch_dims " + std::to_string(b));
  Dims out(idx->begin(), idx->end() - 1);
  out.insert(out.end(), data->begin() + b + m, data->end());
  ctx.SetLike(0, 0, std::move(out));
  return Status::Ok();
}

Status Expand(InferContext& ctx) {
  const Dims* in = ctx.input_shape(0);
  std::optional<Dims> target;
  if (const SymValues* v = ctx.input_value(1)) target = DimsOfValues(*v);
  else if (auto n = Length1D(ctx, 1); n && *n <= kMaxTrackedElements) target = Dims(static_cast<size_t>(*n));
  if (!in || !target) {
    ctx.SetLike(0, 0, std::nullopt);
    return Status::Ok();
  }
  // Expand is a bidirectional (numpy) broadcast of the input's shape with the target.
  Dims out;
  RETURN_IF_ERROR(Broadcast(ctx, *in, *target, out));
  ctx.SetLike(0, 0, std::move(out));
  return Status::Ok();
}

Status Tile(InferContext& ctx) {
  const Dims* in = ctx.input_shape(0);
  if (!in) {
    ctx.SetLike(0, 0, std::nullopt);
    return Status::Ok();
  }
  Dims out(in->size());
  if (const SymValues* v = ctx.input_value(1)) {
    if (v->size() != in->size()) return ctx.Error("repeats has " + std::to_string(v->size()) + " entries for rank " + std::to_string(in->size()));
    for (size_t i = 0; i < in->size(); ++i) out[i] = SymMul(SymInt::FromDim((*in)[i]), (*v)[i]).ToDim();
  }
  ctx.SetLike(0, 0, std::move(out));
  return Status::Ok();
}

Status Pad(InferContext& ctx) {
  const Dims* in = ctx.input_shape(0);
  if (!in) {
    ctx.SetLike(0, 0, std::nullopt);
    return Status::Ok();
  }
  const int64_t r = static_cast<int64_t>(in->size());
  std::optional<std::vector<int64_t>> pads;
  if (ctx.opset() < 2) pads = ctx.attr_ints("paddings");
  else if (ctx.opset() < 11) pads = ctx.attr_ints("pads");
  else pads = ctx.input_ints(1);
  std::vector<int64_t> axes;
  if (ctx.opset() >= 18 && ctx.has_input(3)) {
    auto a = ctx.input_ints(3);
    if (!a) pads.reset();
    else axes = *a;
  } else {
    for (int64_t i = 0; i < r; ++i) axes.push_back(i);
  }
  Dims out = *in;
  if (!pads) {
    ctx.SetLike(0, 0, Dims(static_cast<size_t>(r)));
    return Status::Ok();
  }
  if (pads->size() != 2 * axes.size())
    return ctx.Error("pads has " + std::to_string(pads->size()) + " entries for " + std::to_string(axes.size()) + " axes");
  const size_t n = axes.size();
  for (size_t k = 0; k < n; ++k) {
    int64_t a = axes[k];
    if (!ctx.NormalizeAxis(a, r)) return ctx.Error("axis " + std::to_string(axes[k]) + " is out of range for rank " + std::to_string(r));
    const SymInt grown =
        SymAdd(SymAdd(SymInt::FromDim((*in)[static_cast<size_t>(a)]), SymInt::Of((*pads)[k])), SymInt::Of((*pads)[k + n]));
    if (grown.known() && *grown.v < 0) return ctx.Error("padding makes dimension " + std::to_string(a) + " negative");
    out[static_cast<size_t>(a)] = grown.ToDim();
  }
  ctx.SetLike(0, 0, std::move(out));
  return Status::Ok();
}

// ---- Miscellaneous ---------------------------------------------------------------------------------

Status NonZero(InferContext& ctx) {
  const auto r = ctx.input_rank(0);
  ctx.SetTensor(0, DType::kInt64, Dims{r ? ir::Dim::Known(*r) : ir::Dim{}, ir::Dim{}});
  return Status::Ok();
}

Status OneHot(InferContext& ctx) {
  const Dims* idx = ctx.input_shape(0);
  const DType dt = ctx.input_dtype(2);
  if (!idx) {
    ctx.SetTensor(0, dt, std::nullopt);
    return Status::Ok();
  }
  const int64_t r = static_cast<int64_t>(idx->size()) + 1;
  int64_t axis = ctx.attr_int("axis", -1);
  if (!ctx.NormalizeAxis(axis, r)) return ctx.Error("axis " + std::to_string(axis) + " is out of range for rank " + std::to_string(r));
  ir::Dim depth;
  if (auto d = ctx.input_scalar(1); d && *d >= 0) depth = ir::Dim::Known(static_cast<int64_t>(*d));
  Dims out = *idx;
  out.insert(out.begin() + axis, depth);
  ctx.SetTensor(0, dt, std::move(out));
  return Status::Ok();
}

Status Compress(InferContext& ctx) {
  const Dims* in = ctx.input_shape(0);
  const ir::Attribute* a = ctx.attr("axis");
  if (!a) {
    ctx.SetLike(0, 0, Dims{ir::Dim{}});
    return Status::Ok();
  }
  if (!in) {
    ctx.SetLike(0, 0, std::nullopt);
    return Status::Ok();
  }
  int64_t axis = a->i;
  if (!ctx.NormalizeAxis(axis, static_cast<int64_t>(in->size()))) return ctx.Error("axis out of range");
  Dims out = *in;
  out[static_cast<size_t>(axis)] = ir::Dim{};
  ctx.SetLike(0, 0, std::move(out));
  return Status::Ok();
}

Status RandomFromShape(InferContext& ctx) {
  const DType dt = ctx.attr("dtype") ? ctx.attr_dtype("dtype").value_or(DType::kUndefined) : DType::kFloat;
  std::optional<Dims> shape;
  if (auto s = ctx.attr_ints("shape")) {
    shape.emplace();
    for (int64_t x : *s) shape->push_back(x >= 0 ? ir::Dim::Known(x) : ir::Dim{});
  }
  ctx.SetTensor(0, dt, shape);
  return Status::Ok();
}

Status QuantizeLinear(InferContext& ctx) {
  const DType dt = ctx.has_input(2) && ctx.input_dtype(2) != DType::kUndefined ? ctx.input_dtype(2) : DType::kUInt8;
  ctx.SetTensor(0, dt, ctx.input_shape_copy(0));
  return Status::Ok();
}

Status DequantizeLinear(InferContext& ctx) {
  ctx.SetTensor(0, DType::kFloat, ctx.input_shape_copy(0));
  return Status::Ok();
}

Status DynamicQuantizeLinear(InferContext& ctx) {
  ctx.SetTensor(0, DType::kUInt8, ctx.input_shape_copy(0));
  ctx.SetTensor(1, DType::kFloat, Dims{});
  ctx.SetTensor(2, DType::kUInt8, Dims{});
  return Status::Ok();
}

}  // namespace

void RegisterTensorRules(RuleTable& t) {
  t["Constant"] = Constant;
  t["Shape"] = ShapeOp;
  t["Size"] = Size;
  t["ConstantOfShape"] = ConstantOfShape;
  t["Range"] = Range;
  t["Reshape"] = Reshape;
  t["Flatten"] = Flatten;
  t["Transpose"] = Transpose;
  t["Squeeze"] = Squeeze;
  t["Unsqueeze"] = Unsqueeze;
  t["Concat"] = Concat;
  t["Split"] = Split;
  t["Slice"] = Slice;
  t["Gather"] = Gather;
  t["GatherElements"] = GatherElements;
  t["GatherND"] = GatherND;
  t["Expand"] = Expand;
  t["Tile"] = Tile;
  t["Pad"] = Pad;
  t["NonZero"] = NonZero;
  t["OneHot"] = OneHot;
  t["Compress"] = Compress;
  t["RandomNormal"] = RandomFromShape;
  t["RandomUniform"] = RandomFromShape;
  t["QuantizeLinear"] = QuantizeLinear;
  t["DequantizeLinear"] = DequantizeLinear;
  t["DynamicQuantizeLinear"] = DynamicQuantizeLinear;
}

}  // namespace strata::passes::shape
