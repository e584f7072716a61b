#include "core/large_buffer.h"

#include <sys/mman.h>

#include <cstdlib>

namespace strata {
namespace {
constexpr size_t kHugePage = size_t{2} << 20;
}  // namespace

void LargeBufferFree::operator()(void* p) const { std::free(p); }

LargeBuffer AllocateLargeBuffer(size_t bytes) {
  if (bytes < kHugePage) return LargeBuffer(std::aligned_alloc(64, (bytes + 63) / 64 * 64 + (bytes == 0 ? 64 : 0)));
  const size_t rounded = (bytes + 4095) / 4096 * 4096;
  void* p = std::aligned_alloc(kHugePage, rounded);
  // Only whole huge pages are advised, so the tail costs no more resident memory than it uses.
  // Advice only: on failure the buffer keeps ordinary pages.
  if (p && bytes >= kHugePage) ::madvise(p, bytes / kHugePage * kHugePage, MADV_HUGEPAGE);
  return LargeBuffer(p);
}

}  // namespace strata
