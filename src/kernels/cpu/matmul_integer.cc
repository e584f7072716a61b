// MatMulInteger and QLinearMatMul: integer products accumulated in int32 on the reference GEMM.
#include <mutex>
#include <vector>

#include "kernels/cpu/matmul_float.h"

namespace strata::cpu {
namespace {

using namespace matmul;

// ---- MatMulInteger / QLinearMatMul ----

// Reads a zero point that is either a scalar or one value per row (`per` entries).
template <typename T>
Status ReadZeroPoints(const Tensor* t, int64_t per, std::vector<int32_t>& out, const char* what) {
  if (!t) { out.assign(1, 0); return Status::Ok(); }
  if (t->numel() == 1) { out.assign(1, static_cast<int32_t>(t->data<T>()[0])); return Status::Ok(); }
  if (t->numel() != per) return InvalidArgument(std::string(what) + ": zero point has " + std::to_string(t->numel()) +
                                                " values, expected 1 or " + std::to_string(per));
  out.resize(static_cast<size_t>(per));
  for (int64_t i = 0; i < per; ++i) out[static_cast<size_t>(i)] = static_cast<int32_t>(t->data<T>()[i]);
  return Status::Ok();
}

// Widens A (minus its per-row zero point) and B (minus its per-column zero point) to int32.
template <typename TA, typename TB>
void WidenAB(const MatMulGeom& g, const Tensor& A, const Tensor& B, const std::vector<int32_t>& azp,
             const std::vector<int32_t>& bzp, std::vector<int32_t>& a, std::vector<int32_t>& b) {
  a.resize(static_cast<size_t>(A.numel()));
  b.resize(static_cast<size_t>(B.numel()));
  const TA* pa = A.data<TA>();
  const TB* pb = B.data<TB>();
  const int64_t K = std::max<int64_t>(g.K, 1), N = std::max<int64_t>(g.N, 1), M = std::max<int64_t>(g.M, 1);
  for (int64_t i = 0; i < A.numel(); ++i) {
    const int64_t row = (i / K) % M;
    a[static_cast<size_t>(i)] = static_cast<int32_t>(pa[i]) - azp[azp.size() == 1 ? 0 : static_cast<size_t>(row)];
  }
  for (int64_t i = 0; i < B.numel(); ++i) {
    const int64_t col = i % N;
    b[static_cast<size_t>(i)] = static_cast<int32_t>(pb[i]) - bzp[bzp.size() == 1 ? 0 : static_cast<size_t>(col)];
  }
}

using QTypes = TypeList<uint8_t, int8_t>;

class MatMulIntegerKernel final : public OpKernel {
 public:
  Status Init(const KernelInfo& info) { return CheckInputDType(info, 0, DTypesOf(QTypes{})); }
  Status Compute(KernelContext& ctx) override {
    const Tensor& A = ctx.input_tensor(0);
    const Tensor& B = ctx.input_tensor(1);
    MatMulGeom g;
    RETURN_IF_ERROR(BuildMatMulGeom(A.shape(), B.shape(), g));
    ASSIGN_OR_RETURN(Tensor * Y, ctx.AllocateOutput(0, DType::kInt32, g.out));
    const Tensor* azp_t = ctx.has_input(2) ? &ctx.input_tensor(2) : nullptr;
    const Tensor* bzp_t = ctx.has_input(3) ? &ctx.input_tensor(3) : nullptr;
    if (azp_t && azp_t->dtype() != A.dtype()) return InvalidArgument("MatMulInteger: a_zero_point dtype differs from A");
    if (bzp_t && bzp_t->dtype() != B.dtype()) return InvalidArgument("MatMulInteger: b_zero_point dtype differs from B");
    std::vector<int32_t> azp, bzp, a, b;
    RETURN_IF_ERROR(Dispatch(QTypes{}, A.dtype(), [&](auto* ta) -> Status {
      using TA = std::remove_pointer_t<decltype(ta)>;
      RETURN_IF_ERROR(ReadZeroPoints<TA>(azp_t, g.M, azp, "MatMulInteger a_zero_point"));
      return Dispatch(QTypes{}, B.dtype(), [&](auto* tb) -> Status {
        using TB = std::remove_pointer_t<decltype(tb)>;
        RETURN_IF_ERROR(ReadZeroPoints<TB>(bzp_t, g.N, bzp, "MatMulInteger b_zero_point"));
        WidenAB<TA, TB>(g, A, B, azp, bzp, a, b);
        return Status::Ok();
      });
    }));
    if (g.K > 0) BatchedMatMulRef<int32_t>(g, a.data(), b.data(), Y->data<int32_t>());
    return Status::Ok();
  }
};

// Reads a float scale that is a scalar or has `per` entries.
Status ReadScales(const Tensor& t, int64_t per, std::vector<float>& out, const char* what) {
  if (t.dtype() != DType::kFloat) return InvalidArgument(std::string(what) + " must be float");
  if (t.numel() == 1) { out.assign(1, t.data<float>()[0]); return Status::Ok(); }
  if (t.numel() != per) return InvalidArgument(std::string(what) + " has " + std::to_string(t.numel()) +
                                               " values, expected 1 or " + std::to_string(per));
  out.assign(t.data<float>(), t.data<float>() + per);
  return Status::Ok();
}

class QLinearMatMulKernel final : public OpKernel {
 public:
  Status Init(const KernelInfo& info) { return CheckInputDType(info, 0, DTypesOf(QTypes{})); }
  Status Compute(KernelContext& ctx) override {
    for (int i = 0; i < 8; ++i)
      if (!ctx.has_input(i)) return InvalidArgument("QLinearMatMul needs 8 inputs");
    const Tensor& A = ctx.input_tensor(0);
    const Tensor& B = ctx.input_tensor(3);
    const Tensor& yzp_t = ctx.input_tensor(7);
    MatMulGeom g;
    RETURN_IF_ERROR(BuildMatMulGeom(A.shape(), B.shape(), g));
    std::vector<float> as, bs, ys;
    RETURN_IF_ERROR(ReadScales(ctx.input_tensor(1), g.M, as, "a_scale"));
    RETURN_IF_ERROR(ReadScales(ctx.input_tensor(4), g.N, bs, "b_scale"));
    RETURN_IF_ERROR(ReadScales(ctx.input_tensor(6), 1, ys, "y_scale"));
    if (ctx.input_tensor(2).dtype() != A.dtype() || ctx.input_tensor(5).dtype() != B.dtype())
      return InvalidArgument("QLinearMatMul: zero point dtypes must match their inputs");
    std::vector<int32_t> azp, bzp, a, b;
    RETURN_IF_ERROR(Dispatch(QTypes{}, A.dtype(), [&](auto* ta) -> Status {
      using TA = std::remove_pointer_t<decltype(ta)>;
      RETURN_IF_ERROR(ReadZeroPoints<TA>(&ctx.input_tensor(2), g.M, azp, "a_zero_point"));
      return Dispatch(QTypes{}, B.dtype(), [&](auto* tb) -> Status {
        using TB = std::remove_pointer_t<decltype(tb)>;
        RETURN_IF_ERROR(ReadZeroPoints<TB>(&ctx.input_tensor(5), g.N, bzp, "b_zero_point"));
        WidenAB<TA, TB>(g, A, B, azp, bzp, a, b);
        return Status::Ok();
      });
    }));
    std::vector<int32_t> acc(static_cast<size_t>(NumElements(g.out)), 0);
    if (g.K > 0) BatchedMatMulRef<int32_t>(g, a.data(), b.data(), acc.data());
    ASSIGN_OR_RETURN(Tensor * Y, ctx.AllocateOutput(0, yzp_t.dtype(), g.out));
    return Dispatch(QTypes{}, yzp_t.dtype(), [&](auto* ty) -> Status {
      using TY = std::remove_pointer_t<decltype(ty)>;
      if (yzp_t.numel() != 1) return InvalidArgument("y_zero_point must be a scalar");
      const float zp = static_cast<float>(yzp_t.data<TY>()[0]);
      TY* y = Y->data<TY>();
      const int64_t mn = g.M * g.N;
      for (size_t i = 0; i < acc.size(); ++i) {
        const int64_t r = (static_cast<int64_t>(i) % std::max<int64_t>(mn, 1)) / std::max<int64_t>(g.N, 1);
        const int64_t c = static_cast<int64_t>(i) % std::max<int64_t>(g.N, 1);
        const float scale = as[as.size() == 1 ? 0 : static_cast<size_t>(r)] *
                            bs[bs.size() == 1 ? 0 : static_cast<size_t>(c)] / ys[0];
        y[i] = nn::SaturateRound<TY>(static_cast<double>(static_cast<float>(acc[i]) * scale) + zp);
      }
      return Status::Ok();
    });
  }
};

const KernelRegistrar kMatMulInteger{{.op_type = "MatMulInteger", .since = 10, .until = 18,
                                      .dtypes = DTypesOf(QTypes{}), .factory = MakeKernel<MatMulIntegerKernel>}};
const KernelRegistrar kQLinearMatMul{{.op_type = "QLinearMatMul", .since = 10, .until = 18,
                                      .dtypes = DTypesOf(QTypes{}), .factory = MakeKernel<QLinearMatMulKernel>}};

}  // namespace
}  // namespace strata::cpu
