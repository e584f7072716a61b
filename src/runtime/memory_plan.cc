#include "runtime/memory_plan.h"

#include <algorithm>
#include <cstdint>
#include <numeric>

namespace strata {

ArenaLayout PlanArena(std::span<const BufferLifetime> buffers) {
  ArenaLayout layout;
  const size_t n = buffers.size();
  layout.offsets.assign(n, 0);
  std::vector<size_t> padded(n);
  for (size_t i = 0; i < n; ++i) {
    padded[i] = (buffers[i].bytes + kArenaAlignment - 1) / kArenaAlignment * kArenaAlignment;
    layout.total_bytes += padded[i];
  }
  std::vector<size_t> order(n);
  std::iota(order.begin(), order.end(), size_t{0});
  // Big buffers first: they are the hardest to fit, and small ones fill the gaps they leave.
  std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) { return padded[a] > padded[b]; });

  std::vector<size_t> placed;  // indices already given an offset
  std::vector<std::pair<size_t, size_t>> busy;  // [begin, end) ranges of overlapping placed buffers
  for (size_t i : order) {
    busy.clear();
    for (size_t j : placed) {
      const bool overlap = buffers[j].first <= buffers[i].last && buffers[i].first <= buffers[j].last;
      if (overlap) busy.emplace_back(layout.offsets[j], layout.offsets[j] + padded[j]);
    }
    std::sort(busy.begin(), busy.end());
    // Best fit: the smallest gap that holds the buffer, else the end of the busy ranges.
    size_t cursor = 0, best = SIZE_MAX, best_gap = SIZE_MAX;
    for (const auto& [b, e] : busy) {
      if (b > cursor && b - cursor >= padded[i] && b - cursor < best_gap) {
        best = cursor;
        best_gap = b - cursor;
      }
      cursor = std::max(cursor, e);
    }
    if (best == SIZE_MAX) best = cursor;
    layout.offsets[i] = best;
    layout.arena_bytes = std::max(layout.arena_bytes, best + padded[i]);
    placed.push_back(i);
  }
  return layout;
}

}  // namespace strata
