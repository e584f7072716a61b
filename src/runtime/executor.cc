#include "runtime/executor.h"

#include <climits>

#include "core/dtype_names.h"
#include "runtime/session.h"

namespace strata {
namespace {

constexpr int kPinned = INT_MAX;  // slots never released during a run

class ExecContext final : public KernelContext {
 public:
  explicit ExecContext(std::vector<Value>& frame) : frame_(frame) {}

  void Bind(const CompiledGraph::Step& step) {
    node_ = step.node;
    inputs_.clear();
    for (int s : step.inputs) inputs_.push_back(s < 0 ? nullptr : &frame_[static_cast<size_t>(s)]);
    outputs_.clear();
    for (int s : step.outputs) outputs_.push_back(s < 0 ? &scratch_ : &frame_[static_cast<size_t>(s)]);
  }

  Status RunSubgraph(const CompiledGraph& g, std::span<const Value> inputs, std::vector<Value>& outputs) override {
    return g.Run(&frame_, inputs, outputs);
  }

 private:
  std::vector<Value>& frame_;
};

}  // namespace

class GraphCompiler {
 public:
  GraphCompiler(const ir::Model& model, const ir::Graph& graph, GraphCompiler* parent)
      : model_(model), graph_(graph), parent_(parent), out_(std::make_shared<CompiledGraph>()) {}

  Result<std::shared_ptr<CompiledGraph>> Compile();

  const ir::TypeInfo* TypeOf(const std::string& name) const {
    auto it = types_.find(name);
    if (it != types_.end()) return it->second;
    return parent_ ? parent_->TypeOf(name) : nullptr;
  }
  const Tensor* ConstOf(const std::string& name) const {
    auto it = consts_.find(name);
    if (it != consts_.end()) return &it->second;
    if (slots_.count(name)) return nullptr;  // shadowed by a local non-constant
    return parent_ ? parent_->ConstOf(name) : nullptr;
  }
  const ir::Model& model() const { return model_; }
  const ir::Graph& graph() const { return graph_; }

 private:
  int NewSlot(const std::string& name) {
    const int s = out_->num_slots_++;
    slots_[name] = s;
    last_use_.push_back(-1);
    return s;
  }
  // Slot of a value visible here: local, or captured from an enclosing graph. -1 if unknown.
  int Resolve(const std::string& name) {
    auto it = slots_.find(name);
    if (it != slots_.end()) return it->second;
    if (!parent_) return -1;
    const int outer = parent_->Resolve(name);
    if (outer < 0) return -1;
    parent_->Use(outer);
    const int local = NewSlot(name);
    out_->captures_.emplace_back(local, outer);
    return local;
  }
  void Use(int slot) {
    int& lu = last_use_[static_cast<size_t>(slot)];
    if (lu != kPinned) lu = std::max(lu, current_step_);
  }
  void Pin(int slot) { last_use_[static_cast<size_t>(slot)] = kPinned; }

  Status CompileNode(const ir::Node& node);

  const ir::Model& model_;
  const ir::Graph& graph_;
  GraphCompiler* parent_;
  std::shared_ptr<CompiledGraph> out_;
  std::unordered_map<std::string, int> slots_;
  std::unordered_map<std::string, const ir::TypeInfo*> types_;
  std::unordered_map<std::string, Tensor> consts_;
  std::vector<int> last_use_;
  int current_step_ = 0;

  friend class CompileInfo;
};

class CompileInfo final : public KernelInfo {
 public:
  CompileInfo(GraphCompiler& c, const ir::Node& node, int64_t opset) : c_(c) {
    node_ = &node;
    opset_ = opset;
  }
  const ir::TypeInfo* input_type(int i) const override {
    return input_present(i) ? c_.TypeOf(node_->inputs[static_cast<size_t>(i)]) : nullptr;
  }
  const ir::TypeInfo* output_type(int i) const override {
    return output_requested(i) ? c_.TypeOf(node_->outputs[static_cast<size_t>(i)]) : nullptr;
  }
  const Tensor* constant_input(int i) const override {
    return input_present(i) ? c_.ConstOf(node_->inputs[static_cast<size_t>(i)]) : nullptr;
  }
  const ir::Graph& graph() const override { return c_.graph(); }
  Result<std::shared_ptr<CompiledGraph>> CompileSubgraph(const ir::Graph& body) const override {
    GraphCompiler sub(c_.model(), body, &c_);
    return sub.Compile();
  }

