// Branch-free exp the compiler can vectorise, for softmax-style loops.
#pragma once

#include <cmath>
#include <cstdint>
#include <cstring>

namespace strata::cpu {

// exp(x) for float with ~2 ulp accuracy on the normal range; 0 below -87.3, inf above 88.7, NaN kept.
inline float VecExp(float x) {
  const float xc = x < -87.33654f ? -87.33654f : (x > 88.72283f ? 88.72283f : x);
  const float fx = xc * 1.44269504088896341f;
  const int32_t n = static_cast<int32_t>(fx + (fx >= 0.f ? 0.5f : -0.5f));
  const float fn = static_cast<float>(n);
  float r = xc - fn * 0.693359375f;
  r = r + fn * 2.12194440e-4f;
  // exp(r) on |r| <= ln2/2: degree-6 Taylor/minimax polynomial.
  float p = 1.9875691500e-4f;
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  p = p * r * r + r + 1.0f;
  // 2^n via the exponent bits; n is within [-126, 128] after clamping, split to stay normal.
  const int32_t n1 = n >> 1, n2 = n - n1;
  const uint32_t b1 = static_cast<uint32_t>(n1 + 127) << 23, b2 = static_cast<uint32_t>(n2 + 127) << 23;
  float s1, s2;
  std::memcpy(&s1, &b1, 4);
  std::memcpy(&s2, &b2, 4);
  float res = p * s1 * s2;
  res = x < -87.33654f ? 0.f : res;
  res = x > 88.72283f ? INFINITY : res;
  return x != x ? x : res;
}

inline double VecExp(double x) { return std::exp(x); }

}  // namespace strata::cpu
