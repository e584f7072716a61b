// Control flow: If, Loop, Scan. Bodies are compiled once at load time and run through
// KernelContext::RunSubgraph, so they can read values of the enclosing scopes.
#include <algorithm>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "kernels/cpu/common.h"
#include "kernels/cpu/control_util.h"
#include "runtime/executor.h"

namespace strata::cpu {
namespace {

Result<const ir::Graph*> GraphAttr(const KernelInfo& info, const char* name) {
  const ir::Attribute* a = info.attr(name);
  if (!a || a->type != ir::Attribute::Type::kGraph || !a->g)
    return info.Error(std::string("missing graph attribute '") + name + "'");
  return a->g.get();
}

// Reads a scalar boolean-ish condition tensor.
Result<bool> ReadCond(const Value& v, const std::string& what) {
  if (!v.is_tensor()) return InvalidArgument(what + " must be a tensor, got " + KindName(v));
  const Tensor& t = v.tensor();
  if (t.numel() != 1) return InvalidArgument(what + " must have exactly one element, got shape " + ShapeToString(t.shape()));
  if (t.dtype() == DType::kBool) return t.data<bool>()[0];
  if (t.dtype() == DType::kString) return InvalidArgument(what + " must be boolean");
  return t.GetAsDouble(0) != 0.0;
}

struct TypeHint {
  DType dtype = DType::kUndefined;
  std::optional<Shape> shape;  // per-iteration shape, when fully known
};

// Stacks per-iteration tensors along a new axis `axis`; `hint` is used when there are none.
Result<Tensor> StackAlong(const std::vector<Tensor>& parts, int axis, const TypeHint& hint, const std::string& what) {
  if (parts.empty()) {
    DType dt = hint.dtype == DType::kUndefined ? DType::kFloat : hint.dtype;
    Shape s = hint.shape ? *hint.shape : Shape{};
    if (axis < 0 || axis > static_cast<int>(s.size())) axis = 0;
    s.insert(s.begin() + axis, 0);
    return Tensor::Create(dt, s);
  }
  const Shape& s0 = parts[0].shape();
  for (const Tensor& p : parts) {
    if (p.shape() != s0 || p.dtype() != parts[0].dtype())
      return InvalidArgument(what + ": per-iteration values differ in shape or dtype (" + ShapeToString(s0) + " vs " +
                             ShapeToString(p.shape()) + ")");
  }
  const int r = static_cast<int>(s0.size());
  if (axis < 0 || axis > r) return InvalidArgument(what + ": axis out of range");
  Shape out_shape = s0;
  out_shape.insert(out_shape.begin() + axis, static_cast<int64_t>(parts.size()));
  ASSIGN_OR_RETURN(Tensor out, Tensor::Create(parts[0].dtype(), out_shape));
  if (axis == 0) {
    const int64_t n = parts[0].numel();
    for (size_t i = 0; i < parts.size(); ++i) CopyElements(out, static_cast<int64_t>(i) * n, parts[i], 0, n);
  } else {
    for (size_t i = 0; i < parts.size(); ++i) WriteAlongAxis(out, axis, static_cast<int64_t>(i), parts[i]);
  }
  return out;
}

TypeHint OutputElemType(const ir::Graph& g, size_t i) {
  TypeHint h;
  if (i >= g.outputs.size()) return h;
  const ir::TypeInfo& t = g.outputs[i].type;
  h.dtype = t.TensorElemType();
  if (t.kind == ir::TypeInfo::Kind::kTensor && t.shape) {
    Shape s;
    for (const ir::Dim& d : *t.shape) {
      if (!d.known()) return h;
      s.push_back(d.value);
    }
    h.shape = std::move(s);
  }
  return h;
}

// ---------------------------------------------------------------------------------------------
class IfKernel final : public OpKernel {
 public:
  Status Init(const KernelInfo& info) {
    ASSIGN_OR_RETURN(const ir::Graph* tg, GraphAttr(info, "then_branch"));
    ASSIGN_OR_RETURN(const ir::Graph* eg, GraphAttr(info, "else_branch"));
    if (tg->outputs.size() != eg->outputs.size())
      return info.Error("then_branch and else_branch have different numbers of outputs");
    if (static_cast<int>(tg->outputs.size()) < info.num_outputs())
      return info.Error("the branches produce fewer outputs than the node has");
    ASSIGN_OR_RETURN(then_, info.CompileSubgraph(*tg));
    ASSIGN_OR_RETURN(else_, info.CompileSubgraph(*eg));
    return Status::Ok();
  }
  Status Compute(KernelContext& ctx) override {
    if (!ctx.has_input(0)) return InvalidArgument("If: missing condition");
    ASSIGN_OR_RETURN(bool c, ReadCond(ctx.input(0), "If condition"));
    std::vector<Value> outs;
    RETURN_IF_ERROR(ctx.RunSubgraph(c ? *then_ : *else_, {}, outs));
    for (int i = 0; i < ctx.num_outputs() && i < static_cast<int>(outs.size()); ++i)
      ctx.SetOutput(i, std::move(outs[static_cast<size_t>(i)]));
    return Status::Ok();
  }

