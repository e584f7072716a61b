// QuantizeLinear, DequantizeLinear (per-tensor and, from opset 13, per-axis) and DynamicQuantizeLinear.
#include <cmath>

#include "kernels/cpu/nn_common.h"

namespace strata::cpu {
namespace {

using QTypes = TypeList<uint8_t, int8_t>;

// Resolves per-tensor vs per-axis quantization: returns (outer, channels, inner) such that element i
// uses parameter index (i / inner) % channels.
Status QuantLayout(const Tensor& x, const Tensor& scale, int64_t axis_attr, int64_t opset, int64_t& channels,
                   int64_t& inner) {
  channels = 1;
  inner = 1;
  if (scale.rank() == 0 || (scale.rank() == 1 && scale.numel() == 1)) return Status::Ok();
  if (opset < 13) return InvalidArgument("scale must be a scalar before opset 13");
  if (scale.rank() != 1) return InvalidArgument("scale must be a scalar or 1-D");
  ASSIGN_OR_RETURN(int axis, NormalizeAxis(axis_attr, x.rank(), "axis"));
  if (x.dim(axis) != scale.numel())
    return InvalidArgument("scale has " + std::to_string(scale.numel()) + " values but the axis has " +
                           std::to_string(x.dim(axis)));
  channels = scale.numel();
  for (int d = axis + 1; d < x.rank(); ++d) inner *= x.dim(d);
  return Status::Ok();
}

using DequantTypes = TypeList<uint8_t, int8_t, int32_t>;

// QuantizeLinear and DequantizeLinear share their attributes (axis, meaningful per-axis from opset 13) and the
// checks on their scale and zero point.
class LinearQuantKernelBase : public OpKernel {
 protected:
  Status LoadAttrs(const KernelInfo& info, const std::vector<DType>& x_dtypes) {
    RETURN_IF_ERROR(CheckInputDType(info, 0, x_dtypes));
    axis_ = info.attr_int("axis", 1);
    opset_ = info.opset();
    return Status::Ok();
  }

  // Checks scale S and zero point Z against X and returns the layout mapping element i to parameter index
  // (i / inner) % channels. `io` prefixes their names in errors ("y" for QuantizeLinear, "x" for
  // DequantizeLinear); only DequantizeLinear's zero point must have x's dtype (QuantizeLinear's picks the output's).
  // The names are C strings so that a successful check builds no std::string.
  Status CheckParams(const char* op, const char* io, bool zero_point_dtype_is_x, const Tensor& X, const Tensor& S,
                     const Tensor* Z, int64_t& channels, int64_t& inner) const {
    if (S.dtype() != DType::kFloat) return InvalidArgument(std::string(op) + ": " + io + "_scale must be float");
    if (zero_point_dtype_is_x && Z && Z->dtype() != X.dtype())
      return InvalidArgument(std::string(op) + ": " + io + "_zero_point dtype differs from x");
    RETURN_IF_ERROR(QuantLayout(X, S, axis_, opset_, channels, inner));
    if (Z && Z->numel() != S.numel())
      return InvalidArgument(std::string(op) + ": " + io + "_zero_point and " + io + "_scale shapes differ");
    return Status::Ok();
  }

