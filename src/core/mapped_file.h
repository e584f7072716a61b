// Read-only memory map of a whole file; weights borrow from it without copying.
#pragma once

#include <cstddef>
#include <memory>
#include <string>

#include "core/status.h"

namespace strata {

class MappedFile {
 public:
  static Result<std::shared_ptr<MappedFile>> Open(const std::string& path);
  ~MappedFile();
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;

  const unsigned char* data() const { return data_; }
  size_t size() const { return size_; }

 private:
  MappedFile() = default;
  const unsigned char* data_ = nullptr;
  size_t size_ = 0;
};

}  // namespace strata
