// Pooling micro-kernels: float32 max and average over the rows a window covers, max over the 1-D
// windows along one row, channels-last global average, and the maximum rule every MaxPool path
// shares. The callers walk the windows; these only reduce.
//
// Every max here follows MaxBeats, so a result depends on neither the order taps are reduced in nor
// the ISA; every sum adds its rows in the order given.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <type_traits>

#include "kernels/cpu/ukernels/vec_math.h"

namespace strata::cpu::uk {

// Whether tap v replaces the running maximum `best`: it is larger, or NaN (NaN wins, first NaN
// kept), or +0 over -0 (IEEE 754-2019 maximum; x86 max returns its second operand on ties, so
// without this the sign of a zero maximum followed the tap order). Equal values otherwise keep the
// first, which MaxPool's Indices output reports.
template <typename A>
inline bool MaxBeats(A v, A best) {
  if constexpr (std::is_floating_point_v<A>)
    return v > best || (v != v && best == best) || (v == 0 && best == 0 && std::signbit(best) && !std::signbit(v));
  else return v > best;
}

// Valid tap range [lo, hi) along one dim of `in` elements for a window of k taps, d apart, starting
// at coordinate b (negative inside the leading pad).
inline void PoolTapRange(int64_t b, int64_t k, int64_t d, int64_t in, int64_t& lo, int64_t& hi) {
  if (b >= 0 && b + (k - 1) * d < in) {  // the common interior window, without divisions
    lo = 0;
    hi = k;
    return;
  }
  lo = b >= 0 ? 0 : (-b + d - 1) / d;
  hi = in - b <= 0 ? 0 : std::min<int64_t>(k, (in - b + d - 1) / d);
  if (hi < lo) hi = lo;
}

// y[i] (i < n) = the maximum, or the sum divided by `divisor`, over rows[r][i] for r < nrows, with
// y's previous contents folded in when `accumulate` (a long window reduced in batches; pass divisor
// 1 until the last batch). nrows may be 0 only when accumulating.
struct PoolRowsF32 {
  void (*max)(const float* const* rows, int64_t nrows, int64_t n, float* y, bool accumulate);
  void (*sum)(const float* const* rows, int64_t nrows, int64_t n, float* y, bool accumulate, float divisor);
};

// The row kernels for one vec::Isa level (AVX-512, or portable code below it); callers pass
// vec::Active().isa, which must not exceed vec::BestIsa().
PoolRowsF32 PoolRowsF32For(vec::Isa isa);

// 1-D max pooling of one row x of `in` floats: y[o] for o < out is the maximum over the taps
// x[o * stride - pad_begin + t * dilation], t < k, that lie inside the row; -inf for a window
// without any.
void MaxPoolRow1dF32(const float* x, int64_t in, int64_t k, int64_t stride, int64_t dilation, int64_t pad_begin,
                     float* y, int64_t out);

// Channels-last X [n, hw, c] -> Y [n, c], the mean of each channel over its hw positions (0 when hw
// is 0), summed in position order as a channels-first loop does, so both layouts give the same bits.
void GlobalAvgPoolChannelsLastF32(int64_t n, int64_t c, int64_t hw, const float* x, float* y);

}  // namespace strata::cpu::uk
