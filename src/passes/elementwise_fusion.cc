// O3: merges connected groups of float32 elementwise ops into one com.strata FusedElementwise node,
// so the group reads its inputs once and writes one output instead of one tensor per op
// (src/kernels/cpu/fused_elementwise.cc runs it block by block).
//
// A group grows backwards from a float32 sink: a producer joins when it is a supported op and every
// reader of its output is already in the group (and the output is neither a graph output nor read by
// a subgraph). The fused node takes the sink's place and name. It encodes a small program:
//   inputs      the node's inputs, in order of first use (any of float32; int32/int64/bool only as
//               the input of a Cast to float or of Not/Where's condition: they load as float, bools as 0/1)
//   immediates  floats: one-element float32 constants, embedded instead of read
//   ops         strings, one per instruction; operands ints, three per instruction (-1 = none),
//               numbering inputs, then immediates, then instruction results; alphas/betas floats,
//               one per instruction (LeakyRelu alpha, Clip bounds, HardSigmoid alpha/beta, Pow exponent)
// The node's output is the last instruction's result. Cast to float adds no instruction (values are
// floats already); Max/Min with more than two inputs become a left fold.
//
// It runs after recognition and epilogue fusion, and leaves to epilogue fusion whatever that pass
// would fold next (EpilogueFusionTakes), so it only takes what nothing fuses better.
#include <algorithm>
#include <limits>
#include <map>
#include <optional>
#include <set>

#include "passes/epilogue_fusion.h"
#include "passes/graph_editor.h"
#include "passes/graph_pass.h"

namespace strata::passes {
namespace {

// After epilogue fusion (80), before conv-layout (90): every recognition and fusion that can claim
// these ops has had its chance in the same round.
constexpr int kOrder = order::kEpilogue + 5;
// Bounds the program (and the kernel's per-thread register file).
constexpr size_t kMaxGroupNodes = 48;
constexpr size_t kMaxGroupInputs = 64;  // what the kernel accepts (fused_elementwise.cc)
constexpr int64_t kMaxRank = 8;

// How one node enters the program. `args` are the value names it reads as operands (in order).
struct OpDesc {
  std::string op;  // instruction, or "Cast" (no instruction) or "Fold:Max"/"Fold:Min"
  std::vector<std::string> args;
  float alpha = 0, beta = 0;
  bool bool_out = false;  // output holds 0/1 (Not)
};

bool IsFloat(const GraphEditor& ed, const std::string& v) { return !v.empty() && ed.ElemType(v) == DType::kFloat; }

class ElementwiseFusion final : public GraphPass {
 public:
  std::string_view name() const override { return "elementwise-fusion"; }
  int level() const override { return 3; }

  Result<bool> Apply(ir::Model& model) override {
    // Gradient (ai.onnx.preview.training) differentiates the graph's nodes by name and op type:
    // leave graphs that hold one as written.
    for (const ir::Node& n : model.graph->nodes)
      if (n.domain == ir::kTrainingDomain) return false;
    GraphEditor ed(model);
    std::vector<std::optional<OpDesc>> desc(static_cast<size_t>(ed.num_nodes()));
    for (int i = 0; i < ed.num_nodes(); ++i) desc[static_cast<size_t>(i)] = Describe(ed, i);
    std::vector<bool> taken(desc.size(), false);
    // Sinks from the end backwards, so each group is as large as it can be.
    for (int s = ed.num_nodes() - 1; s >= 0; --s) {
      if (taken[static_cast<size_t>(s)] || !desc[static_cast<size_t>(s)] || desc[static_cast<size_t>(s)]->bool_out)
        continue;
      if (!IsFloat(ed, ed.node(s).outputs[0])) continue;
      std::vector<int> group = Grow(ed, desc, taken, s);
      if (group.size() < 2) continue;
      std::optional<ir::Node> fused = Build(ed, desc, group);
      if (!fused) continue;
      for (int k : group) {
        taken[static_cast<size_t>(k)] = true;
        if (k != s) ed.Remove(k);
      }
      ed.ReplaceNode(s, std::move(*fused));
    }
    if (ed.changed()) model.opset_imports[std::string(kStrataDomain)] = 1;
    return ed.Commit();
  }

