#include "kernels/cpu/ukernels/parallel.h"

#include <cassert>
#include <limits>

#include "core/large_buffer.h"

namespace strata::cpu {

float* ThreadScratch(int slot, size_t floats) {
  struct Slot {
    LargeBuffer buffer;
    size_t floats = 0;
  };
  thread_local Slot slots[kThreadScratchSlots];
  assert(slot >= 0 && slot < kThreadScratchSlots);
  Slot& s = slots[slot];
  floats = std::max<size_t>(floats, 16);  // an empty request still gets a valid pointer
  if (s.floats < floats) {
    s.buffer.reset();  // free first: the old contents are not kept, and two copies would double the peak
    const size_t grown = std::max(floats, s.floats + s.floats / 2);  // fewer regrowths while shapes climb
    s.buffer = AllocateLargeBuffer(grown * sizeof(float));
    s.floats = s.buffer ? grown : 0;
    // Poisoned with NaN, like the arena: a kernel that reads scratch it did not write (padding it
    // should have zeroed) then shows it in its output instead of passing on whatever was there.
    if (s.buffer) std::fill_n(static_cast<float*>(s.buffer.get()), grown, std::numeric_limits<float>::quiet_NaN());
  }
  return static_cast<float*>(s.buffer.get());
}

}  // namespace strata::cpu
