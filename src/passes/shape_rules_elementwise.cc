// Shape rules for elementwise ops: unary, binary and variadic broadcasting ops, Cast, Where, activations.
// Integer arithmetic on tracked values (shape computations) is folded here too.
#include <algorithm>

#include "passes/shape_rules.h"

namespace strata::passes::shape {
namespace {

// Output 0 has input 0's type (any kind, so sequences pass through Identity too) and value.
Status SameAsInput(InferContext& ctx) {
  if (const ValueState* in = ctx.input(0)) {
    ctx.SetType(0, in->type);
    if (in->value) ctx.SetValue(0, *in->value);
  }
  return Status::Ok();
}

Status SameShape(InferContext& ctx) {
  ctx.SetLike(0, 0, ctx.input_shape_copy(0));
  return Status::Ok();
}

Status SameShapeBool(InferContext& ctx) {
  ctx.SetTensor(0, DType::kBool, ctx.input_shape_copy(0));
  return Status::Ok();
}

// Floor/Ceil/Round/Abs/Neg keep integer values (exactly, for the integral values tracked here).
Status UnaryValue(InferContext& ctx) {
  RETURN_IF_ERROR(SameShape(ctx));
  const SymValues* v = ctx.input_value(0);
  if (!v) return Status::Ok();
  const std::string& op = ctx.node().op_type;
  SymValues out;
  for (const auto& e : *v) {
    if (op == "Neg") out.push_back(e.known() && *e.v != INT64_MIN ? SymInt::Of(-*e.v) : SymInt::Unknown());
    else if (op == "Abs") out.push_back(e.known() ? (*e.v == INT64_MIN ? SymInt::Unknown() : SymInt::Of(std::abs(*e.v))) : e);
    else out.push_back(e);  // Floor, Ceil, Round of integral values
  }
  ctx.SetValue(0, std::move(out));
  return Status::Ok();
}

// The broadcast shape of all present inputs in [first, last), or nullopt when a rank is unknown.
Status BroadcastInputs(InferContext& ctx, int first, int last, std::optional<Dims>& out) {
  out.reset();
  Dims acc;
  for (int i = first; i < last; ++i) {
    if (!ctx.has_input(i)) continue;
    const Dims* s = ctx.input_shape(i);
    if (!s) return Status::Ok();
    RETURN_IF_ERROR(Broadcast(ctx, acc, *s, acc));
  }
  out = std::move(acc);
  return Status::Ok();
}

// Values of inputs broadcast elementwise (1-D or scalar). Empty when any input is untracked.
bool GatherValues(const InferContext& ctx, int first, int last, std::vector<const SymValues*>& vals, size_t& n) {
  n = 1;
  for (int i = first; i < last; ++i) {
    const SymValues* v = ctx.input_value(i);
    if (!v) return false;
    if (v->size() != 1) {
      if (n != 1 && n != v->size()) return false;
      n = v->size();
    }
    vals.push_back(v);
  }
  return !vals.empty();
}

const SymInt& At(const SymValues& v, size_t i) { return v.size() == 1 ? v[0] : v[i]; }

SymInt ApplyBinary(const std::string& op, const SymInt& a, const SymInt& b, bool is_float) {
  if (op == "Add" || op == "Sum") return SymAdd(a, b);
  if (op == "Sub") return SymSub(a, b);
  if (op == "Mul") return SymMul(a, b);
  if (op == "Div") {
    if (is_float && a.known() && b.known() && (*b.v == 0 || *a.v % *b.v != 0)) return SymInt::Unknown();
    return SymDiv(a, b);
  }
  if (a.known() && b.known()) {
    const int64_t x = *a.v, y = *b.v;
    if (op == "Max") return SymInt::Of(std::max(x, y));
    if (op == "Min") return SymInt::Of(std::min(x, y));
    if (op == "Mod") {
      if (y == 0 || (x == INT64_MIN && y == -1)) return SymInt::Unknown();
      int64_t r = x % y;
      if (r != 0 && ((r < 0) != (y < 0))) r += y;  // fmod=0: sign of the divisor
      return SymInt::Of(r);
    }
    if (op == "Equal") return SymInt::Of(x == y);
    if (op == "Less") return SymInt::Of(x < y);
    if (op == "Greater") return SymInt::Of(x > y);
    if (op == "LessOrEqual") return SymInt::Of(x <= y);
    if (op == "GreaterOrEqual") return SymInt::Of(x >= y);
    return SymInt::Unknown();
  }
  if (op == "Equal") {
    if (SameSym(a, b)) return SymInt::Of(1);
    // A symbol is a dimension size, never negative (torch's Expand exports test shape == -1).
    if ((!a.sym.empty() && b.known() && *b.v < 0) || (!b.sym.empty() && a.known() && *a.v < 0)) return SymInt::Of(0);
  }
  if ((op == "Max" || op == "Min") && SameSym(a, b)) return a;
  return SymInt::Unknown();
}

bool IsComparison(const std::string& op) {
  return op == "Equal" || op == "Less" || op == "Greater" || op == "LessOrEqual" || op == "GreaterOrEqual";
}

// Binary and variadic numpy-broadcasting ops.
Status BroadcastOp(InferContext& ctx) {
  const std::string& op = ctx.node().op_type;
  const bool logical = op == "And" || op == "Or" || op == "Xor";
  const bool out_bool = logical || IsComparison(op);
  DType dt = out_bool ? DType::kBool : DType::kUndefined;
  for (int i = 0; i < ctx.num_inputs() && dt == DType::kUndefined; ++i) dt = ctx.input_dtype(i);

  std::optional<Dims> shape;
  if (ctx.opset() < 7 && (op == "Add" || op == "Sub" || op == "Mul" || op == "Div" || op == "Pow" || logical ||
                          IsComparison(op))) {
    // Legacy broadcasting: B is broadcast into A, the output has A's shape.
    if (const Dims* s = ctx.input_shape(0)) shape = *s;
  } else if (op == "PRelu") {
    // Unidirectional (opset >= 7: slope broadcasts to X; before: slope per channel): X's shape.
    if (const Dims* s = ctx.input_shape(0)) shape = *s;
  } else {
    RETURN_IF_ERROR(BroadcastInputs(ctx, 0, ctx.num_inputs(), shape));
  }
  ctx.SetTensor(0, dt, shape);

  std::vector<const SymValues*> vals;
  size_t n;
  if (op == "PRelu" || op == "Pow" || !GatherValues(ctx, 0, ctx.num_inputs(), vals, n)) return Status::Ok();
  const bool is_float = IsFloatingPoint(ctx.input_dtype(0));
  SymValues out(n);
  for (size_t k = 0; k < n; ++k) {
    SymInt acc = At(*vals[0], k);
    for (size_t j = 1; j < vals.size(); ++j) acc = ApplyBinary(op, acc, At(*vals[j], k), is_float);
    out[k] = acc;
  }
  if (vals.size() == 1 && op == "Mean") out = *vals[0];
  else if (op == "Mean") return Status::Ok();
  ctx.SetValue(0, std::move(out));
  return Status::Ok();
}

Status Where(InferContext& ctx) {
  std::optional<Dims> shape;
  RETURN_IF_ERROR(BroadcastInputs(ctx, 0, 3, shape));
  DType dt = ctx.input_dtype(1);
  if (dt == DType::kUndefined) dt = ctx.input_dtype(2);
  ctx.SetTensor(0, dt, shape);
  std::vector<const SymValues*> vals;
  size_t n;
  if (!GatherValues(ctx, 0, 3, vals, n)) return Status::Ok();
  SymValues out(n);
  for (size_t k = 0; k < n; ++k) {
    const SymInt& c = At(*vals[0], k);
    out[k] = !c.known() ? SymInt::Unknown() : (*c.v != 0 ? At(*vals[1], k) : At(*vals[2], k));
  }
  ctx.SetValue(0, std::move(out));
  return Status::Ok();
}

Status CastValueTo(InferContext& ctx, DType to) {
  const SymValues* v = ctx.input_value(0);
  if (!v) return Status::Ok();
  if (IsInteger(to) || IsFloatingPoint(to)) {
    ctx.SetValue(0, *v);
  } else if (to == DType::kBool) {
    SymValues out;
    for (const auto& e : *v) out.push_back(e.known() ? SymInt::Of(*e.v != 0) : SymInt::Unknown());
    ctx.SetValue(0, std::move(out));
  }
  return Status::Ok();
}

Status Cast(InferContext& ctx) {
  const ir::Attribute* a = ctx.attr("to");
  DType to = ctx.attr_dtype("to").value_or(DType::kUndefined);
  // Opset 1-5 spelled `to` as a type name string.
  if (a && a->type == ir::Attribute::Type::kString) {
    static const std::pair<const char*, DType> kNames[] = {
        {"FLOAT", DType::kFloat}, {"UINT8", DType::kUInt8},     {"INT8", DType::kInt8},     {"UINT16", DType::kUInt16},
        {"INT16", DType::kInt16}, {"INT32", DType::kInt32},     {"INT64", DType::kInt64},   {"STRING", DType::kString},
        {"BOOL", DType::kBool},   {"FLOAT16", DType::kFloat16}, {"DOUBLE", DType::kDouble}, {"UINT32", DType::kUInt32},
        {"UINT64", DType::kUInt64}};
    for (const auto& [n, d] : kNames)
      if (a->s == n) to = d;
  }
  ctx.SetTensor(0, to, ctx.input_shape_copy(0));
  return CastValueTo(ctx, to);
}

Status CastLike(InferContext& ctx) {
  const DType to = ctx.input_dtype(1);
  ctx.SetTensor(0, to, ctx.input_shape_copy(0));
  return CastValueTo(ctx, to);
}

Status Dropout(InferContext& ctx) {
  RETURN_IF_ERROR(SameShape(ctx));
  const DType mask = ctx.opset() >= 10 ? DType::kBool : ctx.input_dtype(0);
  ctx.SetTensor(1, mask, ctx.input_shape_copy(0));
  return Status::Ok();
}

// Output dtype from the `dtype` attribute, defaulting to input 0's.
Status SameShapeDtypeAttr(InferContext& ctx) {
  ctx.SetTensor(0, ctx.attr_dtype("dtype").value_or(ctx.input_dtype(0)), ctx.input_shape_copy(0));
  return Status::Ok();
}

}  // namespace

void RegisterElementwiseRules(RuleTable& t) {
  t["Identity"] = SameAsInput;
  for (const char* op : {"Floor", "Ceil", "Round", "Abs", "Neg"}) t[op] = UnaryValue;
  for (const char* op :
       {"Reciprocal", "Sqrt", "Exp", "Log", "Sin", "Cos", "Tan", "Asin", "Acos", "Atan", "Sinh", "Cosh", "Tanh", "Asinh",
        "Acosh", "Atanh", "Erf", "Sign", "Relu", "Sigmoid", "LeakyRelu", "Elu", "Selu", "Celu", "HardSigmoid", "HardSwish",
        "Softplus", "Softsign", "ThresholdedRelu", "Mish", "Gelu", "Clip", "Softmax", "LogSoftmax", "Hardmax", "Shrink",
        "BitwiseNot", "Not", "LRN", "MeanVarianceNormalization", "InstanceNormalization", "LpNormalization", "Trilu",
        "CumSum", "ReverseSequence", "ScatterND", "ScatterElements", "Scatter", "Binarizer", "GroupNormalization"})
    t[op] = SameShape;
  for (const char* op : {"IsNaN", "IsInf"}) t[op] = SameShapeBool;
  for (const char* op : {"Add", "Sub", "Mul", "Div", "Pow", "Mod", "BitShift", "BitwiseAnd", "BitwiseOr", "BitwiseXor",
                         "And", "Or", "Xor", "Equal", "Less", "Greater", "LessOrEqual", "GreaterOrEqual", "Max", "Min",
                         "Sum", "Mean", "PRelu"})
    t[op] = BroadcastOp;
  t["Where"] = Where;
  t["Cast"] = Cast;
  t["CastLike"] = CastLike;
  t["Dropout"] = Dropout;
  for (const char* op : {"RandomNormalLike", "RandomUniformLike", "Bernoulli", "EyeLike"}) t[op] = SameShapeDtypeAttr;
}

}  // namespace strata::passes::shape