 private:
  // How node i would enter a program, or nullopt when it cannot.
  static std::optional<OpDesc> Describe(const GraphEditor& ed, int i) {
    const ir::Node& n = ed.node(i);
    if (n.domain != ir::kOnnxDomain || n.outputs.size() != 1 || n.outputs[0].empty() || n.inputs.empty() ||
        HasSubgraph(n))
      return std::nullopt;
    for (size_t k = 0; k < n.inputs.size(); ++k)
      if (n.inputs[k].empty() && !(n.op_type == "Clip" && k > 0)) return std::nullopt;
    const std::string& op = n.op_type;
    const std::string& x = n.inputs[0];
    const int64_t opset = ed.OpsetOf(n);
    const bool float_out = IsFloat(ed, n.outputs[0]);
    auto all_float = [&] {
      return std::all_of(n.inputs.begin(), n.inputs.end(), [&](const std::string& v) { return IsFloat(ed, v); });
    };
    std::optional<OpDesc> d;
    static const std::set<std::string, std::less<>> kUnary = {"Relu", "Sigmoid", "Tanh", "Exp",  "Log",
                                                              "Sqrt", "Neg",     "Abs",  "Erf", "Reciprocal"};
    if (kUnary.count(op) && n.inputs.size() == 1 && float_out && IsFloat(ed, x)) {
      d = OpDesc{op, {x}};
    } else if (op == "LeakyRelu" && n.inputs.size() == 1 && float_out && IsFloat(ed, x)) {
      d = OpDesc{op, {x}, AttrFloat(n, "alpha", 0.01f)};
    } else if (op == "HardSigmoid" && n.inputs.size() == 1 && float_out && IsFloat(ed, x)) {
      d = OpDesc{op, {x}, AttrFloat(n, "alpha", 0.2f), AttrFloat(n, "beta", 0.5f)};
    } else if (op == "Gelu" && n.inputs.size() == 1 && float_out && IsFloat(ed, x)) {
      const ir::Attribute* a = n.attr("approximate");
      const std::string approx = a ? a->s : "none";
      if (approx == "none" || approx == "tanh") d = OpDesc{approx == "none" ? "Gelu" : "GeluTanh", {x}};
    } else if (op == "Clip" && float_out && IsFloat(ed, x) && n.inputs.size() <= 3) {
      d = ClipDesc(ed, n);
    } else if ((op == "Add" || op == "Sub" || op == "Mul" || op == "Div") && n.inputs.size() == 2 && opset >= 7 &&
               float_out && all_float()) {
      d = OpDesc{op, {n.inputs[0], n.inputs[1]}};
    } else if ((op == "Max" || op == "Min") && n.inputs.size() >= 2 && opset >= 8 && float_out && all_float()) {
      d = OpDesc{"Fold:" + op, n.inputs};
    } else if (op == "Pow" && n.inputs.size() == 2 && opset >= 7 && float_out && IsFloat(ed, x)) {
      d = PowDesc(ed, n);
    } else if (op == "Where" && n.inputs.size() == 3 && float_out && ed.ElemType(x) == DType::kBool &&
               IsFloat(ed, n.inputs[1]) && IsFloat(ed, n.inputs[2])) {
      d = OpDesc{op, n.inputs};
    } else if (op == "Not" && n.inputs.size() == 1 && ed.ElemType(x) == DType::kBool &&
               ed.ElemType(n.outputs[0]) == DType::kBool) {
      d = OpDesc{op, {x}, 0, 0, true};
    } else if (op == "Cast" && n.inputs.size() == 1 && float_out && AttrInt(n, "to", 0) == 1) {
      const DType from = ed.ElemType(x);
      if (from == DType::kInt64 || from == DType::kInt32 || from == DType::kBool) d = OpDesc{"Cast", {x}};
    }
    if (!d || EpilogueFusionTakes(ed, i)) return std::nullopt;  // that pass's to fold
    return d;
  }

