// Helpers shared by the control-flow and sequence kernels: copying blocks of elements of any
// dtype (strings included), taking a slice along an axis and writing one back.
#pragma once

#include <cstdint>
#include <cstring>
#include <string>

#include "core/tensor.h"
#include "kernels/cpu/common.h"

namespace strata::cpu {

// Copies `count` elements from src[src_off..] to dst[dst_off..] (offsets in elements).
inline void CopyElements(Tensor& dst, int64_t dst_off, const Tensor& src, int64_t src_off, int64_t count) {
  if (count <= 0) return;
  if (src.dtype() == DType::kString) {
    const std::string* s = src.data<std::string>() + src_off;
    std::string* d = dst.data<std::string>() + dst_off;
    for (int64_t i = 0; i < count; ++i) d[i] = s[i];
    return;
  }
  const size_t es = DTypeSize(src.dtype());
  std::memcpy(static_cast<char*>(dst.raw()) + static_cast<size_t>(dst_off) * es,
              static_cast<const char*>(src.raw()) + static_cast<size_t>(src_off) * es, static_cast<size_t>(count) * es);
}

// Product of dims [from, to).
inline int64_t DimProduct(const Shape& s, size_t from, size_t to) {
  int64_t p = 1;
  for (size_t i = from; i < to && i < s.size(); ++i) p *= s[i];
  return p;
}

// Extracts index `idx` along `axis` (the axis is removed from the result).
inline Result<Tensor> SliceAlongAxis(const Tensor& t, int axis, int64_t idx) {
  const Shape& s = t.shape();
  const auto ua = static_cast<size_t>(axis);
  Shape out_shape;
  for (size_t i = 0; i < s.size(); ++i)
    if (i != ua) out_shape.push_back(s[i]);
  ASSIGN_OR_RETURN(Tensor out, Tensor::Create(t.dtype(), out_shape));
  const int64_t outer = DimProduct(s, 0, ua), inner = DimProduct(s, ua + 1, s.size()), n = s[ua];
  if (outer == 1) {
    CopyElements(out, 0, t, idx * inner, inner);
  } else {
    for (int64_t o = 0; o < outer; ++o) CopyElements(out, o * inner, t, (o * n + idx) * inner, inner);
  }
  return out;
}

// Writes `part` (shape of `dst` without `axis`) into index `idx` along `axis` of dst.
inline void WriteAlongAxis(Tensor& dst, int axis, int64_t idx, const Tensor& part) {
  const Shape& s = dst.shape();
  const auto ua = static_cast<size_t>(axis);
  const int64_t outer = DimProduct(s, 0, ua), inner = DimProduct(s, ua + 1, s.size()), n = s[ua];
  for (int64_t o = 0; o < outer; ++o) CopyElements(dst, (o * n + idx) * inner, part, o * inner, inner);
}

inline std::string KindName(const Value& v) {
  return v.is_none() ? "an empty optional" : v.is_tensor() ? "a tensor" : "a sequence";
}

}  // namespace strata::cpu
