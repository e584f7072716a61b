// Memory for weights lifted out of a model file: per-tensor owners that give their pages back when
// the last view of a weight goes, and one arena for the payloads that must be copied.
#pragma once

#include <cstddef>
#include <memory>

#include "core/status.h"

namespace strata::onnx_io {

// Anonymous memory, in one mapping with transparent huge pages asked for (copying hundreds of MiB
// into 4 KiB pages is dominated by page faults), handed out in 64-byte-aligned pieces.
class CopyArena {
 public:
  static Result<std::shared_ptr<CopyArena>> Create(size_t bytes);
  ~CopyArena();
  CopyArena(const CopyArena&) = delete;
  CopyArena& operator=(const CopyArena&) = delete;

  // Null once the arena is used up (callers then allocate elsewhere).
  unsigned char* Take(size_t bytes);

 private:
  CopyArena() = default;
  unsigned char* base_ = nullptr;
  size_t size_ = 0, used_ = 0;
};

// Returns the pages lying wholly inside [data, data + size) to the kernel (MADV_DONTNEED).
void DropWholePages(const void* data, size_t size);

// memcpy from a private read-only file mapping that drops the source's whole pages as it goes, so
// a large payload is never resident twice (in the mapping and in its copy) at once.
void CopyDroppingSource(void* dst, const unsigned char* src, size_t size);

// Rounds up to the arena's piece alignment, so callers can size an arena for a list of payloads.
size_t ArenaPieceSize(size_t bytes);

// An owner for a tensor viewing [data, data + size) of `backing` (a MappedFile or a CopyArena).
// When the last view goes, the whole pages of the range are returned to the kernel
// (MADV_DONTNEED): a weight that a kernel packed and then released no longer counts in RSS, even
// though the mapping or arena around it lives on. Safe for both: a private read-only file mapping
// faults dropped pages back in from the file, and no other view reaches an arena piece's pages.
std::shared_ptr<const void> PageRangeOwner(std::shared_ptr<const void> backing, const void* data, size_t size);

}  // namespace strata::onnx_io