  static std::optional<OpDesc> ClipDesc(const GraphEditor& ed, const ir::Node& n) {
    float lo = -std::numeric_limits<float>::infinity(), hi = std::numeric_limits<float>::infinity();
    if (ed.OpsetOf(n) < 11) {
      if (n.inputs.size() != 1) return std::nullopt;
      lo = AttrFloat(n, "min", lo);
      hi = AttrFloat(n, "max", hi);
    } else {
      for (size_t k = 1; k < n.inputs.size(); ++k) {
        if (n.inputs[k].empty()) continue;
        const Tensor* t = ed.Constant(n.inputs[k]);
        if (!t || t->dtype() != DType::kFloat || t->numel() != 1) return std::nullopt;
        (k == 1 ? lo : hi) = t->data<float>()[0];
      }
    }
    return OpDesc{"Clip", {n.inputs[0]}, lo, hi};
  }

  // Pow with a one-element constant exponent, whose rank does not exceed the base's (so the output
  // has the base's shape). The kernel of Pow squares for an exponent of 2, uses float pow for a
  // float exponent and double pow for the others; the program does the same.
  static std::optional<OpDesc> PowDesc(const GraphEditor& ed, const ir::Node& n) {
    const Tensor* e = ed.Constant(n.inputs[1]);
    const auto base_rank = ed.Rank(n.inputs[0]);
    if (!e || e->numel() != 1 || !base_rank || e->rank() > *base_rank) return std::nullopt;
    const DType dt = e->dtype();
    if (dt != DType::kFloat && dt != DType::kDouble && dt != DType::kInt32 && dt != DType::kInt64) return std::nullopt;
    const double v = e->GetAsDouble(0);
    if (v == 2.0) return OpDesc{"Square", {n.inputs[0]}};
    if (static_cast<double>(static_cast<float>(v)) != v) return std::nullopt;  // the program stores floats
    return OpDesc{dt == DType::kFloat ? "Pow" : "PowDouble", {n.inputs[0]}, static_cast<float>(v)};
  }

  // The group with sink `s`: producers join while every reader of their output is in the group.
  static std::vector<int> Grow(const GraphEditor& ed, const std::vector<std::optional<OpDesc>>& desc,
                               const std::vector<bool>& taken, int s) {
    std::vector<int> group = {s};
    std::set<int> in(group.begin(), group.end());
    for (bool grew = true; grew && group.size() < kMaxGroupNodes;) {
      grew = false;
      for (size_t g = 0; g < group.size() && group.size() < kMaxGroupNodes; ++g) {
        for (const std::string& v : desc[static_cast<size_t>(group[g])]->args) {
          const int p = ed.Producer(v);
          if (p < 0 || in.count(p) || taken[static_cast<size_t>(p)] || !desc[static_cast<size_t>(p)]) continue;
          if (!ed.Rewirable(v)) continue;
          const std::vector<int> readers = ed.Consumers(v);
          if (readers.empty() ||
              !std::all_of(readers.begin(), readers.end(), [&](int r) { return in.count(r) > 0; }))
            continue;
          group.push_back(p);
          in.insert(p);
          grew = true;
          if (group.size() >= kMaxGroupNodes) break;
        }
      }
    }
    std::sort(group.begin(), group.end());  // node order is a topological order
    return group;
  }