 private:
  std::shared_ptr<CompiledGraph> then_, else_;
};

// ---------------------------------------------------------------------------------------------
class LoopKernel final : public OpKernel {
 public:
  Status Init(const KernelInfo& info) {
    ASSIGN_OR_RETURN(const ir::Graph* g, GraphAttr(info, "body"));
    body_ir_ = g;
    num_carried_ = info.num_inputs() - 2;
    if (num_carried_ < 0) return info.Error("Loop needs at least the M and cond inputs (possibly empty)");
    if (static_cast<int>(g->inputs.size()) != num_carried_ + 2)
      return info.Error("the body takes " + std::to_string(g->inputs.size()) + " inputs, expected " +
                        std::to_string(num_carried_ + 2) + " (iteration, cond, loop-carried values)");
    num_scan_ = static_cast<int>(g->outputs.size()) - 1 - num_carried_;
    if (num_scan_ < 0) return info.Error("the body produces too few outputs for its loop-carried values");
    if (info.num_outputs() > num_carried_ + num_scan_) return info.Error("the node has more outputs than the body");
    ASSIGN_OR_RETURN(body_, info.CompileSubgraph(*g));
    return Status::Ok();
  }

  Status Compute(KernelContext& ctx) override {
    int64_t max_trip = -1;
    if (ctx.has_input(0) && !ctx.input(0).is_none()) {
      const Value& m = ctx.input(0);
      if (!m.is_tensor() || m.tensor().numel() != 1 || IsFloatingPoint(m.tensor().dtype()) ||
          m.tensor().dtype() == DType::kString || m.tensor().dtype() == DType::kBool)
        return InvalidArgument("Loop: M must be a scalar integer tensor");
      max_trip = m.tensor().GetAsInt64(0);
    }
    bool cond = true;
    const bool has_cond = ctx.has_input(1) && !ctx.input(1).is_none();
    if (has_cond) { ASSIGN_OR_RETURN(cond, ReadCond(ctx.input(1), "Loop cond")); }
    if (max_trip < 0 && !has_cond)
      return Unsupported("Loop: neither a trip count nor a condition is given (an infinite loop)");

    std::vector<Value> body_in(static_cast<size_t>(num_carried_ + 2));
    for (int i = 0; i < num_carried_; ++i)
      body_in[static_cast<size_t>(i + 2)] = ctx.has_input(i + 2) ? ctx.input(i + 2) : Value();
    std::vector<std::vector<Tensor>> scans(static_cast<size_t>(num_scan_));
    std::vector<Value> outs;
    int64_t it = 0;
    while (cond && (max_trip < 0 || it < max_trip)) {
      body_in[0] = Tensor::Scalar<int64_t>(it);
      body_in[1] = Tensor::Scalar<bool>(cond);
      RETURN_IF_ERROR(ctx.RunSubgraph(*body_, body_in, outs));
      if (static_cast<int>(outs.size()) != 1 + num_carried_ + num_scan_)
        return Internal("Loop: body returned an unexpected number of outputs");
      if (has_cond) { ASSIGN_OR_RETURN(cond, ReadCond(outs[0], "Loop body cond output")); }
      for (int i = 0; i < num_carried_; ++i) body_in[static_cast<size_t>(i + 2)] = std::move(outs[static_cast<size_t>(1 + i)]);
      for (int k = 0; k < num_scan_; ++k) {
        Value& v = outs[static_cast<size_t>(1 + num_carried_ + k)];
        if (!v.is_tensor()) return InvalidArgument("Loop: scan output " + std::to_string(k) + " is " + KindName(v));
        scans[static_cast<size_t>(k)].push_back(std::move(v.tensor()));
      }
      ++it;
    }
    for (int i = 0; i < num_carried_ && i < ctx.num_outputs(); ++i)
      ctx.SetOutput(i, std::move(body_in[static_cast<size_t>(i + 2)]));
    for (int k = 0; k < num_scan_ && num_carried_ + k < ctx.num_outputs(); ++k) {
      if (!ctx.output_requested(num_carried_ + k)) continue;
      ASSIGN_OR_RETURN(Tensor t, StackAlong(scans[static_cast<size_t>(k)], 0,
                                            OutputElemType(*body_ir_, static_cast<size_t>(1 + num_carried_ + k)),
                                            "Loop scan output " + std::to_string(k)));
      ctx.SetOutput(num_carried_ + k, std::move(t));
    }
    return Status::Ok();
  }

