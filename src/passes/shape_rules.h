// Internals of shape inference: the dimension algebra, the per-node context rules see, and the rule
// tables (one registration function per family of ops).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "core/status.h"
#include "ir/graph.h"

namespace strata::passes::shape {

using Dims = std::vector<ir::Dim>;

// Largest integer tensor (elements) whose symbolic value is tracked.
constexpr int64_t kMaxTrackedElements = 64;

// ---- Symbolic integers ---------------------------------------------------------------------------
// An element of a tracked integer tensor: a known integer (any sign), a symbol, or unknown.
// A symbol is a monomial: an optional positive coefficient times dimension names, written
// "batch", "batch*seq", "12*seq" (factors sorted, so equal products compare equal as strings).
// Symbols stand for dimension sizes, so they are never negative.
struct SymInt {
  std::optional<int64_t> v;  // known value
  std::string sym;           // else a symbol; empty: unknown

  static SymInt Of(int64_t x) { return {x, {}}; }
  static SymInt Unknown() { return {}; }
  static SymInt FromDim(const ir::Dim& d) { return d.known() ? Of(d.value) : SymInt{std::nullopt, d.symbol}; }
  bool known() const { return v.has_value(); }
  bool unknown() const { return !v && sym.empty(); }
  // As a dimension: negative known values become unknown.
  ir::Dim ToDim() const;
  bool operator==(const SymInt& o) const { return v == o.v && sym == o.sym; }
};
using SymValues = std::vector<SymInt>;

// Definitely equal: both known and equal, or the same symbol.
bool SameSym(const SymInt& a, const SymInt& b);
SymInt SymAdd(const SymInt& a, const SymInt& b);
SymInt SymSub(const SymInt& a, const SymInt& b);
SymInt SymMul(const SymInt& a, const SymInt& b);
SymInt SymDiv(const SymInt& a, const SymInt& b);  // integer division (truncating); symbols only when exact
std::string SymToString(const SymInt& a);

// ---- Dimension algebra (the same, on ir::Dim) ---------------------------------------------------
bool SameDim(const ir::Dim& a, const ir::Dim& b);
bool IsKnownOrSymbolic(const ir::Dim& d);
inline ir::Dim DimMul(const ir::Dim& a, const ir::Dim& b) { return SymMul(SymInt::FromDim(a), SymInt::FromDim(b)).ToDim(); }
inline ir::Dim DimDiv(const ir::Dim& a, const ir::Dim& b) { return SymDiv(SymInt::FromDim(a), SymInt::FromDim(b)).ToDim(); }
inline ir::Dim DimAdd(const ir::Dim& a, const ir::Dim& b) { return SymAdd(SymInt::FromDim(a), SymInt::FromDim(b)).ToDim(); }
inline ir::Dim DimSub(const ir::Dim& a, const ir::Dim& b) { return SymSub(SymInt::FromDim(a), SymInt::FromDim(b)).ToDim(); }
ir::Dim DimProduct(const Dims& d, size_t begin, size_t end);
std::string DimsToString(const Dims& d);

// ---- Per-value state ----------------------------------------------------------------------------
struct ValueState {
  ir::TypeInfo type;
  // Element values of a small (rank <= 1) integer tensor, in order; known, symbolic or unknown.
  std::optional<SymValues> value;
  const Tensor* constant = nullptr;  // set for initializers and Constant outputs
};

class InferContext {
 public:
  InferContext(const ir::Node& node, int64_t opset, std::vector<const ValueState*> inputs)
      : node_(node), opset_(opset), inputs_(std::move(inputs)) {
    outputs.resize(node.outputs.size());
  }

  const ir::Node& node() const { return node_; }
  int64_t opset() const { return opset_; }
  int num_inputs() const { return static_cast<int>(node_.inputs.size()); }
  int num_outputs() const { return static_cast<int>(node_.outputs.size()); }
  bool has_input(int i) const { return i >= 0 && i < num_inputs() && !node_.inputs[static_cast<size_t>(i)].empty(); }
  bool has_output(int i) const { return i >= 0 && i < num_outputs() && !node_.outputs[static_cast<size_t>(i)].empty(); }

  const ValueState* input(int i) const {
    return has_input(i) && static_cast<size_t>(i) < inputs_.size() ? inputs_[static_cast<size_t>(i)] : nullptr;
  }
  // Tensor type of input i, or null (absent, unknown, or not a tensor).
  const ir::TypeInfo* input_tensor_type(int i) const;
  DType input_dtype(int i) const;                     // kUndefined when unknown
  const Dims* input_shape(int i) const;               // null when the rank is unknown
  // A copy of input i's shape for SetTensor/SetLike; nullopt when the rank is unknown.
  std::optional<Dims> input_shape_copy(int i) const {
    const Dims* s = input_shape(i);
    return s ? std::optional<Dims>(*s) : std::nullopt;
  }
  std::optional<int64_t> input_rank(int i) const;
  const SymValues* input_value(int i) const;          // symbolic value, null when not tracked
  const Tensor* input_constant(int i) const;
  // Input i's value when every element is known (e.g. a constant axes list).
  std::optional<std::vector<int64_t>> input_ints(int i) const;
  // Input i read as a double scalar (for Range), when it is a known constant.
  std::optional<double> input_scalar(int i) const;

  const ir::Attribute* attr(std::string_view name) const { return node_.attr(name); }
  int64_t attr_int(std::string_view name, int64_t def) const;
  float attr_float(std::string_view name, float def) const;
  std::string attr_string(std::string_view name, const std::string& def) const;
  std::optional<std::vector<int64_t>> attr_ints(std::string_view name) const;
  // An int attribute naming an element type (Cast's `to`, `dtype`, `stash_type`); nullopt when it is
  // absent or not a valid TensorProto.DataType.
  std::optional<DType> attr_dtype(std::string_view name) const;

  void SetTensor(int i, DType dt, std::optional<Dims> shape);
  void SetType(int i, ir::TypeInfo t);
  // The value of output i (rank <= 1 integer); ignored if too large.
  void SetValue(int i, SymValues v);
  // Output i has input j's dtype and the given shape.
  void SetLike(int i, int j, std::optional<Dims> shape) { SetTensor(i, input_dtype(j), std::move(shape)); }

  // An inconsistency in the model: InvalidModel naming the node.
  Status Error(const std::string& msg) const;
  // Normalises a possibly negative axis against `rank`; false when out of range.
  bool NormalizeAxis(int64_t& axis, int64_t rank) const {
    if (axis < -rank || axis >= rank) return false;
    if (axis < 0) axis += rank;
    return true;
  }

  std::vector<ValueState> outputs;

 private:
  const ir::Node& node_;
  int64_t opset_;
  std::vector<const ValueState*> inputs_;
};

// Multidirectional (numpy) broadcast of a and b into out; an Error when two known dims differ and neither is 1.
Status Broadcast(const InferContext& ctx, const Dims& a, const Dims& b, Dims& out);

using ShapeRule = Status (*)(InferContext&);
using RuleTable = std::unordered_map<std::string, ShapeRule>;

void RegisterElementwiseRules(RuleTable& t);  // unary, binary, variadic, Cast, Where, activations
void RegisterMathRules(RuleTable& t);         // MatMul, Gemm, reductions, ArgMax, normalisations, Softmax
void RegisterNnRules(RuleTable& t);           // Conv, ConvTranspose, pools
void RegisterTensorRules(RuleTable& t);       // Reshape, Transpose, Squeeze, Concat, Slice, Gather, Shape ...

}  // namespace strata::passes::shape
