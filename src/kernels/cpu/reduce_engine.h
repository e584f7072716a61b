// A generic strided reduction engine shared by the Reduce* kernels and normalisations.
//
// The input shape is simplified first: size-1 dims are dropped and neighbouring dims that are
// both reduced (or both kept) are merged. The common layouts then get tight loops:
//   [K, R]      each output is a contiguous row (multi-accumulator loop the compiler vectorises)
//   [K1, R, K2] each output row of K2 accumulates contiguous slices (vectorised over K2)
// and everything else falls back to an odometer walk with the innermost dimension as a tight loop.
#pragma once

#include <algorithm>
#include <cstdint>
#include <span>

#include "core/status.h"
#include "core/tensor.h"
#include "kernels/cpu/common.h"

namespace strata::cpu {

// Holds its dims inline (Shape), so planning a reduction of rank <= Shape::kInline does not touch the heap.
struct ReducePlan {
  Shape dims;                   // simplified input dims: reduced and kept dims alternate
  bool first_reduced = false;   // whether dims[0] is reduced
  int64_t out_numel = 1;        // elements in the output
  int64_t count = 1;            // elements reduced into each output
  bool empty_input = false;     // some input dim is 0
  Shape out_shape_keep;         // output shape with reduced dims kept as 1
  Shape out_shape_drop;         // output shape with reduced dims removed
  bool reduced(size_t i) const { return first_reduced == (i % 2 == 0); }
};

// Plans the reduction of `in` over the dims i for which is_reduced(i) holds.
template <typename Pred>
ReducePlan MakeReducePlanIf(const Shape& in, const Pred& is_reduced) {
  ReducePlan p;
  bool prev = false;  // flag of p.dims.back()
  for (size_t i = 0; i < in.size(); ++i) {
    const int64_t d = in[i];
    const bool red = is_reduced(static_cast<int64_t>(i));
    if (red) {
      p.out_shape_keep.push_back(1);
      p.count *= d;
    } else {
      p.out_shape_keep.push_back(d);
      p.out_shape_drop.push_back(d);
      p.out_numel *= d;
    }
    if (d == 0) p.empty_input = true;
    if (d == 1) continue;
    if (!p.dims.empty() && prev == red) {
      p.dims.back() *= d;
    } else {
      if (p.dims.empty()) p.first_reduced = red;
      p.dims.push_back(d);
      prev = red;
    }
  }
  if (p.dims.empty()) {
    p.dims.push_back(1);
    p.first_reduced = false;
  }
  return p;
}

// Reduces over `axes`, each in [-rank, rank) (callers check with NormalizeAxis); duplicates are
// tolerated and an empty list reduces nothing.
inline ReducePlan MakeReducePlan(const Shape& in, std::span<const int64_t> axes) {
  const auto rank = static_cast<int64_t>(in.size());
  return MakeReducePlanIf(in, [&](int64_t i) {
    return std::any_of(axes.begin(), axes.end(), [&](int64_t a) { return (a < 0 ? a + rank : a) == i; });
  });
}

// Reduces over every axis.
inline ReducePlan MakeReduceAllPlan(const Shape& in) {
  return MakeReducePlanIf(in, [](int64_t) { return true; });
}

// Reduces one contiguous row with several independent accumulators (vectorisable).
template <typename Acc, typename In, typename Pre, typename Comb>
inline Acc ReduceRow(const In* x, int64_t n, Acc init, int64_t o, const Pre& pre, const Comb& comb) {
  constexpr int kW = 16;
  int64_t i = 0;
  Acc a = init;
  if (n >= 2 * kW) {
    Acc p[kW];
    for (int j = 0; j < kW; ++j) p[j] = init;
    for (; i + kW <= n; i += kW)
      for (int j = 0; j < kW; ++j) p[j] = comb(p[j], pre(static_cast<Acc>(x[i + j]), o));
    for (int j = 0; j < kW; ++j) a = comb(a, p[j]);
  }
  for (; i < n; ++i) a = comb(a, pre(static_cast<Acc>(x[i]), o));
  return a;
}

// acc[o] = comb(acc[o], pre(x, o)) over all x that reduce into o. `acc` holds plan.out_numel
// values, initialised by the caller (usually to the identity).
// pre(Acc value, int64_t out_index) -> Acc; comb(Acc, Acc) -> Acc.
template <typename Acc, typename In, typename Pre, typename Comb>
void ReduceInto(const ReducePlan& plan, const In* x, Acc* acc, Acc init, const Pre& pre, const Comb& comb) {
  if (plan.empty_input) return;
  const auto& d = plan.dims;
  auto r = [&plan](size_t i) { return plan.reduced(i); };
  const size_t n = d.size();
  const int64_t total = plan.out_numel * plan.count;
  if (n == 1 && !r(0)) {  // nothing reduced: elementwise
    ParallelFor(
        total,
        [&](int64_t b, int64_t e) {
          for (int64_t i = b; i < e; ++i) acc[i] = comb(acc[i], pre(static_cast<Acc>(x[i]), i));
        },
        1 << 16);
    return;
  }
  if (r(n - 1) && (n == 1 || (n == 2 && !r(0)))) {  // [K, R]
    const int64_t K = n == 1 ? 1 : d[0], R = d[n - 1];
    ParallelRows(K, R, [&](int64_t b, int64_t e) {
      for (int64_t k = b; k < e; ++k) acc[k] = comb(acc[k], ReduceRow<Acc>(x + k * R, R, init, k, pre, comb));
    });
    return;
  }
  if (!r(n - 1) && (n == 2 || (n == 3 && !r(0)))) {  // [R, K2] or [K1, R, K2]
    const int64_t K1 = n == 2 ? 1 : d[0], R = d[n - 2], K2 = d[n - 1];
    constexpr int64_t kChunk = 1024;
    const int64_t chunks = (K2 + kChunk - 1) / kChunk;
    ParallelRows(K1 * chunks, R * std::min(K2, kChunk), [&](int64_t job0, int64_t job1) {
      for (int64_t job = job0; job < job1; ++job) {
        const int64_t k1 = job / chunks, c0 = (job % chunks) * kChunk, c1 = std::min(K2, c0 + kChunk);
        Acc* a = acc + k1 * K2;
        const In* xb = x + k1 * R * K2;
        for (int64_t j = 0; j < R; ++j) {
          const In* xr = xb + j * K2;
          for (int64_t c = c0; c < c1; ++c) a[c] = comb(a[c], pre(static_cast<Acc>(xr[c]), k1 * K2 + c));
        }
      }
    });
    return;
  }
  // General: odometer over all but the last simplified dim.
  Strides ostride(n, 0);
  int64_t s = 1;
  for (size_t i = n; i-- > 0;) {
    if (!r(i)) {
      ostride[i] = s;
      s *= d[i];
    }
  }
  const int64_t L = d[n - 1];
  const bool last_red = r(n - 1);
  Shape idx(n, 0);
  int64_t o = 0;
  for (int64_t p = 0; p < total; p += L) {
    if (last_red) {
      acc[o] = comb(acc[o], ReduceRow<Acc>(x + p, L, init, o, pre, comb));
    } else {
      Acc* a = acc + o;
      const In* xr = x + p;
      for (int64_t k = 0; k < L; ++k) a[k] = comb(a[k], pre(static_cast<Acc>(xr[k]), o + k));
    }
    for (size_t i = n - 1; i-- > 0;) {
      ++idx[i];
      o += ostride[i];
      if (idx[i] < d[i]) break;
      o -= ostride[i] * d[i];
      idx[i] = 0;
    }
  }
}

}  // namespace strata::cpu
