// Conversion between ONNX protobuf messages and Strata tensors/values.
// Keeps the protobuf headers out of everything but src/onnx.
#pragma once

#include <memory>
#include <string>

#include "core/status.h"
#include "core/value.h"
#include "ir/graph.h"

namespace onnx {
class TensorProto;
class TypeProto;
}  // namespace onnx

namespace strata::onnx_io {

// Converts a TensorProto. Float/int64/raw payloads are borrowed from `owner` when it keeps
// `proto` alive; `base_dir` resolves external data, which is memory-mapped.
Result<Tensor> TensorFromProto(const onnx::TensorProto& proto, const std::shared_ptr<const void>& owner,
                               const std::string& base_dir);
void TensorToProto(const Tensor& t, const std::string& name, onnx::TensorProto* proto);
ir::TypeInfo TypeFromProto(const onnx::TypeProto& tp);

// Serialized TensorProto / SequenceProto / OptionalProto files (the ONNX test-data layout).
// `expected` picks the message type; kUnknown sniffs a TensorProto.
Result<Value> ReadValueFile(const std::string& path, const ir::TypeInfo& expected);
// Same, from bytes in memory; `what` names the source in errors.
Result<Value> ParseValue(const std::string& bytes, const ir::TypeInfo& expected, const std::string& what);
Status WriteValueFile(const std::string& path, const Value& v, const ir::TypeInfo& declared, const std::string& name);

}  // namespace strata::onnx_io
