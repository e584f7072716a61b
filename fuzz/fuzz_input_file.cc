// libFuzzer target: arbitrary bytes as an input file (.npy, TensorProto, SequenceProto, OptionalProto).
#include <cstddef>
#include <cstdint>
#include <string>

#include "core/npy.h"
#include "onnx/tensor_proto.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string bytes(reinterpret_cast<const char*>(data), size);
  (void)strata::ParseNpy(bytes, "fuzz");
  using K = strata::ir::TypeInfo::Kind;
  for (K kind : {K::kTensor, K::kSequence, K::kOptional}) {
    strata::ir::TypeInfo t;
    t.kind = kind;
    (void)strata::onnx_io::ParseValue(bytes, t, "fuzz");
  }
  return 0;
}