 private:
  GraphCompiler& c_;
};

Status GraphCompiler::CompileNode(const ir::Node& node) {
  const int64_t opset = node.opset > 0 ? node.opset : model_.OpsetFor(node.domain);
  auto& registry = KernelRegistry::Global();
  const std::string where = node.Describe() + " [domain " + node.domain + ", opset " + std::to_string(opset) + "]: ";
  if (opset == 0 && node.domain != ir::kOnnxDomain)
    return InvalidModel(where + "the model does not import domain '" + node.domain + "'");
  const KernelDef* def = registry.Find(node.domain, node.op_type, opset);
  if (!def) {
    if (registry.KnowsOp(node.domain, node.op_type))
      return Unsupported(where + "Strata implements " + node.op_type + " but not at this opset version");
    return Unsupported(where + "Strata has no kernel for this operator");
  }

  CompiledGraph::Step step;
  step.node = &node;
  for (const auto& name : node.inputs) {
    if (name.empty()) { step.inputs.push_back(-1); continue; }
    const int s = Resolve(name);
    if (s < 0) return InvalidModel(where + "input '" + name + "' is not produced by any earlier node, input or initializer");
    Use(s);
    step.inputs.push_back(s);
  }

  CompileInfo info(*this, node, opset);
  if (!def->dtypes.empty()) {
    const ir::TypeInfo* t = info.input_type(def->checked_input);
    if (t && t->kind == ir::TypeInfo::Kind::kTensor && t->elem_type != DType::kUndefined) {
      bool ok = false;
      for (DType d : def->dtypes) ok |= d == t->elem_type;
      if (!ok) {
        return Unsupported(where + "input " + std::to_string(def->checked_input) + " has dtype " +
                           std::string(DTypeName(t->elem_type)) + ", which Strata does not support for " +
                           node.op_type + " (supported: " + JoinDTypeNames(def->dtypes) + ")");
      }
    }
  }
  auto kernel = def->factory(info);  // may compile subgraphs, which capture from this scope at this step
  if (!kernel.ok()) {
    const Status& st = kernel.status();
    return st.message().rfind("node ", 0) == 0 ? st : st.WithContext(where);
  }
  step.kernel = std::move(kernel).value();

  for (const auto& name : node.outputs) {
    if (name.empty()) { step.outputs.push_back(-1); continue; }
    if (slots_.count(name))
      return InvalidModel(where + "output '" + name + "' is produced twice (the graph is not in SSA form)");
    step.outputs.push_back(NewSlot(name));
    if (auto it = types_.find(name); it == types_.end()) {
      if (const auto* vi = graph_.FindValueInfo(name)) types_[name] = &vi->type;
    }
  }

  // Constants are evaluated now and become part of the plan, not steps.
  if (node.op_type == "Constant" && node.domain == ir::kOnnxDomain) {
    std::vector<Value> frame(static_cast<size_t>(out_->num_slots_));
    ExecContext ctx(frame);
    ctx.Bind(step);
    RETURN_IF_ERROR(step.kernel->Compute(ctx).WithContext(where));
    for (int s : step.outputs) {
      if (s < 0) continue;
      const Value& v = frame[static_cast<size_t>(s)];
      if (v.is_tensor()) consts_[node.outputs[0]] = v.tensor();
      out_->constants_.emplace_back(s, v);
      Pin(s);
    }
    return Status::Ok();
  }
  out_->steps_.push_back(std::move(step));
  ++current_step_;
  return Status::Ok();
}

Result<std::shared_ptr<CompiledGraph>> GraphCompiler::Compile() {
  out_->name_ = graph_.name;
  for (const auto& vi : graph_.value_info) types_[vi.name] = &vi.type;
  for (const auto& vi : graph_.outputs) types_[vi.name] = &vi.type;

  // Initializers that are also graph inputs act as defaults; Strata treats them as constants.
  for (const auto& [name, t] : graph_.initializers) {
    const int s = NewSlot(name);
    Pin(s);
    out_->constants_.emplace_back(s, Value(t));
    consts_[name] = t;
  }
  for (const auto& vi : graph_.inputs) {
    types_[vi.name] = &vi.type;
    if (graph_.initializers.count(vi.name)) continue;
    if (slots_.count(vi.name)) return InvalidModel("graph '" + graph_.name + "' lists input '" + vi.name + "' twice");
    out_->input_slots_.push_back(NewSlot(vi.name));
  }
  for (const auto& node : graph_.nodes) RETURN_IF_ERROR(CompileNode(node));
  for (const auto& vi : graph_.outputs) {
    const int s = Resolve(vi.name);
    if (s < 0) return InvalidModel("graph output '" + vi.name + "' is not produced by any node, input or initializer");
    Pin(s);
    out_->output_slots_.push_back(s);
  }
  for (size_t slot = 0; slot < last_use_.size(); ++slot) {
    const int lu = last_use_[slot];
    if (lu >= 0 && lu != kPinned) out_->steps_[static_cast<size_t>(lu)].release.push_back(static_cast<int>(slot));
  }
  return out_;
}

Status CompiledGraph::Run(const std::vector<Value>* outer, std::span<const Value> inputs,
                          std::vector<Value>& outputs) const {
  if (inputs.size() > input_slots_.size())
    return InvalidArgument("graph '" + name_ + "' takes " + std::to_string(input_slots_.size()) + " inputs, got " +
                           std::to_string(inputs.size()));
  std::vector<Value> frame(static_cast<size_t>(num_slots_));
  for (const auto& [slot, v] : constants_) frame[static_cast<size_t>(slot)] = v;
  for (const auto& [local, parent] : captures_) {
    if (!outer) return Internal("graph '" + name_ + "' captures outer values but has no enclosing frame");
    frame[static_cast<size_t>(local)] = (*outer)[static_cast<size_t>(parent)];
  }
  for (size_t i = 0; i < inputs.size(); ++i) frame[static_cast<size_t>(input_slots_[i])] = inputs[i];

  ExecContext ctx(frame);
  for (const Step& step : steps_) {
    ctx.Bind(step);
    Status st = step.kernel->Compute(ctx);
    if (!st.ok()) return st.message().rfind("node ", 0) == 0 ? st : st.WithContext(step.node->Describe() + ": ");
    for (int s : step.release) frame[static_cast<size_t>(s)] = Value();
  }
  outputs.clear();
  outputs.reserve(output_slots_.size());
  for (int s : output_slots_) outputs.push_back(frame[static_cast<size_t>(s)]);
  return Status::Ok();
}

Result<std::shared_ptr<CompiledGraph>> CompileModel(const ir::Model& model) {
  if (!model.graph) return InvalidModel("model has no graph");
  GraphCompiler compiler(model, *model.graph, nullptr);
  return compiler.Compile();
}

}  // namespace strata
