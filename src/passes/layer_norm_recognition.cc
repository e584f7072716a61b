// O3: finds LayerNorm written out in elementary ops (the opset-13 torch export) and replaces it with
// ai.onnx LayerNormalization (opset 17, set as the node's opset override):
//   m = ReduceMean(x, trailing axes); d = Sub(x, m); v = ReduceMean(Pow(d, 2), same axes)
//   y = Div(d, Sqrt(Add(v, eps))) * gamma [+ beta]
// Refuses unless: both means keep dims over the same trailing axes, the exponent is exactly 2, eps is
// a positive scalar below 1e-2, gamma/beta are float32 constants whose shape is the normalised
// shape (leading 1s allowed, up to x's rank), and every intermediate is read only inside the
// pattern (d twice).
#include <algorithm>
#include <optional>

#include "passes/graph_editor.h"
#include "passes/graph_pass.h"

namespace strata::passes {
namespace {

class LayerNormRecognition final : public GraphPass {
 public:
  std::string_view name() const override { return "layer-norm-recognition"; }
  int level() const override { return 3; }

  Result<bool> Apply(ir::Model& model) override {
    GraphEditor ed(model);
    for (int i = 0; i < ed.num_nodes(); ++i)
      if (!ed.removed(i) && IsOp(ed.node(i), "Div")) TryRewrite(ed, i);
    return ed.Commit();
  }

 private:
  // Axes of a ReduceMean (attribute, or input since opset 18), normalised; empty if not usable.
  static std::vector<int64_t> MeanAxes(const GraphEditor& ed, const ir::Node& n, int64_t rank) {
    std::vector<int64_t> axes;
    if (AttrInt(n, "keepdims", 1) != 1) return {};
    if (const ir::Attribute* a = n.attr("axes")) {
      axes = a->ints;
    } else if (n.inputs.size() > 1 && !n.inputs[1].empty()) {
      const Tensor* t = ed.Constant(n.inputs[1]);
      if (!t) return {};
      for (int64_t k = 0; k < t->numel(); ++k) axes.push_back(t->GetAsInt64(k));
    }
    for (auto& a : axes) {
      if (a < -rank || a >= rank) return {};
      if (a < 0) a += rank;
    }
    std::sort(axes.begin(), axes.end());
    // Must be the trailing axes rank-k .. rank-1.
    for (size_t k = 0; k < axes.size(); ++k)
      if (axes[k] != rank - static_cast<int64_t>(axes.size()) + static_cast<int64_t>(k)) return {};
    return axes;
  }

  // A float32 constant whose shape, without leading 1s, is `norm`, and whose rank is at most x's (a
  // higher rank would broadcast the output to more dims than LayerNormalization returns).
  static bool ParamFits(const Tensor* t, const Shape& norm, int64_t rank) {
    if (!t || t->dtype() != DType::kFloat || t->rank() > rank) return false;
    Shape s = t->shape();
    while (s.size() > norm.size() && s.front() == 1) s.erase(s.begin());
    return s == norm;
  }

  static void TryRewrite(GraphEditor& ed, int div) {
    const ir::Node& dv = ed.node(div);
    if (dv.inputs.size() != 2 || dv.outputs.size() != 1) return;
    const std::string& d = dv.inputs[0];
    const std::string& s = dv.inputs[1];
    const int sub = ed.Producer(d), sq = ed.Producer(s);
    if (sub < 0 || sq < 0 || !IsOp(ed.node(sub), "Sub", 2) || !IsOp(ed.node(sq), "Sqrt")) return;
    if (!ed.Rewirable(d) || ed.Consumers(d).size() != 2 || ed.SoleConsumer(s) != div) return;
    const std::string x = ed.node(sub).inputs[0], m = ed.node(sub).inputs[1];
    const int mean = ed.Producer(m);
    if (mean < 0 || !IsOp(ed.node(mean), "ReduceMean") || ed.node(mean).inputs[0] != x || ed.SoleConsumer(m) != sub)
      return;
    // Sqrt(Add(v, eps))
    const std::string& e = ed.node(sq).inputs[0];
    const int add_eps = ed.Producer(e);
    std::string v;
    double eps;
    if (add_eps < 0 || !IsOp(ed.node(add_eps), "Add") || ed.SoleConsumer(e) != sq ||
        !ed.SplitScalarOperand(ed.node(add_eps), &v, &eps) || !(eps > 0 && eps < 1e-2))
      return;
    const int var = ed.Producer(v);
    if (var < 0 || !IsOp(ed.node(var), "ReduceMean") || ed.SoleConsumer(v) != add_eps) return;
    const std::string& p = ed.node(var).inputs[0];
    const int pow = ed.Producer(p);
    double two;
    if (pow < 0 || !IsOp(ed.node(pow), "Pow", 2) || ed.SoleConsumer(p) != var || ed.node(pow).inputs[0] != d ||
        !ed.ConstantScalar(ed.node(pow).inputs[1], &two) || two != 2.0)
      return;
    Shape xs;
    if (ed.ElemType(x) != DType::kFloat || !ed.TypeOf(x) || !ed.TypeOf(x)->shape) return;
    const int64_t rank = static_cast<int64_t>(ed.TypeOf(x)->shape->size());
    const auto axes = MeanAxes(ed, ed.node(mean), rank);
    if (axes.empty() || MeanAxes(ed, ed.node(var), rank) != axes) return;
    Shape norm;
    for (int64_t a : axes) {
      const ir::Dim& dim = (*ed.TypeOf(x)->shape)[static_cast<size_t>(a)];
      if (!dim.known()) return;
      norm.push_back(dim.value);
    }
    // * gamma [+ beta]
    const std::string& n = dv.outputs[0];
    const int mul = ed.SoleConsumer(n);
    if (mul < 0 || !IsOp(ed.node(mul), "Mul") || ed.node(mul).inputs.size() != 2) return;
    const ir::Node& mn = ed.node(mul);
    const std::string gamma = mn.inputs[0] == n ? mn.inputs[1] : mn.inputs[0];
    if (!ParamFits(ed.Constant(gamma), norm, rank)) return;
    std::vector<int> nodes = {mean, sub, pow, var, add_eps, sq, div, mul};
    int last = mul;
    std::string beta;
    const int add = ed.SoleConsumer(mn.outputs[0]);
    if (add >= 0 && IsOp(ed.node(add), "Add") && ed.node(add).inputs.size() == 2) {
      const ir::Node& an = ed.node(add);
      const std::string b = an.inputs[0] == mn.outputs[0] ? an.inputs[1] : an.inputs[0];
      if (ParamFits(ed.Constant(b), norm, rank)) {
        beta = b;
        nodes.push_back(add);
        last = add;
      }
    }
    ir::Node ln;
    ln.op_type = "LayerNormalization";
    ln.domain = std::string(ir::kOnnxDomain);
    ln.opset = 17;
    ln.name = ed.node(last).name;
    ln.inputs = {x, gamma};
    if (!beta.empty()) ln.inputs.push_back(beta);
    ln.outputs = {ed.node(last).outputs[0]};
    ln.attributes.push_back(MakeAttr("axis", axes.front()));
    ln.attributes.push_back(MakeAttr("epsilon", static_cast<float>(eps)));
    for (int k : nodes)
      if (k != last) ed.Remove(k);
    ed.ReplaceNode(last, std::move(ln));
  }
};

const PassRegistrar kReg{
    {"layer-norm-recognition", order::kLayerNorm, [] { return std::make_unique<LayerNormRecognition>(); }}};

}  // namespace
}  // namespace strata::passes
