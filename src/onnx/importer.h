// Loads an ONNX model file into Strata's IR.
//
// LoadModel memory-maps the file. A wire-format scan (wire_scan.h) lifts the top-level
// initializers' raw_data out of the bytes protobuf parses, so weights are never copied into
// protobuf strings: element-aligned ones are borrowed from the mapping, the rest copied once.
// See src/onnx/README.md ("Loading").
#pragma once

#include <cstdint>
#include <string>

#include "core/status.h"
#include "ir/graph.h"

namespace strata::onnx_io {

// How an import brought its weights in (for tests and measurements).
struct LoadStats {
  bool lifted = false;                // the wire scan lifted initializer payloads out of the parse
  uint64_t parsed_bytes = 0;          // bytes protobuf parsed (the skeleton, or the whole model)
  int64_t borrowed = 0, copied = 0;   // lifted payloads borrowed from the mapping / copied (unaligned)
  uint64_t borrowed_bytes = 0, copied_bytes = 0;
};

struct ImportOptions {
  // Fill in value types with libonnx's shape inference. Off by default: it is a reference for
  // tests only, because it crashes on malformed models (fuzzing found a SEGV in
  // ScanInferenceFunctionOpset9; fuzz/regressions/onnx_scan_inference_segv.onnx). Strata's own
  // pass (src/passes) infers types on the load path. It needs the weights inside the parsed
  // proto, so it turns the payload lifting off.
  bool run_onnx_shape_inference = false;
  // Parse the whole model with protobuf, as before the wire scan (for tests that compare the two).
  bool lift_payloads = true;
  LoadStats* stats = nullptr;  // filled in when set
};

Result<ir::Model> LoadModel(const std::string& path, const ImportOptions& options = {});
// The payloads are copied: the caller's buffer need not outlive the model.
Result<ir::Model> LoadModelFromBytes(const void* data, size_t size, const ImportOptions& options = {});

}  // namespace strata::onnx_io
