// Sequence ops: SequenceEmpty, SequenceConstruct, SequenceInsert, SequenceAt, SequenceErase,
// SequenceLength, SplitToSequence, ConcatFromSequence, SequenceMap.
#include <memory>
#include <string>
#include <vector>

#include "kernels/cpu/common.h"
#include "kernels/cpu/control_util.h"
#include "runtime/executor.h"

namespace strata::cpu {
namespace {

Result<const std::vector<Tensor>*> SeqInput(KernelContext& ctx, int i, const char* op) {
  if (!ctx.has_input(i) || !ctx.input(i).is_sequence())
    return InvalidArgument(std::string(op) + ": input " + std::to_string(i) + " must be a sequence, got " +
                           (ctx.has_input(i) ? KindName(ctx.input(i)) : std::string("nothing")));
  return &ctx.input(i).sequence();
}

Result<const Tensor*> TensorInput(KernelContext& ctx, int i, const char* op) {
  if (!ctx.has_input(i) || !ctx.input(i).is_tensor())
    return InvalidArgument(std::string(op) + ": input " + std::to_string(i) + " must be a tensor, got " +
                           (ctx.has_input(i) ? KindName(ctx.input(i)) : std::string("nothing")));
  return &ctx.input_tensor(i);
}

Result<int64_t> ReadPosition(const Tensor& t, const char* op) {
  if ((t.dtype() != DType::kInt32 && t.dtype() != DType::kInt64) || t.numel() != 1)
    return InvalidArgument(std::string(op) + ": position must be a scalar int32/int64 tensor");
  return t.GetAsInt64(0);
}

class SequenceEmptyKernel final : public OpKernel {
 public:
  Status Init(const KernelInfo& info) {
    dtype_ = static_cast<DType>(info.attr_int("dtype", static_cast<int64_t>(DType::kFloat)));
    if (DTypeSize(dtype_) == 0 && dtype_ != DType::kString) return info.Error("unsupported dtype attribute");
    return Status::Ok();
  }
  Status Compute(KernelContext& ctx) override {
    ctx.SetOutput(0, Value::Sequence({}, dtype_));
    return Status::Ok();
  }

