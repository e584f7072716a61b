// O3: finds GELU written out in elementary ops and replaces it with ai.onnx Gelu (opset 20, set as
// the node's opset override so older models can use it). Two forms, as torch exports them:
//   erf:  0.5 * x * (1 + Erf(x / sqrt(2)))                    (or x * (1/sqrt(2)))
//   tanh: 0.5 * x * (1 + Tanh(sqrt(2/pi) * (x + 0.044715 * x^3)))   (x^3 as Pow(x, 3) or x*(x*x))
// with the final products in any of the orders (x*u)*0.5, (x*0.5)*u, (u*0.5)*x. Every constant is
// checked numerically, and every intermediate must be read only inside the pattern.
#include <cmath>
#include <optional>

#include "passes/graph_editor.h"
#include "passes/graph_pass.h"

namespace strata::passes {
namespace {

constexpr double kSqrt2 = 1.4142135623730951, kSqrt2OverPi = 0.7978845608028654;

struct Match {
  std::string x;
  std::vector<int> nodes;  // all but the last are removed
  int last = -1;
};

class GeluRecognition final : public GraphPass {
 public:
  std::string_view name() const override { return "gelu-recognition"; }
  int level() const override { return 3; }

  Result<bool> Apply(ir::Model& model) override {
    GraphEditor ed(model);
    for (int i = 0; i < ed.num_nodes(); ++i) {
      if (ed.removed(i)) continue;
      const ir::Node& n = ed.node(i);
      std::optional<Match> m;
      bool tanh = false;
      if (IsOp(n, "Erf")) m = MatchErf(ed, i);
      else if (IsOp(n, "Tanh")) m = MatchTanh(ed, i), tanh = true;
      if (!m || ed.ElemType(m->x) != DType::kFloat) continue;
      ir::Node g;
      g.op_type = "Gelu";
      g.domain = std::string(ir::kOnnxDomain);
      g.opset = 20;
      g.name = ed.node(m->last).name;
      g.inputs = {m->x};
      g.outputs = {ed.node(m->last).outputs[0]};
      g.attributes.push_back(MakeAttr("approximate", std::string(tanh ? "tanh" : "none")));
      for (int k : m->nodes)
        if (k != m->last) ed.Remove(k);
      ed.ReplaceNode(m->last, std::move(g));
    }
    return ed.Commit();
  }

 private:
  // Node reading `v` as its only reader, of op `op`, or -1.
  static int Next(const GraphEditor& ed, const std::string& v, std::string_view op) {
    const int c = ed.SoleConsumer(v);
    return c >= 0 && IsOp(ed.node(c), op, 2) && ed.node(c).outputs.size() == 1 ? c : -1;
  }

  // 1 + act: the Add after Erf/Tanh. Returns its index or -1.
  static int PlusOne(const GraphEditor& ed, int act) {
    const int a = Next(ed, ed.node(act).outputs[0], "Add");
    std::string other;
    double v;
    if (a < 0 || !ed.SplitScalarOperand(ed.node(a), &other, &v) || v != 1.0) return -1;
    return a;
  }

  // 0.5 * x * u in any order, where u is the output of node `plus`. Appends the nodes; false if no match.
  static bool Tail(const GraphEditor& ed, const std::string& x, int plus, Match& m) {
    const std::string& u = ed.node(plus).outputs[0];
    const int m1 = Next(ed, u, "Mul");
    if (m1 < 0) return false;
    const ir::Node& n1 = ed.node(m1);
    const std::string& o = n1.inputs[0] == u ? n1.inputs[1] : n1.inputs[0];
    std::string other;
    double v;
    m.nodes.push_back(m1);
    if (o == x) {  // (x * u) * 0.5
      const int m2 = Next(ed, n1.outputs[0], "Mul");
      if (m2 < 0 || !ed.SplitScalarOperand(ed.node(m2), &other, &v) || v != 0.5) return false;
      m.nodes.push_back(m2);
      m.last = m2;
      return true;
    }
    if (ed.SplitScalarOperand(n1, &other, &v)) {  // (u * 0.5) * x
      if (v != 0.5) return false;
      const int m2 = Next(ed, n1.outputs[0], "Mul");
      if (m2 < 0) return false;
      const ir::Node& n2 = ed.node(m2);
      if (!((n2.inputs[0] == x) ^ (n2.inputs[1] == x))) return false;
      m.nodes.push_back(m2);
      m.last = m2;
      return true;
    }
    // (x * 0.5) * u
    const int h = ed.Producer(o);
    if (h < 0 || !IsOp(ed.node(h), "Mul", 2) || ed.SoleConsumer(o) != m1) return false;
    if (!ed.SplitScalarOperand(ed.node(h), &other, &v) || v != 0.5 || other != x) return false;
    m.nodes.push_back(h);
    m.last = m1;
    return true;
  }

