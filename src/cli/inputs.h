// Reading model inputs from files for the CLI (.npy or ONNX test-data protobufs).
#pragma once

#include <string>
#include <vector>

#include "core/status.h"
#include "core/value.h"
#include "runtime/session.h"

namespace strata::cli {

// Parses NAME=FILE pairs and an optional --inputs DIR (input_<k>.pb in graph-input order) into
// values ordered like session.inputs(). Missing inputs are left as None and listed in `missing`.
Result<std::vector<Value>> LoadInputs(const Session& session, const std::vector<std::string>& pairs,
                                      const std::string& dir, std::vector<size_t>* missing);

}  // namespace strata::cli
