// Shape inference driver: scopes, merging with declared types, write-back, and the control-flow ops
// (If, Loop, Scan) whose bodies are inferred with the enclosing scope visible.
#include "passes/shape_inference.h"

#include <unordered_map>

#include "passes/shape_rules.h"

namespace strata::passes {
namespace {

using shape::Dims;
using shape::InferContext;
using shape::ValueState;
using K = ir::TypeInfo::Kind;

const shape::RuleTable& Rules() {
  static const shape::RuleTable table = [] {
    shape::RuleTable t;
    shape::RegisterElementwiseRules(t);
    shape::RegisterMathRules(t);
    shape::RegisterNnRules(t);
    shape::RegisterTensorRules(t);
    return t;
  }();
  return table;
}

// How much a type says: used to decide whether a merge refined a declared type.
int Precision(const ir::TypeInfo& t) {
  if (t.kind == K::kUnknown) return 0;
  int p = 1;
  if (t.kind == K::kTensor) {
    if (t.elem_type != DType::kUndefined) ++p;
    if (t.shape) {
      ++p;
      for (const auto& d : *t.shape) p += d.known() ? 2 : (d.symbol.empty() ? 0 : 1);
    }
  } else if (t.inner) {
    p += Precision(*t.inner);
  }
  return p;
}

// Combines what the model declared with what a rule inferred; never loses information.
// Where both give a different symbol for a dim, `prefer_inferred` picks the inferred one.
ir::TypeInfo Merge(const ir::TypeInfo& declared, const ir::TypeInfo& inferred, bool prefer_inferred, bool& conflict) {
  if (inferred.kind == K::kUnknown) return declared;
  if (declared.kind == K::kUnknown) return inferred;
  if (declared.kind != inferred.kind) {
    conflict = true;
    return declared;
  }
  ir::TypeInfo out = declared;
  if (declared.kind != K::kTensor) {
    if (declared.inner && inferred.inner) out.inner = std::make_shared<ir::TypeInfo>(Merge(*declared.inner, *inferred.inner, prefer_inferred, conflict));
    else if (!declared.inner) out.inner = inferred.inner;
    return out;
  }
  if (out.elem_type == DType::kUndefined) out.elem_type = inferred.elem_type;
  else if (inferred.elem_type != DType::kUndefined && inferred.elem_type != declared.elem_type) conflict = true;
  if (!inferred.shape) return out;
  if (!declared.shape) {
    out.shape = inferred.shape;
    return out;
  }
  if (declared.shape->size() != inferred.shape->size()) {
    conflict = true;
    return out;
  }
  for (size_t i = 0; i < out.shape->size(); ++i) {
    ir::Dim& d = (*out.shape)[i];
    const ir::Dim& n = (*inferred.shape)[i];
    if (d.known()) {
      if (n.known() && n.value != d.value) conflict = true;
    } else if (n.known()) {
      d = n;
    } else if (!n.symbol.empty() && (d.symbol.empty() || prefer_inferred)) {
      d = n;
    }
  }
  return out;
}

// Both branches of an If, or a loop-carried value across iterations: what holds for both.
ir::TypeInfo Union(const ir::TypeInfo& a, const ir::TypeInfo& b) {
  if (a.kind != b.kind) return {};
  ir::TypeInfo out = a;
  if (a.kind != K::kTensor) {
    if (!a.inner || !b.inner) out.inner.reset();
    else out.inner = std::make_shared<ir::TypeInfo>(Union(*a.inner, *b.inner));
    return out;
  }
  if (a.elem_type != b.elem_type) out.elem_type = DType::kUndefined;
  if (!a.shape || !b.shape || a.shape->size() != b.shape->size()) {
    out.shape.reset();
    return out;
  }
  for (size_t i = 0; i < out.shape->size(); ++i)
    if (!shape::SameDim((*a.shape)[i], (*b.shape)[i])) (*out.shape)[i] = ir::Dim{};
  return out;
}

bool SameType(const ir::TypeInfo& a, const ir::TypeInfo& b) {
  return a.ToString() == b.ToString() && a.kind == b.kind;
}

class Scope {
 public:
  explicit Scope(const Scope* parent) : parent_(parent) {}
  const ValueState* Find(const std::string& name) const {
    auto it = values_.find(name);
    if (it != values_.end()) return &it->second;
    return parent_ ? parent_->Find(name) : nullptr;
  }
  ValueState& Set(const std::string& name) { return values_[name]; }

