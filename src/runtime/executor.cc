#include "runtime/executor.h"

#include <algorithm>
#include <chrono>
#include <climits>
#include <cstring>
#include <map>
#include <new>
#include <numeric>

#include "core/dtype_names.h"
#include "core/large_buffer.h"
#include "runtime/memory_plan.h"
#include "runtime/session.h"
#include "runtime/threading.h"

namespace strata {
namespace {

constexpr int kPinned = INT_MAX;  // slots never released during a run

class ExecContext : public KernelContext {
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

 protected:
  std::vector<Value>& frame_;
};

}  // namespace

class GraphCompiler {
 public:
  GraphCompiler(const ir::Model& model, const ir::Graph& graph, GraphCompiler* parent)
      : model_(model), graph_(graph), parent_(parent), out_(std::make_shared<CompiledGraph>()) {}
  // Lets kernels free the main graph's weights they packed (`initializers` is graph's own map).
  void AllowReleasing(std::map<std::string, Tensor>* initializers);

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
  // A kernel no longer reads constant `name` (see KernelInfo::ReleaseConstantInput). Once every
  // reader has said so, the initializer is freed at once, so packed and original weights are never
  // all resident together while a large model compiles.
  void ReleaseConstant(const std::string& name) {
    if (!releasable_) return;
    auto reads = pending_reads_.find(name);
    auto slot = slots_.find(name);
    if (reads == pending_reads_.end() || slot == slots_.end() || --reads->second > 0) return;
    pending_reads_.erase(reads);
    dropped_.push_back(slot->second);
    std::erase_if(out_->constants_, [&](const std::pair<int, Value>& c) { return c.first == slot->second; });
    consts_.erase(name);
    releasable_->erase(name);
    out_->released_constants_.push_back(name);
  }

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
    step_reads_.push_back(slot);
  }
  void Pin(int slot) { last_use_[static_cast<size_t>(slot)] = kPinned; }

  Status CompileNode(const ir::Node& node);
  void DropReleasedConstants();

  const ir::Model& model_;
  const ir::Graph& graph_;
  GraphCompiler* parent_;
  std::shared_ptr<CompiledGraph> out_;
  std::unordered_map<std::string, int> slots_;
  std::unordered_map<std::string, const ir::TypeInfo*> types_;
  std::unordered_map<std::string, Tensor> consts_;
  std::vector<int> last_use_;
  // Main graph only: the model's initializers, from which released weights are freed, and for each
  // initializer the reads not yet released (node inputs; graph outputs never release).
  std::map<std::string, Tensor>* releasable_ = nullptr;
  std::unordered_map<std::string, int> pending_reads_;
  std::vector<int> dropped_;  // slots of freed constants
  std::vector<int> step_reads_;  // slots the node being compiled reads, directly or through captures
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
  void ReleaseConstantInput(int i) const override {
    if (!input_present(i)) return;
    if (const Tensor* t = constant_input(i)) released_.emplace_back(i, t->shape());
    c_.ReleaseConstant(node_->inputs[static_cast<size_t>(i)]);
  }
  // Shapes of the constant inputs the kernel released, for the step (CompiledGraph::Step).
  std::vector<std::pair<int, Shape>> TakeReleased() { return std::move(released_); }
  Result<std::shared_ptr<CompiledGraph>> CompileSubgraph(const ir::Graph& body) const override {
    GraphCompiler sub(c_.model(), body, &c_);
    return sub.Compile();
  }

 private:
  GraphCompiler& c_;
  mutable std::vector<std::pair<int, Shape>> released_;
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
  step_reads_.clear();
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
  step.released_shapes = info.TakeReleased();
  for (const auto& [i, shape] : step.released_shapes) step.released_elements += NumElements(shape);

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
  step.reads = step_reads_;
  std::sort(step.reads.begin(), step.reads.end());
  step.reads.erase(std::unique(step.reads.begin(), step.reads.end()), step.reads.end());
  out_->steps_.push_back(std::move(step));
  ++current_step_;
  return Status::Ok();
}

