// com.strata FusedElementwise: a chain (or small DAG) of elementwise ops that the elementwise-fusion
// pass (src/passes/elementwise_fusion.cc, which documents the attributes) merged into one program.
//
// The output is cut into blocks of kBlock elements; a thread evaluates the whole program on one block
// in a small register file (kBlock floats per register, thread-local, allocated on first use), so the
// chain reads each input once and writes the output once, and the intermediates stay in L1. Inputs
// broadcast against the output: a float input of the output's size is read in place, a one-element
// input is filled into its register once per thread, and anything else (row vectors, masks, other
// dtypes) is gathered per block in contiguous runs (or read in place when the block lies within one
// contiguous run). The last instruction writes straight into the output. The ops themselves, and
// the program's run over a block, are ukernels/elementwise_program.h.
#include <cstring>
#include <new>
#include <span>
#include <string>
#include <vector>

#include "kernels/cpu/common.h"
#include "kernels/cpu/tensor_util.h"
#include "kernels/cpu/ukernels/elementwise_program.h"
#include "kernels/cpu/ukernels/vec_math.h"

namespace strata::cpu {
namespace {

using Op = uk::ElementwiseOp;

struct OpName {
  const char* name;
  Op op;
  int arity;
};
constexpr OpName kOps[] = {
    {"Add", Op::kAdd, 2},         {"Sub", Op::kSub, 2},         {"Mul", Op::kMul, 2},
    {"Div", Op::kDiv, 2},         {"Max", Op::kMax, 2},         {"Min", Op::kMin, 2},
    {"Square", Op::kSquare, 1},   {"Relu", Op::kRelu, 1},       {"LeakyRelu", Op::kLeakyRelu, 1},
    {"Clip", Op::kClip, 1},       {"HardSigmoid", Op::kHardSigmoid, 1}, {"Sqrt", Op::kSqrt, 1},
    {"Neg", Op::kNeg, 1},         {"Abs", Op::kAbs, 1},         {"Reciprocal", Op::kReciprocal, 1},
    {"Not", Op::kNot, 1},         {"Where", Op::kWhere, 3},     {"Exp", Op::kExp, 1},
    {"Tanh", Op::kTanh, 1},       {"Sigmoid", Op::kSigmoid, 1}, {"Erf", Op::kErf, 1},
    {"Gelu", Op::kGelu, 1},       {"GeluTanh", Op::kGeluTanh, 1}, {"Log", Op::kLog, 1},
    {"Pow", Op::kPow, 1},         {"PowDouble", Op::kPowDouble, 1},
};

constexpr int64_t kBlock = 512;
constexpr int kMaxRank = 8;
constexpr int kMaxInputs = 64;

// How one input is read for a block.
struct InputView {
  enum class Mode { kDirect, kScalar, kGather } mode = Mode::kGather;
  const char* data = nullptr;
  DType dtype = DType::kFloat;
  size_t elem = 4;
  int nd = 0;  // collapsed dims over the output, innermost last
  int64_t dims[kMaxRank] = {};
  int64_t strides[kMaxRank] = {};
};

class FusedElementwiseKernel final : public OpKernel {
 public:
  Status Init(const KernelInfo& info) {
    num_inputs_ = info.num_inputs();
    if (num_inputs_ < 1 || num_inputs_ > kMaxInputs)
      return info.Error("needs 1 to " + std::to_string(kMaxInputs) + " inputs, got " + std::to_string(num_inputs_));
    for (int i = 0; i < num_inputs_; ++i) {
      if (!info.input_present(i)) return info.Error("input " + std::to_string(i) + " is missing");
      if (const ir::TypeInfo* t = info.input_type(i); t && t->elem_type != DType::kUndefined && !Supported(t->elem_type))
        return info.Error("input " + std::to_string(i) + " has dtype " + std::string(DTypeName(t->elem_type)) +
                          "; expected float32, int32, int64 or bool");
    }
    const std::vector<std::string> ops = info.attr_strings("ops");
    const std::vector<int64_t> operands = info.attr_ints("operands");
    const std::vector<float> alphas = info.attr_floats("alphas"), betas = info.attr_floats("betas");
    immediates_ = info.attr_floats("immediates");
    const size_t n = ops.size();
    if (n == 0 || operands.size() != 3 * n || alphas.size() != n || betas.size() != n)
      return info.Error("needs ops (got " + std::to_string(n) + "), 3 operands per op (got " +
                        std::to_string(operands.size()) + "), one alpha (" + std::to_string(alphas.size()) +
                        ") and one beta (" + std::to_string(betas.size()) + ") per op");
    const int64_t first_result = num_inputs_ + static_cast<int64_t>(immediates_.size());
    // Registers: one per immediate, then the results, reused once their last reader has run.
    const int num_values = static_cast<int>(first_result + static_cast<int64_t>(n));
    std::vector<int> last_use(static_cast<size_t>(num_values), -1), reg(static_cast<size_t>(num_values), -1);
    for (size_t k = 0; k < immediates_.size(); ++k) reg[static_cast<size_t>(num_inputs_) + k] = static_cast<int>(k);
    for (size_t k = 0; k < n; ++k) {
      const OpName* known = nullptr;
      for (const OpName& o : kOps)
        if (ops[k] == o.name) known = &o;
      if (!known) return info.Error("op " + std::to_string(k) + " '" + ops[k] + "' is not a FusedElementwise op");
      uk::ElementwiseInstr in{known->op, known->arity};
      in.alpha = alphas[k];
      in.beta = betas[k];
      for (int j = 0; j < 3; ++j) {
        const int64_t v = operands[3 * k + static_cast<size_t>(j)];
        const bool want = j < in.arity;
        if (want != (v >= 0) || v >= first_result + static_cast<int64_t>(k))
          return info.Error("op " + std::to_string(k) + " (" + ops[k] + ") operand " + std::to_string(j) + " is " +
                            std::to_string(v) + "; expected " +
                            (want ? "a value below " + std::to_string(first_result + static_cast<int64_t>(k)) : "-1"));
        if (want) last_use[static_cast<size_t>(v)] = static_cast<int>(k);
      }
      instrs_.push_back(in);
    }
    int next = static_cast<int>(immediates_.size());
    std::vector<int> free_regs;
    for (size_t k = 0; k < n; ++k) {
      uk::ElementwiseInstr& in = instrs_[k];
      for (int j = 0; j < in.arity; ++j) {
        const auto v = static_cast<size_t>(operands[3 * k + static_cast<size_t>(j)]);
        in.src[j] = v < static_cast<size_t>(num_inputs_) ? -static_cast<int>(v) - 1 : reg[v];
        // A result read for the last time frees its register, which this instruction may write in place.
        if (v >= static_cast<size_t>(first_result) && last_use[v] == static_cast<int>(k) && reg[v] >= 0 &&
            std::find(free_regs.begin(), free_regs.end(), reg[v]) == free_regs.end())
          free_regs.push_back(reg[v]);
      }
      if (k + 1 == n) break;
      if (free_regs.empty()) {
        in.dst = next++;
      } else {
        in.dst = free_regs.back();
        free_regs.pop_back();
      }
      reg[static_cast<size_t>(first_result) + k] = in.dst;
    }
    num_regs_ = next;
    return Status::Ok();
  }

