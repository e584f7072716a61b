// Gemm and com.strata FusedGemm: alpha * A' * B' + beta * C with optional transposes, then the
// fused epilogue; float32 on packed weights or oneDNN, other dtypes on the reference GEMM.
#include <mutex>
#include <vector>

#include "kernels/cpu/matmul_float.h"

namespace strata::cpu {
namespace {

using namespace matmul;

// ---- Gemm ----

using GemmTypes = TypeList<float, double, Float16, BFloat16, int32_t, int64_t, uint32_t, uint64_t>;

class GemmKernel final : public OpKernel {
 public:
  Status Init(const KernelInfo& info) {
    RETURN_IF_ERROR(CheckInputDType(info, 0, DTypesOf(GemmTypes{})));
    trans_a_ = info.attr_int("transA", 0) != 0;
    trans_b_ = info.attr_int("transB", 0) != 0;
    alpha_ = info.attr_float("alpha", 1.f);
    beta_ = info.attr_float("beta", 1.f);
    if (info.node().domain == "com.strata") {  // FusedGemm: float32 only
      RETURN_IF_ERROR(CheckInputDType(info, 0, {DType::kFloat}));
      RETURN_IF_ERROR(ep_.Load(info));
    }
    bool ka, kb;
    const Shape a = KnownShape(info, 0, &ka), b = KnownShape(info, 1, &kb);
    const ir::TypeInfo* t = info.input_type(0);
    const bool float_a = t && t->elem_type == DType::kFloat;
    if (const Tensor* w = info.constant_input(1); float_a && w && !trans_a_) {
      const bool sum = (info.input_present(2) && beta_ != 0.f) || ep_.has_residual();
      if (PackConstant(packed_, *w, trans_b_,
                       {alpha_, sum ? (ep_.has_residual() ? 1.f : beta_) : 0.f, false, ep_.activations()})) {
        info.ReleaseConstantInput(1);
        return Status::Ok();
      }
    }
    if (ka && kb && a.size() == 2 && b.size() == 2 && float_a) {
      const int64_t M = trans_a_ ? a[1] : a[0], K = trans_a_ ? a[0] : a[1], N = trans_b_ ? b[0] : b[1];
      const bool use_c = info.input_present(2) && beta_ != 0.f;
      if (M > 0 && N > 0 && K > 0) Prepare(M, N, K, use_c || ep_.has_residual(), ep_.has_residual() ? 1.f : beta_);
    }
    return Status::Ok();
  }

