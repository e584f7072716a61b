#include "runtime/kernel.h"

#include <cstring>

namespace strata {

int64_t KernelInfo::attr_int(std::string_view name, int64_t dflt) const {
  const auto* a = node_->attr(name);
  return a ? a->i : dflt;
}
float KernelInfo::attr_float(std::string_view name, float dflt) const {
  const auto* a = node_->attr(name);
  return a ? a->f : dflt;
}
std::string KernelInfo::attr_string(std::string_view name, const std::string& dflt) const {
  const auto* a = node_->attr(name);
  return a ? a->s : dflt;
}
std::vector<int64_t> KernelInfo::attr_ints(std::string_view name, std::vector<int64_t> dflt) const {
  const auto* a = node_->attr(name);
  return a ? a->ints : dflt;
}
std::vector<float> KernelInfo::attr_floats(std::string_view name, std::vector<float> dflt) const {
  const auto* a = node_->attr(name);
  return a ? a->floats : dflt;
}
std::vector<std::string> KernelInfo::attr_strings(std::string_view name) const {
  const auto* a = node_->attr(name);
  return a ? a->strings : std::vector<std::string>{};
}

std::string KernelInfo::Where() const {
  return node_->Describe() + " [opset " + std::to_string(opset_) + "]: ";
}

std::string KernelContext::Where() const { return node_->Describe() + ": "; }

Result<Tensor*> KernelContext::AllocateOutput(int i, DType dtype, Shape shape) {
  if (i >= num_outputs()) return Internal(Where() + "output index " + std::to_string(i) + " out of range");
  auto t = NewOutputTensor(i, dtype, std::move(shape));
  if (!t.ok()) return t.status().WithContext(Where() + "output " + std::to_string(i) + ": ");
  Value* slot = outputs_[static_cast<size_t>(i)];
  *slot = Value(std::move(t).value());
  return &slot->tensor();
}

Result<Tensor*> KernelContext::AllocateZeroedOutput(int i, DType dtype, Shape shape) {
  ASSIGN_OR_RETURN(Tensor * t, AllocateOutput(i, dtype, std::move(shape)));
  if (t->dtype() != DType::kString && t->nbytes() > 0) std::memset(t->raw(), 0, t->nbytes());
  return t;
}

Result<Tensor> KernelContext::NewOutputTensor(int, DType dtype, Shape shape) {
  return Tensor::CreateUninitialized(dtype, std::move(shape));
}

void KernelContext::SetOutput(int i, Value v) {
  if (i < num_outputs()) *outputs_[static_cast<size_t>(i)] = std::move(v);
}

KernelRegistry& KernelRegistry::Global() {
  static KernelRegistry registry;
  return registry;
}

void KernelRegistry::Register(KernelDef def) { defs_.push_back(std::move(def)); }

const KernelDef* KernelRegistry::Find(std::string_view domain, std::string_view op_type, int64_t opset) const {
  for (const auto& d : defs_)
    if (d.op_type == op_type && d.domain == domain && opset >= d.since && opset <= d.until) return &d;
  return nullptr;
}

bool KernelRegistry::KnowsOp(std::string_view domain, std::string_view op_type) const {
  for (const auto& d : defs_)
    if (d.op_type == op_type && d.domain == domain) return true;
  return false;
}

}  // namespace strata
