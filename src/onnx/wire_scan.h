// A protobuf wire-format scan of a serialized ModelProto that lifts the payloads of the top-level
// graph's initializers out of the bytes protobuf has to parse, so weights are never copied into
// std::strings: the importer borrows them from the memory-mapped file instead.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace strata::onnx_io {

struct PayloadSpan {
  uint64_t offset = 0;  // from the start of the scanned bytes
  uint64_t size = 0;
};

struct StrippedModel {
  // The model with every top-level initializer's raw_data field removed and the enclosing
  // length prefixes re-encoded. Parses to the same ModelProto minus those payloads.
  std::string skeleton;
  // One entry per ModelProto.graph.initializer, in order; empty where the tensor had no raw_data.
  std::vector<std::optional<PayloadSpan>> initializer_payloads;
};

// Returns nothing when the bytes are not laid out plainly (truncated or malformed wire data, a
// repeated graph or raw_data field, groups): the caller then lets protobuf parse the bytes whole,
// so errors and merge semantics stay protobuf's own.
std::optional<StrippedModel> StripInitializerPayloads(const unsigned char* data, size_t size);

}  // namespace strata::onnx_io
