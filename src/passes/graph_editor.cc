#include "passes/graph_editor.h"

#include <cstring>

namespace strata::passes {
namespace {

// Every name a nested graph reads or defines (conservatively: all of them count as outer reads).
void CollectNames(const ir::Graph& g, std::unordered_set<std::string>& refs) {
  for (const auto& n : g.nodes) {
    for (const auto& i : n.inputs) refs.insert(i);
    for (const auto& o : n.outputs) refs.insert(o);
    for (const auto& a : n.attributes) {
      if (a.g) CollectNames(*a.g, refs);
      for (const auto& sg : a.graphs) CollectNames(*sg, refs);
    }
  }
  for (const auto& vi : g.outputs) refs.insert(vi.name);
  for (const auto& vi : g.inputs) refs.insert(vi.name);
  for (const auto& [name, t] : g.initializers) refs.insert(name);
}

// The value of a Constant node, for the attribute forms a pass can use.
bool ConstantNodeValue(const ir::Node& n, Tensor* out) {
  if (n.op_type != "Constant" || n.domain != ir::kOnnxDomain || n.attributes.size() != 1) return false;
  const ir::Attribute& a = n.attributes[0];
  if (a.name == "value" && a.type == ir::Attribute::Type::kTensor && a.t.defined()) *out = a.t;
  else if (a.name == "value_float") *out = Tensor::Scalar<float>(a.f);
  else if (a.name == "value_int") *out = Tensor::Scalar<int64_t>(a.i);
  else if (a.name == "value_floats") *out = Tensor::FromVector<float>(a.floats, {static_cast<int64_t>(a.floats.size())});
  else if (a.name == "value_ints") *out = Tensor::FromVector<int64_t>(a.ints, {static_cast<int64_t>(a.ints.size())});
  else return false;
  return true;
}

}  // namespace

GraphEditor::GraphEditor(ir::Model& model) : model_(model), g_(*model.graph) {
  removed_.assign(g_.nodes.size(), false);
  for (const auto& vi : g_.outputs) graph_outputs_.insert(vi.name);
  for (const auto& vi : g_.inputs) graph_inputs_.insert(vi.name);
  for (int i = 0; i < num_nodes(); ++i) {
    IndexNode(i);
    const ir::Node& n = g_.nodes[static_cast<size_t>(i)];
    for (const auto& a : n.attributes) {
      if (a.g) CollectNames(*a.g, subgraph_refs_);
      for (const auto& sg : a.graphs) CollectNames(*sg, subgraph_refs_);
    }
    Tensor t;
    if (!n.outputs.empty() && ConstantNodeValue(n, &t)) constant_nodes_[n.outputs[0]] = t;
  }
}

void GraphEditor::IndexNode(int i) {
  const ir::Node& n = g_.nodes[static_cast<size_t>(i)];
  for (const auto& in : n.inputs)
    if (!in.empty()) consumers_[in].push_back(i);
  for (const auto& o : n.outputs)
    if (!o.empty()) producer_[o] = i;
}

int GraphEditor::Producer(const std::string& value) const {
  auto it = producer_.find(value);
  if (it == producer_.end() || removed(it->second)) return -1;
  return it->second;
}

std::vector<int> GraphEditor::Consumers(const std::string& value) const {
  std::vector<int> out;
  auto it = consumers_.find(value);
  if (it == consumers_.end()) return out;
  for (int c : it->second) {
    if (removed(c)) continue;
    // Entries can be stale after ReplaceUses/ReplaceNode: count the slots that still read `value`.
    int slots = 0;
    for (const auto& in : g_.nodes[static_cast<size_t>(c)].inputs) slots += in == value;
    int seen = 0;
    for (int o : out) seen += o == c;
    if (seen < slots) out.push_back(c);
  }
  return out;
}

bool GraphEditor::HasSingleConsumer(const std::string& value) const {
  return Rewirable(value) && Consumers(value).size() == 1;
}

int GraphEditor::SoleConsumer(const std::string& value) const {
  if (!Rewirable(value)) return -1;
  const auto c = Consumers(value);
  return c.size() == 1 ? c[0] : -1;
}

bool GraphEditor::SplitScalarOperand(const ir::Node& n, std::string* other, double* scalar) const {
  if (n.inputs.size() != 2 || n.inputs[0].empty() || n.inputs[1].empty()) return false;
  double v0, v1;
  const bool c0 = ConstantScalar(n.inputs[0], &v0), c1 = ConstantScalar(n.inputs[1], &v1);
  if (c0 == c1) return false;
  const std::string& x = c0 ? n.inputs[1] : n.inputs[0];
  const int64_t scalar_rank = Constant(c0 ? n.inputs[0] : n.inputs[1])->rank();
  if (scalar_rank > 0 && Rank(x).value_or(0) < scalar_rank) return false;  // would broadcast x to more dims
  *other = x;
  *scalar = c0 ? v0 : v1;
  return true;
}

const Tensor* GraphEditor::Constant(const std::string& value) const {
  if (auto it = g_.initializers.find(value); it != g_.initializers.end()) return &it->second;
  if (auto it = constant_nodes_.find(value); it != constant_nodes_.end() && Producer(value) >= 0) return &it->second;
  return nullptr;
}

bool GraphEditor::ConstantScalar(const std::string& value, double* out) const {
  const Tensor* t = Constant(value);
  if (!t || t->numel() != 1 || t->dtype() == DType::kString || t->dtype() == DType::kUndefined) return false;
  *out = t->GetAsDouble(0);
  return true;
}

const ir::TypeInfo* GraphEditor::TypeOf(const std::string& value) const {
  const ir::ValueInfo* vi = g_.FindValueInfo(value);
  return vi ? &vi->type : nullptr;
}

DType GraphEditor::ElemType(const std::string& value) const {
  if (const Tensor* t = Constant(value)) return t->dtype();
  const ir::TypeInfo* t = TypeOf(value);
  return t && t->kind == ir::TypeInfo::Kind::kTensor ? t->elem_type : DType::kUndefined;
}

std::optional<int64_t> GraphEditor::Rank(const std::string& value) const {
  if (const Tensor* t = Constant(value)) return t->rank();
  const ir::TypeInfo* t = TypeOf(value);
  if (!t || t->kind != ir::TypeInfo::Kind::kTensor || !t->shape) return std::nullopt;
  return static_cast<int64_t>(t->shape->size());
}

bool GraphEditor::StaticShape(const std::string& value, Shape* out) const {
  if (const Tensor* t = Constant(value)) {
    *out = t->shape();
    return true;
  }
  const ir::TypeInfo* t = TypeOf(value);
  if (!t || t->kind != ir::TypeInfo::Kind::kTensor || !t->shape) return false;
  out->clear();
  for (const auto& d : *t->shape) {
    if (!d.known()) return false;
    out->push_back(d.value);
  }
  return true;
}

bool SameDim(const ir::Dim& a, const ir::Dim& b) {
  if (a.known() || b.known()) return a.known() && b.known() && a.value == b.value;
  return !a.symbol.empty() && a.symbol == b.symbol;
}

bool GraphEditor::SameShape(const std::string& a, const std::string& b) const {
  Shape sa, sb;
  if (StaticShape(a, &sa) && StaticShape(b, &sb)) return sa == sb;  // constants have no type entry
  const ir::TypeInfo* ta = TypeOf(a);
  const ir::TypeInfo* tb = TypeOf(b);
  if (!ta || !tb || ta->kind != ir::TypeInfo::Kind::kTensor || tb->kind != ir::TypeInfo::Kind::kTensor || !ta->shape ||
      !tb->shape || ta->shape->size() != tb->shape->size())
    return false;
  for (size_t i = 0; i < ta->shape->size(); ++i)
    if (!SameDim((*ta->shape)[i], (*tb->shape)[i])) return false;
  return true;
}

void GraphEditor::SetType(const std::string& value, ir::TypeInfo type) {
  for (auto* list : {&g_.outputs, &g_.value_info})
    for (auto& vi : *list)
      if (vi.name == value) {
        vi.type = std::move(type);
        return;
      }
  g_.value_info.push_back({value, std::move(type)});
}

void GraphEditor::ReplaceUses(const std::string& from, const std::string& to) {
  for (int c : Consumers(from)) {
    for (auto& in : g_.nodes[static_cast<size_t>(c)].inputs)
      if (in == from) {
        in = to;
        consumers_[to].push_back(c);
      }
  }
  changed_ = true;
}

void GraphEditor::RenameOutput(int i, const std::string& from, const std::string& to) {
  for (auto& o : g_.nodes[static_cast<size_t>(i)].outputs)
    if (o == from) o = to;
  producer_.erase(from);
  producer_[to] = i;
  changed_ = true;
}

bool GraphEditor::Bypass(int i, const std::string& in, const std::string& out) {
  if (in.empty() || out.empty()) return false;
  if (Rewirable(out)) {
    ReplaceUses(out, in);
    Remove(i);
    return true;
  }
  // `out` is a graph output: let the producer of `in` write it directly, if `in` itself is free to go.
  const int p = Producer(in);
  if (p < 0 || UsedBySubgraph(out) || !Rewirable(in) || IsGraphInput(in)) return false;
  Remove(i);
  ReplaceUses(in, out);
  RenameOutput(p, in, out);
  return true;
}

void GraphEditor::Remove(int i) {
  removed_[static_cast<size_t>(i)] = true;
  changed_ = true;
}

void GraphEditor::ReplaceNode(int i, ir::Node n) {
  g_.nodes[static_cast<size_t>(i)] = std::move(n);
  IndexNode(i);
  changed_ = true;
}

std::string GraphEditor::FreshName(const std::string& hint) {
  // Collected on first use: most passes never create a name, and every pass builds an editor.
  if (names_.empty()) CollectNames(g_, names_);
  std::string name = hint;
  for (int k = 1; names_.count(name) || g_.initializers.count(name); ++k) name = hint + "_" + std::to_string(k);
  names_.insert(name);
  return name;
}

std::string GraphEditor::AddInitializer(const std::string& hint, Tensor t) {
  const std::string name = FreshName(hint);
  ir::TypeInfo type = ir::TypeInfo::Tensor(t.dtype());
  std::vector<ir::Dim> dims;
  for (int64_t d : t.shape()) dims.push_back(ir::Dim::Known(d));
  type.shape = std::move(dims);
  g_.initializers[name] = std::move(t);
  SetType(name, std::move(type));
  changed_ = true;
  return name;
}

bool GraphEditor::Commit() {
  std::vector<ir::Node> kept;
  kept.reserve(g_.nodes.size());
  for (size_t i = 0; i < g_.nodes.size(); ++i)
    if (!removed_[i]) kept.push_back(std::move(g_.nodes[i]));
  g_.nodes = std::move(kept);

  std::unordered_set<std::string> read, produced;
  for (const auto& n : g_.nodes) {
    for (const auto& in : n.inputs) read.insert(in);
    for (const auto& o : n.outputs) produced.insert(o);
  }
  for (const auto& vi : g_.outputs) read.insert(vi.name);
  for (const auto& vi : g_.inputs) read.insert(vi.name);
  for (auto it = g_.initializers.begin(); it != g_.initializers.end();) {
    if (!read.count(it->first) && !subgraph_refs_.count(it->first)) {
      it = g_.initializers.erase(it);
      changed_ = true;
    } else {
      ++it;
    }
  }
  std::erase_if(g_.value_info, [&](const ir::ValueInfo& vi) {
    return !produced.count(vi.name) && !g_.initializers.count(vi.name) && !read.count(vi.name);
  });
  // Indices changed: the editor is not usable after this.
  removed_.assign(g_.nodes.size(), false);
  producer_.clear();
  consumers_.clear();
  return changed_;
}

bool TensorsEqual(const Tensor& a, const Tensor& b) {
  if (a.dtype() != b.dtype() || a.shape() != b.shape()) return false;
  if (a.dtype() == DType::kString) {
    for (int64_t i = 0; i < a.numel(); ++i)
      if (a.data<std::string>()[i] != b.data<std::string>()[i]) return false;
    return true;
  }
  return a.nbytes() == 0 || std::memcmp(a.raw(), b.raw(), a.nbytes()) == 0;
}

bool AttributesEqual(const ir::Attribute& a, const ir::Attribute& b) {
  using T = ir::Attribute::Type;
  if (a.name != b.name || a.type != b.type) return false;
  switch (a.type) {
    case T::kFloat: return a.f == b.f || (a.f != a.f && b.f != b.f);
    case T::kInt: return a.i == b.i;
    case T::kString: return a.s == b.s;
    case T::kTensor: return TensorsEqual(a.t, b.t);
    case T::kFloats: return a.floats == b.floats;
    case T::kInts: return a.ints == b.ints;
    case T::kStrings: return a.strings == b.strings;
    case T::kTensors:
      if (a.tensors.size() != b.tensors.size()) return false;
      for (size_t i = 0; i < a.tensors.size(); ++i)
        if (!TensorsEqual(a.tensors[i], b.tensors[i])) return false;
      return true;
    default: return false;
  }
}

bool HasSubgraph(const ir::Node& n) {
  for (const auto& a : n.attributes)
    if (a.g || !a.graphs.empty()) return true;
  return false;
}

bool IsNondeterministic(const ir::Node& n) {
  static const std::unordered_set<std::string> kRandom = {"RandomNormal",     "RandomUniform", "RandomNormalLike",
                                                          "RandomUniformLike", "Multinomial",   "Bernoulli"};
  return n.domain != ir::kOnnxDomain || kRandom.count(n.op_type) > 0 ||
         (n.op_type == "Dropout" && n.inputs.size() > 2 && !n.inputs[2].empty());
}

float AttrFloat(const ir::Node& n, std::string_view name, float dflt) {
  const ir::Attribute* a = n.attr(name);
  return a && a->type == ir::Attribute::Type::kFloat ? a->f : dflt;
}

int64_t AttrInt(const ir::Node& n, std::string_view name, int64_t dflt) {
  const ir::Attribute* a = n.attr(name);
  return a && a->type == ir::Attribute::Type::kInt ? a->i : dflt;
}

ir::Attribute MakeAttr(const std::string& name, int64_t v) {
  ir::Attribute a;
  a.name = name;
  a.type = ir::Attribute::Type::kInt;
  a.i = v;
  return a;
}
ir::Attribute MakeAttr(const std::string& name, float v) {
  ir::Attribute a;
  a.name = name;
  a.type = ir::Attribute::Type::kFloat;
  a.f = v;
  return a;
}
ir::Attribute MakeAttr(const std::string& name, const std::string& v) {
  ir::Attribute a;
  a.name = name;
  a.type = ir::Attribute::Type::kString;
  a.s = v;
  return a;
}
ir::Attribute MakeAttr(const std::string& name, std::vector<std::string> v) {
  ir::Attribute a;
  a.name = name;
  a.type = ir::Attribute::Type::kStrings;
  a.strings = std::move(v);
  return a;
}
ir::Attribute MakeAttr(const std::string& name, std::vector<float> v) {
  ir::Attribute a;
  a.name = name;
  a.type = ir::Attribute::Type::kFloats;
  a.floats = std::move(v);
  return a;
}

ir::Node FusedForm(const ir::Node& p) {
  ir::Node f = p;
  if (p.domain == ir::kOnnxDomain) {
    f.domain = std::string(kStrataDomain);
    f.op_type = "Fused" + p.op_type;
    f.opset = 0;
    f.attributes.push_back(MakeAttr("activations", std::vector<std::string>{}));
    f.attributes.push_back(MakeAttr("activation_alpha", std::vector<float>{}));
    f.attributes.push_back(MakeAttr("activation_beta", std::vector<float>{}));
  }
  return f;
}

}  // namespace strata::passes