 private:
  int64_t axis_ = 1, opset_ = 13;
};

class QuantizeLinearKernel final : public LinearQuantKernelBase {
 public:
  Status Init(const KernelInfo& info) { return LoadAttrs(info, {DType::kFloat, DType::kInt32}); }
  Status Compute(KernelContext& ctx) override {
    const Tensor& X = ctx.input_tensor(0);
    const Tensor& S = ctx.input_tensor(1);
    const Tensor* Z = ctx.has_input(2) ? &ctx.input_tensor(2) : nullptr;
    int64_t channels, inner;
    RETURN_IF_ERROR(CheckParams("QuantizeLinear", "y", false, X, S, Z, channels, inner));
    const DType out_dt = Z ? Z->dtype() : DType::kUInt8;
    ASSIGN_OR_RETURN(Tensor * Y, ctx.AllocateOutput(0, out_dt, X.shape()));
    return Dispatch(QTypes{}, out_dt, [&](auto* tag) -> Status {
      using Q = std::remove_pointer_t<decltype(tag)>;
      std::vector<float> zp(static_cast<size_t>(channels), 0.f);
      if (Z)
        for (int64_t c = 0; c < channels; ++c) zp[static_cast<size_t>(c)] = static_cast<float>(Z->data<Q>()[c]);
      const float* s = S.data<float>();
      const int64_t n = X.numel();
      Q* y = Y->data<Q>();
      for (int64_t i = 0; i < n; ++i) {
        const int64_t c = (i / inner) % channels;
        const float xv = X.dtype() == DType::kFloat ? X.data<float>()[i] : static_cast<float>(X.data<int32_t>()[i]);
        y[i] = nn::SaturateRound<Q>(static_cast<double>(std::nearbyint(xv / s[c])) + zp[static_cast<size_t>(c)]);
      }
      return Status::Ok();
    });
  }
};

class DequantizeLinearKernel final : public LinearQuantKernelBase {
 public:
  Status Init(const KernelInfo& info) { return LoadAttrs(info, DTypesOf(DequantTypes{})); }
  Status Compute(KernelContext& ctx) override {
    const Tensor& X = ctx.input_tensor(0);
    const Tensor& S = ctx.input_tensor(1);
    const Tensor* Z = ctx.has_input(2) ? &ctx.input_tensor(2) : nullptr;
    int64_t channels, inner;
    RETURN_IF_ERROR(CheckParams("DequantizeLinear", "x", true, X, S, Z, channels, inner));
    ASSIGN_OR_RETURN(Tensor * Y, ctx.AllocateOutput(0, DType::kFloat, X.shape()));
    return Dispatch(DequantTypes{}, X.dtype(), [&](auto* tag) -> Status {
      using Q = std::remove_pointer_t<decltype(tag)>;
      std::vector<int64_t> zp(static_cast<size_t>(channels), 0);
      if (Z)
        for (int64_t c = 0; c < channels; ++c) zp[static_cast<size_t>(c)] = static_cast<int64_t>(Z->data<Q>()[c]);
      const float* s = S.data<float>();
      const Q* x = X.data<Q>();
      float* y = Y->data<float>();
      const int64_t n = X.numel();
      for (int64_t i = 0; i < n; ++i) {
        const int64_t c = (i / inner) % channels;
        y[i] = static_cast<float>(static_cast<int64_t>(x[i]) - zp[static_cast<size_t>(c)]) * s[c];
      }
      return Status::Ok();
    });
  }
};

class DynamicQuantizeLinearKernel final : public OpKernel {
 public:
  Status Init(const KernelInfo& info) { return CheckInputDType(info, 0, {DType::kFloat}); }
  Status Compute(KernelContext& ctx) override {
    const Tensor& X = ctx.input_tensor(0);
    if (X.dtype() != DType::kFloat) return InvalidArgument("DynamicQuantizeLinear: x must be float");
    const float* x = X.data<float>();
    const int64_t n = X.numel();
    float lo = 0.f, hi = 0.f;
    for (int64_t i = 0; i < n; ++i) {
      lo = std::min(lo, x[i]);
      hi = std::max(hi, x[i]);
    }
    const float scale = (hi - lo) / 255.f;
    uint8_t zp = 0;
    if (scale != 0.f) zp = nn::SaturateRound<uint8_t>(static_cast<double>((0.f - lo) / scale));
    ASSIGN_OR_RETURN(Tensor * Y, ctx.AllocateOutput(0, DType::kUInt8, X.shape()));
    ASSIGN_OR_RETURN(Tensor * S, ctx.AllocateOutput(1, DType::kFloat, {}));
    ASSIGN_OR_RETURN(Tensor * Z, ctx.AllocateOutput(2, DType::kUInt8, {}));
    S->data<float>()[0] = scale;
    Z->data<uint8_t>()[0] = zp;
    uint8_t* y = Y->data<uint8_t>();
    if (scale == 0.f) return Status::Ok();  // all zeros
    for (int64_t i = 0; i < n; ++i)
      y[i] = nn::SaturateRound<uint8_t>(static_cast<double>(std::nearbyint(x[i] / scale)) + zp);
    return Status::Ok();
  }
};

const KernelRegistrar kQuantizeLinear{{.op_type = "QuantizeLinear", .since = 10, .until = 18,
                                       .dtypes = {DType::kFloat, DType::kInt32},
                                       .factory = MakeKernel<QuantizeLinearKernel>}};
const KernelRegistrar kDequantizeLinear{{.op_type = "DequantizeLinear", .since = 10, .until = 18,
                                         .dtypes = DTypesOf(DequantTypes{}),
                                         .factory = MakeKernel<DequantizeLinearKernel>}};
const KernelRegistrar kDynamicQuantizeLinear{{.op_type = "DynamicQuantizeLinear", .since = 11, .until = 18,
                                              .dtypes = {DType::kFloat},
                                              .factory = MakeKernel<DynamicQuantizeLinearKernel>}};

}  // namespace
}  // namespace strata::cpu
