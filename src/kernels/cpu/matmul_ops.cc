// MatMul and com.strata FusedMatMul (bias, residual and activations fused; fused_epilogue.h).
// float32 runs on packed weights (matmul_float.h) or oneDNN's matmul primitive (16-bit floats are
// widened to float32 and use it too); other dtypes use a portable reference GEMM.
#include <mutex>
#include <vector>

#include "kernels/cpu/matmul_float.h"

namespace strata::cpu {
namespace {

using namespace matmul;

using MatMulTypes = TypeList<float, double, Float16, BFloat16, int32_t, int64_t, uint32_t, uint64_t>;

class MatMulKernel final : public OpKernel {
 public:
  Status Init(const KernelInfo& info) {
    RETURN_IF_ERROR(CheckInputDType(info, 0, DTypesOf(MatMulTypes{})));
    bool ka, kb;
    Shape a = KnownShape(info, 0, &ka), b = KnownShape(info, 1, &kb);
    const ir::TypeInfo* t = info.input_type(0);
    const bool float_a = t && t->elem_type == DType::kFloat;
    if (const Tensor* w = info.constant_input(1); float_a && w && PackConstant(packed_, *w, false, {})) {
      info.ReleaseConstantInput(1);
      return Status::Ok();
    }
    if (ka && kb && float_a && BuildMatMulGeom(a, b, geom_).ok()) fmm_.Prepare(geom_);
    return Status::Ok();
  }

  Status Compute(KernelContext& ctx) override {
    const Tensor& A = ctx.input_tensor(0);
    std::lock_guard<std::mutex> lock(mu_);  // the geometry and cached primitives are per-kernel state
    if (packed_.packed()) {
      Shape out;
      RETURN_IF_ERROR(PackedOutputShape(A, packed_, "MatMul", out));
      ASSIGN_OR_RETURN(Tensor * Y, ctx.AllocateOutput(0, DType::kFloat, out));
      return RunPacked(packed_, fmm_, geom_, A, nullptr, nullptr, Y->data<float>());
    }
    const Tensor& B = ctx.input_tensor(1);
    if (A.dtype() != B.dtype()) return InvalidArgument("MatMul: A and B dtypes differ");
    RETURN_IF_ERROR(BuildMatMulGeom(A.shape(), B.shape(), geom_));
    const MatMulGeom& g = geom_;
    ASSIGN_OR_RETURN(Tensor * Y, ctx.AllocateOutput(0, A.dtype(), g.out));
    return Dispatch(MatMulTypes{}, A.dtype(), [&](auto* tag) -> Status {
      using T = std::remove_pointer_t<decltype(tag)>;
      if constexpr (std::is_same_v<T, float>) {
        return onednn::Call("matmul", [&] { fmm_.Run(g, A.data<float>(), B.data<float>(), Y->data<float>()); });
      } else if constexpr (std::is_same_v<T, Float16> || std::is_same_v<T, BFloat16>) {
        std::vector<float> a(static_cast<size_t>(A.numel())), b(static_cast<size_t>(B.numel())),
            y(static_cast<size_t>(Y->numel()));
        nn::ConvertBuffer(A.data<T>(), a.data(), A.numel());
        nn::ConvertBuffer(B.data<T>(), b.data(), B.numel());
        RETURN_IF_ERROR(onednn::Call("matmul", [&] { fmm_.Run(g, a.data(), b.data(), y.data()); }));
        nn::ConvertBufferToHalf(y.data(), Y->data<T>(), Y->numel());
      } else {
        if (g.K == 0) {  // empty sums
          std::fill_n(Y->data<T>(), Y->numel(), T{});
          return Status::Ok();
        }
        BatchedMatMulRef<T>(g, A.data<T>(), B.data<T>(), Y->data<T>());
      }
      return Status::Ok();
    });
  }