 private:
  const ir::Graph* body_ir_ = nullptr;
  std::shared_ptr<CompiledGraph> body_;
  int num_carried_ = 0, num_scan_ = 0;
};

// ---------------------------------------------------------------------------------------------
class ScanKernel final : public OpKernel {
 public:
  Status Init(const KernelInfo& info) {
    ASSIGN_OR_RETURN(const ir::Graph* g, GraphAttr(info, "body"));
    body_ir_ = g;
    v8_ = info.opset() < 9;
    m_ = info.attr_int("num_scan_inputs", -1);
    const int first = v8_ ? 1 : 0;
    const int total = info.num_inputs() - first;
    if (m_ <= 0 || m_ > total) return info.Error("num_scan_inputs must be in [1, number of inputs]");
    n_ = total - static_cast<int>(m_);
    if (static_cast<int>(g->inputs.size()) != n_ + m_)
      return info.Error("the body takes " + std::to_string(g->inputs.size()) + " inputs, expected " +
                        std::to_string(n_ + m_));
    k_ = static_cast<int>(g->outputs.size()) - n_;
    if (k_ < 0) return info.Error("the body produces fewer outputs than there are state variables");
    if (info.num_outputs() > n_ + k_) return info.Error("the node has more outputs than the body");
    if (v8_) {
      in_dirs_ = info.attr_ints("directions", std::vector<int64_t>(static_cast<size_t>(m_), 0));
      if (static_cast<int64_t>(in_dirs_.size()) != m_) return info.Error("directions must have num_scan_inputs entries");
    } else {
      in_dirs_ = info.attr_ints("scan_input_directions", std::vector<int64_t>(static_cast<size_t>(m_), 0));
      in_axes_ = info.attr_ints("scan_input_axes", std::vector<int64_t>(static_cast<size_t>(m_), 0));
      out_dirs_ = info.attr_ints("scan_output_directions", std::vector<int64_t>(static_cast<size_t>(k_), 0));
      out_axes_ = info.attr_ints("scan_output_axes", std::vector<int64_t>(static_cast<size_t>(k_), 0));
      if (static_cast<int64_t>(in_dirs_.size()) != m_ || static_cast<int64_t>(in_axes_.size()) != m_)
        return info.Error("scan_input_directions/scan_input_axes must have num_scan_inputs entries");
      if (static_cast<int>(out_dirs_.size()) != k_ || static_cast<int>(out_axes_.size()) != k_)
        return info.Error("scan_output_directions/scan_output_axes must have one entry per scan output");
    }
    for (int64_t d : in_dirs_)
      if (d != 0 && d != 1) return info.Error("scan directions must be 0 or 1");
    for (int64_t d : out_dirs_)
      if (d != 0 && d != 1) return info.Error("scan directions must be 0 or 1");
    ASSIGN_OR_RETURN(body_, info.CompileSubgraph(*g));
    return Status::Ok();
  }

