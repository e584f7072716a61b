// Loads an ONNX model file into Strata's IR.
#pragma once

#include <string>

#include "core/status.h"
#include "ir/graph.h"

namespace strata::onnx_io {

struct ImportOptions {
  // Fill in value types with ONNX's own shape inference (used as a reference for dtypes).
  bool run_onnx_shape_inference = true;
};

Result<ir::Model> LoadModel(const std::string& path, const ImportOptions& options = {});
Result<ir::Model> LoadModelFromBytes(const void* data, size_t size, const ImportOptions& options = {});

}  // namespace strata::onnx_io