  Status Compute(KernelContext& ctx) override {
    // The output is the broadcast of every input.
    const Shape* shapes[kMaxInputs];
    for (int i = 0; i < num_inputs_; ++i) {
      const Tensor& t = ctx.input_tensor(i);
      if (!Supported(t.dtype()))
        return InvalidArgument(ctx.Where() + "input " + std::to_string(i) + " has dtype " +
                               std::string(DTypeName(t.dtype())) + "; expected float32, int32, int64 or bool");
      if (t.rank() > kMaxRank)
        return InvalidArgument(ctx.Where() + "input " + std::to_string(i) + " has rank " + std::to_string(t.rank()) +
                               "; at most " + std::to_string(kMaxRank) + " is supported");
      shapes[i] = &t.shape();
    }
    auto broadcast = BroadcastShapes(std::span<const Shape* const>(shapes, static_cast<size_t>(num_inputs_)));
    if (!broadcast.ok()) return broadcast.status().WithContext(ctx.Where());
    const Shape& out_shape = *broadcast;
    ASSIGN_OR_RETURN(Tensor * y, ctx.AllocateOutput(0, DType::kFloat, out_shape));
    const int64_t total = y->numel();
    if (total == 0) return Status::Ok();
    InputView views[kMaxInputs];
    for (int i = 0; i < num_inputs_; ++i) Plan(ctx.input_tensor(i), out_shape, views[i]);

    const uk::ElementwiseKernels& kernels = uk::ElementwiseKernelsFor(vec::Active().isa);
    float* out = y->data<float>();
    const int64_t blocks = (total + kBlock - 1) / kBlock;
    const size_t reg_floats = static_cast<size_t>(num_regs_ + num_inputs_) * kBlock;
    ParallelFor(
        blocks,
        [&](int64_t b0, int64_t b1) {
          float* regs = ThreadScratch(0, reg_floats);  // the thread's register file
          if (!regs) throw std::bad_alloc();  // as the std::vector this replaced did
          // Registers [0, num_regs_) hold immediates and results; then one per input to gather into.
          float* in_regs = regs + static_cast<size_t>(num_regs_) * kBlock;
          for (size_t k = 0; k < immediates_.size(); ++k)
            kernels.convert(DType::kFloat, &immediates_[k], 0, regs + k * kBlock, kBlock);
          const float* in_ptr[kMaxInputs];
          for (int i = 0; i < num_inputs_; ++i)
            if (views[i].mode == InputView::Mode::kScalar)
              kernels.convert(views[i].dtype, views[i].data, 0, in_regs + i * kBlock, kBlock);
          for (int64_t b = b0; b < b1; ++b) {
            const int64_t start = b * kBlock, n = std::min(kBlock, total - start);
            for (int i = 0; i < num_inputs_; ++i) {
              const InputView& v = views[i];
              float* r = in_regs + i * kBlock;
              in_ptr[i] = v.mode == InputView::Mode::kDirect   ? reinterpret_cast<const float*>(v.data) + start
                          : v.mode == InputView::Mode::kScalar ? r
                                                               : Gather(kernels, v, start, n, r);
            }
            uk::RunElementwiseProgram(kernels, instrs_, regs, kBlock, in_ptr, out + start, n);
          }
        },
        std::max<int64_t>(2, kParallelThreshold / kBlock));
    return Status::Ok();
  }

