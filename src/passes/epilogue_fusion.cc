// O2: fuses the elementwise tail of Conv, Gemm and MatMul into one com.strata op that oneDNN runs
// with post-ops (src/kernels/cpu/fused_epilogue.h):
//   FusedConv(X, W, [B], [R]), FusedGemm(A, B, [C], [R]), FusedMatMul(A, B, [bias], [R])
//   Y = act_k(... act_1(op + bias + R))
// Matched, one consumer at a time, on a float32 producer whose output has a single reader and is not
// a graph output: a MatMul bias Add of a constant 1-D [N] over the last axis (before anything else);
// a residual Add of another tensor of exactly the output's shape (before any activation); then
// activations: Relu, LeakyRelu, Clip with constant bounds, Sigmoid, Tanh, HardSigmoid, HardSwish,
// Gelu (erf or tanh).
#include <cmath>
#include <limits>
#include <optional>

#include "passes/epilogue_fusion.h"
#include "passes/graph_pass.h"

namespace strata::passes {
namespace {

struct Activation {
  std::string name;
  float alpha = 0, beta = 0;
};

bool IsProducer(const ir::Node& n) {
  if (n.inputs.size() < 2 || n.inputs[0].empty() || n.inputs[1].empty()) return false;
  if (n.domain == ir::kOnnxDomain) return n.op_type == "Conv" || n.op_type == "Gemm" || n.op_type == "MatMul";
  return n.domain == kStrataDomain && (n.op_type == "FusedConv" || n.op_type == "FusedGemm" || n.op_type == "FusedMatMul");
}

std::vector<std::string> Strings(const ir::Node& n, std::string_view name) {
  const ir::Attribute* a = n.attr(name);
  return a ? a->strings : std::vector<std::string>{};
}

// The activation node `n` applies to its first input, if it is one the kernels fuse.
std::optional<Activation> AsActivation(const GraphEditor& ed, const ir::Node& n) {
  if (n.domain != ir::kOnnxDomain || n.outputs.size() != 1) return std::nullopt;
  const std::string& op = n.op_type;
  if (op == "Relu" || op == "Sigmoid" || op == "Tanh" || op == "HardSwish") return Activation{op};
  if (op == "LeakyRelu") return Activation{op, AttrFloat(n, "alpha", 0.01f)};
  if (op == "HardSigmoid") return Activation{op, AttrFloat(n, "alpha", 0.2f), AttrFloat(n, "beta", 0.5f)};
  if (op == "Gelu") {
    const ir::Attribute* a = n.attr("approximate");
    const std::string approx = a ? a->s : "none";
    if (approx == "none") return Activation{"Gelu"};
    if (approx == "tanh") return Activation{"GeluTanh"};
    return std::nullopt;
  }
  if (op == "Clip") {
    float lo = -std::numeric_limits<float>::infinity(), hi = std::numeric_limits<float>::infinity();
    if (ed.OpsetOf(n) < 11) {
      lo = AttrFloat(n, "min", lo);
      hi = AttrFloat(n, "max", hi);
    } else {
      double v;
      if (n.inputs.size() > 1 && !n.inputs[1].empty()) {
        if (!ed.ConstantScalar(n.inputs[1], &v)) return std::nullopt;
        lo = static_cast<float>(v);
      }
      if (n.inputs.size() > 2 && !n.inputs[2].empty()) {
        if (!ed.ConstantScalar(n.inputs[2], &v)) return std::nullopt;
        hi = static_cast<float>(v);
      }
    }
    return Activation{op, std::max(lo, -std::numeric_limits<float>::max()), std::min(hi, std::numeric_limits<float>::max())};
  }
  return std::nullopt;
}

void AppendActivation(ir::Node& f, const Activation& act) {
  for (auto& a : f.attributes) {
    if (a.name == "activations") a.strings.push_back(act.name);
    if (a.name == "activation_alpha") a.floats.push_back(act.alpha);
    if (a.name == "activation_beta") a.floats.push_back(act.beta);
  }
}

// The producer `p` with consumer `c` folded into its epilogue, if `c` fits.
std::optional<ir::Node> Fuse(const GraphEditor& ed, const ir::Node& p, const ir::Node& c) {
  const std::string& y = p.outputs[0];
  const bool fresh = p.domain == ir::kOnnxDomain;
  const std::vector<std::string> acts = fresh ? std::vector<std::string>{} : Strings(p, "activations");
  const bool has_residual = !fresh && p.inputs.size() > 3 && !p.inputs[3].empty();
  const std::string base = fresh ? p.op_type : p.op_type.substr(5);  // "FusedConv" -> "Conv"

  if (auto act = AsActivation(ed, c); act && !c.inputs.empty() && c.inputs[0] == y) {
    ir::Node f = FusedForm(p);
    AppendActivation(f, *act);
    f.outputs = c.outputs;
    return f;
  }
  if (!IsOp(c, "Add", 2) || c.inputs.size() != 2 || c.outputs.size() != 1 || !acts.empty() || has_residual)
    return std::nullopt;
  const std::string& other = c.inputs[0] == y ? c.inputs[1] : c.inputs[0];
  if (other == y || ed.ElemType(other) != DType::kFloat) return std::nullopt;

  // MatMul bias: a constant [N] added over the last axis, before any other epilogue.
  const Tensor* bias = ed.Constant(other);
  if (base == "MatMul" && bias && bias->rank() == 1) {
    const bool has_bias = !fresh && p.inputs.size() > 2 && !p.inputs[2].empty();
    const ir::TypeInfo* ty = ed.TypeOf(y);
    const auto ra = ed.Rank(p.inputs[0]), rb = ed.Rank(p.inputs[1]);
    if (has_bias || !ty || !ty->shape || ty->shape->empty() || !ra || !rb || *ra < 2 || *rb < 2) return std::nullopt;
    const ir::Dim& last = ty->shape->back();
    if (!last.known() || last.value != bias->dim(0)) return std::nullopt;
    ir::Node f = FusedForm(p);
    f.inputs.resize(std::max<size_t>(f.inputs.size(), 3));
    f.inputs[2] = other;
    f.outputs = c.outputs;
    return f;
  }
  // Residual: another tensor of exactly Y's shape (no broadcasting), before any activation.
  if (!ed.SameShape(y, other) || !ed.SameShape(y, c.outputs[0])) return std::nullopt;
  ir::Node f = FusedForm(p);
  f.inputs.resize(4);
  f.inputs[3] = other;
  f.outputs = c.outputs;
  return f;
}

// The consumer of producer `i`, and the node that folds it in, if epilogue fusion takes it.
std::optional<std::pair<int, ir::Node>> Foldable(const GraphEditor& ed, int i) {
  const ir::Node& p = ed.node(i);
  if (!IsProducer(p) || p.outputs.size() != 1) return std::nullopt;
  const std::string& y = p.outputs[0];
  if (ed.ElemType(y) != DType::kFloat || !ed.HasSingleConsumer(y)) return std::nullopt;
  const int c = ed.Consumers(y)[0];
  std::optional<ir::Node> fused = Fuse(ed, p, ed.node(c));
  if (!fused) return std::nullopt;
  return std::pair{c, std::move(*fused)};
}

class EpilogueFusion final : public GraphPass {
 public:
  std::string_view name() const override { return "epilogue-fusion"; }
  int level() const override { return 2; }

  Result<bool> Apply(ir::Model& model) override {
    GraphEditor ed(model);
    for (int i = 0; i < ed.num_nodes(); ++i) {
      if (ed.removed(i)) continue;
      auto fold = Foldable(ed, i);
      if (!fold) continue;
      // The fused node takes the consumer's place: every input it reads is defined before it.
      ed.Remove(i);
      ed.ReplaceNode(fold->first, std::move(fold->second));
    }
    if (ed.changed()) model.opset_imports[std::string(kStrataDomain)] = 1;
    return ed.Commit();
  }
};

const PassRegistrar kReg{{"epilogue-fusion", order::kEpilogue, [] { return std::make_unique<EpilogueFusion>(); }}};

}  // namespace

bool EpilogueFusionTakes(const GraphEditor& ed, int consumer) {
  for (const std::string& in : ed.node(consumer).inputs) {
    const int p = in.empty() ? -1 : ed.Producer(in);
    if (p < 0) continue;
    auto fold = Foldable(ed, p);
    if (fold && fold->first == consumer) return true;
  }
  return false;
}

}  // namespace strata::passes
