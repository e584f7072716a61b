// The contract between the executor and operator kernels.
//
// A kernel is created once per node when a model is compiled (KernelInfo gives it the node's
// attributes, opset and whatever types/constants are known), and must reject anything it does not
// support right there, so errors surface at load time. Compute() then runs once per inference.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "core/status.h"
#include "core/value.h"
#include "ir/graph.h"

namespace strata {

class CompiledGraph;  // a compiled subgraph (If/Loop/Scan bodies)
class KernelContext;

class OpKernel {
 public:
  virtual ~OpKernel() = default;
  virtual Status Compute(KernelContext& ctx) = 0;
  // An input whose buffer output 0 may take over when this step is the input's last reader and
  // both have the same size, or -1. The kernel must then compute correctly with output 0 at the
  // input's address (the memory planner decides; the kernel sees it as equal pointers).
  virtual int InPlaceInput() const { return -1; }
};

// Compile-time view of one node.
class KernelInfo {
 public:
  virtual ~KernelInfo() = default;

  const ir::Node& node() const { return *node_; }
  int64_t opset() const { return opset_; }
  int num_inputs() const { return static_cast<int>(node_->inputs.size()); }
  int num_outputs() const { return static_cast<int>(node_->outputs.size()); }
  bool input_present(int i) const { return i < num_inputs() && !node_->inputs[static_cast<size_t>(i)].empty(); }
  bool output_requested(int i) const { return i < num_outputs() && !node_->outputs[static_cast<size_t>(i)].empty(); }

  bool has_attr(std::string_view name) const { return node_->attr(name) != nullptr; }
  const ir::Attribute* attr(std::string_view name) const { return node_->attr(name); }
  int64_t attr_int(std::string_view name, int64_t dflt) const;
  float attr_float(std::string_view name, float dflt) const;
  std::string attr_string(std::string_view name, const std::string& dflt) const;
  std::vector<int64_t> attr_ints(std::string_view name, std::vector<int64_t> dflt = {}) const;
  std::vector<float> attr_floats(std::string_view name, std::vector<float> dflt = {}) const;
  std::vector<std::string> attr_strings(std::string_view name) const;

  // Type of input/output i when known at compile time (nullptr when not).
  virtual const ir::TypeInfo* input_type(int i) const = 0;
  virtual const ir::TypeInfo* output_type(int i) const = 0;
  // Value of input i when it is an initializer or a constant (nullptr otherwise).
  virtual const Tensor* constant_input(int i) const = 0;
  // Says the kernel has kept what it needs of constant input i (weights packed into its own layout)
  // and will not read that input at run time. When no other reader needs the constant, the runtime
  // frees it and the input arrives absent (KernelContext::has_input is false).
  virtual void ReleaseConstantInput(int /*i*/) const {}
  // The graph this node belongs to (ops like Gradient differentiate parts of it).
  virtual const ir::Graph& graph() const = 0;
  // Compiles a graph attribute; the body may read values of the enclosing scopes.
  virtual Result<std::shared_ptr<CompiledGraph>> CompileSubgraph(const ir::Graph& body) const = 0;

  // "node 'x' (Op, opset N): " prefix for error messages.
  std::string Where() const;
  Status Error(const std::string& msg) const { return Unsupported(Where() + msg); }

 protected:
  const ir::Node* node_ = nullptr;
  int64_t opset_ = 0;
};

// Run-time view of one node.
class KernelContext {
 public:
  virtual ~KernelContext() = default;

  int num_inputs() const { return static_cast<int>(inputs_.size()); }
  int num_outputs() const { return static_cast<int>(outputs_.size()); }
  // Optional inputs that were omitted (or are past the end) read as absent.
  bool has_input(int i) const { return i < num_inputs() && inputs_[static_cast<size_t>(i)] != nullptr; }
  const Value& input(int i) const { return *inputs_[static_cast<size_t>(i)]; }
  const Tensor& input_tensor(int i) const { return inputs_[static_cast<size_t>(i)]->tensor(); }
  // Whether the consumer asked for output i (optional outputs may be unrequested).
  bool output_requested(int i) const { return i < num_outputs() && outputs_[static_cast<size_t>(i)] != &scratch_; }

  // Allocates output i with uninitialised contents: the kernel must write every element. The
  // buffer may come from the run's memory plan. Fails cleanly on negative or enormous shapes.
  Result<Tensor*> AllocateOutput(int i, DType dtype, Shape shape);
  // As AllocateOutput, zero-filled, for kernels that write only some elements.
  Result<Tensor*> AllocateZeroedOutput(int i, DType dtype, Shape shape);
  void SetOutput(int i, Value v);

  const ir::Node& node() const { return *node_; }
  std::string Where() const;

  // Runs a compiled subgraph with this node's scope as the enclosing scope.
  virtual Status RunSubgraph(const CompiledGraph& g, std::span<const Value> inputs, std::vector<Value>& outputs) = 0;

 protected:
  // Where output buffers come from: the heap here, the planned arena in a planned run.
  virtual Result<Tensor> NewOutputTensor(int i, DType dtype, Shape shape);

  const ir::Node* node_ = nullptr;
  std::vector<const Value*> inputs_;
  std::vector<Value*> outputs_;
  Value scratch_;  // sink for unrequested outputs
};

using KernelFactory = std::function<Result<std::unique_ptr<OpKernel>>(const KernelInfo&)>;

// One registration: an op over an inclusive opset range, with the dtypes it accepts for its
// principal type constraint (checked at load time on input `checked_input` when that type is known).
struct KernelDef {
  std::string op_type;
  std::string domain = "ai.onnx";
  int since = 1;
  int until = 1000;  // inclusive
  std::vector<DType> dtypes;  // empty: no load-time dtype check
  int checked_input = 0;
  KernelFactory factory;
};

class KernelRegistry {
 public:
  static KernelRegistry& Global();
  void Register(KernelDef def);
  // Finds the kernel for (domain, op) at the given opset, or nullptr.
  const KernelDef* Find(std::string_view domain, std::string_view op_type, int64_t opset) const;
  const std::vector<KernelDef>& all() const { return defs_; }
  // Highest opset any registration of this domain covers, used to explain misses.
  bool KnowsOp(std::string_view domain, std::string_view op_type) const;

 private:
  std::vector<KernelDef> defs_;
};

// Static registration helper: `static KernelRegistrar r{{...def...}};`
struct KernelRegistrar {
  explicit KernelRegistrar(KernelDef def) { KernelRegistry::Global().Register(std::move(def)); }
};

// Factory for kernels with a default constructor and `Status Init(const KernelInfo&)`.
template <typename K>
Result<std::unique_ptr<OpKernel>> MakeKernel(const KernelInfo& info) {
  auto k = std::make_unique<K>();
  RETURN_IF_ERROR(k->Init(info));
  return std::unique_ptr<OpKernel>(std::move(k));
}

}  // namespace strata
