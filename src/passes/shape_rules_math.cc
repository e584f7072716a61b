// Shape rules for MatMul, Gemm, reductions, ArgMax/ArgMin, TopK and the normalisations with extra outputs.
#include <algorithm>

#include "passes/shape_rules.h"

namespace strata::passes::shape {
namespace {

Status MatMul(InferContext& ctx) {
  const std::string& op = ctx.node().op_type;
  DType dt = ctx.input_dtype(0);
  int a_in = 0, b_in = 1;
  if (op == "MatMulInteger") dt = DType::kInt32;
  if (op == "QLinearMatMul") {
    a_in = 0, b_in = 3;
    dt = ctx.input_dtype(7);
  }
  const Dims* pa = ctx.input_shape(a_in);
  const Dims* pb = ctx.input_shape(b_in);
  if (!pa || !pb) {
    ctx.SetTensor(0, dt, std::nullopt);
    return Status::Ok();
  }
  if (pa->empty() || pb->empty()) return ctx.Error("MatMul inputs must have rank >= 1");
  Dims a = *pa, b = *pb;
  const bool a_vec = a.size() == 1, b_vec = b.size() == 1;
  if (a_vec) a.insert(a.begin(), ir::Dim::Known(1));
  if (b_vec) b.push_back(ir::Dim::Known(1));
  const ir::Dim& ka = a[a.size() - 1];
  const ir::Dim& kb = b[b.size() - 2];
  if (ka.known() && kb.known() && ka.value != kb.value)
    return ctx.Error("inner dimensions differ: A is " + DimsToString(*pa) + ", B is " + DimsToString(*pb));
  Dims batch;
  RETURN_IF_ERROR(Broadcast(ctx, Dims(a.begin(), a.end() - 2), Dims(b.begin(), b.end() - 2), batch));
  if (!a_vec) batch.push_back(a[a.size() - 2]);
  if (!b_vec) batch.push_back(b[b.size() - 1]);
  ctx.SetTensor(0, dt, std::move(batch));
  return Status::Ok();
}

Status Gemm(InferContext& ctx) {
  const DType dt = ctx.input_dtype(0);
  const Dims* pa = ctx.input_shape(0);
  const Dims* pb = ctx.input_shape(1);
  ir::Dim m, n, ka, kb;
  const bool ta = ctx.attr_int("transA", 0) != 0, tb = ctx.attr_int("transB", 0) != 0;
  if (pa) {
    if (pa->size() != 2) return ctx.Error("Gemm input A must have rank 2, got " + DimsToString(*pa));
    m = (*pa)[ta ? 1 : 0];
    ka = (*pa)[ta ? 0 : 1];
  }
  if (pb) {
    if (pb->size() != 2) return ctx.Error("Gemm input B must have rank 2, got " + DimsToString(*pb));
    kb = (*pb)[tb ? 1 : 0];
    n = (*pb)[tb ? 0 : 1];
  }
  if (ka.known() && kb.known() && ka.value != kb.value)
    return ctx.Error("inner dimensions differ: A is " + DimsToString(*pa) + (ta ? " (transposed)" : "") + ", B is " +
                     DimsToString(*pb) + (tb ? " (transposed)" : ""));
  if (!pb && ctx.has_input(2)) {  // N from the bias when it is a full row
    if (const Dims* c = ctx.input_shape(2); c && !c->empty() && c->back().known() && c->back().value != 1) n = c->back();
  }
  ctx.SetTensor(0, dt, Dims{m, n});
  return Status::Ok();
}

// Reduce*: axes from the attribute or (ReduceSum >= 13, the rest >= 18) from input 1.
Status Reduce(InferContext& ctx) {
  const std::string& op = ctx.node().op_type;
  const bool axes_input = op == "ReduceSum" ? ctx.opset() >= 13 : ctx.opset() >= 18;
  const bool keepdims = ctx.attr_int("keepdims", 1) != 0;
  const bool noop_empty = ctx.attr_int("noop_with_empty_axes", 0) != 0;
  const DType dt = ctx.input_dtype(0);
  const Dims* in = ctx.input_shape(0);

  std::optional<std::vector<int64_t>> axes;
  bool axes_unknown = false;
  if (axes_input) {
    if (ctx.has_input(1)) {
      axes = ctx.input_ints(1);
      if (!axes) axes_unknown = true;
    }
  } else {
    axes = ctx.attr_ints("axes");
  }
  if (!in) {
    ctx.SetTensor(0, dt, std::nullopt);
    return Status::Ok();
  }
  const int64_t r = static_cast<int64_t>(in->size());
  if (axes_unknown) {
    // Which axes is not known: with keepdims the rank stays, but any dim may become 1.
    if (keepdims) {
      Dims out(static_cast<size_t>(r));
      for (int64_t i = 0; i < r; ++i)
        if ((*in)[static_cast<size_t>(i)].known() && (*in)[static_cast<size_t>(i)].value == 1) out[static_cast<size_t>(i)] = ir::Dim::Known(1);
      ctx.SetTensor(0, dt, std::move(out));
    } else {
      ctx.SetTensor(0, dt, std::nullopt);
    }
    return Status::Ok();
  }
  std::vector<bool> reduce(static_cast<size_t>(r), false);
  if (!axes || axes->empty()) {
    if (noop_empty && axes_input) {
      ctx.SetTensor(0, dt, *in);
      return Status::Ok();
    }
    std::fill(reduce.begin(), reduce.end(), true);
  } else {
    for (int64_t a : *axes) {
      if (!ctx.NormalizeAxis(a, r)) return ctx.Error("axis " + std::to_string(a) + " is out of range for rank " + std::to_string(r));
      reduce[static_cast<size_t>(a)] = true;
    }
  }
  Dims out;
  for (int64_t i = 0; i < r; ++i) {
    if (!reduce[static_cast<size_t>(i)]) out.push_back((*in)[static_cast<size_t>(i)]);
    else if (keepdims) out.push_back(ir::Dim::Known(1));
  }
  ctx.SetTensor(0, dt, out);
  // A fully reduced 1-D tracked value (e.g. the element count from ReduceProd(Shape(x))).
  const SymValues* v = ctx.input_value(0);
  if (v && r == 1 && reduce[0] && (op == "ReduceProd" || op == "ReduceSum" || op == "ReduceMax" || op == "ReduceMin")) {
    SymInt acc = op == "ReduceProd" ? SymInt::Of(1) : SymInt::Of(0);
    if (op == "ReduceMax" || op == "ReduceMin") {
      if (v->empty()) return Status::Ok();
      acc = (*v)[0];
      for (const auto& e : *v) {
        if (!e.known() || !acc.known()) return Status::Ok();
        acc = SymInt::Of(op == "ReduceMax" ? std::max(*acc.v, *e.v) : std::min(*acc.v, *e.v));
      }
    } else {
      for (const auto& e : *v) acc = op == "ReduceProd" ? SymMul(acc, e) : SymAdd(acc, e);
    }
    ctx.SetValue(0, {acc});
  }
  return Status::Ok();
}

Status ArgMinMax(InferContext& ctx) {
  const Dims* in = ctx.input_shape(0);
  if (!in) {
    ctx.SetTensor(0, DType::kInt64, std::nullopt);
    return Status::Ok();
  }
  int64_t axis = ctx.attr_int("axis", 0);
  const int64_t r = static_cast<int64_t>(in->size());
  if (!ctx.NormalizeAxis(axis, r)) return ctx.Error("axis " + std::to_string(axis) + " is out of range for rank " + std::to_string(r));
  Dims out = *in;
  if (ctx.attr_int("keepdims", 1) != 0) out[static_cast<size_t>(axis)] = ir::Dim::Known(1);
  else out.erase(out.begin() + axis);
  ctx.SetTensor(0, DType::kInt64, std::move(out));
  return Status::Ok();
}

Status TopK(InferContext& ctx) {
  const Dims* in = ctx.input_shape(0);
  std::optional<Dims> out;
  if (in) {
    int64_t axis = ctx.attr_int("axis", -1);
    const int64_t r = static_cast<int64_t>(in->size());
    if (!ctx.NormalizeAxis(axis, r)) return ctx.Error("axis " + std::to_string(axis) + " is out of range for rank " + std::to_string(r));
    out = *in;
    ir::Dim k;
    if (ctx.opset() < 10) {
      k = ir::Dim::Known(ctx.attr_int("k", -1));
    } else if (const SymValues* kv = ctx.input_value(1); kv && kv->size() == 1) {
      k = (*kv)[0].ToDim();
    }
    (*out)[static_cast<size_t>(axis)] = k;
  }
  ctx.SetTensor(0, ctx.input_dtype(0), out);
  ctx.SetTensor(1, DType::kInt64, out);
  return Status::Ok();
}

Status LayerNormalization(InferContext& ctx) {
  const Dims* in = ctx.input_shape(0);
  ctx.SetLike(0, 0, ctx.input_shape_copy(0));
  const DType sdt = ctx.attr_dtype("stash_type").value_or(DType::kFloat);
  std::optional<Dims> stat;
  if (in) {
    int64_t axis = ctx.attr_int("axis", -1);
    const int64_t r = static_cast<int64_t>(in->size());
    if (!ctx.NormalizeAxis(axis, r)) return ctx.Error("axis " + std::to_string(axis) + " is out of range for rank " + std::to_string(r));
    stat = *in;
    for (int64_t i = axis; i < r; ++i) (*stat)[static_cast<size_t>(i)] = ir::Dim::Known(1);
  }
  ctx.SetTensor(1, sdt, stat);
  ctx.SetTensor(2, sdt, stat);
  return Status::Ok();
}

Status BatchNormalization(InferContext& ctx) {
  const Dims* in = ctx.input_shape(0);
  ctx.SetLike(0, 0, ctx.input_shape_copy(0));
  // Training outputs: running/saved mean and variance, one per channel.
  std::optional<Dims> c;
  if (in && in->size() >= 2) c = Dims{(*in)[1]};
  else if (const Dims* s = ctx.input_shape(1); s && s->size() == 1) c = *s;
  DType sdt = ctx.input_dtype(3);
  if (sdt == DType::kUndefined) sdt = ctx.input_dtype(0);
  for (int i = 1; i < ctx.num_outputs(); ++i) ctx.SetTensor(i, sdt, c);
  return Status::Ok();
}

Status Det(InferContext& ctx) {
  const Dims* in = ctx.input_shape(0);
  std::optional<Dims> out;
  if (in && in->size() >= 2) out = Dims(in->begin(), in->end() - 2);
  ctx.SetLike(0, 0, out);
  return Status::Ok();
}

}  // namespace

void RegisterMathRules(RuleTable& t) {
  t["MatMul"] = MatMul;
  t["MatMulInteger"] = MatMul;
  t["QLinearMatMul"] = MatMul;
  t["Gemm"] = Gemm;
  for (const char* op : {"ReduceSum", "ReduceMean", "ReduceMax", "ReduceMin", "ReduceProd", "ReduceL1", "ReduceL2",
                         "ReduceLogSum", "ReduceLogSumExp", "ReduceSumSquare"})
    t[op] = Reduce;
  t["ArgMax"] = ArgMinMax;
  t["ArgMin"] = ArgMinMax;
  t["TopK"] = TopK;
  t["LayerNormalization"] = LayerNormalization;
  t["BatchNormalization"] = BatchNormalization;
  t["Det"] = Det;
}

}  // namespace strata::passes::shape
