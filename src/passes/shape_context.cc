// Shape inference internals: symbolic integer algebra and the per-node context.
#include <algorithm>
#include <cmath>

#include "passes/shape_rules.h"

namespace strata::passes::shape {
namespace {

// coefficient * product of symbols; coefficient > 0 when there are symbols.
struct Mono {
  int64_t coef = 1;
  std::vector<std::string> syms;  // sorted
};

std::optional<Mono> ToMono(const SymInt& a) {
  if (a.known()) return Mono{*a.v, {}};
  if (a.sym.empty()) return std::nullopt;
  Mono m;
  size_t start = 0;
  while (start <= a.sym.size()) {
    size_t star = a.sym.find('*', start);
    if (star == std::string::npos) star = a.sym.size();
    std::string tok = a.sym.substr(start, star - start);
    if (tok.empty()) return Mono{1, {a.sym}};  // not one of ours: treat the whole name as one factor
    const bool digits = std::all_of(tok.begin(), tok.end(), [](char c) { return c >= '0' && c <= '9'; });
    if (digits && tok.size() < 18) {
      if (__builtin_mul_overflow(m.coef, std::stoll(tok), &m.coef)) return std::nullopt;
    } else {
      m.syms.push_back(std::move(tok));
    }
    start = star + 1;
  }
  if (m.syms.empty()) return Mono{1, {a.sym}};
  std::sort(m.syms.begin(), m.syms.end());
  return m;
}

SymInt FromMono(const Mono& m) {
  if (m.syms.empty() || m.coef == 0) return SymInt::Of(m.syms.empty() ? m.coef : 0);
  if (m.coef < 0) return SymInt::Unknown();
  std::string s = m.coef == 1 ? "" : std::to_string(m.coef);
  for (const auto& f : m.syms) s += (s.empty() ? "" : "*") + f;
  return {std::nullopt, s};
}

}  // namespace

ir::Dim SymInt::ToDim() const {
  if (v) return *v >= 0 ? ir::Dim::Known(*v) : ir::Dim{};
  return sym.empty() ? ir::Dim{} : ir::Dim::Symbol(sym);
}

bool SameSym(const SymInt& a, const SymInt& b) {
  if (a.known() && b.known()) return *a.v == *b.v;
  return !a.sym.empty() && a.sym == b.sym;
}

SymInt SymMul(const SymInt& a, const SymInt& b) {
  if ((a.known() && *a.v == 0) || (b.known() && *b.v == 0)) return SymInt::Of(0);
  auto ma = ToMono(a), mb = ToMono(b);
  if (!ma || !mb) return SymInt::Unknown();
  Mono r;
  if (__builtin_mul_overflow(ma->coef, mb->coef, &r.coef)) return SymInt::Unknown();
  r.syms = ma->syms;
  r.syms.insert(r.syms.end(), mb->syms.begin(), mb->syms.end());
  std::sort(r.syms.begin(), r.syms.end());
  return FromMono(r);
}

SymInt SymDiv(const SymInt& a, const SymInt& b) {
  if (a.known() && b.known()) {
    if (*b.v == 0 || (*a.v == INT64_MIN && *b.v == -1)) return SymInt::Unknown();
    return SymInt::Of(*a.v / *b.v);
  }
  if (b.known() && *b.v == 1) return a;
  auto ma = ToMono(a), mb = ToMono(b);
  if (!ma || !mb || mb->coef <= 0 || ma->coef % mb->coef != 0) return SymInt::Unknown();
  Mono r{ma->coef / mb->coef, ma->syms};
  for (const auto& f : mb->syms) {
    auto it = std::find(r.syms.begin(), r.syms.end(), f);
    if (it == r.syms.end()) return SymInt::Unknown();
    r.syms.erase(it);
  }
  return FromMono(r);
}

SymInt SymAdd(const SymInt& a, const SymInt& b) {
  if (a.known() && b.known()) {
    int64_t r;
    if (__builtin_add_overflow(*a.v, *b.v, &r)) return SymInt::Unknown();
    return SymInt::Of(r);
  }
  if (b.known() && *b.v == 0) return a;
  if (a.known() && *a.v == 0) return b;
  auto ma = ToMono(a), mb = ToMono(b);
  if (ma && mb && !ma->syms.empty() && ma->syms == mb->syms)
    return FromMono(Mono{ma->coef + mb->coef, ma->syms});
  return SymInt::Unknown();
}

SymInt SymSub(const SymInt& a, const SymInt& b) {
  if (a.known() && b.known()) {
    int64_t r;
    if (__builtin_sub_overflow(*a.v, *b.v, &r)) return SymInt::Unknown();
    return SymInt::Of(r);
  }
  if (b.known() && *b.v == 0) return a;
  auto ma = ToMono(a), mb = ToMono(b);
  if (ma && mb && !ma->syms.empty() && ma->syms == mb->syms)
    return FromMono(Mono{ma->coef - mb->coef, ma->syms});  // 0 when equal, unknown when negative
  return SymInt::Unknown();
}

std::string SymToString(const SymInt& a) {
  if (a.known()) return std::to_string(*a.v);
  return a.sym.empty() ? "?" : a.sym;
}

bool SameDim(const ir::Dim& a, const ir::Dim& b) { return SameSym(SymInt::FromDim(a), SymInt::FromDim(b)); }
bool IsKnownOrSymbolic(const ir::Dim& d) { return d.known() || !d.symbol.empty(); }

ir::Dim DimProduct(const Dims& d, size_t begin, size_t end) {
  SymInt p = SymInt::Of(1);
  for (size_t i = begin; i < end && i < d.size(); ++i) p = SymMul(p, SymInt::FromDim(d[i]));
  return p.ToDim();
}

std::string DimsToString(const Dims& d) {
  std::string s = "[";
  for (size_t i = 0; i < d.size(); ++i) {
    if (i) s += ",";
    s += d[i].known() ? std::to_string(d[i].value) : (d[i].symbol.empty() ? "?" : d[i].symbol);
  }
  return s + "]";
}

// ---- InferContext --------------------------------------------------------------------------------

const ir::TypeInfo* InferContext::input_tensor_type(int i) const {
  const ValueState* s = input(i);
  if (!s || s->type.kind != ir::TypeInfo::Kind::kTensor) return nullptr;
  return &s->type;
}

DType InferContext::input_dtype(int i) const {
  const auto* t = input_tensor_type(i);
  return t ? t->elem_type : DType::kUndefined;
}

const Dims* InferContext::input_shape(int i) const {
  const auto* t = input_tensor_type(i);
  return t && t->shape ? &*t->shape : nullptr;
}

std::optional<int64_t> InferContext::input_rank(int i) const {
  const Dims* d = input_shape(i);
  if (!d) return std::nullopt;
  return static_cast<int64_t>(d->size());
}

const SymValues* InferContext::input_value(int i) const {
  const ValueState* s = input(i);
  return s && s->value ? &*s->value : nullptr;
}

const Tensor* InferContext::input_constant(int i) const {
  const ValueState* s = input(i);
  return s ? s->constant : nullptr;
}

std::optional<std::vector<int64_t>> InferContext::input_ints(int i) const {
  const SymValues* v = input_value(i);
  if (!v) return std::nullopt;
  std::vector<int64_t> out;
  out.reserve(v->size());
  for (const auto& e : *v) {
    if (!e.known()) return std::nullopt;
    out.push_back(*e.v);
  }
  return out;
}

std::optional<double> InferContext::input_scalar(int i) const {
  if (const SymValues* v = input_value(i); v && v->size() == 1 && (*v)[0].known()) return static_cast<double>(*(*v)[0].v);
  const Tensor* t = input_constant(i);
  if (!t || t->numel() != 1 || t->dtype() == DType::kString || t->dtype() == DType::kComplex64 ||
      t->dtype() == DType::kComplex128)
    return std::nullopt;
  return t->GetAsDouble(0);
}

int64_t InferContext::attr_int(std::string_view name, int64_t def) const {
  const auto* a = attr(name);
  return a && a->type == ir::Attribute::Type::kInt ? a->i : def;
}

float InferContext::attr_float(std::string_view name, float def) const {
  const auto* a = attr(name);
  return a && a->type == ir::Attribute::Type::kFloat ? a->f : def;
}

std::string InferContext::attr_string(std::string_view name, const std::string& def) const {
  const auto* a = attr(name);
  return a && a->type == ir::Attribute::Type::kString ? a->s : def;
}

std::optional<std::vector<int64_t>> InferContext::attr_ints(std::string_view name) const {
  const auto* a = attr(name);
  if (!a) return std::nullopt;
  if (a->type == ir::Attribute::Type::kInts) return a->ints;
  if (a->type == ir::Attribute::Type::kInt) return std::vector<int64_t>{a->i};
  return std::nullopt;
}

std::optional<DType> InferContext::attr_dtype(std::string_view name) const {
  const auto* a = attr(name);
  if (!a || a->type != ir::Attribute::Type::kInt || a->i <= 0 || a->i > static_cast<int64_t>(DType::kBFloat16))
    return std::nullopt;
  return static_cast<DType>(a->i);
}

void InferContext::SetTensor(int i, DType dt, std::optional<Dims> shape) {
  SetType(i, ir::TypeInfo::Tensor(dt, std::move(shape)));
}

void InferContext::SetType(int i, ir::TypeInfo t) {
  if (!has_output(i)) return;
  outputs[static_cast<size_t>(i)].type = std::move(t);
}

void InferContext::SetValue(int i, SymValues v) {
  if (!has_output(i) || static_cast<int64_t>(v.size()) > kMaxTrackedElements) return;
  outputs[static_cast<size_t>(i)].value = std::move(v);
}

Status InferContext::Error(const std::string& msg) const {
  return InvalidModel(node_.Describe() + ": shape inference: " + msg);
}

namespace {
// "min(x,c)" broadcast with x: equal, or one of them is 1, and either way the result is x.
bool IsMinOf(const std::string& m, const std::string& x) {
  return !x.empty() && m.size() > x.size() + 5 && m.compare(0, 4, "min(") == 0 && m.compare(4, x.size(), x) == 0 &&
         m[4 + x.size()] == ',';
}
}  // namespace

Status Broadcast(const InferContext& ctx, const Dims& a, const Dims& b, Dims& out) {
  const size_t r = std::max(a.size(), b.size());
  Dims res(r);
  for (size_t k = 0; k < r; ++k) {
    const bool has_a = k + a.size() >= r, has_b = k + b.size() >= r;
    if (!has_a) { res[k] = b[k + b.size() - r]; continue; }
    if (!has_b) { res[k] = a[k + a.size() - r]; continue; }
    const ir::Dim& x = a[k + a.size() - r];
    const ir::Dim& y = b[k + b.size() - r];
    if (x.known() && y.known()) {
      if (x.value != y.value && x.value != 1 && y.value != 1)
        return ctx.Error("cannot broadcast shapes " + DimsToString(a) + " and " + DimsToString(b) + " (dimension " +
                         std::to_string(k) + ": " + std::to_string(x.value) + " vs " + std::to_string(y.value) + ")");
      res[k] = x.value == 1 ? y : x;
    } else if (x.known()) {
      res[k] = x.value == 1 ? y : x;  // y is 1 or equal to x
    } else if (y.known()) {
      res[k] = y.value == 1 ? x : y;
    } else if (!x.symbol.empty() && x.symbol == y.symbol) {
      res[k] = x;
    } else if (IsMinOf(x.symbol, y.symbol)) {
      res[k] = y;
    } else if (IsMinOf(y.symbol, x.symbol)) {
      res[k] = x;
    } else {
      res[k] = ir::Dim{};  // different symbols, or unknown: either could be 1
    }
  }
  out = std::move(res);
  return Status::Ok();
}

}  // namespace strata::passes::shape