 private:
  DType dtype_ = DType::kFloat;
};

class SequenceConstructKernel final : public OpKernel {
 public:
  Status Init(const KernelInfo&) { return Status::Ok(); }
  Status Compute(KernelContext& ctx) override {
    std::vector<Tensor> items;
    items.reserve(static_cast<size_t>(ctx.num_inputs()));
    for (int i = 0; i < ctx.num_inputs(); ++i) {
      ASSIGN_OR_RETURN(const Tensor* t, TensorInput(ctx, i, "SequenceConstruct"));
      if (!items.empty() && t->dtype() != items[0].dtype())
        return InvalidArgument("SequenceConstruct: inputs have different dtypes");
      items.push_back(*t);
    }
    if (items.empty()) return InvalidArgument("SequenceConstruct: needs at least one input");
    const DType dt = items[0].dtype();
    ctx.SetOutput(0, Value::Sequence(std::move(items), dt));
    return Status::Ok();
  }
};

class SequenceInsertKernel final : public OpKernel {
 public:
  Status Init(const KernelInfo&) { return Status::Ok(); }
  Status Compute(KernelContext& ctx) override {
    ASSIGN_OR_RETURN(const std::vector<Tensor>* seq, SeqInput(ctx, 0, "SequenceInsert"));
    ASSIGN_OR_RETURN(const Tensor* t, TensorInput(ctx, 1, "SequenceInsert"));
    DType et = ctx.input(0).sequence_elem_type();
    if (!seq->empty()) et = (*seq)[0].dtype();
    if (et != DType::kUndefined && !seq->empty() && t->dtype() != et)
      return InvalidArgument("SequenceInsert: tensor dtype " + std::string(DTypeName(t->dtype())) +
                             " does not match the sequence's " + std::string(DTypeName(et)));
    const auto n = static_cast<int64_t>(seq->size());
    int64_t pos = n;
    if (ctx.has_input(2) && ctx.input(2).is_tensor()) {
      ASSIGN_OR_RETURN(pos, ReadPosition(ctx.input_tensor(2), "SequenceInsert"));
      if (pos < -n || pos > n)
        return InvalidArgument("SequenceInsert: position " + std::to_string(pos) + " is out of range for length " +
                               std::to_string(n));
      if (pos < 0) pos += n;
    }
    std::vector<Tensor> items(*seq);
    items.insert(items.begin() + pos, *t);
    ctx.SetOutput(0, Value::Sequence(std::move(items), t->dtype()));
    return Status::Ok();
  }
};

class SequenceAtKernel final : public OpKernel {
 public:
  Status Init(const KernelInfo&) { return Status::Ok(); }
  Status Compute(KernelContext& ctx) override {
    ASSIGN_OR_RETURN(const std::vector<Tensor>* seq, SeqInput(ctx, 0, "SequenceAt"));
    ASSIGN_OR_RETURN(const Tensor* p, TensorInput(ctx, 1, "SequenceAt"));
    ASSIGN_OR_RETURN(int64_t pos, ReadPosition(*p, "SequenceAt"));
    const auto n = static_cast<int64_t>(seq->size());
    if (pos < -n || pos >= n)
      return InvalidArgument("SequenceAt: position " + std::to_string(pos) + " is out of range for length " +
                             std::to_string(n));
    if (pos < 0) pos += n;
    ctx.SetOutput(0, (*seq)[static_cast<size_t>(pos)]);
    return Status::Ok();
  }
};

class SequenceEraseKernel final : public OpKernel {
 public:
  Status Init(const KernelInfo&) { return Status::Ok(); }
  Status Compute(KernelContext& ctx) override {
    ASSIGN_OR_RETURN(const std::vector<Tensor>* seq, SeqInput(ctx, 0, "SequenceErase"));
    const auto n = static_cast<int64_t>(seq->size());
    int64_t pos = n - 1;
    if (ctx.has_input(1) && ctx.input(1).is_tensor()) {
      ASSIGN_OR_RETURN(pos, ReadPosition(ctx.input_tensor(1), "SequenceErase"));
    }
    if (pos < -n || pos >= n)
      return InvalidArgument("SequenceErase: position " + std::to_string(pos) + " is out of range for length " +
                             std::to_string(n));
    if (pos < 0) pos += n;
    std::vector<Tensor> items(*seq);
    items.erase(items.begin() + pos);
    ctx.SetOutput(0, Value::Sequence(std::move(items), ctx.input(0).sequence_elem_type()));
    return Status::Ok();
  }
};

class SequenceLengthKernel final : public OpKernel {
 public:
  Status Init(const KernelInfo&) { return Status::Ok(); }
  Status Compute(KernelContext& ctx) override {
    ASSIGN_OR_RETURN(const std::vector<Tensor>* seq, SeqInput(ctx, 0, "SequenceLength"));
    ctx.SetOutput(0, Tensor::Scalar<int64_t>(static_cast<int64_t>(seq->size())));
    return Status::Ok();
  }
};

// Copies [start, start+len) along `axis` of t.
Result<Tensor> Narrow(const Tensor& t, int axis, int64_t start, int64_t len) {
  Shape s = t.shape();
  const auto ua = static_cast<size_t>(axis);
  const int64_t outer = DimProduct(s, 0, ua), inner = DimProduct(s, ua + 1, s.size()), n = s[ua];
  s[ua] = len;
  ASSIGN_OR_RETURN(Tensor out, Tensor::Create(t.dtype(), s));
  for (int64_t o = 0; o < outer; ++o) CopyElements(out, o * len * inner, t, (o * n + start) * inner, len * inner);
  return out;
}

class SplitToSequenceKernel final : public OpKernel {
 public:
  Status Init(const KernelInfo& info) {
    axis_ = info.attr_int("axis", 0);
    keepdims_ = info.attr_int("keepdims", 1) != 0;
    return Status::Ok();
  }
  Status Compute(KernelContext& ctx) override {
    ASSIGN_OR_RETURN(const Tensor* x, TensorInput(ctx, 0, "SplitToSequence"));
    ASSIGN_OR_RETURN(int axis, NormalizeAxis(axis_, x->rank(), "SplitToSequence: "));
    if (x->rank() == 0) return InvalidArgument("SplitToSequence: input must have rank >= 1");
    const int64_t dim = x->dim(axis);
    std::vector<int64_t> lens;
    bool squeeze = false;
    if (ctx.has_input(1) && ctx.input(1).is_tensor()) {
      const Tensor& sp = ctx.input_tensor(1);
      ASSIGN_OR_RETURN(std::vector<int64_t> v, ReadInt64s(sp));
      if (sp.rank() == 0) {
        const int64_t c = v[0];
        if (c <= 0) return InvalidArgument("SplitToSequence: split must be positive");
        for (int64_t s = 0; s < dim; s += c) lens.push_back(std::min(c, dim - s));
      } else {
        if (sp.rank() != 1) return InvalidArgument("SplitToSequence: split must be a scalar or 1-D");
        int64_t sum = 0;
        for (int64_t l : v) {
          if (l < 0) return InvalidArgument("SplitToSequence: split lengths must be non-negative");
          sum += l;
        }
        if (sum != dim)
          return InvalidArgument("SplitToSequence: split lengths sum to " + std::to_string(sum) + ", not the axis size " +
                                 std::to_string(dim));
        lens = std::move(v);
      }
    } else {
      lens.assign(static_cast<size_t>(dim), 1);
      squeeze = !keepdims_;
    }
    std::vector<Tensor> items;
    items.reserve(lens.size());
    int64_t start = 0;
    for (int64_t l : lens) {
      if (squeeze) {
        ASSIGN_OR_RETURN(Tensor t, SliceAlongAxis(*x, axis, start));
        items.push_back(std::move(t));
      } else {
        ASSIGN_OR_RETURN(Tensor t, Narrow(*x, axis, start, l));
        items.push_back(std::move(t));
      }
      start += l;
    }
    ctx.SetOutput(0, Value::Sequence(std::move(items), x->dtype()));
    return Status::Ok();
  }