  static std::optional<Match> MatchErf(const GraphEditor& ed, int erf) {
    const ir::Node& e = ed.node(erf);
    const int d = ed.Producer(e.inputs[0]);
    if (d < 0 || ed.SoleConsumer(e.inputs[0]) != erf) return std::nullopt;
    const ir::Node& dn = ed.node(d);
    std::string x;
    double v;
    if (!ed.SplitScalarOperand(dn, &x, &v)) return std::nullopt;
    const bool div = IsOp(dn, "Div") && dn.inputs[0] == x && Near(v, kSqrt2);
    const bool mul = IsOp(dn, "Mul") && Near(v, 1.0 / kSqrt2);
    if (!div && !mul) return std::nullopt;
    const int plus = PlusOne(ed, erf);
    if (plus < 0) return std::nullopt;
    Match m{x, {d, erf, plus}, -1};
    if (!Tail(ed, x, plus, m)) return std::nullopt;
    return m;
  }

  // x^3 as Pow(x, 3), x*(x*x) or (x*x)*x. Appends the nodes.
  static bool Cube(const GraphEditor& ed, const std::string& c, const std::string& x, std::vector<int>& nodes) {
    const int p = ed.Producer(c);
    if (p < 0 || ed.SoleConsumer(c) < 0) return false;
    const ir::Node& n = ed.node(p);
    std::string other;
    double v;
    if (IsOp(n, "Pow")) {
      if (n.inputs.size() != 2 || n.inputs[0] != x || !ed.ConstantScalar(n.inputs[1], &v) || v != 3.0) return false;
      nodes.push_back(p);
      return true;
    }
    if (!IsOp(n, "Mul") || n.inputs.size() != 2) return false;
    const std::string& sq = n.inputs[0] == x ? n.inputs[1] : n.inputs[0];
    if ((n.inputs[0] == x) == (n.inputs[1] == x)) return false;
    const int s = ed.Producer(sq);
    if (s < 0 || ed.SoleConsumer(sq) != p || !IsOp(ed.node(s), "Mul") || ed.node(s).inputs.size() != 2 ||
        ed.node(s).inputs[0] != x || ed.node(s).inputs[1] != x)
      return false;
    nodes.push_back(s);
    nodes.push_back(p);
    return true;
  }

  static std::optional<Match> MatchTanh(const GraphEditor& ed, int tanh) {
    const ir::Node& t = ed.node(tanh);
    // Tanh(k * r), k = sqrt(2/pi)
    const int ms = ed.Producer(t.inputs[0]);
    std::string r, other;
    double v;
    if (ms < 0 || ed.SoleConsumer(t.inputs[0]) != tanh || !IsOp(ed.node(ms), "Mul") ||
        !ed.SplitScalarOperand(ed.node(ms), &r, &v) || !Near(v, kSqrt2OverPi))
      return std::nullopt;
    // r = x + q, q = 0.044715 * x^3
    const int add = ed.Producer(r);
    if (add < 0 || ed.SoleConsumer(r) != ms || !IsOp(ed.node(add), "Add") || ed.node(add).inputs.size() != 2)
      return std::nullopt;
    for (int side = 0; side < 2; ++side) {
      const std::string& q = ed.node(add).inputs[static_cast<size_t>(side)];
      const std::string& x = ed.node(add).inputs[static_cast<size_t>(1 - side)];
      const int mq = ed.Producer(q);
      std::string cube;
      if (mq < 0 || ed.SoleConsumer(q) != add || !IsOp(ed.node(mq), "Mul") ||
          !ed.SplitScalarOperand(ed.node(mq), &cube, &v) || !Near(v, 0.044715))
        continue;
      Match m{x, {mq, add, ms, tanh}, -1};
      if (!Cube(ed, cube, x, m.nodes)) continue;
      const int plus = PlusOne(ed, tanh);
      if (plus < 0) return std::nullopt;
      m.nodes.push_back(plus);
      if (!Tail(ed, x, plus, m)) return std::nullopt;
      return m;
    }
    return std::nullopt;
  }
};

const PassRegistrar kReg{{"gelu-recognition", order::kGelu, [] { return std::make_unique<GeluRecognition>(); }}};

}  // namespace
}  // namespace strata::passes
