#include "runtime/session.h"

#include <map>

#include "onnx/importer.h"
#include "passes/graph_pass.h"
#include "passes/shape_inference.h"
#include "runtime/executor.h"
#include "runtime/threading.h"

namespace strata {
namespace {

// Values bound to symbolic dimensions while checking one call's inputs. Kept inline: checking
// inputs is on every run's path and must not allocate.
class SymbolBindings {
 public:
  // Binds `symbol` to `value`, or returns the value it was already bound to.
  int64_t Bind(const std::string& symbol, int64_t value) {
    for (size_t i = 0; i < count_; ++i)
      if (*names_[i] == symbol) return values_[i];
    if (count_ < kMax) {
      names_[count_] = &symbol;
      values_[count_++] = value;
    }
    return value;
  }

 private:
  static constexpr size_t kMax = 32;  // beyond this, extra symbols go unchecked across inputs
  const std::string* names_[kMax];
  int64_t values_[kMax];
  size_t count_ = 0;
};

Status CheckInput(const ir::ValueInfo& vi, const Value& v, bool check_shape, SymbolBindings& symbols) {
  const ir::TypeInfo& t = vi.type;
  auto who = [&] { return "input '" + vi.name + "': "; };  // built only for errors
  using K = ir::TypeInfo::Kind;
  if (t.kind == K::kOptional) {
    if (v.is_none()) return Status::Ok();
    if (!t.inner) return Status::Ok();
    return CheckInput({vi.name, *t.inner}, v, check_shape, symbols);
  }
  if (t.kind == K::kSequence) {
    if (!v.is_sequence()) return InvalidArgument(who() + "expected a sequence, got " + (v.is_tensor() ? "a tensor" : "nothing"));
    return Status::Ok();
  }
  if (t.kind != K::kTensor) return Status::Ok();
  if (!v.is_tensor()) return InvalidArgument(who() + "expected a tensor of type " + t.ToString());
  const Tensor& x = v.tensor();
  if (t.elem_type != DType::kUndefined && x.dtype() != t.elem_type)
    return InvalidArgument(who() + "expected dtype " + std::string(DTypeName(t.elem_type)) + ", got " +
                           std::string(DTypeName(x.dtype())));
  if (!t.shape || !check_shape) return Status::Ok();
  const auto& dims = *t.shape;
  if (static_cast<size_t>(x.rank()) != dims.size())
    return InvalidArgument(who() + "expected shape " + t.ToString() + " (rank " + std::to_string(dims.size()) + "), got " +
                           ShapeToString(x.shape()) + " (rank " + std::to_string(x.rank()) + ")");
  for (size_t i = 0; i < dims.size(); ++i) {
    const int64_t got = x.shape()[i];
    if (dims[i].known() && dims[i].value != got)
      return InvalidArgument(who() + "expected shape " + t.ToString() + ", got " + ShapeToString(x.shape()) +
                             " (dimension " + std::to_string(i) + " differs)");
    if (!dims[i].known() && !dims[i].symbol.empty()) {
      const int64_t bound = symbols.Bind(dims[i].symbol, got);
      if (bound != got)
        return InvalidArgument(who() + "dimension '" + dims[i].symbol + "' is " + std::to_string(got) +
                               " here but " + std::to_string(bound) + " in an earlier input");
    }
  }
  return Status::Ok();
}

}  // namespace

Session::~Session() = default;

Result<std::unique_ptr<Session>> Session::Load(const std::string& path, const SessionOptions& options) {
  ASSIGN_OR_RETURN(ir::Model model, onnx_io::LoadModel(path));
  return FromModel(std::move(model), options);
}

Result<std::unique_ptr<Session>> Session::FromModel(ir::Model model, const SessionOptions& options) {
  std::unique_ptr<Session> s(new Session());
  s->num_threads_ = ResolveThreadCount(options.num_threads);
  s->check_input_shapes_ = options.check_input_shapes;
  s->plan_memory_ = options.plan_memory;
  s->profile_ = options.profile;
  SetIntraOpThreads(s->num_threads_);  // kernels may already use threads while compiling
  s->model_ = std::move(model);
  // Types for every value before compiling, so load-time dtype checks see them.
  RETURN_IF_ERROR(passes::InferShapes(s->model_));
  if (options.check_input_shapes) RETURN_IF_ERROR(passes::Optimize(s->model_, options.opt_level));
  const ir::Graph& g = *s->model_.graph;
  for (const auto& vi : g.inputs)
    if (!g.initializers.count(vi.name)) s->inputs_.push_back(vi);
  s->outputs_ = g.outputs;
  auto plan = CompileModelReleasingWeights(s->model_);
  if (!plan.ok()) return plan.status();
  s->plan_ = std::move(plan).value();
  return s;
}

Status Session::Run(std::span<const Value> inputs, std::vector<Value>& outputs) {
  if (inputs.size() != inputs_.size())
    return InvalidArgument("model takes " + std::to_string(inputs_.size()) + " inputs, got " +
                           std::to_string(inputs.size()));
  SymbolBindings symbols;
  for (size_t i = 0; i < inputs.size(); ++i) RETURN_IF_ERROR(CheckInput(inputs_[i], inputs[i], check_input_shapes_, symbols));
  SetIntraOpThreads(num_threads_);
  RunStatePtr state;
  {
    std::lock_guard<std::mutex> lock(states_mu_);
    if (!idle_states_.empty()) {
      state = std::move(idle_states_.back());
      idle_states_.pop_back();
    }
  }
  if (!state) state = plan_->NewRunState(plan_memory_, profile_);
  Status st = plan_->Run(*state, inputs, outputs);
  std::lock_guard<std::mutex> lock(states_mu_);
  last_stats_ = CompiledGraph::LastPlanStats(*state);
  idle_states_.push_back(std::move(state));
  return st;
}

std::vector<StepTiming> Session::TakeProfile() {
  std::vector<StepTiming> out;
  std::lock_guard<std::mutex> lock(states_mu_);
  for (RunStatePtr& state : idle_states_) plan_->TakeProfile(*state, out);
  return out;
}

PlanStats Session::last_plan_stats() const {
  std::lock_guard<std::mutex> lock(states_mu_);
  return last_stats_;
}

}  // namespace strata