  Status Compute(KernelContext& ctx) override { return v8_ ? Compute8(ctx) : Compute9(ctx); }

 private:
  Status RunSeq(KernelContext& ctx, std::vector<Value> states, const std::vector<const Tensor*>& scan_in,
                const std::vector<int>& axes, int64_t seq_len, std::vector<Value>& final_states,
                std::vector<std::vector<Tensor>>& scan_out) {
    std::vector<Value> body_in(static_cast<size_t>(n_ + m_));
    for (int i = 0; i < n_; ++i) body_in[static_cast<size_t>(i)] = std::move(states[static_cast<size_t>(i)]);
    scan_out.assign(static_cast<size_t>(k_), {});
    std::vector<Value> outs;
    for (int64_t t = 0; t < seq_len; ++t) {
      for (int j = 0; j < m_; ++j) {
        const int64_t idx = in_dirs_[static_cast<size_t>(j)] ? seq_len - 1 - t : t;
        ASSIGN_OR_RETURN(Tensor s, SliceAlongAxis(*scan_in[static_cast<size_t>(j)], axes[static_cast<size_t>(j)], idx));
        body_in[static_cast<size_t>(n_ + j)] = std::move(s);
      }
      RETURN_IF_ERROR(ctx.RunSubgraph(*body_, body_in, outs));
      if (static_cast<int>(outs.size()) != n_ + k_) return Internal("Scan: body returned an unexpected number of outputs");
      for (int i = 0; i < n_; ++i) body_in[static_cast<size_t>(i)] = std::move(outs[static_cast<size_t>(i)]);
      for (int k = 0; k < k_; ++k) {
        Value& v = outs[static_cast<size_t>(n_ + k)];
        if (!v.is_tensor()) return InvalidArgument("Scan: scan output " + std::to_string(k) + " is " + KindName(v));
        scan_out[static_cast<size_t>(k)].push_back(std::move(v.tensor()));
      }
    }
    final_states.assign(body_in.begin(), body_in.begin() + n_);
    return Status::Ok();
  }