 private:
  const Scope* parent_;
  std::unordered_map<std::string, ValueState> values_;  // node-based: pointers stay valid
};

// Keeps a value only when it fits its (merged) type: a small rank <= 1 numeric tensor.
void SanitizeValue(ValueState& s) {
  if (!s.value) return;
  const ir::TypeInfo& t = s.type;
  const bool numeric = t.kind == K::kTensor && (IsInteger(t.elem_type) || IsFloatingPoint(t.elem_type) ||
                                                 t.elem_type == DType::kBool || t.elem_type == DType::kUndefined);
  bool fits = numeric;
  if (fits && t.shape) {
    if (t.shape->size() > 1) fits = false;
    else if (t.shape->size() == 1 && (!(*t.shape)[0].known() || (*t.shape)[0].value != static_cast<int64_t>(s.value->size())))
      fits = false;
    else if (t.shape->empty() && s.value->size() != 1) fits = false;
  }
  if (!fits) s.value.reset();
}

class Inferrer {
 public:
  Inferrer(const ir::Model& model, ShapeInferenceReport* report) : model_(model), report_(report) {}

  // Infers graph `g`. `seeds` (optional, one per graph input) fill in body input types the graph
  // does not declare. With `write_back`, refined types are stored in g.value_info / g.outputs.
  // `out_types` receives the final type of each graph output.
  Status InferGraph(ir::Graph& g, const Scope* parent, const std::vector<ir::TypeInfo>* seeds, bool write_back,
                    std::vector<ir::TypeInfo>* out_types);

 private:
  Status InferNode(ir::Node& node, Scope& scope, bool write_back, InferContext& ctx);
  Status InferIf(ir::Node& node, Scope& scope, bool write_back, InferContext& ctx);
  Status InferLoop(ir::Node& node, Scope& scope, bool write_back, InferContext& ctx);
  Status InferScan(ir::Node& node, Scope& scope, bool write_back, InferContext& ctx);

