// Vectorised exp/max helpers for softmax-style loops.
//
// GCC will not if-convert the clamps of a scalar exp (float compares may trap under the default
// -ftrapping-math), so the float paths use GCC/Clang vector extensions explicitly: 4 floats per
// step.
#pragma once

#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>

namespace strata::cpu {

// 16-byte vectors: the x86-64 baseline (SSE2), so no ABI caveats; wider targets still use them well.
typedef float V8f __attribute__((vector_size(16)));
typedef int32_t V8i __attribute__((vector_size(16)));
constexpr int kVL = 4;  // lanes

inline V8f Load8(const float* p) {
  V8f v;
  std::memcpy(&v, p, sizeof(v));
  return v;
}
inline void Store8(float* p, V8f v) { std::memcpy(p, &v, sizeof(v)); }
inline V8f Splat8(float f) { return V8f{f, f, f, f}; }

// exp per lane: ~1e-7 relative error on the normal range; 0 below -87.3, inf above 88.7, NaN kept.
inline V8f Exp8(V8f x) {
  const V8f lo = Splat8(-87.33654f), hi = Splat8(88.72283f);
  V8f xc = x < lo ? lo : x;
  xc = xc > hi ? hi : xc;
  const V8f fx = xc * 1.44269504088896341f;
  const V8f half = fx >= 0.f ? Splat8(0.5f) : Splat8(-0.5f);
  const V8i n = __builtin_convertvector(fx + half, V8i);
  const V8f fn = __builtin_convertvector(n, V8f);
  V8f r = xc - fn * 0.693359375f;
  r = r + fn * 2.12194440e-4f;
  V8f p = Splat8(1.9875691500e-4f);
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  p = p * r * r + r + 1.0f;
  const V8i n1 = n >> 1, n2 = n - n1;
  const V8i b1 = (n1 + 127) << 23, b2 = (n2 + 127) << 23;
  V8f res = p * (V8f)b1 * (V8f)b2;
  res = x < lo ? Splat8(0.f) : res;
  res = x > hi ? Splat8(INFINITY) : res;
  return x != x ? x : res;
}

inline float VecExp(float x) { return Exp8(Splat8(x))[0]; }
inline double VecExp(double x) { return std::exp(x); }

// max over a contiguous row (-inf when empty).
inline float RowMax(const float* x, int64_t n) {
  int64_t i = 0;
  float m = -std::numeric_limits<float>::infinity();
  if (n >= kVL) {
    V8f mv = Load8(x);
    for (i = kVL; i + kVL <= n; i += kVL) {
      const V8f v = Load8(x + i);
      mv = v > mv ? v : mv;
    }
    for (int j = 0; j < kVL; ++j) m = mv[j] > m ? mv[j] : m;
  }
  for (; i < n; ++i) m = x[i] > m ? x[i] : m;
  return m;
}
inline double RowMax(const double* x, int64_t n) {
  double m = -std::numeric_limits<double>::infinity();
  for (int64_t i = 0; i < n; ++i) m = x[i] > m ? x[i] : m;
  return m;
}

// out[i] = exp(x[i] - shift) (when kStore) and returns the sum. out may alias x.
template <bool kStore>
inline float ExpShiftSum(const float* x, float shift, float* out, int64_t n) {
  int64_t i = 0;
  V8f acc = Splat8(0.f);
  const V8f sh = Splat8(shift);
  for (; i + kVL <= n; i += kVL) {
    const V8f e = Exp8(Load8(x + i) - sh);
    if constexpr (kStore) Store8(out + i, e);
    acc += e;
  }
  float s = 0;
  for (int j = 0; j < kVL; ++j) s += acc[j];
  for (; i < n; ++i) {
    const float e = VecExp(x[i] - shift);
    if constexpr (kStore) out[i] = e;
    s += e;
  }
  return s;
}
template <bool kStore>
inline double ExpShiftSum(const double* x, double shift, double* out, int64_t n) {
  double s = 0;
  for (int64_t i = 0; i < n; ++i) {
    const double e = std::exp(x[i] - shift);
    if constexpr (kStore) out[i] = e;
    s += e;
  }
  return s;
}

// m[j] = max(m[j], x[j]) elementwise.
inline void MaxInto(const float* x, float* m, int64_t n) {
  int64_t i = 0;
  for (; i + kVL <= n; i += kVL) {
    const V8f v = Load8(x + i), mv = Load8(m + i);
    Store8(m + i, v > mv ? v : mv);
  }
  for (; i < n; ++i) m[i] = x[i] > m[i] ? x[i] : m[i];
}
inline void MaxInto(const double* x, double* m, int64_t n) {
  for (int64_t i = 0; i < n; ++i) m[i] = x[i] > m[i] ? x[i] : m[i];
}

// e = exp(x[j] - shift[j]); s[j] += e; out[j] = e when kStore (out may alias x).
template <bool kStore>
inline void ExpShiftAccum(const float* x, const float* shift, float* out, float* s, int64_t n) {
  int64_t i = 0;
  for (; i + kVL <= n; i += kVL) {
    const V8f e = Exp8(Load8(x + i) - Load8(shift + i));
    if constexpr (kStore) Store8(out + i, e);
    Store8(s + i, Load8(s + i) + e);
  }
  for (; i < n; ++i) {
    const float e = VecExp(x[i] - shift[i]);
    if constexpr (kStore) out[i] = e;
    s[i] += e;
  }
}
template <bool kStore>
inline void ExpShiftAccum(const double* x, const double* shift, double* out, double* s, int64_t n) {
  for (int64_t i = 0; i < n; ++i) {
    const double e = std::exp(x[i] - shift[i]);
    if constexpr (kStore) out[i] = e;
    s[i] += e;
  }
}

}  // namespace strata::cpu
