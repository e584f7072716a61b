// NumPy .npy files (format versions 1-3, little-endian, C order).
#pragma once

#include <string>

#include "core/status.h"
#include "core/tensor.h"

namespace strata {

Result<Tensor> ReadNpy(const std::string& path);
Result<Tensor> ParseNpy(const std::string& bytes, const std::string& what);
Status WriteNpy(const std::string& path, const Tensor& t);

}  // namespace strata
