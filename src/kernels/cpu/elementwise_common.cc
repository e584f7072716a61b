#include "kernels/cpu/elementwise_common.h"

namespace strata::cpu::ew {

Result<Shape> LegacyBroadcastShape(const Shape& a, const Shape& b, bool broadcast, bool has_axis, int64_t axis) {
  if (!broadcast) {
    if (a != b)
      return InvalidArgument("shapes " + ShapeToString(a) + " and " + ShapeToString(b) +
                             " differ and the node does not set broadcast=1 (required before opset 7)");
    return b;
  }
  const int ra = static_cast<int>(a.size()), rb = static_cast<int>(b.size());
  if (NumElements(b) == 1 && (rb > ra || !has_axis)) return Shape{};  // scalar-like B
  if (rb > ra)
    return InvalidArgument("broadcast: B " + ShapeToString(b) + " has higher rank than A " + ShapeToString(a));
  int64_t start = ra - rb;
  if (has_axis) {
    start = axis < 0 ? axis + ra : axis;
    if (start < 0 || start + rb > ra)
      return InvalidArgument("broadcast axis " + std::to_string(axis) + " does not fit B " + ShapeToString(b) +
                             " into A " + ShapeToString(a));
  }
  Shape view(static_cast<size_t>(ra), 1);
  for (int i = 0; i < rb; ++i) {
    const int64_t d = b[static_cast<size_t>(i)];
    const int64_t ad = a[static_cast<size_t>(start + i)];
    if (d != ad && d != 1)
      return InvalidArgument("broadcast: B " + ShapeToString(b) + " does not match A " + ShapeToString(a) +
                             " at axis " + std::to_string(start));
    view[static_cast<size_t>(start + i)] = d;
  }
  return view;
}

Result<BinaryShapes> LegacyBroadcast::Resolve(const Shape& a, const Shape& b) const {
  BinaryShapes s;
  if (legacy) {
    ASSIGN_OR_RETURN(s.b, LegacyBroadcastShape(a, b, broadcast, has_axis, axis));
    s.a = a;
    s.out = a;
  } else {
    ASSIGN_OR_RETURN(s.out, BroadcastShapes(a, b));
    s.a = a;
    s.b = b;
  }
  return s;
}

}  // namespace strata::cpu::ew
