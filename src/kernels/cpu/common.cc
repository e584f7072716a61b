#include "kernels/cpu/common.h"

#include "core/dtype_names.h"
#include "core/large_buffer.h"

#include <algorithm>
#include <limits>
#include <cassert>

namespace strata::cpu {

Status CheckInputDType(const KernelInfo& info, int i, const std::vector<DType>& allowed) {
  const ir::TypeInfo* t = info.input_type(i);
  if (!t || t->kind != ir::TypeInfo::Kind::kTensor || t->elem_type == DType::kUndefined) return Status::Ok();
  if (std::find(allowed.begin(), allowed.end(), t->elem_type) != allowed.end()) return Status::Ok();
  return info.Error("input " + std::to_string(i) + " has dtype " + std::string(DTypeName(t->elem_type)) +
                    ", which this kernel does not support (supported: " + JoinDTypeNames(allowed) + ")");
}

Result<Shape> BroadcastShapes(const Shape& a, const Shape& b) {
  const Shape* shapes[] = {&a, &b};
  return BroadcastShapes(std::span<const Shape* const>(shapes));
}

Result<Shape> BroadcastShapes(const std::vector<const Shape*>& shapes) {
  return BroadcastShapes(std::span<const Shape* const>(shapes));
}

Result<Shape> BroadcastShapes(std::span<const Shape* const> shapes) {
  size_t rank = 0;
  for (const Shape* s : shapes) rank = std::max(rank, s->size());
  Shape out(rank, 1);
  for (const Shape* s : shapes) {
    const size_t off = rank - s->size();
    for (size_t i = 0; i < s->size(); ++i) {
      int64_t d = (*s)[i];
      int64_t& o = out[off + i];
      if (d == o || d == 1) continue;
      if (o == 1) { o = d; continue; }
      std::string msg = "shapes cannot be broadcast together:";
      for (const Shape* t : shapes) {
        msg += ' ';
        msg += ShapeToString(*t);
      }
      return InvalidArgument(msg);
    }
  }
  return out;
}

Strides BroadcastStrides(const Shape& in, const Shape& out) {
  Strides strides(out.size(), 0);
  const Strides cs = ContiguousStrides(in);
  const size_t off = out.size() - in.size();
  for (size_t i = 0; i < in.size(); ++i) strides[off + i] = in[i] == 1 ? 0 : cs[i];
  return strides;
}

Result<int> NormalizeAxis(int64_t axis, int rank, const std::string& where) {
  if (axis < -rank || axis >= std::max(rank, 1))
    return InvalidArgument(where + "axis " + std::to_string(axis) + " is out of range for rank " + std::to_string(rank));
  return static_cast<int>(axis < 0 ? axis + rank : axis);
}

Result<std::vector<int64_t>> ReadInt64s(const Tensor& t) {
  if (t.dtype() != DType::kInt64 && t.dtype() != DType::kInt32)
    return InvalidArgument("expected an int32/int64 tensor, got " + std::string(DTypeName(t.dtype())));
  std::vector<int64_t> v(static_cast<size_t>(t.numel()));
  for (int64_t i = 0; i < t.numel(); ++i) v[static_cast<size_t>(i)] = t.GetAsInt64(i);
  return v;
}


}  // namespace strata::cpu
