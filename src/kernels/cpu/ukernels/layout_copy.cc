#include "kernels/cpu/ukernels/layout_copy.h"

#include <algorithm>
#include <cstring>

#include "kernels/cpu/ukernels/isa_region.h"
#include "kernels/cpu/ukernels/parallel.h"
#include "kernels/cpu/ukernels/strided_copy.h"
#include "kernels/cpu/ukernels/vec_math.h"

namespace strata::cpu::uk {
namespace {

constexpr int64_t kElementsPerTask = 1 << 16;  // 256 KiB

int64_t BlockOf(ActivationLayout l) {
  return l == ActivationLayout::kBlocked8 ? 8 : l == ActivationLayout::kBlocked16 ? 16 : 0;
}

// len pixels of a 3-channel image, planes `hw` apart, to interleaved [len, 3]: a model's input image.
// With the channel count fixed the loop vectorises (three loads, permuted stores); compiled for
// AVX-512 it runs twice as fast as the baseline build (0.1 against 0.2 ms for 8 images at 224x224).
void ThreeChannelsToLast(const float* from, int64_t hw, float* to, int64_t len) {
  for (int64_t j = 0; j < len; ++j)
    for (int ch = 0; ch < 3; ++ch) to[j * 3 + ch] = from[ch * hw + j];
}
STRATA_BEGIN_AVX512
void ThreeChannelsToLastAvx512(const float* from, int64_t hw, float* to, int64_t len) {
  for (int64_t j = 0; j < len; ++j)
    for (int ch = 0; ch < 3; ++ch) to[j * 3 + ch] = from[ch * hw + j];
}
STRATA_END_AVX512

// [n, 3, hw] -> [n, hw, 3].
void ImageToLast(const float* x, float* y, int64_t n, int64_t hw) {
  const auto copy = vec::Active().isa == vec::Isa::kAvx512 ? ThreeChannelsToLastAvx512 : ThreeChannelsToLast;
  ParallelFor(n * hw, [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end;) {
      const int64_t img = i / hw, p = i % hw, len = std::min(end - i, hw - p);  // within one image
      copy(x + img * 3 * hw + p, hw, y + i * 3, len);
      i += len;
    }
  }, kElementsPerTask);
}

// f(i, offset, k) for every run i (one pixel's B channels) of the blocked layout, in order: its
// channels-last offset and its count of real (not padding) channels.
template <int64_t B, typename F>
void ForEachRun(int64_t n, int64_t c, int64_t hw, F&& f) {
  const int64_t blocks = (c + B - 1) / B;
  ParallelFor(n * blocks * hw, [&](int64_t begin, int64_t end) {
    int64_t p = begin % hw, cb = begin / hw % blocks, img = begin / (hw * blocks);
    for (int64_t i = begin; i < end; ++i) {
      f(i, (img * hw + p) * c + cb * B, std::min(B, c - cb * B));
      if (++p == hw) {
        p = 0;
        if (++cb == blocks) {
          cb = 0;
          ++img;
        }
      }
    }
  }, kElementsPerTask / B);
}

template <int64_t B>
void LastToBlocked(const float* x, float* y, int64_t n, int64_t c, int64_t hw) {
  ForEachRun<B>(n, c, hw, [&](int64_t i, int64_t x_offset, int64_t k) {
    float* to = y + i * B;
    if (k == B) {  // a fixed-size copy compiles to vector moves; a variable one calls memmove
      std::memcpy(to, x + x_offset, B * sizeof(float));
      return;
    }
    std::copy(x + x_offset, x + x_offset + k, to);
    std::fill(to + k, to + B, 0.f);  // kernels read the padding
  });
}

template <int64_t B>
void BlockedToLast(const float* y, float* x, int64_t n, int64_t c, int64_t hw) {
  ForEachRun<B>(n, c, hw, [&](int64_t i, int64_t x_offset, int64_t k) {
    if (k == B) std::memcpy(x + x_offset, y + i * B, B * sizeof(float));
    else std::copy(y + i * B, y + i * B + k, x + x_offset);
  });
}

// Channels-first <-> blocked, one (image, channel block) plane of hw x B per task.
template <int64_t B, bool kToBlocked>
void FirstAndBlocked(const float* from, float* to, int64_t n, int64_t c, int64_t hw) {
  const int64_t blocks = (c + B - 1) / B;
  ParallelFor(n * blocks, [&](int64_t begin, int64_t end) {
    for (int64_t t = begin; t < end; ++t) {
      const int64_t img = t / blocks, cb = t % blocks, k = std::min(B, c - cb * B);
      const int64_t first = (img * c + cb * B) * hw, blocked = t * hw * B;
      if constexpr (kToBlocked) {
        for (int64_t p = 0; p < hw; ++p) {
          float* run = to + blocked + p * B;
          for (int64_t j = 0; j < k; ++j) run[j] = from[first + j * hw + p];
          for (int64_t j = k; j < B; ++j) run[j] = 0.f;
        }
      } else {
        for (int64_t j = 0; j < k; ++j)
          for (int64_t p = 0; p < hw; ++p) to[first + j * hw + p] = from[blocked + p * B + j];
      }
    }
  }, std::max<int64_t>(2, kElementsPerTask / std::max<int64_t>(hw * B, 1)));
}

}  // namespace

bool LayoutCopy::Supported(ActivationLayout from, ActivationLayout to) {
  return from != to && !(BlockOf(from) && BlockOf(to));
}

int64_t LayoutCopy::Floats(ActivationLayout layout, int64_t n, int64_t c, int64_t hw) {
  const int64_t b = BlockOf(layout);
  return n * (b ? (c + b - 1) / b * b : c) * hw;
}

void LayoutCopy::Run(const float* src, float* dst) const {
  using L = ActivationLayout;
  const int64_t b = std::max(BlockOf(from), BlockOf(to));
  if (from == L::kChannelsFirst && to == L::kChannelsLast) {
    // A model's input image has 1 or 3 channels, too few for StridedCopy's tiled transpose.
    if (c == 1) std::copy(src, src + n * hw, dst);
    else if (c == 3) ImageToLast(src, dst, n, hw);
    else tensor::StridedCopy(src, 0, Shape{n, hw, c}, {c * hw, 1, hw}, dst);
  } else if (from == L::kChannelsLast && to == L::kChannelsFirst) {
    tensor::StridedCopy(src, 0, Shape{n, c, hw}, {hw * c, 1, c}, dst);
  } else if (from == L::kChannelsLast) {
    (b == 8 ? LastToBlocked<8> : LastToBlocked<16>)(src, dst, n, c, hw);
  } else if (to == L::kChannelsLast) {
    (b == 8 ? BlockedToLast<8> : BlockedToLast<16>)(src, dst, n, c, hw);
  } else if (from == L::kChannelsFirst) {
    (b == 8 ? FirstAndBlocked<8, true> : FirstAndBlocked<16, true>)(src, dst, n, c, hw);
  } else {
    (b == 8 ? FirstAndBlocked<8, false> : FirstAndBlocked<16, false>)(src, dst, n, c, hw);
  }
}

}  // namespace strata::cpu::uk
