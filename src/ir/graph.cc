#include "ir/graph.h"

namespace strata::ir {

DType TypeInfo::TensorElemType() const {
  if (kind == Kind::kTensor || kind == Kind::kSparseTensor) return elem_type;
  if (inner) return inner->TensorElemType();
  return DType::kUndefined;
}

std::string TypeInfo::ToString() const {
  switch (kind) {
    case Kind::kUnknown: return "?";
    case Kind::kTensor:
    case Kind::kSparseTensor: {
      std::string s(DTypeName(elem_type));
      if (!shape) return s + "[?]";
      s += "[";
      for (size_t i = 0; i < shape->size(); ++i) {
        if (i) s += ",";
        const Dim& d = (*shape)[i];
        s += d.known() ? std::to_string(d.value) : (d.symbol.empty() ? "?" : d.symbol);
      }
      return s + "]";
    }
    case Kind::kSequence: return "seq(" + (inner ? inner->ToString() : "?") + ")";
    case Kind::kOptional: return "optional(" + (inner ? inner->ToString() : "?") + ")";
    case Kind::kMap: return "map";
  }
  return "?";
}

std::string_view AttributeTypeName(Attribute::Type t) {
  switch (t) {
    case Attribute::Type::kFloat: return "float";
    case Attribute::Type::kInt: return "int";
    case Attribute::Type::kString: return "string";
    case Attribute::Type::kTensor: return "tensor";
    case Attribute::Type::kGraph: return "graph";
    case Attribute::Type::kFloats: return "floats";
    case Attribute::Type::kInts: return "ints";
    case Attribute::Type::kStrings: return "strings";
    case Attribute::Type::kTensors: return "tensors";
    case Attribute::Type::kGraphs: return "graphs";
    case Attribute::Type::kTypeProto: return "type_proto";
    case Attribute::Type::kSparseTensor: return "sparse_tensor";
    case Attribute::Type::kUndefined: break;
  }
  return "undefined";
}

std::string Node::Describe() const {
  std::string who = name.empty() ? (outputs.empty() ? std::string("<unnamed>") : "producing '" + outputs[0] + "'")
                                 : "'" + name + "'";
  return "node " + who + " (" + QualifiedOpType() + ")";
}

std::string Node::QualifiedOpType() const { return domain == kOnnxDomain ? op_type : domain + ":" + op_type; }

const ValueInfo* Graph::FindValueInfo(std::string_view value_name) const {
  for (const auto* list : {&inputs, &outputs, &value_info})
    for (const auto& vi : *list)
      if (vi.name == value_name) return &vi;
  return nullptr;
}

}  // namespace strata::ir
