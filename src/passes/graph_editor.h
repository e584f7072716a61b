// GraphEditor: the indexed view of one graph that passes rewrite through. It knows each value's
// producer and consumers, which values graph outputs or subgraph bodies reference (those are never
// rewired), and the constant value of initializers and Constant nodes. Removals are deferred until
// Commit(), so node indices stay valid during a pass.
#pragma once

#include <optional>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "core/tensor.h"
#include "ir/graph.h"

namespace strata::passes {

// The same size at run time: equal known values, or the same (non-empty) symbol.
bool SameDim(const ir::Dim& a, const ir::Dim& b);

class GraphEditor {
 public:
  explicit GraphEditor(ir::Model& model);

  ir::Model& model() { return model_; }
  ir::Graph& graph() { return g_; }
  ir::Node& node(int i) { return g_.nodes[static_cast<size_t>(i)]; }
  const ir::Node& node(int i) const { return g_.nodes[static_cast<size_t>(i)]; }
  int num_nodes() const { return static_cast<int>(g_.nodes.size()); }
  bool removed(int i) const { return removed_[static_cast<size_t>(i)]; }

  // Index of the node producing `value`, or -1 (graph input, initializer, or unknown).
  int Producer(const std::string& value) const;
  // Nodes of this graph reading `value`, one entry per input slot (removed nodes excluded).
  std::vector<int> Consumers(const std::string& value) const;
  bool IsGraphOutput(const std::string& value) const { return graph_outputs_.count(value) > 0; }
  bool IsGraphInput(const std::string& value) const { return graph_inputs_.count(value) > 0; }
  // Read by a nested graph (If/Loop/Scan body) of some node.
  bool UsedBySubgraph(const std::string& value) const { return subgraph_refs_.count(value) > 0; }
  // Exactly one reader, a node of this graph, and not a graph output: safe to fuse into its reader.
  bool HasSingleConsumer(const std::string& value) const;
  // The single consumer of `value` (see HasSingleConsumer), or -1.
  int SoleConsumer(const std::string& value) const;
  // For a two-input node with exactly one constant scalar input: the other input and the scalar. The
  // scalar's rank must not exceed the other input's, so the node's output has the other input's shape.
  bool SplitScalarOperand(const ir::Node& n, std::string* other, double* scalar) const;
  // All uses of `value` can be pointed elsewhere (not a graph output, not read by a subgraph).
  bool Rewirable(const std::string& value) const { return !IsGraphOutput(value) && !UsedBySubgraph(value); }

  // Opset a node is written for (its override, else the model's import of its domain).
  int64_t OpsetOf(const ir::Node& n) const { return n.opset > 0 ? n.opset : model_.OpsetFor(n.domain); }

  // Initializer or Constant-node value, or nullptr.
  const Tensor* Constant(const std::string& value) const;
  // Scalar value of a constant with one element, if it is a floating-point or integer constant.
  bool ConstantScalar(const std::string& value, double* out) const;

  // Declared/inferred type of a value, or nullptr.
  const ir::TypeInfo* TypeOf(const std::string& value) const;
  // Element type when known, else kUndefined.
  DType ElemType(const std::string& value) const;
  // Rank of a tensor value, when its type (or constant value) tells.
  std::optional<int64_t> Rank(const std::string& value) const;
  // Fully known static shape, if any.
  bool StaticShape(const std::string& value, Shape* out) const;
  // Both shapes known to be equal at run time: the same rank, and in every dim equal known sizes or
  // the same symbol (SameDim).
  bool SameShape(const std::string& a, const std::string& b) const;
  void SetType(const std::string& value, ir::TypeInfo type);

  // Points every node input reading `from` at `to`. Requires Rewirable(from).
  void ReplaceUses(const std::string& from, const std::string& to);
  // Node `i` now produces `to` instead of `from` (its output slot is renamed).
  void RenameOutput(int i, const std::string& from, const std::string& to);
  // Removes node i whose output `out` is a copy of its input `in`: readers of `out` read `in`. When
  // `out` must keep its name (a graph output), the producer of `in` is renamed to produce `out`
  // instead, if that is possible. Returns false (and changes nothing) when neither works.
  bool Bypass(int i, const std::string& in, const std::string& out);
  // Marks a node for removal at Commit().
  void Remove(int i);
  // Replaces node i in place (same position), re-indexing its inputs and outputs.
  void ReplaceNode(int i, ir::Node n);
  // Adds an initializer with a fresh name based on `hint`; returns the name.
  std::string AddInitializer(const std::string& hint, Tensor t);
  // A value name not used anywhere in the model yet.
  std::string FreshName(const std::string& hint);

  // Applies removals; drops value_info entries and initializers nothing refers to any more.
  // Returns whether anything changed since construction.
  bool Commit();
  bool changed() const { return changed_; }
  void MarkChanged() { changed_ = true; }

 private:
  void IndexNode(int i);

  ir::Model& model_;
  ir::Graph& g_;
  std::vector<bool> removed_;
  std::unordered_map<std::string, int> producer_;
  std::unordered_map<std::string, std::vector<int>> consumers_;  // may hold stale entries; filtered on read
  std::unordered_set<std::string> graph_outputs_, graph_inputs_, subgraph_refs_;
  std::unordered_set<std::string> names_;  // every name in the model; filled by the first FreshName

  std::unordered_map<std::string, Tensor> constant_nodes_;
  bool changed_ = false;
};

// An ai.onnx node of this op type with at least `min_inputs` inputs and one output. Imported graphs are
// not validated, so pattern matchers check arity before they index inputs.
inline bool IsOp(const ir::Node& n, std::string_view op, size_t min_inputs = 1) {
  return n.op_type == op && n.domain == ir::kOnnxDomain && n.inputs.size() >= min_inputs && !n.outputs.empty();
}
// |a - b| <= tol * |b|: exporters write constants like sqrt(2) in float32.
inline bool Near(double a, double b, double tol = 1e-5) { return (a > b ? a - b : b - a) <= tol * (b < 0 ? -b : b); }

// Attribute equality (graph attributes never compare equal).
bool AttributesEqual(const ir::Attribute& a, const ir::Attribute& b);
// Tensor equality: dtype, shape and bytes.
bool TensorsEqual(const Tensor& a, const Tensor& b);
// Whether a node has a graph-valued attribute (If/Loop/Scan).
bool HasSubgraph(const ir::Node& n);
// Ops whose outputs are random: never merged or folded.
bool IsNondeterministic(const ir::Node& n);
// Convenience: float attribute with a default.
float AttrFloat(const ir::Node& n, std::string_view name, float dflt);
int64_t AttrInt(const ir::Node& n, std::string_view name, int64_t dflt);

// Domain of Strata's own fused ops (FusedConv, FusedGemm, FusedMatMul).
constexpr std::string_view kStrataDomain = "com.strata";
// `p` (Conv, Gemm or MatMul) as its com.strata fused form with an empty epilogue; fused ops unchanged.
ir::Node FusedForm(const ir::Node& p);

ir::Attribute MakeAttr(const std::string& name, int64_t v);
ir::Attribute MakeAttr(const std::string& name, float v);
ir::Attribute MakeAttr(const std::string& name, const std::string& v);
ir::Attribute MakeAttr(const std::string& name, std::vector<std::string> v);
ir::Attribute MakeAttr(const std::string& name, std::vector<float> v);

}  // namespace strata::passes