  // The FusedElementwise node for `group` (sorted, sink last), or nullopt when its shapes do not allow it.
  static std::optional<ir::Node> Build(const GraphEditor& ed, const std::vector<std::optional<OpDesc>>& desc,
                                       const std::vector<int>& group) {
    const ir::Node& sink = ed.node(group.back());
    const auto out_rank = ed.Rank(sink.outputs[0]);
    if (!out_rank || *out_rank > kMaxRank) return std::nullopt;
    std::set<std::string> produced;
    for (int k : group) produced.insert(ed.node(k).outputs[0]);

    // External operands in order of first use; one-element float32 constants become immediates when
    // dropping them cannot lower the output's rank.
    std::vector<std::string> external;
    for (int k : group)
      for (const std::string& v : desc[static_cast<size_t>(k)]->args)
        if (!produced.count(v) && std::find(external.begin(), external.end(), v) == external.end())
          external.push_back(v);
    int64_t max_rank = 0;
    std::vector<std::string> inputs, immediates;
    for (const std::string& v : external) {
      const Tensor* c = ed.Constant(v);
      if (c && c->dtype() == DType::kFloat && c->numel() == 1) continue;
      const auto r = ed.Rank(v);
      if (!r || *r > *out_rank) return std::nullopt;
      max_rank = std::max(max_rank, *r);
      inputs.push_back(v);
    }
    for (const std::string& v : external) {
      const Tensor* c = ed.Constant(v);
      if (!c || c->dtype() != DType::kFloat || c->numel() != 1) continue;
      if (c->rank() > max_rank) inputs.push_back(v);  // keeps the rank it contributes
      else immediates.push_back(v);
    }
    if (inputs.empty()) return std::nullopt;  // all constant: constant folding's job

    std::map<std::string, int64_t> id;
    std::vector<float> imm_values;
    for (const std::string& v : inputs) id.emplace(v, static_cast<int64_t>(id.size()));
    for (const std::string& v : immediates) {
      id.emplace(v, static_cast<int64_t>(id.size()));
      imm_values.push_back(ed.Constant(v)->data<float>()[0]);
    }
    std::vector<std::string> ops;
    std::vector<int64_t> operands;
    std::vector<float> alphas, betas;
    auto emit = [&](const std::string& op, std::vector<int64_t> args, float a, float b) {
      args.resize(3, -1);
      ops.push_back(op);
      operands.insert(operands.end(), args.begin(), args.end());
      alphas.push_back(a);
      betas.push_back(b);
      return static_cast<int64_t>(inputs.size() + immediates.size() + ops.size() - 1);
    };
    for (int k : group) {
      const OpDesc& d = *desc[static_cast<size_t>(k)];
      std::vector<int64_t> args;
      for (const std::string& v : d.args) args.push_back(id.at(v));
      int64_t result;
      if (d.op == "Cast") {
        result = args[0];
      } else if (d.op.rfind("Fold:", 0) == 0) {
        result = args[0];
        for (size_t a = 1; a < args.size(); ++a) result = emit(d.op.substr(5), {result, args[a]}, 0, 0);
      } else {
        result = emit(d.op, args, d.alpha, d.beta);
      }
      id[ed.node(k).outputs[0]] = result;
    }
    // The sink's value must be the last instruction's result (a group ending in a Cast of an input
    // has no instruction for it).
    if (ops.empty() || id.at(sink.outputs[0]) != static_cast<int64_t>(inputs.size() + immediates.size() + ops.size() - 1))
      return std::nullopt;
    if (inputs.size() > kMaxGroupInputs) return std::nullopt;

    ir::Node f;
    f.op_type = "FusedElementwise";
    f.domain = std::string(kStrataDomain);
    f.name = sink.name;
    f.inputs = inputs;
    f.outputs = sink.outputs;
    f.attributes.push_back(MakeAttr("ops", std::move(ops)));
    ir::Attribute a;
    a.name = "operands";
    a.type = ir::Attribute::Type::kInts;
    a.ints = std::move(operands);
    f.attributes.push_back(std::move(a));
    f.attributes.push_back(MakeAttr("alphas", std::move(alphas)));
    f.attributes.push_back(MakeAttr("betas", std::move(betas)));
    f.attributes.push_back(MakeAttr("immediates", std::move(imm_values)));
    return f;
  }
};

const PassRegistrar kReg{{"elementwise-fusion", kOrder, [] { return std::make_unique<ElementwiseFusion>(); }}};

}  // namespace
}  // namespace strata::passes
