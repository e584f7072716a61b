// Memory for large, long-lived buffers (packed weights, run arenas). Big ones are 2 MiB-aligned and
// advised for transparent huge pages: on the VMs Strata is measured on, first-touch faults of 4 KiB
// pages made filling packed weights about 20x slower than the copy itself.
#pragma once

#include <cstddef>
#include <memory>

namespace strata {

struct LargeBufferFree {
  void operator()(void* p) const;
};
using LargeBuffer = std::unique_ptr<void, LargeBufferFree>;

// At least 64-byte aligned; nullptr when out of memory. Contents are uninitialised.
LargeBuffer AllocateLargeBuffer(size_t bytes);

}  // namespace strata
