#include "runtime/constant_folding.h"

#include <algorithm>

#include "passes/graph_editor.h"
#include "runtime/executor.h"

namespace strata {
namespace {

using passes::GraphEditor;

ir::TypeInfo ExactType(const Tensor& t) {
  std::vector<ir::Dim> dims;
  for (int64_t d : t.shape()) dims.push_back(ir::Dim::Known(d));
  return ir::TypeInfo::Tensor(t.dtype(), std::move(dims));
}

// Runs one node on constant inputs through the normal compile/run path, so folding and execution
// can never disagree about an op's semantics.
Result<std::vector<Value>> Evaluate(const ir::Model& model, const ir::Node& node, const GraphEditor& ed) {
  ir::Model m;
  m.ir_version = model.ir_version;
  m.opset_imports = model.opset_imports;
  m.graph = std::make_shared<ir::Graph>();
  m.graph->name = "constant-folding";
  m.graph->nodes.push_back(node);
  for (const auto& in : node.inputs)
    if (!in.empty()) m.graph->initializers[in] = *ed.Constant(in);
  for (const auto& o : node.outputs)
    if (!o.empty()) m.graph->outputs.push_back({o, {}});
  ASSIGN_OR_RETURN(auto plan, CompileModel(m));
  std::vector<Value> outs;
  RETURN_IF_ERROR(plan->Run(nullptr, {}, outs));
  return outs;
}

// Dims [start, end) of `x`'s declared shape as the Shape node `n` selects them (some may be symbolic).
bool ShapeDims(const GraphEditor& ed, const ir::Node& n, std::vector<ir::Dim>* out) {
  if (n.inputs.empty()) return false;
  const ir::TypeInfo* t = ed.TypeOf(n.inputs[0]);
  if (!t || t->kind != ir::TypeInfo::Kind::kTensor || !t->shape) return false;
  const int64_t r = static_cast<int64_t>(t->shape->size());
  int64_t start = passes::AttrInt(n, "start", 0), end = passes::AttrInt(n, "end", r);
  if (start < 0) start += r;
  if (end < 0) end += r;
  start = std::clamp<int64_t>(start, 0, r);
  end = std::clamp<int64_t>(end, start, r);
  out->assign(t->shape->begin() + start, t->shape->begin() + end);
  return true;
}

// Gather(Shape(x), constant indices) where the gathered dims are known even though others are
// symbolic: [batch, seq, 768] -> Gather(2) is 768.
bool FoldGatherOfShape(GraphEditor& ed, const ir::Node& n, Tensor* out) {
  if (n.op_type != "Gather" || n.inputs.size() != 2 || passes::AttrInt(n, "axis", 0) != 0) return false;
  const int p = ed.Producer(n.inputs[0]);
  const Tensor* idx = ed.Constant(n.inputs[1]);
  if (p < 0 || !idx || idx->rank() > 1 || ed.node(p).op_type != "Shape" || ed.node(p).domain != ir::kOnnxDomain)
    return false;
  std::vector<ir::Dim> dims;
  if (!ShapeDims(ed, ed.node(p), &dims)) return false;
  const int64_t r = static_cast<int64_t>(dims.size());
  std::vector<int64_t> vals;
  for (int64_t k = 0; k < idx->numel(); ++k) {
    int64_t i = idx->GetAsInt64(k);
    if (i < 0) i += r;
    if (i < 0 || i >= r || !dims[static_cast<size_t>(i)].known()) return false;
    vals.push_back(dims[static_cast<size_t>(i)].value);
  }
  *out = Tensor::FromVector<int64_t>(vals, idx->shape());
  return true;
}

bool Foldable(const ir::Node& n) {
  return n.domain == ir::kOnnxDomain && !passes::HasSubgraph(n) && !passes::IsNondeterministic(n) && !n.outputs.empty();
}

}  // namespace

Result<bool> ConstantFolding::Apply(ir::Model& model) {
  GraphEditor ed(model);
  for (int i = 0; i < ed.num_nodes(); ++i) {
    const ir::Node& n = ed.node(i);
    if (!Foldable(n)) continue;
    bool outputs_free = true;
    for (const auto& o : n.outputs) outputs_free &= o.empty() || ed.Rewirable(o);
    if (!outputs_free) continue;

    Tensor gathered;
    if (FoldGatherOfShape(ed, n, &gathered)) {
      const std::string out = n.outputs[0];
      ed.SetType(out, ExactType(gathered));
      ed.graph().initializers[out] = std::move(gathered);
      ed.Remove(i);
      continue;
    }
    // Shape/Size only need the input's shape (for Shape, just the dims it selects).
    if ((n.op_type == "Shape" || n.op_type == "Size") && n.inputs.size() == 1 && !ed.Constant(n.inputs[0])) {
      std::vector<ir::Dim> dims;
      Shape in_shape;
      Tensor t;
      if (n.op_type == "Size" && ed.StaticShape(n.inputs[0], &in_shape)) {
        t = Tensor::Scalar<int64_t>(NumElements(in_shape));
      } else if (n.op_type == "Shape" && ShapeDims(ed, n, &dims) &&
                 std::all_of(dims.begin(), dims.end(), [](const ir::Dim& d) { return d.known(); })) {
        std::vector<int64_t> v;
        for (const auto& d : dims) v.push_back(d.value);
        t = Tensor::FromVector<int64_t>(v, {static_cast<int64_t>(v.size())});
      }
      if (t.defined()) {
        const std::string out = n.outputs[0];
        ed.SetType(out, ExactType(t));
        ed.graph().initializers[out] = std::move(t);
        ed.Remove(i);
      }
      continue;
    }

    int64_t largest_input = 0;
    bool all_constant = true;
    for (const auto& in : n.inputs) {
      if (in.empty()) continue;
      const Tensor* t = ed.Constant(in);
      if (!t) { all_constant = false; break; }
      largest_input = std::max<int64_t>(largest_input, static_cast<int64_t>(t->nbytes()));
    }
    if (!all_constant) continue;
    const int64_t cap = std::max(kMaxFoldedBytes, largest_input);
    // Size check before evaluating, from the inferred output types (Constant nodes hold their value).
    bool small = true;
    if (n.op_type != "Constant") {
      for (const auto& o : n.outputs) {
        if (o.empty()) continue;
        Shape s;
        const DType dt = ed.ElemType(o);
        if (!ed.StaticShape(o, &s) || dt == DType::kUndefined ||
            NumElements(s) * static_cast<int64_t>(DTypeSize(dt)) > cap)
          small = false;
      }
    }
    if (!small) continue;
    auto outs = Evaluate(model, n, ed);
    if (!outs.ok()) continue;  // the node fails at run time too; leave it to report there
    bool ok = true;
    size_t k = 0;
    std::vector<std::pair<std::string, Tensor>> results;
    for (const auto& o : n.outputs) {
      if (o.empty()) continue;
      const Value& v = (*outs)[k++];
      if (!v.is_tensor() || static_cast<int64_t>(v.tensor().nbytes()) > cap) { ok = false; break; }
      results.emplace_back(o, v.tensor());
    }
    if (!ok) continue;
    for (auto& [name, t] : results) {
      ed.SetType(name, ExactType(t));
      ed.graph().initializers[name] = std::move(t);
    }
    ed.Remove(i);
  }
  return ed.Commit();
}

namespace {
const passes::PassRegistrar kReg{
    {"constant-folding", passes::order::kConstantFolding, [] { return std::make_unique<ConstantFolding>(); }}};
}  // namespace

}  // namespace strata
