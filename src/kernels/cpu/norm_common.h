// Parameter reading, statistics and affine helpers the normalisation kernels (norm_*.cc) share.
#pragma once

#include <cmath>
#include <cstdint>
#include <string>
#include <type_traits>
#include <vector>

#include "kernels/cpu/common.h"
#include "kernels/cpu/reduce_engine.h"

namespace strata::cpu::norm {

template <typename T>
inline T FromDouble(double v) {
  return T(static_cast<ComputeType<T>>(v));
}

// Reads a small parameter tensor of any float dtype.
inline std::vector<double> ReadParams(const Tensor& t) {
  std::vector<double> v(static_cast<size_t>(t.numel()));
  for (int64_t i = 0; i < t.numel(); ++i) v[static_cast<size_t>(i)] = t.GetAsDouble(i);
  return v;
}

inline Status CheckFloat(const Tensor& t, const char* what) {
  if (!IsFloatingPoint(t.dtype()))
    return InvalidArgument(std::string(what) + " must be a floating-point tensor, got " + std::string(DTypeName(t.dtype())));
  return Status::Ok();
}

// Writes doubles into a float tensor of any float dtype.
inline Status WriteDoubles(Tensor* t, const std::vector<double>& v) {
  return Dispatch(FloatTypes{}, t->dtype(), [&](auto* tag) {
    using T = std::remove_pointer_t<decltype(tag)>;
    T* d = t->data<T>();
    for (size_t i = 0; i < v.size(); ++i) d[i] = FromDouble<T>(v[i]);
    return Status::Ok();
  });
}

// Mean and population variance of a contiguous run (two passes, double accumulation with
// independent partial sums so the loops vectorise).
template <typename T>
inline void MeanVar(const T* x, int64_t n, double& mean, double& var) {
  auto plus = [](double a, double b) { return a + b; };
  const double s = ReduceRow<double>(x, n, 0.0, 0, [](double v, int64_t) { return v; }, plus);
  mean = n > 0 ? s / static_cast<double>(n) : 0.0;
  const double m = mean;
  const double q = ReduceRow<double>(x, n, 0.0, 0, [m](double v, int64_t) { return (v - m) * (v - m); }, plus);
  var = n > 0 ? q / static_cast<double>(n) : 0.0;
}

// y[i] = x[i] * a + b over a contiguous run, in the compute type.
template <typename T>
inline void AffineRun(const T* x, T* y, int64_t n, double a, double b) {
  using C = ComputeType<T>;
  const C ca = static_cast<C>(a), cb = static_cast<C>(b);
  for (int64_t i = 0; i < n; ++i) y[i] = T(static_cast<C>(x[i]) * ca + cb);
}

}  // namespace strata::cpu::norm