 private:
  int64_t axis_ = 0;
  bool keepdims_ = true;
};

class ConcatFromSequenceKernel final : public OpKernel {
 public:
  Status Init(const KernelInfo& info) {
    if (!info.has_attr("axis")) return info.Error("missing required attribute 'axis'");
    axis_ = info.attr_int("axis", 0);
    new_axis_ = info.attr_int("new_axis", 0) != 0;
    return Status::Ok();
  }
  Status Compute(KernelContext& ctx) override {
    ASSIGN_OR_RETURN(const std::vector<Tensor>* seq, SeqInput(ctx, 0, "ConcatFromSequence"));
    if (seq->empty()) return InvalidArgument("ConcatFromSequence: the sequence is empty");
    const Tensor& f = (*seq)[0];
    const int r = f.rank();
    const int out_rank = new_axis_ ? r + 1 : r;
    if (axis_ < -out_rank || axis_ >= out_rank || out_rank == 0)
      return InvalidArgument("ConcatFromSequence: axis " + std::to_string(axis_) + " is out of range");
    const int axis = static_cast<int>(axis_ < 0 ? axis_ + out_rank : axis_);
    int64_t total = 0;
    for (const Tensor& t : *seq) {
      if (t.dtype() != f.dtype() || t.rank() != r)
        return InvalidArgument("ConcatFromSequence: elements differ in dtype or rank");
      for (int d = 0; d < r; ++d)
        if (t.dim(d) != f.dim(d) && (new_axis_ || d != axis))
          return InvalidArgument("ConcatFromSequence: element shapes " + ShapeToString(f.shape()) + " and " +
                                 ShapeToString(t.shape()) + " are incompatible");
      total += new_axis_ ? 1 : t.dim(axis);
    }
    Shape out_shape = f.shape();
    if (new_axis_) out_shape.insert(out_shape.begin() + axis, total);
    else out_shape[static_cast<size_t>(axis)] = total;
    ASSIGN_OR_RETURN(Tensor out, Tensor::Create(f.dtype(), out_shape));
    const auto ua = static_cast<size_t>(axis);
    const int64_t outer = DimProduct(out_shape, 0, ua), inner = DimProduct(out_shape, ua + 1, out_shape.size());
    int64_t off = 0;
    for (const Tensor& t : *seq) {
      const int64_t len = new_axis_ ? 1 : t.dim(axis);
      for (int64_t o = 0; o < outer; ++o) CopyElements(out, (o * total + off) * inner, t, o * len * inner, len * inner);
      off += len;
    }
    ctx.SetOutput(0, std::move(out));
    return Status::Ok();
  }

