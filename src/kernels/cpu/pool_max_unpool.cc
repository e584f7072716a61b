// MaxUnpool: scatters MaxPool's values back to the positions its Indices output names.
#include <cstring>
#include <string>
#include <vector>

#include "kernels/cpu/nn_common.h"

namespace strata::cpu {
namespace {

using nn::SpatialAttrs;

using UnpoolTypes = TypeList<float, double, Float16, BFloat16>;

class MaxUnpoolKernel final : public OpKernel {
 public:
  Status Init(const KernelInfo& info) {
    RETURN_IF_ERROR(CheckInputDType(info, 0, DTypesOf(UnpoolTypes{})));
    RETURN_IF_ERROR(a_.Load(info, false, false));
    if (a_.kernel_shape.empty()) return info.Error("kernel_shape is required");
    return Status::Ok();
  }
  Status Compute(KernelContext& ctx) override {
    const Tensor& X = ctx.input_tensor(0);
    const Tensor& I = ctx.input_tensor(1);
    if (X.rank() < 3) return InvalidArgument("MaxUnpool: X must have rank >= 3");
    if (I.dtype() != DType::kInt64 || I.shape() != X.shape())
      return InvalidArgument("MaxUnpool: I must be int64 with the shape of X");
    const size_t nsp = static_cast<size_t>(X.rank() - 2);
    if (a_.kernel_shape.size() != nsp) return InvalidArgument("MaxUnpool: kernel_shape length mismatch");
    const Shape strides = a_.strides.empty() ? Shape(nsp, 1) : Shape(a_.strides);
    const Shape pads = a_.pads.empty() ? Shape(2 * nsp, 0) : Shape(a_.pads);
    if (strides.size() != nsp || pads.size() != 2 * nsp) return InvalidArgument("MaxUnpool: strides/pads length mismatch");
    Shape ys{X.dim(0), X.dim(1)};
    for (size_t i = 0; i < nsp; ++i)
      ys.push_back((X.dim(static_cast<int>(i) + 2) - 1) * strides[i] - pads[i] - pads[i + nsp] + a_.kernel_shape[i]);
    Shape out_shape = ys;
    if (ctx.has_input(2)) {
      ASSIGN_OR_RETURN(std::vector<int64_t> os, ReadInt64s(ctx.input_tensor(2)));
      if (os.size() != ys.size()) return InvalidArgument("MaxUnpool: output_shape has the wrong rank");
      out_shape = os;
    }
    ASSIGN_OR_RETURN(Tensor * Y, ctx.AllocateZeroedOutput(0, X.dtype(), out_shape));
    // Indices address the default output shape; map them by coordinates into the requested one.
    const int64_t ndef = NumElements(ys);
    const bool same = out_shape == ys;
    const int64_t* idx = I.data<int64_t>();
    const size_t es = DTypeSize(X.dtype());
    const char* x = static_cast<const char*>(X.raw());
    char* y = static_cast<char*>(Y->raw());
    const int rank = static_cast<int>(ys.size());
    for (int64_t i = 0; i < X.numel(); ++i) {
      if (idx[i] < 0 || idx[i] >= ndef)
        return InvalidArgument("MaxUnpool: index " + std::to_string(idx[i]) + " out of range for output of " +
                               std::to_string(ndef) + " elements");
      int64_t dst = idx[i];
      if (!same) {
        int64_t rem = idx[i], mul = 1;
        dst = 0;
        for (int d = rank - 1; d >= 0; --d) {
          const int64_t c = rem % ys[static_cast<size_t>(d)];
          rem /= ys[static_cast<size_t>(d)];
          if (c >= out_shape[static_cast<size_t>(d)]) return InvalidArgument("MaxUnpool: index outside output_shape");
          dst += c * mul;
          mul *= out_shape[static_cast<size_t>(d)];
        }
      }
      std::memcpy(y + static_cast<size_t>(dst) * es, x + static_cast<size_t>(i) * es, es);
    }
    return Status::Ok();
  }

 private:
  SpatialAttrs a_;
};

const KernelRegistrar kMaxUnpool{{.op_type = "MaxUnpool", .since = 9, .until = 18, .dtypes = DTypesOf(UnpoolTypes{}),
                                  .factory = MakeKernel<MaxUnpoolKernel>}};

}  // namespace
}  // namespace strata::cpu