  const ir::Model& model_;
  ShapeInferenceReport* report_;
};

Status Inferrer::InferGraph(ir::Graph& g, const Scope* parent, const std::vector<ir::TypeInfo>* seeds, bool write_back,
                            std::vector<ir::TypeInfo>* out_types) {
  Scope scope(parent);
  for (const auto& [name, t] : g.initializers) {
    ValueState& s = scope.Set(name);
    Dims shape;
    for (int64_t d : t.shape()) shape.push_back(ir::Dim::Known(d));
    s.type = ir::TypeInfo::Tensor(t.dtype(), shape);
    s.constant = &t;
    if (IsInteger(t.dtype()) && t.rank() <= 1 && t.numel() <= shape::kMaxTrackedElements) {
      s.value.emplace();
      for (int64_t i = 0; i < t.numel(); ++i) s.value->push_back(shape::SymInt::Of(t.GetAsInt64(i)));
    }
  }
  for (size_t i = 0; i < g.inputs.size(); ++i) {
    const ir::ValueInfo& vi = g.inputs[i];
    if (g.initializers.count(vi.name)) continue;
    ir::TypeInfo t = vi.type;
    if (seeds && i < seeds->size()) {
      bool conflict = false;
      t = Merge(t, (*seeds)[i], /*prefer_inferred=*/false, conflict);
    }
    scope.Set(vi.name).type = std::move(t);
  }

  // Where each declared type lives: graph outputs keep their declared symbols, value_info entries
  // take the inferred ones (they are derived consistently from the graph inputs).
  std::unordered_map<std::string, size_t> vi_index, out_index;
  for (size_t i = 0; i < g.value_info.size(); ++i) vi_index.emplace(g.value_info[i].name, i);
  for (size_t i = 0; i < g.outputs.size(); ++i) out_index.emplace(g.outputs[i].name, i);

  for (ir::Node& node : g.nodes) {
    std::vector<const ValueState*> ins;
    ins.reserve(node.inputs.size());
    for (const auto& name : node.inputs) ins.push_back(name.empty() ? nullptr : scope.Find(name));
    InferContext ctx(node, model_.OpsetFor(node.domain), std::move(ins));
    RETURN_IF_ERROR(InferNode(node, scope, write_back, ctx));

    for (size_t i = 0; i < node.outputs.size(); ++i) {
      const std::string& name = node.outputs[i];
      if (name.empty()) continue;
      ValueState& inferred = ctx.outputs[i];
      const ir::TypeInfo* declared = nullptr;
      auto oit = out_index.find(name);
      auto vit = vi_index.find(name);
      if (oit != out_index.end()) declared = &g.outputs[oit->second].type;
      else if (vit != vi_index.end()) declared = &g.value_info[vit->second].type;
      static const ir::TypeInfo kNone;
      const ir::TypeInfo& decl = declared ? *declared : kNone;

      bool conflict = false;
      ValueState& s = scope.Set(name);
      s.type = Merge(decl, inferred.type, /*prefer_inferred=*/true, conflict);
      s.value = std::move(inferred.value);
      s.constant = inferred.constant;
      SanitizeValue(s);
      if (write_back && report_) {
        ++report_->values;
        if (conflict)
          report_->conflicts.push_back(node.Describe() + " output '" + name + "': declared " + decl.ToString() +
                                       ", inferred " + inferred.type.ToString());
      }
      if (!write_back) continue;
      if (oit != out_index.end()) {
        bool c2 = false;
        ir::TypeInfo t = Merge(decl, inferred.type, /*prefer_inferred=*/false, c2);
        if (Precision(t) > Precision(decl) && report_) ++report_->refined;
        g.outputs[oit->second].type = std::move(t);
      } else if (vit != vi_index.end()) {
        if (Precision(s.type) > Precision(decl) && report_) ++report_->refined;
        g.value_info[vit->second].type = s.type;
      } else if (s.type.kind != K::kUnknown) {
        if (report_) ++report_->refined;
        vi_index.emplace(name, g.value_info.size());
        g.value_info.push_back({name, s.type});
      }
    }
  }
  if (out_types) {
    out_types->clear();
    for (const auto& vi : g.outputs) {
      const ValueState* s = scope.Find(vi.name);
      bool conflict = false;
      out_types->push_back(s ? Merge(vi.type, s->type, false, conflict) : vi.type);
    }
  }
  return Status::Ok();
}

Status Inferrer::InferNode(ir::Node& node, Scope& scope, bool write_back, InferContext& ctx) {
  if (node.domain != ir::kOnnxDomain) return Status::Ok();
  if (node.op_type == "If") return InferIf(node, scope, write_back, ctx);
  if (node.op_type == "Loop") return InferLoop(node, scope, write_back, ctx);
  if (node.op_type == "Scan" && ctx.opset() >= 9) return InferScan(node, scope, write_back, ctx);
  auto it = Rules().find(node.op_type);
  if (it == Rules().end()) return Status::Ok();
  RETURN_IF_ERROR(it->second(ctx));
  if (node.op_type == "Constant" && node.attributes.size() == 1 && node.attributes[0].name == "value" &&
      node.attributes[0].t.defined() && !ctx.outputs.empty())
    ctx.outputs[0].constant = &node.attributes[0].t;
  return Status::Ok();
}

ir::Graph* BodyOf(ir::Node& node, std::string_view attr) {
  for (auto& a : node.attributes)
    if (a.name == attr && a.g) return a.g.get();
  return nullptr;
}

Status Inferrer::InferIf(ir::Node& node, Scope& scope, bool write_back, InferContext& ctx) {
  ir::Graph* then_g = BodyOf(node, "then_branch");
  ir::Graph* else_g = BodyOf(node, "else_branch");
  if (!then_g || !else_g) return Status::Ok();
  std::vector<ir::TypeInfo> then_out, else_out;
  RETURN_IF_ERROR(InferGraph(*then_g, &scope, nullptr, write_back, &then_out).WithContext(node.Describe() + " then_branch: "));
  RETURN_IF_ERROR(InferGraph(*else_g, &scope, nullptr, write_back, &else_out).WithContext(node.Describe() + " else_branch: "));
  // A constant condition picks one branch.
  std::optional<std::vector<int64_t>> cond = ctx.input_ints(0);
  for (int i = 0; i < ctx.num_outputs(); ++i) {
    const size_t k = static_cast<size_t>(i);
    if (k >= then_out.size() || k >= else_out.size()) break;
    if (cond && cond->size() == 1) ctx.SetType(i, (*cond)[0] ? then_out[k] : else_out[k]);
    else ctx.SetType(i, Union(then_out[k], else_out[k]));
  }
  return Status::Ok();
}

// Loop body inputs: (iteration, condition, carried...); outputs: (condition, carried..., scan outputs...).
Status Inferrer::InferLoop(ir::Node& node, Scope& scope, bool write_back, InferContext& ctx) {
  ir::Graph* body = BodyOf(node, "body");
  if (!body) return Status::Ok();
  const size_t n_carried = node.inputs.size() > 2 ? node.inputs.size() - 2 : 0;
  std::vector<ir::TypeInfo> seeds{ir::TypeInfo::Tensor(DType::kInt64, Dims{}), ir::TypeInfo::Tensor(DType::kBool, Dims{})};
  std::vector<ir::TypeInfo> initial;
  for (size_t k = 0; k < n_carried; ++k) {
    const ValueState* s = ctx.input(static_cast<int>(k + 2));
    initial.push_back(s ? s->type : ir::TypeInfo{});
    seeds.push_back(initial.back());
  }
  // Carried shapes may change between iterations: widen the seeds until the body reproduces them.
  std::vector<ir::TypeInfo> out;
  bool stable = false;
  for (int round = 0; round < 3 && !stable; ++round) {
    Status st = InferGraph(*body, &scope, &seeds, /*write_back=*/false, &out);
    if (!st.ok()) {
      if (round == 0) {  // retry once with dtype-only seeds before blaming the model
        for (size_t k = 0; k < n_carried; ++k) seeds[k + 2].shape.reset();
        continue;
      }
      return st.WithContext(node.Describe() + " body: ");
    }
    stable = true;
    for (size_t k = 0; k < n_carried && k + 1 < out.size(); ++k) {
      ir::TypeInfo u = Union(seeds[k + 2], out[k + 1]);
      if (!SameType(u, seeds[k + 2])) {
        seeds[k + 2] = u;
        stable = false;
      }
    }
  }
  if (!stable)
    for (size_t k = 0; k < n_carried; ++k) seeds[k + 2].shape.reset();
  RETURN_IF_ERROR(InferGraph(*body, &scope, &seeds, write_back, &out).WithContext(node.Describe() + " body: "));

  for (size_t k = 0; k < n_carried && k + 1 < out.size(); ++k) ctx.SetType(static_cast<int>(k), Union(seeds[k + 2], out[k + 1]));
  // Scan outputs stack one body output per iteration.
  ir::Dim trips;
  if (!ctx.has_input(1))
    if (auto m = ctx.input_ints(0); m && m->size() == 1 && (*m)[0] >= 0) trips = ir::Dim::Known((*m)[0]);
  for (size_t j = 1 + n_carried; j < out.size(); ++j) {
    const int oi = static_cast<int>(j - 1);
    const ir::TypeInfo& t = out[j];
    if (t.kind != K::kTensor) continue;
    std::optional<Dims> shape;
    if (t.shape) {
      shape = Dims{trips};
      shape->insert(shape->end(), t.shape->begin(), t.shape->end());
    }
    ctx.SetTensor(oi, t.elem_type, shape);
  }
  return Status::Ok();
}

// Scan (opset >= 9): inputs (state..., scan inputs...); body inputs (state..., one slice per scan input).
Status Inferrer::InferScan(ir::Node& node, Scope& scope, bool write_back, InferContext& ctx) {
  ir::Graph* body = BodyOf(node, "body");
  if (!body) return Status::Ok();
  const int64_t m = ctx.attr_int("num_scan_inputs", 0);
  const int64_t n_in = ctx.num_inputs();
  if (m <= 0 || m > n_in) return Status::Ok();
  const size_t n_state = static_cast<size_t>(n_in - m);
  const auto in_axes = ctx.attr_ints("scan_input_axes").value_or(std::vector<int64_t>(static_cast<size_t>(m), 0));
  const auto out_axes_attr = ctx.attr_ints("scan_output_axes");
  if (static_cast<int64_t>(in_axes.size()) != m) return Status::Ok();

  std::vector<ir::TypeInfo> seeds;
  for (size_t k = 0; k < n_state; ++k) {
    const ValueState* s = ctx.input(static_cast<int>(k));
    seeds.push_back(s ? s->type : ir::TypeInfo{});
  }
  ir::Dim length;
  for (int64_t j = 0; j < m; ++j) {
    const int idx = static_cast<int>(static_cast<int64_t>(n_state) + j);
    const Dims* s = ctx.input_shape(idx);
    ir::TypeInfo t = ir::TypeInfo::Tensor(ctx.input_dtype(idx));
    if (s) {
      int64_t axis = in_axes[static_cast<size_t>(j)];
      if (!ctx.NormalizeAxis(axis, static_cast<int64_t>(s->size()))) return ctx.Error("scan_input_axes out of range");
      Dims slice = *s;
      if (j == 0) length = slice[static_cast<size_t>(axis)];
      slice.erase(slice.begin() + axis);
      t.shape = std::move(slice);
    }
    seeds.push_back(std::move(t));
  }
  // State shapes are assumed fixed across iterations only if the body agrees.
  std::vector<ir::TypeInfo> out;
  if (!InferGraph(*body, &scope, &seeds, false, &out).ok()) {
    for (size_t k = 0; k < n_state; ++k) seeds[k].shape.reset();
  } else {
    for (size_t k = 0; k < n_state && k < out.size(); ++k)
      if (!SameType(Union(seeds[k], out[k]), seeds[k])) seeds[k] = Union(seeds[k], out[k]);
  }
  RETURN_IF_ERROR(InferGraph(*body, &scope, &seeds, write_back, &out).WithContext(node.Describe() + " body: "));
  for (size_t k = 0; k < n_state && k < out.size(); ++k) ctx.SetType(static_cast<int>(k), Union(seeds[k], out[k]));
  for (size_t j = n_state; j < out.size(); ++j) {
    const ir::TypeInfo& t = out[j];
    if (t.kind != K::kTensor) continue;
    std::optional<Dims> shape;
    if (t.shape) {
      const int64_t r = static_cast<int64_t>(t.shape->size()) + 1;
      int64_t axis = out_axes_attr && j - n_state < out_axes_attr->size() ? (*out_axes_attr)[j - n_state] : 0;
      if (!ctx.NormalizeAxis(axis, r)) return ctx.Error("scan_output_axes out of range");
      shape = *t.shape;
      shape->insert(shape->begin() + axis, length);
    }
    ctx.SetTensor(static_cast<int>(j), t.elem_type, shape);
  }
  return Status::Ok();
}

}  // namespace

bool IsFullyShaped(const ir::TypeInfo& t) {
  if (t.kind != K::kTensor || !t.shape) return false;
  for (const auto& d : *t.shape)
    if (!shape::IsKnownOrSymbolic(d)) return false;
  return true;
}

ShapeCoverage CountShapeCoverage(const ir::Graph& g) {
  ShapeCoverage c;
  std::unordered_map<std::string, const ir::ValueInfo*> index;
  for (const auto* list : {&g.value_info, &g.outputs})
    for (const auto& vi : *list) index[vi.name] = &vi;
  for (const auto& n : g.nodes)
    for (const auto& o : n.outputs) {
      if (o.empty()) continue;
      ++c.values;
      auto it = index.find(o);
      if (it == index.end()) continue;
      const ir::ValueInfo* vi = it->second;
      if (vi->type.TensorElemType() != DType::kUndefined) ++c.typed;
      if (IsFullyShaped(vi->type)) ++c.shaped;
    }
  return c;
}

Status InferShapes(ir::Model& model, ShapeInferenceReport* report) {
  if (!model.graph) return Status::Ok();
  Inferrer inf(model, report);
  return inf.InferGraph(*model.graph, nullptr, nullptr, /*write_back=*/true, nullptr);
}

}  // namespace strata::passes
