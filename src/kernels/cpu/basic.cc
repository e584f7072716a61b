// Ops that move values without computing: Identity, Constant.
#include "kernels/cpu/common.h"

namespace strata::cpu {
namespace {

class IdentityKernel final : public OpKernel {
 public:
  Status Init(const KernelInfo&) { return Status::Ok(); }
  Status Compute(KernelContext& ctx) override {
    ctx.SetOutput(0, ctx.input(0));
    return Status::Ok();
  }
};

class ConstantKernel final : public OpKernel {
 public:
  Status Init(const KernelInfo& info) {
    const auto& n = info.node();
    if (n.attributes.size() != 1) return info.Error("Constant needs exactly one value attribute");
    const ir::Attribute& a = n.attributes[0];
    if (a.name == "value") value_ = a.t;
    else if (a.name == "value_float") value_ = Tensor::Scalar<float>(a.f);
    else if (a.name == "value_int") value_ = Tensor::Scalar<int64_t>(a.i);
    else if (a.name == "value_string") { value_ = Tensor(DType::kString, {}); value_.data<std::string>()[0] = a.s; }
    else if (a.name == "value_floats") value_ = Tensor::FromVector(a.floats, {static_cast<int64_t>(a.floats.size())});
    else if (a.name == "value_ints") value_ = Tensor::FromVector(a.ints, {static_cast<int64_t>(a.ints.size())});
    else if (a.name == "value_strings") value_ = Tensor::FromVector(a.strings, {static_cast<int64_t>(a.strings.size())});
    else return info.Error("attribute '" + a.name + "' is not supported (sparse_value is not implemented)");
    return Status::Ok();
  }
  Status Compute(KernelContext& ctx) override {
    ctx.SetOutput(0, value_);
    return Status::Ok();
  }

 private:
  Tensor value_;
};

const KernelRegistrar kIdentity{{.op_type = "Identity", .since = 1, .until = 18, .factory = MakeKernel<IdentityKernel>}};
const KernelRegistrar kConstant{{.op_type = "Constant", .since = 1, .until = 18, .factory = MakeKernel<ConstantKernel>}};

}  // namespace
}  // namespace strata::cpu