 private:
  int64_t axis_ = 0;
  bool new_axis_ = false;
};

class SequenceMapKernel final : public OpKernel {
 public:
  Status Init(const KernelInfo& info) {
    const ir::Attribute* a = info.attr("body");
    if (!a || a->type != ir::Attribute::Type::kGraph || !a->g) return info.Error("missing graph attribute 'body'");
    const ir::Graph& g = *a->g;
    if (static_cast<int>(g.inputs.size()) != info.num_inputs())
      return info.Error("the body takes " + std::to_string(g.inputs.size()) + " inputs but the node has " +
                        std::to_string(info.num_inputs()));
    if (static_cast<int>(g.outputs.size()) < info.num_outputs()) return info.Error("the body has too few outputs");
    for (const auto& o : g.outputs) out_types_.push_back(o.type.TensorElemType());
    ASSIGN_OR_RETURN(body_, info.CompileSubgraph(g));
    return Status::Ok();
  }
  Status Compute(KernelContext& ctx) override {
    ASSIGN_OR_RETURN(const std::vector<Tensor>* seq0, SeqInput(ctx, 0, "SequenceMap"));
    const size_t n = seq0->size();
    for (int i = 1; i < ctx.num_inputs(); ++i) {
      if (!ctx.has_input(i)) return InvalidArgument("SequenceMap: missing input " + std::to_string(i));
      if (ctx.input(i).is_sequence() && ctx.input(i).sequence().size() != n)
        return InvalidArgument("SequenceMap: input sequences have different lengths");
    }
    std::vector<std::vector<Tensor>> results(out_types_.size());
    std::vector<Value> in(static_cast<size_t>(ctx.num_inputs())), outs;
    for (size_t k = 0; k < n; ++k) {
      for (int i = 0; i < ctx.num_inputs(); ++i) {
        const Value& v = ctx.input(i);
        in[static_cast<size_t>(i)] = v.is_sequence() ? Value(v.sequence()[k]) : v;
      }
      RETURN_IF_ERROR(ctx.RunSubgraph(*body_, in, outs));
      for (size_t o = 0; o < results.size() && o < outs.size(); ++o) {
        if (!outs[o].is_tensor()) return InvalidArgument("SequenceMap: body output is " + KindName(outs[o]));
        results[o].push_back(std::move(outs[o].tensor()));
      }
    }
    for (int o = 0; o < ctx.num_outputs(); ++o) {
      auto& r = results[static_cast<size_t>(o)];
      DType dt = r.empty() ? out_types_[static_cast<size_t>(o)] : r[0].dtype();
      ctx.SetOutput(o, Value::Sequence(std::move(r), dt));
    }
    return Status::Ok();
  }

 private:
  std::shared_ptr<CompiledGraph> body_;
  std::vector<DType> out_types_;
};

const KernelRegistrar kSeqEmpty{{.op_type = "SequenceEmpty", .since = 11, .until = 18, .factory = MakeKernel<SequenceEmptyKernel>}};
const KernelRegistrar kSeqConstruct{{.op_type = "SequenceConstruct", .since = 11, .until = 18, .factory = MakeKernel<SequenceConstructKernel>}};
const KernelRegistrar kSeqInsert{{.op_type = "SequenceInsert", .since = 11, .until = 18, .factory = MakeKernel<SequenceInsertKernel>}};
const KernelRegistrar kSeqAt{{.op_type = "SequenceAt", .since = 11, .until = 18, .factory = MakeKernel<SequenceAtKernel>}};
const KernelRegistrar kSeqErase{{.op_type = "SequenceErase", .since = 11, .until = 18, .factory = MakeKernel<SequenceEraseKernel>}};
const KernelRegistrar kSeqLength{{.op_type = "SequenceLength", .since = 11, .until = 18, .factory = MakeKernel<SequenceLengthKernel>}};
const KernelRegistrar kSplitToSeq{{.op_type = "SplitToSequence", .since = 11, .until = 18, .factory = MakeKernel<SplitToSequenceKernel>}};
const KernelRegistrar kConcatFromSeq{{.op_type = "ConcatFromSequence", .since = 11, .until = 18, .factory = MakeKernel<ConcatFromSequenceKernel>}};
const KernelRegistrar kSeqMap{{.op_type = "SequenceMap", .since = 17, .until = 18, .factory = MakeKernel<SequenceMapKernel>}};

}  // namespace
}  // namespace strata::cpu
