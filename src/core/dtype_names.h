// Human-readable lists of element types, for error messages and generated docs.
#pragma once

#include <string>
#include <vector>

#include "core/dtype.h"

namespace strata {

// "float32, int64, ..."
std::string JoinDTypeNames(const std::vector<DType>& types);

}  // namespace strata
