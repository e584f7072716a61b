#include "core/tensor.h"

#include <malloc.h>

#include <cstdlib>
#include <cstring>
#include <limits>
#include <new>

namespace strata {
namespace {

constexpr size_t kAlignment = 64;
// glibc serves large blocks with mmap and returns them on free, so every run of a model would
// page-fault its activations back in (perf: most of MobileNetV2's time). Keeping freed memory in
// the heap lets the next run reuse it. The static memory plan will replace per-tensor allocation.
const bool kHeapTuned = [] {
  mallopt(M_MMAP_THRESHOLD, 512 << 20);
  mallopt(M_TRIM_THRESHOLD, 1 << 30);
  return true;
}();

// Refuse single allocations above this (guards against hostile shapes).
constexpr uint64_t kMaxTensorBytes = uint64_t{64} << 30;

struct AlignedBuffer {
  AlignedBuffer(void* p, DType t, int64_t n) : ptr(p), dtype(t), count(n) {}
  AlignedBuffer(const AlignedBuffer&) = delete;
  AlignedBuffer& operator=(const AlignedBuffer&) = delete;
  void* ptr;
  DType dtype;
  int64_t count;
  ~AlignedBuffer() {
    if (dtype == DType::kString) {
      auto* s = static_cast<std::string*>(ptr);
      for (int64_t i = 0; i < count; ++i) s[i].~basic_string();
    }
    std::free(ptr);
  }
};

template <typename T>
double AsDouble(const void* p, int64_t i) { return static_cast<double>(static_cast<const T*>(p)[i]); }

}  // namespace

Strides ContiguousStrides(const Shape& shape) {
  Strides s(shape.size(), 1);
  for (int i = static_cast<int>(shape.size()) - 2; i >= 0; --i)
    s[static_cast<size_t>(i)] = s[static_cast<size_t>(i) + 1] * shape[static_cast<size_t>(i) + 1];
  return s;
}

int64_t NumElements(const Shape& shape) {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  return n;
}

std::string ShapeToString(const Shape& shape) {
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); ++i) {
    if (i) s += ",";
    s += std::to_string(shape[i]);
  }
  return s + "]";
}

Result<size_t> Tensor::CheckedByteSize(DType dtype, const Shape& shape) {
  if (dtype == DType::kUndefined) return InvalidArgument("cannot allocate a tensor of undefined dtype");
  uint64_t n = 1;
  for (int64_t d : shape) {
    if (d < 0) return InvalidArgument("negative dimension in shape " + ShapeToString(shape));
    if (d != 0 && n > std::numeric_limits<uint64_t>::max() / static_cast<uint64_t>(d))
      return InvalidArgument("shape " + ShapeToString(shape) + " overflows");
    n *= static_cast<uint64_t>(d);
  }
  const uint64_t elem = DTypeSize(dtype);
  if (n > kMaxTensorBytes / elem)
    return InvalidArgument("tensor of shape " + ShapeToString(shape) + " and dtype " +
                           std::string(DTypeName(dtype)) + " exceeds the 64 GiB allocation limit");
  return static_cast<size_t>(n * elem);
}

namespace {

enum class Fill { kZero, kNone };

// Read on first use, so a test driver can set the variable at the start of main().
bool PoisonUninitialized() {
  static const bool on = [] {
    const char* v = std::getenv("STRATA_POISON_UNINITIALIZED");
    return v && *v && std::strcmp(v, "0") != 0;
  }();
  return on;
}

Result<Tensor> Allocate(DType dtype, Shape shape, Fill fill) {
  ASSIGN_OR_RETURN(const size_t bytes, Tensor::CheckedByteSize(dtype, shape));
  const int64_t n = static_cast<int64_t>(bytes / DTypeSize(dtype));
  size_t alloc = (bytes + kAlignment - 1) / kAlignment * kAlignment;
  if (alloc == 0) alloc = kAlignment;
  void* p = std::aligned_alloc(kAlignment, alloc);
  if (!p) return InvalidArgument("out of memory allocating " + std::to_string(bytes) + " bytes");
  if (dtype == DType::kString) {
    auto* s = static_cast<std::string*>(p);
    for (int64_t i = 0; i < n; ++i) new (&s[i]) std::string();
  } else if (fill == Fill::kZero) {
    std::memset(p, 0, alloc);
  } else if (PoisonUninitialized()) {
    std::memset(p, 0xFF, alloc);
  }
  auto owner = std::make_shared<AlignedBuffer>(p, dtype, n);
  return Tensor::Borrow(dtype, std::move(shape), p, std::move(owner));
}

}  // namespace

Result<Tensor> Tensor::Create(DType dtype, Shape shape) { return Allocate(dtype, std::move(shape), Fill::kZero); }

Result<Tensor> Tensor::CreateUninitialized(DType dtype, Shape shape) {
  return Allocate(dtype, std::move(shape), Fill::kNone);
}

Tensor::Tensor(DType dtype, Shape shape) {
  auto r = Create(dtype, std::move(shape));
  if (!r.ok()) throw std::bad_alloc();
  *this = std::move(r).value();
}

Tensor Tensor::Borrow(DType dtype, Shape shape, const void* data, std::shared_ptr<const void> owner) {
  Tensor t;
  t.dtype_ = dtype;
  t.numel_ = NumElements(shape);
  t.shape_ = std::move(shape);
  t.data_ = const_cast<void*>(data);
  t.owner_ = std::move(owner);
  return t;
}

Tensor Tensor::Reshaped(Shape shape) const {
  Tensor t = *this;
  t.numel_ = NumElements(shape);
  t.shape_ = std::move(shape);
  return t;
}

Tensor Tensor::Clone() const {
  Tensor t(dtype_, shape_);
  if (dtype_ == DType::kString) {
    for (int64_t i = 0; i < numel_; ++i) t.data<std::string>()[i] = data<std::string>()[i];
  } else if (numel_ > 0) {
    std::memcpy(t.data_, data_, nbytes());
  }
  return t;
}

double Tensor::GetAsDouble(int64_t i) const {
  switch (dtype_) {
    case DType::kFloat: return AsDouble<float>(data_, i);
    case DType::kDouble: return AsDouble<double>(data_, i);
    case DType::kFloat16: return static_cast<float>(data<Float16>()[i]);
    case DType::kBFloat16: return static_cast<float>(data<BFloat16>()[i]);
    case DType::kInt8: return AsDouble<int8_t>(data_, i);
    case DType::kInt16: return AsDouble<int16_t>(data_, i);
    case DType::kInt32: return AsDouble<int32_t>(data_, i);
    case DType::kInt64: return AsDouble<int64_t>(data_, i);
    case DType::kUInt8: return AsDouble<uint8_t>(data_, i);
    case DType::kUInt16: return AsDouble<uint16_t>(data_, i);
    case DType::kUInt32: return AsDouble<uint32_t>(data_, i);
    case DType::kUInt64: return AsDouble<uint64_t>(data_, i);
    case DType::kBool: return AsDouble<bool>(data_, i);
    default: return 0.0;
  }
}

int64_t Tensor::GetAsInt64(int64_t i) const {
  switch (dtype_) {
    case DType::kInt64: return data<int64_t>()[i];
    case DType::kInt32: return data<int32_t>()[i];
    case DType::kUInt64: return static_cast<int64_t>(data<uint64_t>()[i]);
    default: return static_cast<int64_t>(GetAsDouble(i));
  }
}

}  // namespace strata
