// Copies float32 activations [n, c, spatial...] between the physical layouts convolution kernels use:
// channels-first (NCHW), channels-last (NHWC) and channel-blocked nC<spatial>Bc with B = 8 (AVX2
// kernels) or 16 (AVX-512 kernels), whose last block is zero-padded. Strata copies these itself
// rather than through oneDNN 2.6's reorder primitives, which allocate on their worker threads on
// every run.
#pragma once

#include <cstdint>

namespace strata::cpu::uk {

enum class ActivationLayout { kChannelsFirst, kChannelsLast, kBlocked8, kBlocked16 };

struct LayoutCopy {
  ActivationLayout from = ActivationLayout::kChannelsFirst, to = ActivationLayout::kChannelsFirst;
  int64_t n = 0, c = 0, hw = 0;  // images, channels, spatial positions per image

  // Every pair of distinct layouts is supported but blocked-to-blocked.
  static bool Supported(ActivationLayout from, ActivationLayout to);
  // Floats a tensor of this shape takes in `layout` (blocked layouts round channels up).
  static int64_t Floats(ActivationLayout layout, int64_t n, int64_t c, int64_t hw);

  // dst in `to` from src in `from`, on all threads when large; src and dst must not overlap.
  void Run(const float* src, float* dst) const;
};

}  // namespace strata::cpu::uk
