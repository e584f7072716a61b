// Loads an ONNX model file into Strata's IR.
#pragma once

#include <string>

#include "core/status.h"
#include "ir/graph.h"

namespace strata::onnx_io {

struct ImportOptions {
  // Fill in value types with libonnx's shape inference. Off by default: it is a reference for
  // tests only, because it crashes on malformed models (fuzzing found a SEGV in
  // ScanInferenceFunctionOpset9; fuzz/regressions/onnx_scan_inference_segv.onnx). Strata's own
  // pass (src/passes) infers types on the load path.
  bool run_onnx_shape_inference = false;
};

Result<ir::Model> LoadModel(const std::string& path, const ImportOptions& options = {});
Result<ir::Model> LoadModelFromBytes(const void* data, size_t size, const ImportOptions& options = {});

}  // namespace strata::onnx_io
