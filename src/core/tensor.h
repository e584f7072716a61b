// Tensor: a dtype, a shape and a reference-counted, 64-byte-aligned, contiguous row-major buffer.
// Copies are shallow (they share the buffer); Clone() makes a deep copy.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "core/dtype.h"
#include "core/shape.h"
#include "core/status.h"

namespace strata {

int64_t NumElements(const Shape& shape);
// Row-major strides, in elements.
Strides ContiguousStrides(const Shape& shape);
std::string ShapeToString(const Shape& shape);

class Tensor {
 public:
  Tensor() = default;
  // Allocates a zero-filled tensor (strings are empty). Dimensions must be >= 0.
  Tensor(DType dtype, Shape shape);

  // Wraps memory owned by `owner` (an mmap'd file, a parsed protobuf) without copying.
  static Tensor Borrow(DType dtype, Shape shape, const void* data, std::shared_ptr<const void> owner);

  // Allocation that reports failure (huge or negative shapes from untrusted input) instead of throwing.
  static Result<Tensor> Create(DType dtype, Shape shape);
  // As Create, but the contents are left uninitialised (strings are still constructed empty), for
  // outputs a kernel overwrites completely. With STRATA_POISON_UNINITIALIZED=1 in the environment the
  // bytes are set to 0xFF instead, so a kernel that reads before writing shows up in tests.
  static Result<Tensor> CreateUninitialized(DType dtype, Shape shape);
  // Checks a shape and dtype the way Create does and returns the byte size.
  static Result<size_t> CheckedByteSize(DType dtype, const Shape& shape);

  template <typename T>
  static Tensor Scalar(T v) {
    Tensor t(DTypeOf<T>::value, {});
    *t.data<T>() = v;
    return t;
  }
  template <typename T>
  static Tensor FromVector(const std::vector<T>& v, Shape shape) {
    Tensor t(DTypeOf<T>::value, std::move(shape));
    for (size_t i = 0; i < v.size(); ++i) t.data<T>()[i] = v[i];
    return t;
  }

  bool defined() const { return dtype_ != DType::kUndefined; }
  DType dtype() const { return dtype_; }
  const Shape& shape() const { return shape_; }
  int rank() const { return static_cast<int>(shape_.size()); }
  int64_t dim(int i) const { return shape_[static_cast<size_t>(i)]; }
  int64_t numel() const { return numel_; }
  size_t nbytes() const { return static_cast<size_t>(numel_) * DTypeSize(dtype_); }

  template <typename T> T* data() { return static_cast<T*>(data_); }
  template <typename T> const T* data() const { return static_cast<const T*>(data_); }
  void* raw() { return data_; }
  const void* raw() const { return data_; }

  // Same buffer, new shape (element count must match).
  Tensor Reshaped(Shape shape) const;
  Tensor Clone() const;
  // True when this tensor's memory is also referenced elsewhere.
  bool SharesBuffer() const { return owner_.use_count() > 1; }

  // Reads element i as double / int64, whatever the dtype (not for strings).
  double GetAsDouble(int64_t i) const;
  int64_t GetAsInt64(int64_t i) const;

 private:
  DType dtype_ = DType::kUndefined;
  Shape shape_;
  int64_t numel_ = 0;
  void* data_ = nullptr;
  std::shared_ptr<const void> owner_;
};

}  // namespace strata