  Status Compute9(KernelContext& ctx) {
    std::vector<Value> states(static_cast<size_t>(n_));
    for (int i = 0; i < n_; ++i) {
      if (!ctx.has_input(i)) return InvalidArgument("Scan: missing state input " + std::to_string(i));
      states[static_cast<size_t>(i)] = ctx.input(i);
    }
    std::vector<const Tensor*> scan_in(static_cast<size_t>(m_));
    std::vector<int> axes(static_cast<size_t>(m_));
    int64_t seq_len = -1;
    for (int j = 0; j < m_; ++j) {
      if (!ctx.has_input(n_ + j) || !ctx.input(n_ + j).is_tensor())
        return InvalidArgument("Scan: scan input " + std::to_string(j) + " must be a tensor");
      const Tensor& t = ctx.input_tensor(n_ + j);
      ASSIGN_OR_RETURN(int ax, NormalizeAxis(in_axes_[static_cast<size_t>(j)], t.rank(), "Scan scan_input_axes: "));
      if (t.rank() == 0) return InvalidArgument("Scan: scan inputs must have rank >= 1");
      if (seq_len >= 0 && t.dim(ax) != seq_len)
        return InvalidArgument("Scan: scan inputs have different sequence lengths (" + std::to_string(seq_len) + " vs " +
                               std::to_string(t.dim(ax)) + ")");
      seq_len = t.dim(ax);
      scan_in[static_cast<size_t>(j)] = &t;
      axes[static_cast<size_t>(j)] = ax;
    }
    std::vector<Value> final_states;
    std::vector<std::vector<Tensor>> scan_out;
    RETURN_IF_ERROR(RunSeq(ctx, std::move(states), scan_in, axes, seq_len, final_states, scan_out));
    for (int i = 0; i < n_ && i < ctx.num_outputs(); ++i) ctx.SetOutput(i, std::move(final_states[static_cast<size_t>(i)]));
    for (int k = 0; k < k_ && n_ + k < ctx.num_outputs(); ++k) {
      auto& parts = scan_out[static_cast<size_t>(k)];
      if (out_dirs_[static_cast<size_t>(k)]) std::reverse(parts.begin(), parts.end());
      const int r = parts.empty() ? 0 : parts[0].rank();
      const int64_t a = out_axes_[static_cast<size_t>(k)];
      if (a < -(r + 1) || a > r) return InvalidArgument("Scan: scan_output_axes value out of range");
      const int ax = static_cast<int>(a < 0 ? a + r + 1 : a);
      ASSIGN_OR_RETURN(Tensor t, StackAlong(parts, ax, OutputElemType(*body_ir_, static_cast<size_t>(n_ + k)),
                                            "Scan output " + std::to_string(k)));
      ctx.SetOutput(n_ + k, std::move(t));
    }
    return Status::Ok();
  }

