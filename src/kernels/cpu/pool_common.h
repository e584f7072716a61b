// Attribute parsing and helpers the windowed (pool_max_average.cc) and global (pool_global.cc)
// pooling kernels share.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <string>

#include "kernels/cpu/nn_common.h"

namespace strata::cpu::pool {

using PoolFloatTypes = TypeList<float, double, Float16, BFloat16>;

// The layout a com.strata pooling node declares ("layout": NCHW or NHWC; written by the conv-layout
// pass, docs/passes.md); ONNX nodes are NCHW.
inline Status ReadLayout(const KernelInfo& info, bool& nhwc) {
  nhwc = false;
  if (info.node().domain != "com.strata") return Status::Ok();
  const std::string v = info.attr_string("layout", "NCHW");
  if (v != "NCHW" && v != "NHWC") return info.Error("layout must be NCHW or NHWC, got '" + v + "'");
  nhwc = v == "NHWC";
  if (nhwc) {
    RETURN_IF_ERROR(CheckInputDType(info, 0, {DType::kFloat}));
    const ir::TypeInfo* t = info.input_type(0);
    if (t && t->shape && t->shape->size() != 4) return info.Error("the NHWC layout needs a 4-D input");
  }
  return Status::Ok();
}

// ParallelFor threshold, in planes of `plane_size` elements, for going parallel above `elements`.
inline int64_t PlaneThreshold(int64_t plane_size, int64_t elements) {
  return std::max<int64_t>(2, elements / std::max<int64_t>(plane_size, 1));
}

// LpPool's p (a float in opset 1, an int since opset 2); 2 when absent.
inline float ReadP(const KernelInfo& info) {
  const ir::Attribute* a = info.attr("p");
  if (!a) return 2.f;
  return a->type == ir::Attribute::Type::kFloat ? a->f : static_cast<float>(a->i);
}

// One tap's term |v|^p, and the window's result sum^(1/p).
template <typename A>
inline A LpTerm(A v, float p) {
  if (p == 2.f) return v * v;
  if (p == 1.f) return std::abs(v);
  return std::pow(std::abs(v), static_cast<A>(p));
}
template <typename A>
inline A LpFinish(A sum, float p) {
  if (p == 2.f) return std::sqrt(sum);
  if (p == 1.f) return sum;
  return std::pow(sum, A(1) / static_cast<A>(p));
}

}  // namespace strata::cpu::pool
