// Strata's IR: a model is a graph of nodes over named values, with typed attributes,
// initializers and nested subgraphs (If/Loop/Scan bodies). Built by the ONNX importer.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/tensor.h"

namespace strata::ir {

// A dimension: a known size, a named symbol ("batch"), or unknown.
struct Dim {
  int64_t value = -1;
  std::string symbol;
  bool known() const { return value >= 0; }
  static Dim Known(int64_t v) { return {v, {}}; }
  static Dim Symbol(std::string s) { return {-1, std::move(s)}; }
};

struct TypeInfo {
  enum class Kind { kUnknown, kTensor, kSequence, kOptional, kMap, kSparseTensor };
  Kind kind = Kind::kUnknown;
  DType elem_type = DType::kUndefined;          // for tensors
  std::optional<std::vector<Dim>> shape;        // absent: rank unknown
  std::shared_ptr<TypeInfo> inner;              // for sequence / optional

  static TypeInfo Tensor(DType dt, std::optional<std::vector<Dim>> shape = std::nullopt) {
    TypeInfo t;
    t.kind = Kind::kTensor;
    t.elem_type = dt;
    t.shape = std::move(shape);
    return t;
  }
  // Element dtype of the innermost tensor type, if any.
  DType TensorElemType() const;
  std::string ToString() const;
};

struct ValueInfo {
  std::string name;
  TypeInfo type;
};

class Graph;

struct Attribute {
  enum class Type { kUndefined, kFloat, kInt, kString, kTensor, kGraph, kFloats, kInts, kStrings, kTensors, kGraphs,
                    kTypeProto, kSparseTensor };
  std::string name;
  Type type = Type::kUndefined;
  float f = 0;
  int64_t i = 0;
  std::string s;
  Tensor t;
  std::shared_ptr<Graph> g;
  std::vector<float> floats;
  std::vector<int64_t> ints;
  std::vector<std::string> strings;
  std::vector<Tensor> tensors;
  std::vector<std::shared_ptr<Graph>> graphs;
  TypeInfo type_proto;
};

std::string_view AttributeTypeName(Attribute::Type t);

struct Node {
  std::string name;
  std::string op_type;
  std::string domain;  // "" is normalised to "ai.onnx"
  std::vector<std::string> inputs;   // "" marks an omitted optional input
  std::vector<std::string> outputs;  // "" marks an unrequested optional output
  std::vector<Attribute> attributes;
  // Opset this node is written for; 0 means the model's import for its domain. Graph passes set it
  // when they insert an op from a newer ONNX opset (LayerNormalization-17, Gelu-20) into an older model.
  int64_t opset = 0;

  const Attribute* attr(std::string_view attr_name) const {
    for (const auto& a : attributes)
      if (a.name == attr_name) return &a;
    return nullptr;
  }
  // "'name' (Op)" or "#index (Op)", for error messages.
  std::string Describe() const;
  // op_type, prefixed with "domain:" outside the default ONNX domain.
  std::string QualifiedOpType() const;
};

class Graph {
 public:
  std::string name;
  std::vector<Node> nodes;
  std::vector<ValueInfo> inputs;
  std::vector<ValueInfo> outputs;
  std::vector<ValueInfo> value_info;            // intermediate types (from inference or the file)
  std::map<std::string, Tensor> initializers;   // weights; may also be listed as inputs

  const ValueInfo* FindValueInfo(std::string_view value_name) const;
};

constexpr std::string_view kOnnxDomain = "ai.onnx";
constexpr std::string_view kOnnxMlDomain = "ai.onnx.ml";
constexpr std::string_view kTrainingDomain = "ai.onnx.preview.training";

struct Model {
  int64_t ir_version = 0;
  std::map<std::string, int64_t> opset_imports;  // domain ("ai.onnx" for "") -> version
  std::string producer_name;
  std::string producer_version;
  std::string source_path;
  std::shared_ptr<Graph> graph;
  // Keeps memory that initializer tensors borrow from (parsed protobuf, mapped files) alive.
  std::vector<std::shared_ptr<const void>> backing;

  int64_t OpsetFor(std::string_view domain) const {
    auto it = opset_imports.find(std::string(domain));
    return it == opset_imports.end() ? 0 : it->second;
  }
};

}  // namespace strata::ir
