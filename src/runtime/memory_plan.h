// Static memory planning: places buffers with known sizes and lifetimes at offsets in one arena, so
// that buffers whose lifetimes overlap never share bytes and the arena stays small.
#pragma once

#include <cstddef>
#include <span>
#include <vector>

namespace strata {

struct BufferLifetime {
  size_t bytes = 0;
  int first = 0;  // step that writes the buffer
  int last = 0;   // last step that reads it (inclusive); >= first
};

struct ArenaLayout {
  std::vector<size_t> offsets;  // one per buffer, multiples of kArenaAlignment
  size_t arena_bytes = 0;       // the arena size the offsets need
  size_t total_bytes = 0;       // what the buffers would take if none shared memory
};

constexpr size_t kArenaAlignment = 64;

// Greedy placement, largest buffer first, each at the lowest offset that fits beside the buffers
// already placed whose lifetimes overlap it.
ArenaLayout PlanArena(std::span<const BufferLifetime> buffers);

}  // namespace strata
