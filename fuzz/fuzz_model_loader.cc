// libFuzzer target: arbitrary bytes as an ONNX model, through import and compilation. The import
// runs the wire scan (wire_scan.h); it must agree with protobuf's whole parse on every input, so a
// disagreement aborts.
#include <cstddef>
#include <cstdint>
#include <cstdlib>

#include "onnx/importer.h"
#include "runtime/session.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  auto model = strata::onnx_io::LoadModelFromBytes(data, size);
  strata::onnx_io::ImportOptions whole;
  whole.lift_payloads = false;
  auto reference = strata::onnx_io::LoadModelFromBytes(data, size, whole);
  if (model.ok() != reference.ok() || (!model.ok() && model.status().code() != reference.status().code())) std::abort();
  if (!model.ok()) return 0;
  auto session = strata::Session::FromModel(std::move(model).value());
  (void)session;
  return 0;
}
