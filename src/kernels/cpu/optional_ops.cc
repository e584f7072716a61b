// Optional, OptionalHasElement, OptionalGetElement. An optional holding a value is represented by
// the value itself (tensor or sequence); an empty optional is Value::None().
#include <string>

#include "kernels/cpu/common.h"
#include "kernels/cpu/control_util.h"

namespace strata::cpu {
namespace {

class OptionalKernel final : public OpKernel {
 public:
  Status Init(const KernelInfo& info) {
    if (!info.input_present(0) && !info.has_attr("type"))
      return info.Error("an Optional without an input needs the 'type' attribute");
    return Status::Ok();
  }
  Status Compute(KernelContext& ctx) override {
    ctx.SetOutput(0, ctx.has_input(0) ? ctx.input(0) : Value::None());
    return Status::Ok();
  }
};

class OptionalHasElementKernel final : public OpKernel {
 public:
  Status Init(const KernelInfo&) { return Status::Ok(); }
  Status Compute(KernelContext& ctx) override {
    const bool has = ctx.has_input(0) && !ctx.input(0).is_none();
    ctx.SetOutput(0, Tensor::Scalar<bool>(has));
    return Status::Ok();
  }
};

class OptionalGetElementKernel final : public OpKernel {
 public:
  Status Init(const KernelInfo&) { return Status::Ok(); }
  Status Compute(KernelContext& ctx) override {
    if (!ctx.has_input(0) || ctx.input(0).is_none())
      return InvalidArgument("OptionalGetElement: the optional input is empty");
    ctx.SetOutput(0, ctx.input(0));
    return Status::Ok();
  }
};

const KernelRegistrar kOptional{{.op_type = "Optional", .since = 15, .until = 18, .factory = MakeKernel<OptionalKernel>}};
const KernelRegistrar kOptHas{{.op_type = "OptionalHasElement", .since = 15, .until = 18, .factory = MakeKernel<OptionalHasElementKernel>}};
const KernelRegistrar kOptGet{{.op_type = "OptionalGetElement", .since = 15, .until = 18, .factory = MakeKernel<OptionalGetElementKernel>}};

}  // namespace
}  // namespace strata::cpu