  Status Compute(KernelContext& ctx) override {
    const Tensor& A = ctx.input_tensor(0);
    // Packed weights were float32 [K, N] (after transB); their input is absent once released.
    const Tensor* B = packed_.packed() ? nullptr : &ctx.input_tensor(1);
    const DType b_dtype = B ? B->dtype() : DType::kFloat;
    const Tensor* C = ctx.has_input(2) ? &ctx.input_tensor(2) : nullptr;
    if (A.rank() != 2 || (B && B->rank() != 2)) return InvalidArgument("Gemm: A and B must be 2-D");
    if (A.dtype() != b_dtype || (C && C->dtype() != A.dtype())) return InvalidArgument("Gemm: input dtypes differ");
    const int64_t M = trans_a_ ? A.dim(1) : A.dim(0), K = trans_a_ ? A.dim(0) : A.dim(1);
    const int64_t KB = B ? (trans_b_ ? B->dim(1) : B->dim(0)) : packed_.K();
    const int64_t N = B ? (trans_b_ ? B->dim(0) : B->dim(1)) : packed_.N();
    if (K != KB)
      return InvalidArgument("Gemm: inner dimensions differ: " + ShapeToString(A.shape()) + " x " +
                             ShapeToString(B ? B->shape() : (trans_b_ ? Shape{N, KB} : Shape{KB, N})));
    if (C) {
      if (C->rank() > 2) return InvalidArgument("Gemm: C must have rank <= 2");
      auto bs = BroadcastShapes(C->shape(), Shape{M, N});
      if (!bs.ok() || *bs != Shape{M, N})
        return InvalidArgument("Gemm: C of shape " + ShapeToString(C->shape()) + " does not broadcast to " +
                               ShapeToString({M, N}));
    }
    const float* residual = nullptr;
    if (ep_.has_residual()) {
      const Tensor& r = ctx.input_tensor(3);
      if (r.dtype() != DType::kFloat || r.shape() != Shape{M, N})
        return InvalidArgument("FusedGemm: residual must be float32 " + ShapeToString({M, N}) + ", got " +
                               ShapeToString(r.shape()));
      residual = r.data<float>();
    }
    ASSIGN_OR_RETURN(Tensor * Y, ctx.AllocateOutput(0, A.dtype(), {M, N}));
    std::lock_guard<std::mutex> lock(mu_);  // the cached primitive is per-kernel state
    return Dispatch(GemmTypes{}, A.dtype(), [&](auto* tag) -> Status {
      using T = std::remove_pointer_t<decltype(tag)>;
      if constexpr (std::is_same_v<T, float>) {
        return onednn::Call("gemm", [&] {
                 RunFloat(M, N, K, A.data<float>(), B ? B->data<float>() : nullptr, C ? C->data<float>() : nullptr,
                          C ? &C->shape() : nullptr, Y->data<float>(), residual);
               });
      } else if constexpr (std::is_same_v<T, Float16> || std::is_same_v<T, BFloat16>) {
        std::vector<float> a(static_cast<size_t>(A.numel())), b(static_cast<size_t>(B->numel())),
            y(static_cast<size_t>(Y->numel())), c;
        nn::ConvertBuffer(A.data<T>(), a.data(), A.numel());
        nn::ConvertBuffer(B->data<T>(), b.data(), B->numel());
        if (C) {
          c.resize(static_cast<size_t>(C->numel()));
          nn::ConvertBuffer(C->data<T>(), c.data(), C->numel());
        }
        RETURN_IF_ERROR(onednn::Call("gemm", [&] {
                          RunFloat(M, N, K, a.data(), b.data(), C ? c.data() : nullptr, C ? &C->shape() : nullptr,
                                   y.data(), nullptr);
                        }));
        nn::ConvertBufferToHalf(y.data(), Y->data<T>(), Y->numel());
      } else {
        RunRef<T>(M, N, K, A.data<T>(), B->data<T>(), C ? C->data<T>() : nullptr, C ? &C->shape() : nullptr,
                  Y->data<T>());
      }
      return Status::Ok();
    });
  }

 private:
  // Y = C broadcast to [M, N] (as type T).
  template <typename T>
  static void FillC(int64_t M, int64_t N, const T* c, const Shape& cs, T* y) {
    const Shape full{M, N};
    const auto st = BroadcastStrides(cs, full);
    for (int64_t i = 0; i < M; ++i)
      for (int64_t j = 0; j < N; ++j) y[i * N + j] = c[i * st[0] + j * st[1]];
  }

  void Prepare(int64_t M, int64_t N, int64_t K, bool sum, float sum_scale) {
    if (prepared_ && M == m_ && N == n_ && K == k_ && sum == sum_ && sum_scale == sum_scale_) return;
    prepared_ = true;
    m_ = M; n_ = N; k_ = K; sum_ = sum; sum_scale_ = sum_scale;
    prim_ok_ = false;
    try {
      a_md_ = memory::desc({M, K}, memory::data_type::f32, trans_a_ ? memory::dims{1, M} : memory::dims{K, 1});
      b_md_ = memory::desc({K, N}, memory::data_type::f32, trans_b_ ? memory::dims{1, K} : memory::dims{N, 1});
      y_md_ = memory::desc({M, N}, memory::data_type::f32, memory::dims{N, 1});
      dnnl::matmul::desc desc(a_md_, b_md_, y_md_);
      // alpha, then the epilogue; with `sum` the primitive adds sum_scale times what is in Y before it
      // runs (beta*C and/or the residual).
      dnnl::matmul::primitive_desc pd(desc, onednn::MatMulAttr(alpha_, sum ? sum_scale : 0.f, ep_.activations()),
                                      Engine());
      prim_ = dnnl::matmul(pd);
      prim_ok_ = true;
    } catch (const dnnl::error&) {
      prim_ok_ = false;
    }
  }

