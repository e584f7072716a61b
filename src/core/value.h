// Value: what flows along a graph edge at run time: a tensor, a sequence of tensors,
// or nothing (an empty optional).
#pragma once

#include <memory>
#include <vector>

#include "core/tensor.h"

namespace strata {

class Value {
 public:
  enum class Kind { kNone, kTensor, kSequence };

  Value() = default;
  Value(Tensor t) : kind_(Kind::kTensor), tensor_(std::move(t)) {}  // NOLINT: a tensor is a value
  static Value Sequence(std::vector<Tensor> items, DType elem_type) {
    Value v;
    v.kind_ = Kind::kSequence;
    v.seq_ = std::make_shared<const std::vector<Tensor>>(std::move(items));
    v.elem_type_ = elem_type;
    return v;
  }
  static Value None() { return Value(); }

  Kind kind() const { return kind_; }
  bool is_none() const { return kind_ == Kind::kNone; }
  bool is_tensor() const { return kind_ == Kind::kTensor; }
  bool is_sequence() const { return kind_ == Kind::kSequence; }

  const Tensor& tensor() const { return tensor_; }
  Tensor& tensor() { return tensor_; }
  const std::vector<Tensor>& sequence() const { return *seq_; }
  // Element dtype of a sequence (kept even when the sequence is empty).
  DType sequence_elem_type() const { return elem_type_; }

 private:
  Kind kind_ = Kind::kNone;
  Tensor tensor_;
  std::shared_ptr<const std::vector<Tensor>> seq_;
  DType elem_type_ = DType::kUndefined;
};

}  // namespace strata