void GraphCompiler::AllowReleasing(std::map<std::string, Tensor>* initializers) {
  // Subgraph bodies and training ops may reach initializers by name: such graphs keep them all.
  for (const ir::Node& node : graph_.nodes) {
    if (node.domain == "ai.onnx.preview.training") return;
    for (const ir::Attribute& a : node.attributes)
      if (a.g || !a.graphs.empty()) return;
  }
  releasable_ = initializers;
  for (const ir::Node& node : graph_.nodes)
    for (const std::string& in : node.inputs)
      if (initializers->count(in)) ++pending_reads_[in];
  for (const ir::ValueInfo& vi : graph_.outputs) pending_reads_.erase(vi.name);
}

// Steps read freed constants as absent inputs.
void GraphCompiler::DropReleasedConstants() {
  if (dropped_.empty()) return;
  std::sort(dropped_.begin(), dropped_.end());
  auto is_dropped = [&](int s) { return std::binary_search(dropped_.begin(), dropped_.end(), s); };
  for (auto& step : out_->steps_) {
    for (int& s : step.inputs)
      if (s >= 0 && is_dropped(s)) s = -1;
    std::erase_if(step.reads, is_dropped);
  }
  std::sort(out_->released_constants_.begin(), out_->released_constants_.end());
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
  DropReleasedConstants();
  for (size_t slot = 0; slot < last_use_.size(); ++slot) {
    const int lu = last_use_[slot];
    if (lu >= 0 && lu != kPinned) out_->steps_[static_cast<size_t>(lu)].release.push_back(static_cast<int>(slot));
  }
  out_->is_constant_slot_.assign(static_cast<size_t>(out_->num_slots_), 0);
  for (const auto& c : out_->constants_) out_->is_constant_slot_[static_cast<size_t>(c.first)] = 1;
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

// ---- Main-graph runs with a memory plan ----
//
// The first run with given input shapes records, for every AllocateOutput call, its size, the step
// that made it and the last step that reads it (or any view of it, found by address). Buffers that
// escape the run (graph outputs, sequences, anything still referenced afterwards) stay on the heap;
// the rest get offsets in one arena (PlanArena). Later runs with the same shapes hand out those
// offsets in the same call order. Anything that does not match the recording (a size that changed,
// an output aliasing memory the plan did not expect) falls back to the heap or is copied out, and
// the plan is re-recorded, so a wrong guess costs time, never correctness.

namespace {

struct PlanEntry {
  size_t bytes = 0;
  int64_t offset = -1;    // -1: heap
  int graph_output = -1;  // heap buffers that become graph output k may reuse the caller's old output
};

struct ExpectedBuffer {  // the arena range a step output should lie in (offset -1: not in the arena)
  int64_t offset = -1;
  size_t bytes = 0;
};

struct MemoryPlan {
  std::vector<int64_t> signature;
  std::vector<uint32_t> step_begin;  // entries of step k: [step_begin[k], step_begin[k + 1])
  std::vector<PlanEntry> entries;
  std::vector<uint32_t> output_begin;  // expected ranges of step k's outputs start here
  std::vector<ExpectedBuffer> expected;
  PlanStats stats;
  bool stale = false;
  int recordings = 0;
};

// Multiply-add work of a contraction step, from the shapes it actually ran with (2 flops per MAC).
double ContractionFlops(const ir::Node& node, const std::vector<Value>& frame, const CompiledGraph::Step& step) {
  auto shape = [&](const std::vector<int>& slots, size_t i) -> const Shape* {
    if (i >= slots.size() || slots[i] < 0) return nullptr;
    const Value& v = frame[static_cast<size_t>(slots[i])];
    return v.is_tensor() ? &v.tensor().shape() : nullptr;
  };
  const Shape* a = shape(step.inputs, 0);
  const Shape* w = shape(step.inputs, 1);
  for (const auto& [i, s] : step.released_shapes)
    if (i == 1 && !w) w = &s;
  const Shape* y = shape(step.outputs, 0);
  // MatMul/Gemm weights may be absent (packed by the kernel and released): their work follows from A and Y.
  if (!a || !y || a->empty()) return 0;
  const std::string_view op = node.op_type;
  if (op == "Attention") {  // com.strata: Q K^T and P V over every (batch, head) pair, all keys counted
    const auto* heads = node.attr("num_heads");
    const auto* packed = node.attr("packed_qkv");
    const double out = static_cast<double>(NumElements(*y));  // b * h * sq * dv
    const double h = heads && heads->i > 0 ? static_cast<double>(heads->i) : 0;
    double sk = 0, d = 0, dv = static_cast<double>(y->back()) / std::max(h, 1.0);
    if (h > 0 && packed && packed->i) {  // one [b, s, 3*h*d] input: sk = sq, d = dv
      sk = a->size() > 1 ? static_cast<double>((*a)[1]) : 0;
      d = dv;
    } else if (w && w->size() >= 2) {  // K is [b, sk, h*d] with heads, else [..., d, sk]
      sk = static_cast<double>(h > 0 ? (*w)[1] : w->back());
      d = h > 0 ? static_cast<double>(w->back()) / h : static_cast<double>((*w)[w->size() - 2]);
    }
    return dv > 0 ? 2 * out * sk + 2 * (out / dv) * sk * d : 0;  // P V, then Q K^T
  }
  const double out = static_cast<double>(NumElements(*y));
  if (op == "MatMul" || op == "FusedMatMul") return 2 * out * static_cast<double>(a->back());
  if (op == "Gemm" || op == "FusedGemm") {
    const auto* ta = node.attr("transA");
    return 2 * out * static_cast<double>(ta && ta->i ? a->front() : a->back());
  }
  if (!w || w->empty()) return 0;
  if (op == "Conv" || op == "FusedConv") return 2 * out * static_cast<double>(NumElements(Shape(w->begin() + 1, w->end())));
  if (op == "ConvTranspose")
    return 2 * static_cast<double>(NumElements(*a)) * static_cast<double>(NumElements(Shape(w->begin() + 1, w->end())));
  return 0;
}

constexpr int kMaxRecordings = 3;  // after this many mismatching plans, a signature runs on the heap
constexpr size_t kMaxPlans = 8;

void AppendSignature(const Value& v, std::vector<int64_t>& sig) {
  sig.push_back(static_cast<int64_t>(v.kind()));
  if (!v.is_tensor()) return;
  const Tensor& t = v.tensor();
  sig.push_back(static_cast<int64_t>(t.dtype()));
  sig.push_back(t.rank());
  for (int64_t d : t.shape()) sig.push_back(d);
}

// One AllocateOutput of a recording run: the step that made it, its bytes and where they are, the
// last step that read it or a view of it, and whether it outlives the run.
struct RecordedBuffer {
  int step;
  size_t bytes;
  const char* begin;
  int last;
  bool escapes = false;
};

// A step output that may take over the buffer of one of its inputs (OpKernel::InPlaceInput): both
// whole recorded buffers of the same size, the input read by no other input of the step. It
// happens when the plan finds the step is the input's last reader.
struct InPlaceCandidate {
  int step;
  int input_buffer;
  int output_buffer;
};

// The candidate for step k's in-place input, if the recording allows one.
bool FindInPlace(const CompiledGraph::Step& step, int k, const std::vector<Value>& frame,
                 const std::vector<int>& slot_buffer, const std::vector<RecordedBuffer>& rec, InPlaceCandidate& c) {
  const int in = step.kernel->InPlaceInput();
  if (in < 0 || static_cast<size_t>(in) >= step.inputs.size() || step.outputs.empty()) return false;
  const int s_in = step.inputs[static_cast<size_t>(in)], s_out = step.outputs[0];
  if (s_in < 0 || s_out < 0) return false;
  const Value& vi = frame[static_cast<size_t>(s_in)];
  const Value& vo = frame[static_cast<size_t>(s_out)];
  if (!vi.is_tensor() || !vo.is_tensor()) return false;
  const int bi = slot_buffer[static_cast<size_t>(s_in)], bo = slot_buffer[static_cast<size_t>(s_out)];
  if (bi < 0 || bo < 0 || bi == bo) return false;
  const RecordedBuffer& ri = rec[static_cast<size_t>(bi)];
  const RecordedBuffer& ro = rec[static_cast<size_t>(bo)];
  // Whole buffers only: a view could leave bytes of the input that the output would overwrite unread.
  if (ro.step != k || ri.bytes != ro.bytes || vi.tensor().raw() != ri.begin || vi.tensor().nbytes() != ri.bytes ||
      vo.tensor().raw() != ro.begin || vo.tensor().nbytes() != ro.bytes)
    return false;
  // Any other operand in the same buffer would be read after the output started overwriting it.
  for (size_t j = 0; j < step.inputs.size(); ++j) {
    const int s = step.inputs[j];
    if (j != static_cast<size_t>(in) && s >= 0 && slot_buffer[static_cast<size_t>(s)] == bi) return false;
  }
  for (int s : step.reads)
    if (s != s_in && slot_buffer[static_cast<size_t>(s)] == bi) return false;
  c = {k, bi, bo};
  return true;
}

class MainContext final : public ExecContext {
 public:
  enum class Mode { kHeap, kRecord, kPlanned };

  explicit MainContext(std::vector<Value>& frame) : ExecContext(frame) {}

  // Prepares for a run. `recycled` holds the caller's outputs of the previous run: a buffer nobody
  // else references may be reused for the same graph output, so steady-state runs need no heap.
  void Reset(Mode mode, std::vector<Value>* recycled) {
    mode_ = mode;
    plan_ = nullptr;
    arena_.reset();
    rec_.clear();
    recycled_ = recycled;
    if (mode == Mode::kRecord) alive_ = std::make_shared<std::vector<char>>();
  }

  void BeginStep(int k) {
    step_ = k;
    if (mode_ == Mode::kPlanned) {
      cursor_ = plan_->step_begin[static_cast<size_t>(k)];
      end_ = plan_->step_begin[static_cast<size_t>(k) + 1];
    }
  }
  void UsePlan(const MemoryPlan* plan, const std::shared_ptr<char>& arena) {
    plan_ = plan;
    arena_ = arena;
  }

  // Index of the live recorded buffer holding `p`, or -1.
  int FindRecorded(const void* p) const {
    const char* c = static_cast<const char*>(p);
    for (size_t i = rec_.size(); i-- > 0;) {
      const RecordedBuffer& r = rec_[i];
      if ((*alive_)[i] && r.bytes > 0 && c >= r.begin && c < r.begin + r.bytes) return static_cast<int>(i);
    }
    return -1;
  }
  bool InArena(const void* p) const {
    const char* c = static_cast<const char*>(p);
    return arena_ && c >= arena_.get() && c < arena_.get() + plan_->stats.arena_bytes;
  }

  std::vector<RecordedBuffer>& recorded() { return rec_; }
  const std::vector<char>& alive() const { return *alive_; }

 protected:
  Result<Tensor> NewOutputTensor(int i, DType dtype, Shape shape) override {
    if (mode_ == Mode::kPlanned && cursor_ < end_) {
      const PlanEntry& e = plan_->entries[cursor_++];
      if (dtype != DType::kString && (e.offset >= 0 || e.graph_output >= 0)) {
        ASSIGN_OR_RETURN(const size_t bytes, Tensor::CheckedByteSize(dtype, shape));
        if (bytes == e.bytes && e.offset >= 0)
          return Tensor::Borrow(dtype, std::move(shape), arena_.get() + e.offset, arena_);
        if (bytes == e.bytes && e.graph_output >= 0 && recycled_ &&
            static_cast<size_t>(e.graph_output) < recycled_->size()) {
          Value& old = (*recycled_)[static_cast<size_t>(e.graph_output)];
          if (old.is_tensor() && old.tensor().dtype() == dtype && old.tensor().nbytes() == bytes &&
              !old.tensor().SharesBuffer()) {
            Tensor t = old.tensor().Reshaped(std::move(shape));
            old = Value();
            return t;
          }
        }
      }
    }
    if (mode_ != Mode::kRecord || dtype == DType::kString) return ExecContext::NewOutputTensor(i, dtype, std::move(shape));
    ASSIGN_OR_RETURN(Tensor storage, Tensor::CreateUninitialized(dtype, shape));
    // The owner flags the buffer dead when its last reference goes, so address lookups only see
    // live buffers (a freed address may be handed out again).
    struct Tracked {
      Tracked(Tensor t, std::shared_ptr<std::vector<char>> a, size_t i) : storage(std::move(t)), alive(std::move(a)), id(i) {}
      Tracked(const Tracked&) = delete;
      Tracked& operator=(const Tracked&) = delete;
      ~Tracked() { (*alive)[id] = 0; }
      Tensor storage;
      std::shared_ptr<std::vector<char>> alive;
      size_t id;
    };
    const size_t id = rec_.size();
    rec_.push_back({step_, storage.nbytes(), static_cast<const char*>(storage.raw()), step_});
    alive_->push_back(1);
    void* data = storage.raw();
    auto owner = std::make_shared<Tracked>(std::move(storage), alive_, id);
    return Tensor::Borrow(dtype, std::move(shape), data, std::move(owner));
  }

 private:
  Mode mode_ = Mode::kHeap;
  int step_ = 0;
  std::vector<Value>* recycled_ = nullptr;
  // recording
  std::vector<RecordedBuffer> rec_;
  std::shared_ptr<std::vector<char>> alive_;
  // planned
  const MemoryPlan* plan_ = nullptr;
  std::shared_ptr<char> arena_;
  uint32_t cursor_ = 0, end_ = 0;
};

// Turns a recording into a plan: arena offsets for the buffers that do not escape, the order in
// which steps ask for them, and where each step output should lie.
MemoryPlan BuildPlan(std::span<const CompiledGraph::Step> steps, const std::vector<RecordedBuffer>& rec,
                     const std::vector<int>& slot_buffer, const std::vector<int>& output_buffer,
                     const std::vector<const void*>& output_data, const std::vector<InPlaceCandidate>& in_place) {
  MemoryPlan plan;
  // An output that takes over its input's buffer joins that buffer's group: one placement whose
  // lifetime runs from the first member's step to the last read of any member.
  std::vector<int> group(rec.size());
  std::iota(group.begin(), group.end(), 0);
  for (const InPlaceCandidate& c : in_place) {
    const RecordedBuffer& ri = rec[static_cast<size_t>(c.input_buffer)];
    const RecordedBuffer& ro = rec[static_cast<size_t>(c.output_buffer)];
    if (ri.last != c.step || ri.escapes || ro.escapes || ri.bytes == 0) continue;
    group[static_cast<size_t>(c.output_buffer)] = group[static_cast<size_t>(c.input_buffer)];
    ++plan.stats.in_place_buffers;
  }
  std::vector<BufferLifetime> lifetimes;
  std::vector<int> placed_index(rec.size(), -1);
  for (size_t i = 0; i < rec.size(); ++i) {
    if (rec[i].escapes || rec[i].bytes == 0) continue;
    const size_t g = static_cast<size_t>(group[i]);
    if (g != i) {  // candidates come in step order, so the group's first member is already placed
      placed_index[i] = placed_index[g];
      BufferLifetime& l = lifetimes[static_cast<size_t>(placed_index[g])];
      l.last = std::max(l.last, rec[i].last);
      continue;
    }
    placed_index[i] = static_cast<int>(lifetimes.size());
    lifetimes.push_back({rec[i].bytes, rec[i].step, rec[i].last});
  }
  const ArenaLayout layout = PlanArena(lifetimes);
  plan.stats.arena_bytes = layout.arena_bytes;
  plan.step_begin.assign(steps.size() + 1, 0);
  for (const auto& r : rec) ++plan.step_begin[static_cast<size_t>(r.step) + 1];
  for (size_t k = 1; k < plan.step_begin.size(); ++k) plan.step_begin[k] += plan.step_begin[k - 1];
  plan.entries.reserve(rec.size());
  for (size_t i = 0; i < rec.size(); ++i) {
    const int pi = placed_index[i];
    plan.entries.push_back({rec[i].bytes, pi < 0 ? -1 : static_cast<int64_t>(layout.offsets[static_cast<size_t>(pi)])});
    if (pi >= 0) {
      ++plan.stats.planned_buffers;
      plan.stats.planned_bytes += rec[i].bytes;
    } else {
      ++plan.stats.heap_buffers;
    }
  }
  for (size_t k = 0; k < output_buffer.size(); ++k) {
    const int b = output_buffer[k];
    if (b >= 0 && plan.entries[static_cast<size_t>(b)].graph_output < 0 &&
        rec[static_cast<size_t>(b)].begin == output_data[k])  // the output is the whole buffer, not a view
      plan.entries[static_cast<size_t>(b)].graph_output = static_cast<int>(k);
  }
  plan.output_begin.reserve(steps.size());
  for (const CompiledGraph::Step& step : steps) {
    plan.output_begin.push_back(static_cast<uint32_t>(plan.expected.size()));
    for (int s : step.outputs) {
      ExpectedBuffer e;
      const int b = s >= 0 ? slot_buffer[static_cast<size_t>(s)] : -1;
      if (b >= 0 && plan.entries[static_cast<size_t>(b)].offset >= 0) {
        e.offset = plan.entries[static_cast<size_t>(b)].offset;
        e.bytes = plan.entries[static_cast<size_t>(b)].bytes;
      }
      plan.expected.push_back(e);
    }
  }
  return plan;
}

}  // namespace

class RunState {
 public:
  RunState() : ctx(frame) {}
  std::vector<Value> frame;
  MainContext ctx;
  std::vector<Value> recycled;  // the caller's previous outputs, during a run
  bool plan_memory = true;
  bool constants_loaded = false;
  std::vector<int64_t> signature;
  std::vector<std::unique_ptr<MemoryPlan>> plans;
  std::shared_ptr<char> arena;
  size_t arena_bytes = 0;
  PlanStats last;
  bool profile = false;
  std::vector<double> step_seconds;  // with profile: time per step, summed over runs
  int64_t profiled_runs = 0;

  char* EnsureArena(size_t bytes) {
    if (bytes > arena_bytes) {
      // Tensors of earlier runs that still point into the old arena keep it alive through the owner.
      char* p = static_cast<char*>(AllocateLargeBuffer(bytes).release());
      if (!p) return nullptr;
      // Fresh arena memory is poisoned like any uninitialised buffer, and touched once up front so
      // runs do not page-fault it in.
      std::memset(p, 0xFF, bytes);
      arena.reset(p, [](char* q) { LargeBufferFree()(q); });
      arena_bytes = bytes;
    }
    return arena.get();
  }
};

void RunStateDeleter::operator()(RunState* s) const { delete s; }

RunStatePtr CompiledGraph::NewRunState(bool plan_memory, bool profile) const {
  RunStatePtr s(new RunState());
  s->plan_memory = plan_memory;
  s->frame.resize(static_cast<size_t>(num_slots_));
  s->profile = profile;
  if (profile) s->step_seconds.assign(steps_.size(), 0.0);
  return s;
}

void CompiledGraph::TakeProfile(RunState& state, std::vector<StepTiming>& into) const {
  if (!state.profile || state.profiled_runs == 0) return;
  if (into.size() != steps_.size()) {
    into.assign(steps_.size(), StepTiming{});
    for (size_t k = 0; k < steps_.size(); ++k) {
      const ir::Node& n = *steps_[k].node;
      into[k].node = !n.name.empty() ? n.name : (n.outputs.empty() ? std::string("#") + std::to_string(k) : n.outputs[0]);
      into[k].op = n.QualifiedOpType();
    }
  }
  for (size_t k = 0; k < steps_.size(); ++k) {
    into[k].seconds += state.step_seconds[k];
    into[k].calls += state.profiled_runs;
  }
  std::fill(state.step_seconds.begin(), state.step_seconds.end(), 0.0);
  state.profiled_runs = 0;
}

PlanStats CompiledGraph::LastPlanStats(const RunState& state) { return state.last; }

Status CompiledGraph::Run(RunState& state, std::span<const Value> inputs, std::vector<Value>& outputs) const {
  if (!captures_.empty()) return Internal("graph '" + name_ + "' captures outer values but has no enclosing frame");
  if (inputs.size() > input_slots_.size())
    return InvalidArgument("graph '" + name_ + "' takes " + std::to_string(input_slots_.size()) + " inputs, got " +
                           std::to_string(inputs.size()));
  std::vector<Value>& frame = state.frame;
  if (!state.constants_loaded) {
    for (const auto& [slot, v] : constants_) frame[static_cast<size_t>(slot)] = v;
    state.constants_loaded = true;
  }

  // Pick the plan for these input shapes.
  state.signature.clear();
  for (const Value& v : inputs) AppendSignature(v, state.signature);
  MemoryPlan* plan = nullptr;
  for (auto& p : state.plans)
    if (p->signature == state.signature) plan = p.get();
  MainContext::Mode mode = MainContext::Mode::kRecord;
  if (plan && !plan->stale) mode = MainContext::Mode::kPlanned;
  else if (plan && plan->recordings >= kMaxRecordings) mode = MainContext::Mode::kHeap;
  for (const Value& v : inputs)
    if (v.is_sequence()) mode = MainContext::Mode::kHeap;  // not worth planning
  if (!state.plan_memory) mode = MainContext::Mode::kHeap;

  char* arena = nullptr;
  if (mode == MainContext::Mode::kPlanned && plan->stats.arena_bytes > 0) {
    arena = state.EnsureArena(plan->stats.arena_bytes);
    if (!arena) mode = MainContext::Mode::kHeap;  // no memory for the arena: run on the heap
  }
  MainContext& ctx = state.ctx;
  state.recycled.swap(outputs);
  outputs.clear();
  ctx.Reset(mode, &state.recycled);
  if (mode == MainContext::Mode::kPlanned) ctx.UsePlan(plan, arena ? state.arena : nullptr);
  for (size_t i = 0; i < inputs.size(); ++i) frame[static_cast<size_t>(input_slots_[i])] = inputs[i];

  std::vector<int> slot_buffer;  // recording: the recorded buffer each slot's tensor lives in
  std::vector<InPlaceCandidate> in_place;
  double recorded_flops = 0;
  if (mode == MainContext::Mode::kRecord) slot_buffer.assign(frame.size(), -1);

  auto clear_frame = [&] {
    for (size_t s = 0; s < frame.size(); ++s)
      if (!is_constant_slot_[s]) frame[s] = Value();
    state.recycled.clear();
  };

  const int threads = IntraOpThreads();
  for (size_t k = 0; k < steps_.size(); ++k) {
    const Step& step = steps_[k];
    ctx.BeginStep(static_cast<int>(k));
    ctx.Bind(step);
    bool serial = false;
    if (threads > 1) {
      int64_t work = step.released_elements;  // packed weights are work too, though they arrive absent
      for (int s : step.inputs)
        if (s >= 0 && frame[static_cast<size_t>(s)].is_tensor()) work += frame[static_cast<size_t>(s)].tensor().numel();
      serial = work < kSerialWorkElements;
      if (serial) SetIntraOpThreads(1);
    }
    const auto step_start = state.profile ? std::chrono::steady_clock::now() : std::chrono::steady_clock::time_point{};
    Status st;
    try {
      st = step.kernel->Compute(ctx);
    } catch (const std::bad_alloc&) {  // kernel scratch and containers; tensors report it as a Status
      st = InvalidArgument("out of memory");
    }
    if (state.profile)
      state.step_seconds[k] += std::chrono::duration<double>(std::chrono::steady_clock::now() - step_start).count();
    if (serial) SetIntraOpThreads(threads);
    if (!st.ok()) {
      clear_frame();
      return st.message().rfind("node ", 0) == 0 ? st : st.WithContext(step.node->Describe() + ": ");
    }
    if (mode == MainContext::Mode::kRecord) {
      auto& rec = ctx.recorded();
      for (int s : step.outputs) {
        if (s < 0) continue;
        const Value& v = frame[static_cast<size_t>(s)];
        if (v.is_tensor()) {
          slot_buffer[static_cast<size_t>(s)] = ctx.FindRecorded(v.tensor().raw());
        } else if (v.is_sequence()) {
          for (const Tensor& t : v.sequence())
            if (int b = ctx.FindRecorded(t.raw()); b >= 0) rec[static_cast<size_t>(b)].escapes = true;
        }
      }
      recorded_flops += ContractionFlops(*step.node, frame, step);
      if (InPlaceCandidate c; FindInPlace(step, static_cast<int>(k), frame, slot_buffer, rec, c)) in_place.push_back(c);
      for (int s : step.reads)
        if (int b = slot_buffer[static_cast<size_t>(s)]; b >= 0)
          rec[static_cast<size_t>(b)].last = std::max(rec[static_cast<size_t>(b)].last, static_cast<int>(k));
    } else if (mode == MainContext::Mode::kPlanned) {
      // Outputs must lie where the recording said; anything else in the arena is copied out.
      const uint32_t ob = plan->output_begin[k];
      for (size_t j = 0; j < step.outputs.size(); ++j) {
        const int s = step.outputs[j];
        if (s < 0) continue;
        Value& v = frame[static_cast<size_t>(s)];
        if (v.is_tensor()) {
          const char* p = static_cast<const char*>(v.tensor().raw());
          if (!ctx.InArena(p)) continue;
          const ExpectedBuffer& e = plan->expected[ob + j];
          if (e.offset >= 0 && p >= arena + e.offset && p < arena + e.offset + e.bytes) continue;
          v = Value(v.tensor().Clone());
          plan->stale = true;
        } else if (v.is_sequence()) {
          bool in_arena = false;
          for (const Tensor& t : v.sequence()) in_arena |= ctx.InArena(t.raw());
          if (!in_arena) continue;
          std::vector<Tensor> items;
          for (const Tensor& t : v.sequence()) items.push_back(ctx.InArena(t.raw()) ? t.Clone() : t);
          v = Value::Sequence(std::move(items), v.sequence_elem_type());
          plan->stale = true;
        }
      }
    }
    for (int s : step.release) frame[static_cast<size_t>(s)] = Value();
  }

  outputs.clear();
  outputs.reserve(output_slots_.size());
  for (int s : output_slots_) outputs.push_back(frame[static_cast<size_t>(s)]);
  if (state.profile) ++state.profiled_runs;

  if (mode == MainContext::Mode::kPlanned) {
    // A graph output placed in the arena (it aliases an intermediate the recording did not see) is
    // copied, so the caller never holds memory the next run overwrites.
    for (Value& v : outputs)
      if (v.is_tensor() && ctx.InArena(v.tensor().raw())) {
        v = Value(v.tensor().Clone());
        plan->stale = true;
      }
    state.last = plan->stats;
    state.last.planned = true;
    clear_frame();
    return Status::Ok();
  }
  if (mode == MainContext::Mode::kHeap) {
    state.last = PlanStats{};
    clear_frame();
    return Status::Ok();
  }

  // Recording: decide which buffers escape, then plan the rest.
  auto& rec = ctx.recorded();
  std::vector<int> output_buffer;
  std::vector<const void*> output_data;
  for (int s : output_slots_) {
    const int b = slot_buffer[static_cast<size_t>(s)];
    output_buffer.push_back(b);
    output_data.push_back(frame[static_cast<size_t>(s)].is_tensor() ? frame[static_cast<size_t>(s)].tensor().raw() : nullptr);
    if (b >= 0) rec[static_cast<size_t>(b)].escapes = true;
    const Value& v = frame[static_cast<size_t>(s)];
    if (v.is_sequence())
      for (const Tensor& t : v.sequence())
        if (int b = ctx.FindRecorded(t.raw()); b >= 0) rec[static_cast<size_t>(b)].escapes = true;
  }
  clear_frame();
  // Whatever is still alive now is held by the caller's outputs or by a kernel: keep it on the heap.
  for (size_t i = 0; i < rec.size(); ++i)
    if (ctx.alive()[i]) rec[i].escapes = true;

  if (!plan) {
    if (state.plans.size() >= kMaxPlans) state.plans.erase(state.plans.begin());
    state.plans.push_back(std::make_unique<MemoryPlan>());
    plan = state.plans.back().get();
  }
  const int recordings = plan->recordings + 1;
  *plan = BuildPlan(steps_, rec, slot_buffer, output_buffer, output_data, in_place);
  plan->signature = state.signature;
  plan->recordings = recordings;
  plan->stats.matmul_flops = recorded_flops;
  state.last = plan->stats;
  return Status::Ok();
}

Result<std::shared_ptr<CompiledGraph>> CompileModel(const ir::Model& model) {
  if (!model.graph) return InvalidModel("model has no graph");
  GraphCompiler compiler(model, *model.graph, nullptr);
  return compiler.Compile();
}

Result<std::shared_ptr<CompiledGraph>> CompileModelReleasingWeights(ir::Model& model) {
  if (!model.graph) return InvalidModel("model has no graph");
  GraphCompiler compiler(model, *model.graph, nullptr);
  compiler.AllowReleasing(&model.graph->initializers);
  return compiler.Compile();
}

}  // namespace strata
