// uk::LayoutCopy against index arithmetic, for every supported pair of layouts, with channel counts
// that leave a partial block, at 1 and 2 threads and every ISA level this CPU has.
#include <gtest/gtest.h>
#include <omp.h>

#include <cmath>
#include <vector>

#include "isa_scope.h"
#include "kernels/cpu/ukernels/layout_copy.h"

namespace strata::testing {
namespace {

using cpu::uk::ActivationLayout;
using cpu::uk::LayoutCopy;

int64_t BlockOf(ActivationLayout l) {
  return l == ActivationLayout::kBlocked8 ? 8 : l == ActivationLayout::kBlocked16 ? 16 : 0;
}

// Offset of element (img, ch, p) in `layout`.
int64_t Offset(ActivationLayout l, int64_t c, int64_t hw, int64_t img, int64_t ch, int64_t p) {
  switch (l) {
    case ActivationLayout::kChannelsFirst: return (img * c + ch) * hw + p;
    case ActivationLayout::kChannelsLast: return (img * hw + p) * c + ch;
    default: {
      const int64_t b = BlockOf(l), blocks = (c + b - 1) / b;
      return ((img * blocks + ch / b) * hw + p) * b + ch % b;
    }
  }
}

TEST(LayoutCopy, EveryPairMatchesIndexArithmetic) {
  const ActivationLayout all[] = {ActivationLayout::kChannelsFirst, ActivationLayout::kChannelsLast,
                                  ActivationLayout::kBlocked8, ActivationLayout::kBlocked16};
  const int saved_threads = omp_get_max_threads();
  for (cpu::vec::Isa isa : AvailableIsas()) {
    IsaScope scope(isa);
    for (int threads : {1, 2}) {
      omp_set_num_threads(threads);
      // 3 channels take the image path; 24 leave half a 16-block; the big one goes parallel.
      for (auto [n, c, hw] : {std::tuple<int64_t, int64_t, int64_t>{2, 3, 37}, {1, 1, 9}, {2, 13, 5}, {3, 24, 11},
                              {1, 40, 3000}}) {
        for (ActivationLayout from : all)
          for (ActivationLayout to : all) {
            if (!LayoutCopy::Supported(from, to)) continue;
            SCOPED_TRACE(::testing::Message() << "isa=" << static_cast<int>(isa) << " threads=" << threads
                                              << " n=" << n << " c=" << c << " hw=" << hw << " from="
                                              << static_cast<int>(from) << " to=" << static_cast<int>(to));
            std::vector<float> src(static_cast<size_t>(LayoutCopy::Floats(from, n, c, hw)), NAN);
            std::vector<float> dst(static_cast<size_t>(LayoutCopy::Floats(to, n, c, hw)), NAN);
            for (int64_t img = 0; img < n; ++img)
              for (int64_t ch = 0; ch < c; ++ch)
                for (int64_t p = 0; p < hw; ++p)
                  src[static_cast<size_t>(Offset(from, c, hw, img, ch, p))] = static_cast<float>((img * c + ch) * hw + p);
            LayoutCopy{from, to, n, c, hw}.Run(src.data(), dst.data());
            for (int64_t img = 0; img < n; ++img)
              for (int64_t ch = 0; ch < c; ++ch)
                for (int64_t p = 0; p < hw; ++p)
                  ASSERT_EQ(dst[static_cast<size_t>(Offset(to, c, hw, img, ch, p))],
                            static_cast<float>((img * c + ch) * hw + p))
                      << "img=" << img << " ch=" << ch << " p=" << p;
            // Kernels read a blocked layout's padding channels, so they must be zeros.
            if (const int64_t b = BlockOf(to); b && c % b) {
              for (int64_t img = 0; img < n; ++img)
                for (int64_t ch = c; ch < (c + b - 1) / b * b; ++ch)
                  for (int64_t p = 0; p < hw; ++p)
                    ASSERT_EQ(dst[static_cast<size_t>(Offset(to, c, hw, img, ch, p))], 0.f) << "padding ch=" << ch;
            }
          }
      }
    }
  }
  omp_set_num_threads(saved_threads);
}

}  // namespace
}  // namespace strata::testing
