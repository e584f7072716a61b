// Helpers shared by the tensor-manipulation kernels (tensor_*.cc): dtype dispatch by element
// size for pure data movement, strided copies, and small index utilities.
#pragma once

#include <cstdint>
#include <cstring>
#include <string>
#include <type_traits>

#include "kernels/cpu/common.h"
#include "kernels/cpu/ukernels/strided_copy.h"

// Inside a DispatchBySize lambda taking `auto* tag`: names the element type T.
#define TENSOR_ELEM_T using T = std::remove_pointer_t<decltype(tag)>

namespace strata::cpu::tensor {

// 16-byte plain element (complex128) for size-based dispatch.
struct Pod16 {
  uint64_t a, b;
};

// Calls f with a T* tag where T is an unsigned integer of the element size (or Pod16, or
// std::string for strings). For kernels that only move elements around.
template <typename F>
Status DispatchBySize(DType dt, F&& f) {
  if (dt == DType::kString) return f(static_cast<std::string*>(nullptr));
  switch (DTypeSize(dt)) {
    case 1: return f(static_cast<uint8_t*>(nullptr));
    case 2: return f(static_cast<uint16_t*>(nullptr));
    case 4: return f(static_cast<uint32_t*>(nullptr));
    case 8: return f(static_cast<uint64_t*>(nullptr));
    case 16: return f(static_cast<Pod16*>(nullptr));
    default: return Unsupported("dtype " + std::string(DTypeName(dt)) + " is not supported here");
  }
}

// Shape/strides simplification, in place: drops size-1 dims and merges dims that are contiguous in the input.
inline void CoalesceDims(Shape& shape, Strides& strides) {
  size_t n = 0;  // dims kept so far, in shape[0, n) and strides[0, n)
  for (size_t i = 0; i < shape.size(); ++i) {
    if (shape[i] == 1) continue;
    if (n > 0 && strides[n - 1] == strides[i] * shape[i]) {
      shape[n - 1] *= shape[i];
      strides[n - 1] = strides[i];
    } else {
      shape[n] = shape[i];
      strides[n] = strides[i];
      ++n;
    }
  }
  shape.resize(n);
  strides.resize(n);
}

// Copies the strided view (base, shape, strides) of `in` into the contiguous, already allocated `out`.
inline Status PermutedCopy(const Tensor& in, int64_t base, Shape shape, Strides strides, Tensor* out) {
  CoalesceDims(shape, strides);
  return DispatchBySize(in.dtype(), [&](auto* tag) {
    TENSOR_ELEM_T;
    StridedCopy(in.data<T>(), base, shape, strides, out->data<T>());
    return Status::Ok();
  });
}

// Wraps an index in [-n, n) into [0, n); returns false when out of range.
inline bool WrapIndex(int64_t& i, int64_t n) {
  if (i < -n || i >= n) return false;
  if (i < 0) i += n;
  return true;
}

// Reads integer input i (int32 or int64, scalar or 1-D) for a kernel's parameters (shapes, axes, starts...).
// The result is a Shape, whose storage is inline up to Shape::kInline values, so Compute does not touch the heap.
inline Result<Shape> ReadIntsInput(const KernelContext& ctx, int i, const char* name) {
  const Tensor& t = ctx.input_tensor(i);
  if (t.dtype() != DType::kInt64 && t.dtype() != DType::kInt32)
    return InvalidArgument(ctx.Where() + "input '" + name + "': expected an int32/int64 tensor, got " +
                           std::string(DTypeName(t.dtype())));
  Shape v(static_cast<size_t>(t.numel()));
  for (int64_t k = 0; k < t.numel(); ++k) v[static_cast<size_t>(k)] = t.GetAsInt64(k);
  return v;
}

}  // namespace strata::cpu::tensor
