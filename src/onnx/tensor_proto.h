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

namespace strata {
class MappedFile;
}

namespace strata::onnx_io {

class CopyArena;

// A raw_data payload kept outside the proto (lifted out by StripInitializerPayloads).
struct LiftedPayload {
  const unsigned char* data = nullptr;
  size_t size = 0;
  // When set, `data` lies in this mapping: an element-aligned payload is borrowed from it, any other
  // is copied and its whole pages in the mapping dropped. When null, the payload is copied.
  std::shared_ptr<const MappedFile> file;
  // Where copies go (sized by the caller); null or full: a tensor of its own.
  std::shared_ptr<CopyArena> arena;
};

// True when `p`'s payload at `data` must be copied rather than borrowed.
bool PayloadNeedsCopy(const onnx::TensorProto& p, const void* data);

// What happened to the lifted payloads of one import (reported through ImportOptions::stats).
struct PayloadStats {
  int64_t borrowed = 0, copied = 0;
  uint64_t borrowed_bytes = 0, copied_bytes = 0;
};

// Converts a TensorProto. Float/int64/raw payloads are borrowed from `owner` when it keeps
// `proto` alive; `base_dir` resolves external data, which is memory-mapped.
// A `payload`, when given, stands in for the proto's raw_data.
Result<Tensor> TensorFromProto(const onnx::TensorProto& proto, const std::shared_ptr<const void>& owner,
                               const std::string& base_dir, const LiftedPayload* payload = nullptr,
                               PayloadStats* stats = nullptr);
void TensorToProto(const Tensor& t, const std::string& name, onnx::TensorProto* proto);
ir::TypeInfo TypeFromProto(const onnx::TypeProto& tp);

// Serialized TensorProto / SequenceProto / OptionalProto files (the ONNX test-data layout).
// `expected` picks the message type; kUnknown sniffs a TensorProto.
Result<Value> ReadValueFile(const std::string& path, const ir::TypeInfo& expected);
// Same, from bytes in memory; `what` names the source in errors.
Result<Value> ParseValue(const std::string& bytes, const ir::TypeInfo& expected, const std::string& what);
Status WriteValueFile(const std::string& path, const Value& v, const ir::TypeInfo& declared, const std::string& name);

}  // namespace strata::onnx_io
