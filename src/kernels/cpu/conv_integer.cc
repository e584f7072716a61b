// The convolutions that run on im2col/col2im and the reference GEMM only (conv_reference.h):
// ConvInteger and QLinearConv (uint8/int8, accumulated in int32) and Col2Im.
#include <algorithm>
#include <string>
#include <type_traits>
#include <vector>

#include "kernels/cpu/conv_reference.h"

namespace strata::cpu {
namespace {

using conv::Col2ImAdd;
using conv::ComputeConvShape;
using conv::ConvRef;
using conv::ConvShape;
using nn::SpatialAttrs;
using nn::SpatialGeom;

using QTypes = TypeList<uint8_t, int8_t>;

// Widens a quantized tensor to int32 minus its zero point (scalar or one per leading-dim slice).
template <typename T>
Status WidenQuant(const Tensor& t, const Tensor* zp, std::vector<int32_t>& out, const char* what) {
  if (zp && zp->dtype() != t.dtype()) return InvalidArgument(std::string(what) + ": zero point dtype mismatch");
  const int64_t n = t.numel();
  out.resize(static_cast<size_t>(n));
  const T* p = t.data<T>();
  if (!zp || zp->numel() == 1) {
    const int32_t z = zp ? static_cast<int32_t>(zp->data<T>()[0]) : 0;
    for (int64_t i = 0; i < n; ++i) out[static_cast<size_t>(i)] = static_cast<int32_t>(p[i]) - z;
    return Status::Ok();
  }
  if (t.rank() == 0 || zp->numel() != t.dim(0))
    return InvalidArgument(std::string(what) + ": zero point must be a scalar or have one value per channel");
  const int64_t inner = n / std::max<int64_t>(t.dim(0), 1);
  for (int64_t i = 0; i < n; ++i)
    out[static_cast<size_t>(i)] = static_cast<int32_t>(p[i]) - static_cast<int32_t>(zp->data<T>()[i / inner]);
  return Status::Ok();
}

Status QuantConvAccumulate(const SpatialAttrs& a, int64_t group, const Tensor& X, const Tensor* xzp, const Tensor& W,
                           const Tensor* wzp, ConvShape& cs, std::vector<int32_t>& acc) {
  RETURN_IF_ERROR(ComputeConvShape(a, group, X.shape(), W.shape(), cs));
  if (xzp && xzp->numel() != 1) return InvalidArgument("x_zero_point must be a scalar");
  std::vector<int32_t> x, w;
  RETURN_IF_ERROR(Dispatch(QTypes{}, X.dtype(), [&](auto* tag) {
    using T = std::remove_pointer_t<decltype(tag)>;
    return WidenQuant<T>(X, xzp, x, "x");
  }));
  RETURN_IF_ERROR(Dispatch(QTypes{}, W.dtype(), [&](auto* tag) {
    using T = std::remove_pointer_t<decltype(tag)>;
    return WidenQuant<T>(W, wzp, w, "w");
  }));
  acc.assign(static_cast<size_t>(NumElements(cs.y_shape)), 0);
  if (!acc.empty()) ConvRef<int32_t>(cs, x.data(), w.data(), nullptr, acc.data());
  return Status::Ok();
}

// ConvInteger and QLinearConv share their attributes and load-time checks.
class QuantConvKernelBase : public OpKernel {
 public:
  Status Init(const KernelInfo& info) {
    RETURN_IF_ERROR(CheckInputDType(info, 0, DTypesOf(QTypes{})));
    RETURN_IF_ERROR(attrs_.Load(info, true, false));
    group_ = info.attr_int("group", 1);
    if (group_ <= 0) return info.Error("group must be positive");
    return Status::Ok();
  }
 protected:
  SpatialAttrs attrs_;
  int64_t group_ = 1;
};

class ConvIntegerKernel final : public QuantConvKernelBase {
 public:
  Status Compute(KernelContext& ctx) override {
    ConvShape cs;
    std::vector<int32_t> acc;
    RETURN_IF_ERROR(QuantConvAccumulate(attrs_, group_, ctx.input_tensor(0),
                                        ctx.has_input(2) ? &ctx.input_tensor(2) : nullptr, ctx.input_tensor(1),
                                        ctx.has_input(3) ? &ctx.input_tensor(3) : nullptr, cs, acc));
    ASSIGN_OR_RETURN(Tensor * Y, ctx.AllocateOutput(0, DType::kInt32, cs.y_shape));
    std::copy(acc.begin(), acc.end(), Y->data<int32_t>());
    return Status::Ok();
  }
};

class QLinearConvKernel final : public QuantConvKernelBase {
 public:
  Status Compute(KernelContext& ctx) override {
    for (int i = 0; i < 8; ++i)
      if (!ctx.has_input(i)) return InvalidArgument("QLinearConv needs at least 8 inputs");
    const Tensor& xs = ctx.input_tensor(1);
    const Tensor& ws = ctx.input_tensor(4);
    const Tensor& ys = ctx.input_tensor(6);
    const Tensor& yzp = ctx.input_tensor(7);
    if (xs.dtype() != DType::kFloat || ws.dtype() != DType::kFloat || ys.dtype() != DType::kFloat)
      return InvalidArgument("QLinearConv: scales must be float");
    if (xs.numel() != 1 || ys.numel() != 1 || yzp.numel() != 1)
      return InvalidArgument("QLinearConv: x_scale, y_scale and y_zero_point must be scalars");
    ConvShape cs;
    std::vector<int32_t> acc;
    RETURN_IF_ERROR(QuantConvAccumulate(attrs_, group_, ctx.input_tensor(0), &ctx.input_tensor(2),
                                        ctx.input_tensor(3), &ctx.input_tensor(5), cs, acc));
    if (ws.numel() != 1 && ws.numel() != cs.M) return InvalidArgument("QLinearConv: w_scale must be scalar or [M]");
    const int32_t* bias = nullptr;
    if (ctx.has_input(8)) {
      const Tensor& B = ctx.input_tensor(8);
      if (B.dtype() != DType::kInt32 || B.numel() != cs.M) return InvalidArgument("QLinearConv: B must be int32 [M]");
      bias = B.data<int32_t>();
    }
    ASSIGN_OR_RETURN(Tensor * Y, ctx.AllocateOutput(0, yzp.dtype(), cs.y_shape));
    const int64_t os = cs.geom.out_size();
    return Dispatch(QTypes{}, yzp.dtype(), [&](auto* tag) -> Status {
      using TY = std::remove_pointer_t<decltype(tag)>;
      TY* y = Y->data<TY>();
      const float zp = static_cast<float>(yzp.data<TY>()[0]);
      for (int64_t n = 0; n < cs.N; ++n)
        for (int64_t m = 0; m < cs.M; ++m) {
          const float scale = xs.data<float>()[0] * ws.data<float>()[ws.numel() == 1 ? 0 : m] / ys.data<float>()[0];
          const int32_t b = bias ? bias[m] : 0;
          const int64_t base = (n * cs.M + m) * os;
          for (int64_t i = 0; i < os; ++i)
            y[base + i] = nn::SaturateRound<TY>(
                static_cast<double>(static_cast<float>(acc[static_cast<size_t>(base + i)] + b) * scale) + zp);
        }
      return Status::Ok();
    });
  }

};

// ---- Col2Im (opset 18) ----

using Col2ImTypes = TypeList<float, double, Float16, BFloat16, int8_t, int16_t, int32_t, int64_t, uint8_t, uint16_t,
                             uint32_t, uint64_t>;

class Col2ImKernel final : public OpKernel {
 public:
  Status Init(const KernelInfo& info) {
    dilations_ = info.attr_ints("dilations");
    strides_ = info.attr_ints("strides");
    pads_ = info.attr_ints("pads");
    return Status::Ok();
  }
  Status Compute(KernelContext& ctx) override {
    const Tensor& X = ctx.input_tensor(0);
    ASSIGN_OR_RETURN(std::vector<int64_t> image, ReadInt64s(ctx.input_tensor(1)));
    ASSIGN_OR_RETURN(std::vector<int64_t> block, ReadInt64s(ctx.input_tensor(2)));
    const size_t nsp = image.size();
    if (nsp == 0 || block.size() != nsp) return InvalidArgument("Col2Im: image_shape and block_shape must match");
    if (X.rank() != 3) return InvalidArgument("Col2Im: input must be 3-D [N, C*prod(block), L]");
    SpatialGeom g;
    g.in = image;
    g.kernel = block;
    g.strides = strides_.empty() ? Shape(nsp, 1) : Shape(strides_);
    g.dilations = dilations_.empty() ? Shape(nsp, 1) : Shape(dilations_);
    if (g.strides.size() != nsp || g.dilations.size() != nsp || (!pads_.empty() && pads_.size() != 2 * nsp))
      return InvalidArgument("Col2Im: attribute lengths do not match image_shape");
    for (size_t i = 0; i < nsp; ++i)
      if (image[i] < 0 || block[i] <= 0 || g.strides[i] <= 0 || g.dilations[i] <= 0)
        return InvalidArgument("Col2Im: bad image/block/stride/dilation values");
    SpatialAttrs a;
    a.pads = pads_;
    RETURN_IF_ERROR(nn::ComputeForwardGeom(a, g, false));
    const int64_t ks = g.kernel_size();
    if (X.dim(1) % ks != 0) return InvalidArgument("Col2Im: input dim 1 is not a multiple of prod(block_shape)");
    if (X.dim(2) != g.out_size())
      return InvalidArgument("Col2Im: input has " + std::to_string(X.dim(2)) + " blocks, expected " +
                             std::to_string(g.out_size()));
    const int64_t C = X.dim(1) / ks, N = X.dim(0);
    Shape ys{N, C};
    ys.insert(ys.end(), image.begin(), image.end());
    ASSIGN_OR_RETURN(Tensor * Y, ctx.AllocateOutput(0, X.dtype(), ys));
    const int64_t is = g.in_size();
    return Dispatch(Col2ImTypes{}, X.dtype(), [&](auto* tag) -> Status {
      using T = std::remove_pointer_t<decltype(tag)>;
      using A = ComputeType<T>;
      if constexpr (std::is_same_v<A, T>) {
        for (int64_t n = 0; n < N; ++n) Col2ImAdd(g, C, X.data<T>() + n * X.dim(1) * X.dim(2), Y->data<T>() + n * C * is);
      } else {
        std::vector<float> x(static_cast<size_t>(X.numel())), y(static_cast<size_t>(Y->numel()), 0.f);
        nn::ConvertBuffer(X.data<T>(), x.data(), X.numel());
        for (int64_t n = 0; n < N; ++n) Col2ImAdd(g, C, x.data() + n * X.dim(1) * X.dim(2), y.data() + n * C * is);
        nn::ConvertBufferToHalf(y.data(), Y->data<T>(), Y->numel());
      }
      return Status::Ok();
    });
  }

 private:
  std::vector<int64_t> dilations_, strides_, pads_;
};

const KernelRegistrar kConvInteger{{.op_type = "ConvInteger", .since = 10, .until = 18, .dtypes = DTypesOf(QTypes{}),
                                    .factory = MakeKernel<ConvIntegerKernel>}};
const KernelRegistrar kQLinearConv{{.op_type = "QLinearConv", .since = 10, .until = 18, .dtypes = DTypesOf(QTypes{}),
                                    .factory = MakeKernel<QLinearConvKernel>}};
const KernelRegistrar kCol2Im{{.op_type = "Col2Im", .since = 18, .until = 18, .dtypes = DTypesOf(Col2ImTypes{}),
                               .factory = MakeKernel<Col2ImKernel>}};

}  // namespace
}  // namespace strata::cpu
