#include "core/large_buffer.h"

#include <sys/mman.h>

#include <algorithm>
#include <cstdlib>

namespace strata {
namespace {
constexpr size_t kHugePage = size_t{2} << 20;
}  // namespace

void LargeBufferFree::operator()(void* p) const { std::free(p); }

LargeBuffer AllocateLargeBuffer(size_t bytes) {
  // aligned_alloc wants a size that is a multiple of the alignment.
  if (bytes < kHugePage) return LargeBuffer(std::aligned_alloc(64, std::max<size_t>(64, (bytes + 63) / 64 * 64)));
  void* p = std::aligned_alloc(kHugePage, (bytes + kHugePage - 1) / kHugePage * kHugePage);
  // Only whole huge pages are advised, so the tail (never touched past `bytes`) costs no more
  // resident memory than it uses. Advice only: on failure the buffer keeps ordinary pages.
  if (p) ::madvise(p, bytes / kHugePage * kHugePage, MADV_HUGEPAGE);
  return LargeBuffer(p);
}

}  // namespace strata
