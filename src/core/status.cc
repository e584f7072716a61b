#include "core/status.h"

namespace strata {

std::string Status::ToString() const {
  const char* kind = "error";
  switch (code_) {
    case StatusCode::kOk: return "OK";
    case StatusCode::kInvalidArgument: kind = "invalid argument"; break;
    case StatusCode::kInvalidModel: kind = "invalid model"; break;
    case StatusCode::kUnsupported: kind = "unsupported"; break;
    case StatusCode::kOutOfRange: kind = "out of range"; break;
    case StatusCode::kInternal: kind = "internal error"; break;
    case StatusCode::kIoError: kind = "I/O error"; break;
  }
  return std::string(kind) + ": " + message_;
}

}  // namespace strata
