#include "kernels/cpu/ukernels/onednn.h"

#include <string>
#include <utility>

namespace strata::cpu::onednn {

dnnl::post_ops PostOps(std::span<const uk::ActivationOp> activations, bool sum, float sum_scale) {
  using A = dnnl::algorithm;
  using uk::Activation;
  dnnl::post_ops po;
  if (sum) po.append_sum(sum_scale);
  for (const uk::ActivationOp& op : activations) {
    switch (op.act) {
      case Activation::kRelu: po.append_eltwise(1.f, A::eltwise_relu, 0.f, 0.f); break;
      case Activation::kLeakyRelu: po.append_eltwise(1.f, A::eltwise_relu, op.alpha, 0.f); break;
      case Activation::kClip: po.append_eltwise(1.f, A::eltwise_clip, op.alpha, op.beta); break;
      case Activation::kSigmoid: po.append_eltwise(1.f, A::eltwise_logistic, 0.f, 0.f); break;
      case Activation::kTanh: po.append_eltwise(1.f, A::eltwise_tanh, 0.f, 0.f); break;
      case Activation::kHardSigmoid:
        po.append_eltwise(1.f, A::eltwise_linear, op.alpha, op.beta);
        po.append_eltwise(1.f, A::eltwise_clip, 0.f, 1.f);
        break;
      case Activation::kHardSwish: po.append_eltwise(1.f, A::eltwise_hardswish, 0.f, 0.f); break;
      case Activation::kGelu: po.append_eltwise(1.f, A::eltwise_gelu_erf, 0.f, 0.f); break;
      case Activation::kGeluTanh: po.append_eltwise(1.f, A::eltwise_gelu_tanh, 0.f, 0.f); break;
    }
  }
  return po;
}

dnnl::primitive_attr MatMulAttr(float alpha, float sum_scale, std::span<const uk::ActivationOp> activations) {
  dnnl::primitive_attr attr;
  if (alpha != 1.f) attr.set_output_scales(0, {alpha});
  if (sum_scale != 0.f || !activations.empty()) attr.set_post_ops(PostOps(activations, sum_scale != 0.f, sum_scale));
  return attr;
}

dnnl::engine& Engine() {
  static dnnl::engine engine(dnnl::engine::kind::cpu, 0);
  return engine;
}

dnnl::stream& Stream() {
  static dnnl::stream stream(Engine());
  return stream;
}

DnnlCall& DnnlCall::Arg(int arg, const dnnl::memory::desc& md, const void* data) {
  Slot* slot = nullptr;
  for (Slot& s : slots_)
    if (s.arg == arg) slot = &s;
  if (!slot || slot->mem.get_desc() != md) {
    if (!slot) {
      slots_.push_back({arg, dnnl::memory()});
      slot = &slots_.back();
      args_.reserve(slots_.size());
    }
    slot->mem = dnnl::memory(md, Engine(), const_cast<void*>(data));
  } else {
    slot->mem.set_data_handle(const_cast<void*>(data));
  }
  args_.push_back({arg, slot->mem.get()});
  return *this;
}

void DnnlCall::Execute(const dnnl::primitive& prim) {
  const dnnl_status_t st = dnnl_primitive_execute(prim.get(), Stream().get(), static_cast<int>(args_.size()), args_.data());
  args_.clear();
  if (st != dnnl_success) throw dnnl::error(st, "could not execute a primitive");
  Stream().wait();
}

bool WinogradAvailable() {
  static const bool available = [] {
    try {
      using dnnl::memory;
      const memory::desc src({1, 16, 28, 28}, memory::data_type::f32, memory::format_tag::any);
      const memory::desc wei({16, 16, 3, 3}, memory::data_type::f32, memory::format_tag::any);
      const dnnl::convolution_forward::desc d(dnnl::prop_kind::forward_inference, dnnl::algorithm::convolution_winograd,
                                              src, wei, src, {1, 1}, {1, 1}, {1, 1});
      dnnl::convolution_forward::primitive_desc pd(d, Engine());
      do {
        if (std::string(pd.impl_info_str()).find("wino_4x3") != std::string::npos) return true;
      } while (pd.next_impl());
    } catch (const dnnl::error&) {  // a yes/no probe: oneDNN refusing the descriptor is the answer "no"
    }
    return false;
  }();
  return available;
}

dnnl::memory::desc PlainDesc(const std::vector<int64_t>& dims, dnnl::memory::data_type dt) {
  dnnl::memory::dims d(dims.begin(), dims.end());
  const std::vector<int64_t> s = RowMajorStrides(dims);
  return dnnl::memory::desc(d, dt, dnnl::memory::dims(s.begin(), s.end()));
}

Status ErrorStatus(const dnnl::error& error, std::string_view what) {
  std::string message = std::string(what) + ": oneDNN: " + error.what();
  switch (error.status) {
    case dnnl_out_of_memory: return OutOfMemory(what);
    case dnnl_unimplemented: return Unsupported(std::move(message));
    case dnnl_invalid_arguments: return InvalidArgument(std::move(message));
    default: return Internal(std::move(message));
  }
}

Status OutOfMemory(std::string_view what) { return Internal(std::string(what) + ": out of memory"); }

}  // namespace strata::cpu::onednn
