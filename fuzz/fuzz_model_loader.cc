// libFuzzer target: arbitrary bytes as an ONNX model, through import and compilation.
#include <cstddef>
#include <cstdint>

#include "onnx/importer.h"
#include "runtime/session.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  auto model = strata::onnx_io::LoadModelFromBytes(data, size);
  if (!model.ok()) return 0;
  auto session = strata::Session::FromModel(std::move(model).value());
  (void)session;
  return 0;
}
