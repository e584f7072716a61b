// GlobalAveragePool, GlobalMaxPool and GlobalLpPool: one value per (batch, channel) plane. The
// com.strata GlobalAveragePool form (written by the conv-layout pass) may read channels-last data
// (attribute "layout").
#include <cmath>
#include <limits>
#include <type_traits>

#include "kernels/cpu/nn_common.h"
#include "kernels/cpu/pool_common.h"
#include "kernels/cpu/ukernels/pool_rows.h"

namespace strata::cpu {
namespace {

using pool::PoolFloatTypes;

enum class GlobalKind { kAvg, kMax, kLp };

template <GlobalKind K>
class GlobalPoolKernel final : public OpKernel {
 public:
  Status Init(const KernelInfo& info) {
    RETURN_IF_ERROR(CheckInputDType(info, 0, DTypesOf(PoolFloatTypes{})));
    if constexpr (K == GlobalKind::kLp) {
      p_ = pool::ReadP(info);
      if (!(p_ > 0)) return info.Error("p must be positive");
    }
    return pool::ReadLayout(info, nhwc_);
  }
  Status Compute(KernelContext& ctx) override {
    const Tensor& X = ctx.input_tensor(0);
    if (X.rank() < 2) return InvalidArgument("global pooling input must have rank >= 2");
    Shape ys = X.shape();
    for (size_t i = 2; i < ys.size(); ++i) ys[i] = 1;
    ASSIGN_OR_RETURN(Tensor * Y, ctx.AllocateOutput(0, X.dtype(), ys));
    const int64_t planes = X.dim(0) * X.dim(1);
    const int64_t is = planes ? X.numel() / planes : 0;
    if (nhwc_) {  // Y [N, C, 1, 1] is the same in either layout
      if constexpr (K != GlobalKind::kAvg) return Unsupported("channels-last GlobalMaxPool/GlobalLpPool");
      if (X.dtype() != DType::kFloat || X.rank() != 4)
        return InvalidArgument("channels-last GlobalAveragePool needs a 4-D float32 input, got " +
                               ShapeToString(X.shape()));
      uk::GlobalAvgPoolChannelsLastF32(X.dim(0), X.dim(1), is, X.data<float>(), Y->data<float>());
      return Status::Ok();
    }
    return Dispatch(PoolFloatTypes{}, X.dtype(), [&](auto* tag) -> Status {
      using T = std::remove_pointer_t<decltype(tag)>;
      using A = ComputeType<T>;
      const T* x = X.data<T>();
      T* y = Y->data<T>();
      ParallelFor(
          planes,
          [&](int64_t begin, int64_t end) {
            for (int64_t p = begin; p < end; ++p) {
              const T* xp = x + p * is;
              A acc;
              if constexpr (K == GlobalKind::kMax) {
                acc = -std::numeric_limits<A>::infinity();
                for (int64_t i = 0; i < is; ++i)
                  if (uk::MaxBeats(static_cast<A>(xp[i]), acc)) acc = static_cast<A>(xp[i]);
              } else if constexpr (K == GlobalKind::kAvg) {
                acc = 0;
                for (int64_t i = 0; i < is; ++i) acc += static_cast<A>(xp[i]);
                acc = is ? acc / static_cast<A>(is) : A(0);
              } else {
                acc = 0;
                for (int64_t i = 0; i < is; ++i) acc += pool::LpTerm(static_cast<A>(xp[i]), p_);
                acc = pool::LpFinish(acc, p_);
              }
              y[p] = static_cast<T>(acc);
            }
          },
          pool::PlaneThreshold(is, 1 << 16));
      return Status::Ok();
    });
  }

 private:
  float p_ = 2.f;
  bool nhwc_ = false;
};

const KernelRegistrar kGlobalAveragePool{{.op_type = "GlobalAveragePool", .since = 1, .until = 18,
                                          .dtypes = DTypesOf(PoolFloatTypes{}),
                                          .factory = MakeKernel<GlobalPoolKernel<GlobalKind::kAvg>>}};
const KernelRegistrar kGlobalMaxPool{{.op_type = "GlobalMaxPool", .since = 1, .until = 18,
                                      .dtypes = DTypesOf(PoolFloatTypes{}),
                                      .factory = MakeKernel<GlobalPoolKernel<GlobalKind::kMax>>}};
const KernelRegistrar kGlobalLpPool{{.op_type = "GlobalLpPool", .since = 1, .until = 18,
                                     .dtypes = DTypesOf(PoolFloatTypes{}),
                                     .factory = MakeKernel<GlobalPoolKernel<GlobalKind::kLp>>}};
// The channels-last form the conv-layout pass writes (attribute "layout"; docs/passes.md), at the
// ONNX opset the node was written for (its opset override).
const KernelRegistrar kStrataGlobalAveragePool{{.op_type = "GlobalAveragePool", .domain = "com.strata", .since = 1,
                                                .until = 18, .dtypes = {DType::kFloat},
                                                .factory = MakeKernel<GlobalPoolKernel<GlobalKind::kAvg>>}};

}  // namespace
}  // namespace strata::cpu
