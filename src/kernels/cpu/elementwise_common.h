// Shared machinery for the elementwise kernels: load/store through the compute type and an
// N-input broadcasting row iterator that collapses dimensions so the innermost loop is a plain
// contiguous (or scalar-broadcast) run the compiler can vectorise. (ParallelFor is in common.h.)
#pragma once

#include <omp.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdint>
#include <string>
#include <type_traits>
#include <vector>

#include "kernels/cpu/common.h"

namespace strata::cpu::ew {

// ---- element access through the compute type ----
template <typename T>
inline const T& Load(const T& x) { return x; }
inline float Load(const Float16& x) { return static_cast<float>(x); }
inline float Load(const BFloat16& x) { return static_cast<float>(x); }

template <typename T, typename C>
inline T Store(C v) {
  if constexpr (std::is_same_v<T, Float16> || std::is_same_v<T, BFloat16>) {
    return T(static_cast<float>(v));
  } else {
    return static_cast<T>(v);
  }
}

template <typename T>
inline constexpr bool kIs16BitFloat = std::is_same_v<T, Float16> || std::is_same_v<T, BFloat16>;

template <typename T>
inline constexpr bool kIsFloat = std::is_floating_point_v<T> || kIs16BitFloat<T>;

// Type lists used by several kernels.
using BoolTypes = TypeList<bool>;
using NumericAndBool = TypeList<float, double, Float16, BFloat16, int8_t, int16_t, int32_t, int64_t, uint8_t,
                                uint16_t, uint32_t, uint64_t, bool>;

// ---- broadcasting plan ----
// Output dims collapsed as far as possible; per input, the element stride along each collapsed dim
// (0 where broadcast). The innermost stride of every input is 0 or 1.
template <int K>
struct BroadcastPlan {
  Shape dims;                        // collapsed output dims, at least one
  std::array<Strides, K> strides;    // per input, per collapsed dim
  std::array<bool, K> step{};                     // input advances along the innermost dim
  int64_t inner = 1;
  int64_t rows = 1;
  int64_t total = 0;
};

// `ins` are right-aligned against `out`; every input dim must equal the output dim or be 1.
template <int K>
Status MakePlan(const std::array<const Shape*, K>& ins, const Shape& out, BroadcastPlan<K>* p) {
  const size_t rank = out.size();
  std::array<Strides, K> full;
  for (int k = 0; k < K; ++k) {
    const Shape& s = *ins[static_cast<size_t>(k)];
    if (s.size() > rank) return InvalidArgument("input rank exceeds broadcast output rank");
    full[static_cast<size_t>(k)].assign(rank, 0);
    const size_t off = rank - s.size();
    int64_t stride = 1;
    for (size_t i = s.size(); i-- > 0;) {
      if (s[i] != out[off + i] && s[i] != 1)
        return InvalidArgument("shape " + ShapeToString(s) + " cannot be broadcast to " + ShapeToString(out));
      full[static_cast<size_t>(k)][off + i] = s[i] == 1 ? 0 : stride;
      stride *= s[i];
    }
  }
  p->dims.clear();
  for (auto& v : p->strides) v.clear();
  p->total = NumElements(out);
  for (size_t i = 0; i < rank; ++i) {
    if (out[i] == 1) continue;
    bool merge = !p->dims.empty();
    for (int k = 0; k < K && merge; ++k) {
      const auto uk = static_cast<size_t>(k);
      // Merging dim i into the previous one keeps offsets linear when prev_stride == stride * out[i].
      merge = p->strides[uk].back() == full[uk][i] * out[i];
    }
    if (merge) {
      p->dims.back() *= out[i];
      for (int k = 0; k < K; ++k) p->strides[static_cast<size_t>(k)].back() = full[static_cast<size_t>(k)][i];
    } else {
      p->dims.push_back(out[i]);
      for (int k = 0; k < K; ++k) p->strides[static_cast<size_t>(k)].push_back(full[static_cast<size_t>(k)][i]);
    }
  }
  if (p->dims.empty()) {
    p->dims.push_back(1);
    for (auto& v : p->strides) v.push_back(0);
  }
  p->inner = p->dims.back();
  p->rows = p->inner == 0 ? 0 : p->total / p->inner;
  for (int k = 0; k < K; ++k) p->step[static_cast<size_t>(k)] = p->strides[static_cast<size_t>(k)].back() != 0;
  return Status::Ok();
}

// Calls f(out_offset, in_offsets (std::array<int64_t,K>), length) over contiguous runs of the
// innermost dim. Each input k advances by plan.step[k] (0 or 1) per element within a run.
template <int K, typename F>
void ForEachRun(const BroadcastPlan<K>& p, F&& f) {
  if (p.total == 0) return;
  const int nd = static_cast<int>(p.dims.size());
  const int64_t inner = p.inner;
  // Runs rows [r0, r1) with an odometer over the outer dims.
  auto run_rows = [&](int64_t r0, int64_t r1) {
    Shape idx(static_cast<size_t>(nd), 0);
    std::array<int64_t, K> off{};
    int64_t rem = r0;
    for (int d = nd - 2; d >= 0; --d) {
      const auto ud = static_cast<size_t>(d);
      idx[ud] = rem % p.dims[ud];
      rem /= p.dims[ud];
      for (int k = 0; k < K; ++k) off[static_cast<size_t>(k)] += idx[ud] * p.strides[static_cast<size_t>(k)][ud];
    }
    for (int64_t r = r0; r < r1; ++r) {
      f(r * inner, off, inner);
      for (int d = nd - 2; d >= 0; --d) {
        const auto ud = static_cast<size_t>(d);
        for (int k = 0; k < K; ++k) off[static_cast<size_t>(k)] += p.strides[static_cast<size_t>(k)][ud];
        if (++idx[ud] < p.dims[ud]) break;
        for (int k = 0; k < K; ++k) off[static_cast<size_t>(k)] -= p.strides[static_cast<size_t>(k)][ud] * p.dims[ud];
        idx[ud] = 0;
      }
    }
  };
  const int threads = omp_get_max_threads();
  if (p.total < kParallelThreshold || threads <= 1 || omp_in_parallel()) {
    run_rows(0, p.rows);
    return;
  }
  if (p.rows >= 4 * threads) {
    // Enough rows: give each thread a contiguous block of rows.
    const int64_t rows_per_unit = std::max<int64_t>(1, kParallelThreshold / 2 / std::max<int64_t>(inner, 1));
    const int64_t units = std::min<int64_t>(threads, (p.rows + rows_per_unit - 1) / rows_per_unit);
#pragma omp parallel for num_threads(static_cast<int>(units)) schedule(static)
    for (int64_t u = 0; u < units; ++u) {
      const int64_t r0 = p.rows * u / units, r1 = p.rows * (u + 1) / units;
      if (r0 < r1) run_rows(r0, r1);
    }
    return;
  }
  // Few long rows: split each row.
  for (int64_t r = 0; r < p.rows; ++r) {
    std::array<int64_t, K> off{};
    int64_t rem = r;
    for (int d = nd - 2; d >= 0; --d) {
      const auto ud = static_cast<size_t>(d);
      const int64_t i = rem % p.dims[ud];
      rem /= p.dims[ud];
      for (int k = 0; k < K; ++k) off[static_cast<size_t>(k)] += i * p.strides[static_cast<size_t>(k)][ud];
    }
    ParallelFor(inner, [&](int64_t b, int64_t e) {
      std::array<int64_t, K> o2 = off;
      for (int k = 0; k < K; ++k) o2[static_cast<size_t>(k)] += p.step[static_cast<size_t>(k)] ? b : 0;
      f(r * inner + b, o2, e - b);
    });
  }
}

// ---- binary apply ----
// out[i] = op(Load(a[.]), Load(b[.])) stored as TO, with broadcasting per `plan`.
template <typename TA, typename TB, typename TO, typename Op>
void BinaryLoop(const TA* a, const TB* b, TO* o, const BroadcastPlan<2>& p, const Op& op) {
  const bool sa = p.step[0], sb = p.step[1];
  ForEachRun<2>(p, [&](int64_t oo, const std::array<int64_t, 2>& off, int64_t n) {
    const TA* pa = a + off[0];
    const TB* pb = b + off[1];
    TO* po = o + oo;
    if (sa && sb) {
      for (int64_t k = 0; k < n; ++k) po[k] = Store<TO>(op(Load(pa[k]), Load(pb[k])));
    } else if (sa) {
      const auto vb = Load(pb[0]);
      for (int64_t k = 0; k < n; ++k) po[k] = Store<TO>(op(Load(pa[k]), vb));
    } else if (sb) {
      const auto va = Load(pa[0]);
      for (int64_t k = 0; k < n; ++k) po[k] = Store<TO>(op(va, Load(pb[k])));
    } else {
      const TO v = Store<TO>(op(Load(pa[0]), Load(pb[0])));
      for (int64_t k = 0; k < n; ++k) po[k] = v;
    }
  });
}

// Applies a binary op to two tensors already validated to broadcast to `out_shape`.
template <typename TA, typename TB, typename TO, typename Op>
Status BinaryApply(const Tensor& a, const Shape& a_shape, const Tensor& b, const Shape& b_shape, Tensor* out,
                   const Op& op) {
  BroadcastPlan<2> plan;
  RETURN_IF_ERROR(MakePlan<2>({&a_shape, &b_shape}, out->shape(), &plan));
  BinaryLoop<TA, TB, TO>(a.data<TA>(), b.data<TB>(), out->data<TO>(), plan, op);
  return Status::Ok();
}

// Unary map with the compute type.
template <typename TI, typename TO, typename Op>
void UnaryLoop(const TI* in, TO* out, int64_t n, const Op& op, int64_t threshold = kParallelThreshold) {
  ParallelFor(
      n,
      [&](int64_t b, int64_t e) {
        for (int64_t i = b; i < e; ++i) out[i] = Store<TO>(op(Load(in[i])));
      },
      threshold);
}

// Shape handling for binary ops before opset 7: attributes `broadcast` and `axis`. Returns the
// shape B should be viewed with (same rank as A) and checks compatibility. Output shape is A's.
Result<Shape> LegacyBroadcastShape(const Shape& a, const Shape& b, bool broadcast, bool has_axis, int64_t axis);

// Resolves shapes of a binary op: numpy broadcasting (opset >= 7) or legacy rules.
struct BinaryShapes {
  Shape a, b, out;
};
struct LegacyBroadcast {
  bool legacy = false;  // opset < 7 semantics in force
  bool broadcast = false;
  bool has_axis = false;
  int64_t axis = 0;
  void Init(const KernelInfo& info, int first_numpy_opset = 7) {
    legacy = info.opset() < first_numpy_opset;
    broadcast = info.attr_int("broadcast", 0) != 0;
    has_axis = info.has_attr("axis");
    axis = info.attr_int("axis", 0);
  }
  Result<BinaryShapes> Resolve(const Shape& a, const Shape& b) const;
};

}  // namespace strata::cpu::ew