  Status Compute8(KernelContext& ctx) {
    // Inputs: sequence_lens?, states [B, ...], scan inputs [B, S, ...]. Outputs likewise.
    int64_t batch = -1, max_seq = -1;
    for (int i = 0; i < n_ + m_; ++i) {
      if (!ctx.has_input(1 + i) || !ctx.input(1 + i).is_tensor())
        return InvalidArgument("Scan: input " + std::to_string(1 + i) + " must be a tensor");
      const Tensor& t = ctx.input_tensor(1 + i);
      if (t.rank() < (i < n_ ? 1 : 2)) return InvalidArgument("Scan: input " + std::to_string(1 + i) + " lacks the batch/sequence axes");
      if (batch >= 0 && t.dim(0) != batch) return InvalidArgument("Scan: inputs have different batch sizes");
      batch = t.dim(0);
      if (i >= n_) {
        if (max_seq >= 0 && t.dim(1) != max_seq) return InvalidArgument("Scan: scan inputs have different sequence lengths");
        max_seq = t.dim(1);
      }
    }
    std::vector<int64_t> lens(static_cast<size_t>(batch), max_seq);
    if (ctx.has_input(0) && ctx.input(0).is_tensor()) {
      ASSIGN_OR_RETURN(lens, ReadInt64s(ctx.input_tensor(0)));
      if (static_cast<int64_t>(lens.size()) != batch) return InvalidArgument("Scan: sequence_lens must have batch entries");
      for (int64_t l : lens)
        if (l < 0 || l > max_seq) return InvalidArgument("Scan: sequence_lens value out of range");
    }
    std::vector<std::vector<Tensor>> state_out(static_cast<size_t>(n_));
    std::vector<std::vector<Tensor>> scan_all(static_cast<size_t>(k_));  // per batch: [S, ...] padded
    for (int64_t b = 0; b < batch; ++b) {
      std::vector<Value> states(static_cast<size_t>(n_));
      for (int i = 0; i < n_; ++i) {
        ASSIGN_OR_RETURN(Tensor s, SliceAlongAxis(ctx.input_tensor(1 + i), 0, b));
        states[static_cast<size_t>(i)] = std::move(s);
      }
      std::vector<Tensor> slices(static_cast<size_t>(m_));
      std::vector<const Tensor*> scan_in(static_cast<size_t>(m_));
      std::vector<int> axes(static_cast<size_t>(m_), 0);
      const int64_t len = lens[static_cast<size_t>(b)];
      for (int j = 0; j < m_; ++j) {
        ASSIGN_OR_RETURN(Tensor s, SliceAlongAxis(ctx.input_tensor(1 + n_ + j), 0, b));
        if (len != max_seq) {  // keep only the valid prefix so reverse scans start at len-1
          Shape sh = s.shape();
          const int64_t inner = sh[0] == 0 ? 0 : s.numel() / sh[0];
          sh[0] = len;
          ASSIGN_OR_RETURN(Tensor p, Tensor::Create(s.dtype(), sh));
          CopyElements(p, 0, s, 0, len * inner);
          s = std::move(p);
        }
        slices[static_cast<size_t>(j)] = std::move(s);
        scan_in[static_cast<size_t>(j)] = &slices[static_cast<size_t>(j)];
      }
      std::vector<Value> final_states;
      std::vector<std::vector<Tensor>> scan_out;
      RETURN_IF_ERROR(RunSeq(ctx, std::move(states), scan_in, axes, len, final_states, scan_out));
      for (int i = 0; i < n_; ++i) {
        if (!final_states[static_cast<size_t>(i)].is_tensor()) return InvalidArgument("Scan: state output is not a tensor");
        state_out[static_cast<size_t>(i)].push_back(final_states[static_cast<size_t>(i)].tensor());
      }
      for (int k = 0; k < k_; ++k) {
        auto& parts = scan_out[static_cast<size_t>(k)];
        if (len < max_seq) {
          if (parts.empty()) return Unsupported("Scan: cannot pad a scan output of an empty sequence");
          ASSIGN_OR_RETURN(Tensor zero, Tensor::Create(parts[0].dtype(), parts[0].shape()));
          while (static_cast<int64_t>(parts.size()) < max_seq) parts.push_back(zero);
        }
        ASSIGN_OR_RETURN(Tensor t, StackAlong(parts, 0, OutputElemType(*body_ir_, static_cast<size_t>(n_ + k)), "Scan output"));
        scan_all[static_cast<size_t>(k)].push_back(std::move(t));
      }
    }
    for (int i = 0; i < n_ && i < ctx.num_outputs(); ++i) {
      ASSIGN_OR_RETURN(Tensor t, StackAlong(state_out[static_cast<size_t>(i)], 0, OutputElemType(*body_ir_, static_cast<size_t>(i)), "Scan state"));
      ctx.SetOutput(i, std::move(t));
    }
    for (int k = 0; k < k_ && n_ + k < ctx.num_outputs(); ++k) {
      ASSIGN_OR_RETURN(Tensor t, StackAlong(scan_all[static_cast<size_t>(k)], 0, OutputElemType(*body_ir_, static_cast<size_t>(n_ + k)), "Scan output"));
      ctx.SetOutput(n_ + k, std::move(t));
    }
    return Status::Ok();
  }

  const ir::Graph* body_ir_ = nullptr;
  std::shared_ptr<CompiledGraph> body_;
  bool v8_ = false;
  int64_t m_ = 0;
  int n_ = 0, k_ = 0;
  std::vector<int64_t> in_dirs_, in_axes_, out_dirs_, out_axes_;
};

const KernelRegistrar kIf{{.op_type = "If", .since = 1, .until = 18, .factory = MakeKernel<IfKernel>}};
const KernelRegistrar kLoop{{.op_type = "Loop", .since = 1, .until = 18, .factory = MakeKernel<LoopKernel>}};
const KernelRegistrar kScan{{.op_type = "Scan", .since = 8, .until = 18, .factory = MakeKernel<ScanKernel>}};

}  // namespace
}  // namespace strata::cpu