 private:
  static bool Supported(DType dt) {
    return dt == DType::kFloat || dt == DType::kInt64 || dt == DType::kInt32 || dt == DType::kBool;
  }

  // Collapses `t`'s broadcast against `out` to the fewest dims whose offsets stay linear.
  static void Plan(const Tensor& t, const Shape& out, InputView& v) {
    v.data = static_cast<const char*>(t.raw());
    v.dtype = t.dtype();
    v.elem = DTypeSize(t.dtype());
    const int64_t numel = t.numel();
    if (numel == 1) {
      v.mode = InputView::Mode::kScalar;
      return;
    }
    if (v.dtype == DType::kFloat && numel == NumElements(out)) {
      v.mode = InputView::Mode::kDirect;  // a valid broadcast of equal size is the same shape
      return;
    }
    v.mode = InputView::Mode::kGather;
    Shape dims = out;
    Strides strides = BroadcastStrides(t.shape(), out);
    tensor::CoalesceDims(dims, strides);
    v.nd = static_cast<int>(dims.size());
    for (int d = 0; d < v.nd; ++d) {
      v.dims[d] = dims[static_cast<size_t>(d)];
      v.strides[d] = strides[static_cast<size_t>(d)];
    }
    if (v.nd == 0) {  // cannot happen for numel > 1; keeps the loop below well defined
      v.dims[0] = 1;
      v.strides[0] = 0;
      v.nd = 1;
    }
  }

  // Elements [start, start + n) of input `v` as floats: in place when they are one contiguous float
  // run, else converted into `r`.
  static const float* Gather(const uk::ElementwiseKernels& kernels, const InputView& v, int64_t start, int64_t n,
                             float* r) {
    const int last = v.nd - 1;
    int64_t idx[kMaxRank];
    int64_t rem = start, off = 0;
    for (int d = last; d >= 0; --d) {
      idx[d] = rem % v.dims[d];
      rem /= v.dims[d];
      off += idx[d] * v.strides[d];
    }
    const int64_t inner = v.dims[last], step = v.strides[last];
    if (v.dtype == DType::kFloat && step == 1 && idx[last] + n <= inner)
      return reinterpret_cast<const float*>(v.data) + off;
    for (int64_t done = 0; done < n;) {
      const int64_t len = std::min(n - done, inner - idx[last]);
      kernels.convert(v.dtype, v.data + static_cast<size_t>(off) * v.elem, step, r + done, len);
      done += len;
      idx[last] += len;
      off += len * step;
      if (idx[last] < inner) continue;
      off -= inner * step;
      idx[last] = 0;
      for (int d = last - 1; d >= 0; --d) {
        off += v.strides[d];
        if (++idx[d] < v.dims[d]) break;
        off -= v.strides[d] * v.dims[d];
        idx[d] = 0;
      }
    }
    return r;
  }

  int num_inputs_ = 0;
  int num_regs_ = 0;
  std::vector<float> immediates_;
  std::vector<uk::ElementwiseInstr> instrs_;
};

const KernelRegistrar kFusedElementwise{{.op_type = "FusedElementwise", .domain = "com.strata", .since = 1, .until = 1,
                                         .dtypes = {}, .factory = MakeKernel<FusedElementwiseKernel>}};

}  // namespace
}  // namespace strata::cpu