 private:
  std::mutex mu_;
  MatMulGeom geom_;
  FloatMatMul fmm_;
  PackedMatMul packed_;  // when B is a constant float32 matrix
};

// FusedMatMul (com.strata): float32 MatMul with a [N] bias, a residual and activations fused.
class FusedMatMulKernel final : public OpKernel {
 public:
  Status Init(const KernelInfo& info) {
    RETURN_IF_ERROR(CheckInputDType(info, 0, {DType::kFloat}));
    RETURN_IF_ERROR(ep_.Load(info));
    bias_ = info.input_present(2);
    fmm_.Configure(&ep_, bias_);
    if (const Tensor* w = info.constant_input(1); w && PackConstant(packed_, *w, false, {1.f, ep_.has_residual() ? 1.f : 0.f, bias_, ep_.activations()})) {
      info.ReleaseConstantInput(1);
      return Status::Ok();
    }
    bool ka, kb;
    Shape a = KnownShape(info, 0, &ka), b = KnownShape(info, 1, &kb);
    if (ka && kb && BuildMatMulGeom(a, b, geom_).ok()) fmm_.Prepare(geom_);
    return Status::Ok();
  }

  // The residual's buffer can become the output's: oneDNN's sum post-op reads each element before
  // writing it, and the reference path keeps a copy.
  int InPlaceInput() const override { return ep_.has_residual() ? 3 : -1; }

  Status Compute(KernelContext& ctx) override {
    const Tensor& A = ctx.input_tensor(0);
    std::lock_guard<std::mutex> lock(mu_);  // the geometry and cached primitives are per-kernel state
    if (packed_.packed()) {
      Shape out;
      RETURN_IF_ERROR(PackedOutputShape(A, packed_, "FusedMatMul", out));
      const float* bias = nullptr;
      const float* residual = nullptr;
      RETURN_IF_ERROR(EpilogueInputs(ctx, packed_.N(), out, bias, residual));
      ASSIGN_OR_RETURN(Tensor * Y, ctx.AllocateOutput(0, DType::kFloat, out));
      return RunPacked(packed_, fmm_, geom_, A, bias, residual, Y->data<float>());
    }
    const Tensor& B = ctx.input_tensor(1);
    if (A.dtype() != DType::kFloat || B.dtype() != DType::kFloat) return InvalidArgument("FusedMatMul: A and B must be float32");
    RETURN_IF_ERROR(BuildMatMulGeom(A.shape(), B.shape(), geom_));
    const MatMulGeom& g = geom_;
    const float* bias = nullptr;
    const float* residual = nullptr;
    RETURN_IF_ERROR(EpilogueInputs(ctx, g.N, g.out, bias, residual));
    ASSIGN_OR_RETURN(Tensor * Y, ctx.AllocateOutput(0, DType::kFloat, g.out));
    return onednn::Call("matmul", [&] { fmm_.Run(g, A.data<float>(), B.data<float>(), Y->data<float>(), bias, residual); });
  }

 private:
  // The optional bias [N] and residual (shaped like the output), checked.
  Status EpilogueInputs(KernelContext& ctx, int64_t N, const Shape& out, const float*& bias, const float*& residual) {
    if (bias_) {
      const Tensor& t = ctx.input_tensor(2);
      if (t.dtype() != DType::kFloat || t.rank() != 1 || t.dim(0) != N)
        return InvalidArgument("FusedMatMul: bias must be float32 [" + std::to_string(N) + "], got " +
                               ShapeToString(t.shape()));
      bias = t.data<float>();
    }
    if (ep_.has_residual()) {
      const Tensor& r = ctx.input_tensor(3);
      if (r.dtype() != DType::kFloat || r.shape() != out)
        return InvalidArgument("FusedMatMul: residual must be float32 " + ShapeToString(out) + ", got " +
                               ShapeToString(r.shape()));
      residual = r.data<float>();
    }
    return Status::Ok();
  }

  std::mutex mu_;
  Epilogue ep_;
  bool bias_ = false;
  MatMulGeom geom_;
  FloatMatMul fmm_;
  PackedMatMul packed_;  // when B is a constant float32 matrix
};

const KernelRegistrar kMatMul{{.op_type = "MatMul", .since = 1, .until = 18, .dtypes = DTypesOf(MatMulTypes{}),
                               .factory = MakeKernel<MatMulKernel>}};
const KernelRegistrar kFusedMatMul{{.op_type = "FusedMatMul", .domain = "com.strata", .since = 1, .until = 1,
                                    .dtypes = {DType::kFloat}, .factory = MakeKernel<FusedMatMulKernel>}};

}  // namespace
}  // namespace strata::cpu