  // y = activations(alpha*a*b + beta*c + residual); without an epilogue, plain Gemm.
  void RunFloat(int64_t M, int64_t N, int64_t K, const float* a, const float* b, const float* c, const Shape* cs,
                float* y, const float* residual) {
    const int64_t n = M * N;
    if (n == 0) return;
    const bool use_c = c && beta_ != 0.f;
    if (K > 0) {
      // The prior contents of y that the sum post-op adds.
      auto fill_sum = [&] {
        if (use_c) FillC(M, N, c, *cs, y);
        if (residual && use_c) {
          ParallelFor(n, [&](int64_t b, int64_t e) {
            for (int64_t i = b; i < e; ++i) y[i] = beta_ * y[i] + residual[i];
          }, int64_t{1} << 16);
        } else if (residual) {
          ParallelCopy(residual, y, n);
        }
      };
      if (packed_.packed()) {
        fill_sum();
        if (packed_.Run(M, a, nullptr, y)) return;
        b = packed_.PlainWeights();
      } else {
        Prepare(M, N, K, use_c || residual, residual ? 1.f : beta_);
        if (prim_ok_) {
          fill_sum();
          call_.Arg(DNNL_ARG_SRC, a_md_, a).Arg(DNNL_ARG_WEIGHTS, b_md_, b).Arg(DNNL_ARG_DST, y_md_, y);
          call_.Execute(prim_);
          return;
        }
      }
      RunRef<float>(M, N, K, a, b, c, cs, y);
    } else if (use_c) {
      FillC(M, N, c, *cs, y);
      for (int64_t i = 0; i < n; ++i) y[i] *= beta_;
    } else {
      std::fill(y, y + n, 0.f);
    }
    ep_.Apply(y, n, residual);
  }

  template <typename T>
  void RunRef(int64_t M, int64_t N, int64_t K, const T* a, const T* b, const T* c, const Shape* cs, T* y) {
    using Acc = ComputeType<T>;
    std::vector<T> at, bt;
    if (trans_a_) {
      at.resize(static_cast<size_t>(M * K));
      for (int64_t i = 0; i < M; ++i)
        for (int64_t k = 0; k < K; ++k) at[static_cast<size_t>(i * K + k)] = a[k * M + i];
      a = at.data();
    }
    if (trans_b_) {
      bt.resize(static_cast<size_t>(K * N));
      for (int64_t k = 0; k < K; ++k)
        for (int64_t j = 0; j < N; ++j) bt[static_cast<size_t>(k * N + j)] = b[j * K + k];
      b = bt.data();
    }
    std::vector<Acc> acc(static_cast<size_t>(M * N));
    nn::GemmRef<Acc>(M, N, K, a, b, acc.data(), false);
    std::vector<T> cf;
    if (c) {
      cf.resize(static_cast<size_t>(M * N));
      FillC(M, N, c, *cs, cf.data());
    }
    const bool exact = alpha_ == 1.f && beta_ == 1.f;
    for (int64_t i = 0; i < M * N; ++i) {
      const size_t u = static_cast<size_t>(i);
      if (exact) {
        y[i] = static_cast<T>(acc[u] + (c ? static_cast<Acc>(cf[u]) : Acc(0)));
      } else {
        double v = static_cast<double>(alpha_) * static_cast<double>(acc[u]);
        if (c) v += static_cast<double>(beta_) * static_cast<double>(cf[u]);
        y[i] = CastValue<T, double>(v);
      }
    }
  }

  std::mutex mu_;
  bool trans_a_ = false, trans_b_ = false;
  float alpha_ = 1.f, beta_ = 1.f;
  bool prepared_ = false, prim_ok_ = false, sum_ = false;
  float sum_scale_ = 1.f;
  Epilogue ep_;  // FusedGemm only
  int64_t m_ = -1, n_ = -1, k_ = -1;
  dnnl::matmul prim_;
  memory::desc a_md_, b_md_, y_md_;
  nn::DnnlCall call_;
  PackedMatMul packed_;  // when B is a constant float32 matrix and A is not transposed
};

const KernelRegistrar kGemm{{.op_type = "Gemm", .since = 1, .until = 18, .dtypes = DTypesOf(GemmTypes{}),
                             .factory = MakeKernel<GemmKernel>}};
const KernelRegistrar kFusedGemm{{.op_type = "FusedGemm", .domain = "com.strata", .since = 1, .until = 1,
                                  .dtypes = {DType::kFloat}, .factory = MakeKernel<GemmKernel>}};

}  // namespace
}  // namespace strata::cpu
