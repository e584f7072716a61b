// O3: finds scaled dot-product attention written out in ops and replaces it with one
// com.strata:Attention node (src/kernels/cpu/attention.cc):
//   S = MatMul(Q, K^T) [* c | / c ...]   scalar constants
//   S = Add(S, mask)                     float32 mask, or
//   S = Where(Not(keep), fill, S)        bool keep mask, constant scalar fill (also Where(keep, S, fill))
//   Y = MatMul(Softmax(S, last axis), V)
// Heads layout: when Q, K and V come from [b, s, h*d] tensors through Reshape [b, s, h, d] and
// Transpose (0,2,1,3 for Q and V, 0,2,3,1 for K, in one Transpose or several), and Y goes back
// through Transpose 0,2,1,3 and Reshape [b, s, h*dv], the fused node reads the [b, s, h*d] tensors
// and writes [b, s, h*dv] itself (num_heads = h), so the transposes disappear; rank-3 [b, s, d]
// operands with K transposed by perm 0,2,1 are the one-head case. Otherwise only the core from the
// first MatMul to the second is fused (num_heads = 0, K read as the transposed MatMul operand).
// Scalar Mul/Div on Q or K (before or after the reshape) fold into the scale. A bool keep mask is
// marked causal when it is the top-left corner (Slices starting at 0, step 1, on the last two axes)
// of a constant whose every [L, L'] plane is lower-triangular (checked value by value).
// Refuses: intermediates read outside the pattern (or graph outputs), non-float32 values, unknown
// ranks, scores of rank > 4, a Softmax not over the last axis, non-scalar or non-constant scales
// and fills, masks that would enlarge the scores, and MatMuls whose leading dims could broadcast.
#include <map>
#include <optional>

#include "passes/graph_editor.h"
#include "passes/graph_pass.h"

namespace strata::passes {
namespace {

// Right after common-subexpression elimination: before the fusions that would turn the second
// MatMul into a FusedMatMul or merge the elementwise steps between the MatMuls.
constexpr int kOrder = order::kCse + 5;

const std::vector<ir::Dim>* DimsOf(const GraphEditor& ed, const std::string& v) {
  const ir::TypeInfo* t = ed.TypeOf(v);
  return t && t->kind == ir::TypeInfo::Kind::kTensor && t->shape ? &*t->shape : nullptr;
}

bool IsFloat(const GraphEditor& ed, const std::string& v) { return ed.ElemType(v) == DType::kFloat; }

// A Transpose's permutation (reversal when absent), or empty if unusable.
std::vector<int64_t> Perm(const GraphEditor& ed, const ir::Node& n) {
  const auto rank = ed.Rank(n.inputs[0]);
  if (!rank) return {};
  std::vector<int64_t> p;
  if (const ir::Attribute* a = n.attr("perm")) {
    p = a->ints;
  } else {
    for (int64_t i = *rank - 1; i >= 0; --i) p.push_back(i);
  }
  if (static_cast<int64_t>(p.size()) != *rank) return {};
  std::vector<bool> seen(p.size(), false);
  for (int64_t a : p) {
    if (a < 0 || a >= *rank || seen[static_cast<size_t>(a)]) return {};
    seen[static_cast<size_t>(a)] = true;
  }
  return p;
}

// Scalar Mul, or Div by a scalar: the other operand and the factor.
bool ScalarFactor(const GraphEditor& ed, const ir::Node& n, std::string* x, double* factor) {
  const bool mul = IsOp(n, "Mul", 2), div = IsOp(n, "Div", 2);
  if ((!mul && !div) || n.outputs.size() != 1 || !ed.SplitScalarOperand(n, x, factor)) return false;
  if (div) {
    if (n.inputs[0] != *x || *factor == 0) return false;
    *factor = 1.0 / *factor;
  }
  return *factor == *factor;  // not NaN
}

// Where a MatMul operand comes from: `base`, seen through the absorbed `nodes`.
struct Source {
  std::string base;
  std::vector<int64_t> perm;  // operand axis i is axis perm[i] of base (split into heads if `split`)
  bool split = false;         // base [b, s, h*d] was reshaped to [b, s, h, d]
  int64_t heads = 0, dim = 0;
  double scale = 1;
  std::vector<int> nodes;
};

// Follows operand `v` of node `reader` back through scalar Mul/Div (when `scales`) and, when `layout`,
// Transposes and (for a rank-4 operand) one Reshape splitting the last axis into heads. Each
// absorbed node's output must be read only by the node before it in the chain.
Source Trace(const GraphEditor& ed, std::string v, int reader, size_t rank, bool scales, bool layout) {
  Source s;
  for (size_t i = 0; i < rank; ++i) s.perm.push_back(static_cast<int64_t>(i));
  for (;;) {
    const int p = ed.Producer(v);
    if (p < 0 || ed.SoleConsumer(v) != reader) break;
    const ir::Node& n = ed.node(p);
    std::string x;
    double c;
    if (scales && ScalarFactor(ed, n, &x, &c)) {
      s.scale *= c;
    } else if (layout && !s.split && IsOp(n, "Transpose") && n.outputs.size() == 1) {
      const std::vector<int64_t> perm = Perm(ed, n);
      if (perm.size() != rank) break;
      for (auto& a : s.perm) a = perm[static_cast<size_t>(a)];
      x = n.inputs[0];
    } else if (layout && !s.split && rank == 4 && IsOp(n, "Reshape", 2) && n.outputs.size() == 1) {
      const auto* in = DimsOf(ed, n.inputs[0]);
      const auto* out = DimsOf(ed, n.outputs[0]);
      if (!in || !out || in->size() != 3 || out->size() != 4 || !SameDim((*in)[0], (*out)[0]) ||
          !SameDim((*in)[1], (*out)[1]) || !(*in)[2].known() || !(*out)[2].known() || !(*out)[3].known() ||
          (*in)[2].value != (*out)[2].value * (*out)[3].value)
        break;
      s.split = true;
      s.heads = (*out)[2].value;
      s.dim = (*out)[3].value;
      x = n.inputs[0];
    } else {
      break;
    }
    s.nodes.push_back(p);
    v = x;
    reader = p;
  }
  s.base = v;
  return s;
}

// Whether every [L, L'] plane of a bool constant is lower-triangular (true exactly where j <= i).
bool LowerTriangular(const Tensor& t) {
  if (t.dtype() != DType::kBool || t.rank() < 2) return false;
  const int64_t rows = t.dim(t.rank() - 2), cols = t.dim(t.rank() - 1);
  const int64_t planes = rows * cols == 0 ? 0 : t.numel() / (rows * cols);
  const bool* b = t.data<bool>();
  for (int64_t p = 0; p < planes; ++p)
    for (int64_t i = 0; i < rows; ++i)
      for (int64_t j = 0; j < cols; ++j)
        if (*b++ != (j <= i)) return false;
  return true;
}

// Integer values of a constant input or an ints attribute (Slice before opset 10).
bool Ints(const GraphEditor& ed, const ir::Node& n, size_t input, std::string_view attr, std::vector<int64_t>* out) {
  out->clear();
  if (ed.OpsetOf(n) < 10) {
    const ir::Attribute* a = n.attr(attr);
    if (!a) return false;
    *out = a->ints;
    return true;
  }
  if (input >= n.inputs.size() || n.inputs[input].empty()) return false;
  const Tensor* t = ed.Constant(n.inputs[input]);
  if (!t || (t->dtype() != DType::kInt64 && t->dtype() != DType::kInt32) || t->rank() > 1) return false;
  for (int64_t i = 0; i < t->numel(); ++i) out->push_back(t->GetAsInt64(i));
  return true;
}

// A Slice that keeps the top-left corner of the last two axes (start 0, step 1 there).
bool CornerSlice(const GraphEditor& ed, const ir::Node& n) {
  const auto rank = ed.Rank(n.inputs[0]);
  std::vector<int64_t> starts, axes, steps;
  if (!rank || *rank < 2 || !Ints(ed, n, 1, "starts", &starts)) return false;
  if (!Ints(ed, n, 3, "axes", &axes)) {
    if (n.inputs.size() > 3 && !n.inputs[3].empty()) return false;  // axes given but not constant
    if (ed.OpsetOf(n) < 10 && n.attr("axes")) return false;
    axes.clear();
    for (size_t i = 0; i < starts.size(); ++i) axes.push_back(static_cast<int64_t>(i));
  }
  if (ed.OpsetOf(n) >= 10 && n.inputs.size() > 4 && !n.inputs[4].empty()) {
    if (!Ints(ed, n, 4, "steps", &steps)) return false;
  } else {
    steps.assign(starts.size(), 1);
  }
  if (axes.size() != starts.size() || steps.size() != starts.size()) return false;
  for (size_t k = 0; k < axes.size(); ++k) {
    const int64_t a = axes[k] < 0 ? axes[k] + *rank : axes[k];
    if (a < 0 || a >= *rank) return false;
    if (a >= *rank - 2 && (starts[k] != 0 || steps[k] != 1)) return false;
  }
  return true;
}

class AttentionRecognition final : public GraphPass {
 public:
  std::string_view name() const override { return "attention-recognition"; }
  int level() const override { return 3; }

  Result<bool> Apply(ir::Model& model) override {
    GraphEditor ed(model);
    triangular_.clear();
    for (int i = 0; i < ed.num_nodes(); ++i)
      if (!ed.removed(i) && IsOp(ed.node(i), "Softmax")) TryRewrite(ed, i);
    if (ed.changed()) model.opset_imports[std::string(kStrataDomain)] = 1;
    return ed.Commit();
  }

 private:
  // The bool keep mask is a top-left corner of a lower-triangular constant.
  bool ProvenCausal(const GraphEditor& ed, std::string v) {
    for (int p = ed.Producer(v); p >= 0 && IsOp(ed.node(p), "Slice", 1); p = ed.Producer(v)) {
      if (!CornerSlice(ed, ed.node(p))) return false;
      v = ed.node(p).inputs[0];
    }
    const Tensor* t = ed.Constant(v);
    if (!t) return false;
    auto it = triangular_.find(t);
    if (it == triangular_.end()) it = triangular_.emplace(t, LowerTriangular(*t)).first;
    return it->second;
  }

  void TryRewrite(GraphEditor& ed, int softmax) {
    const ir::Node& sm = ed.node(softmax);
    if (sm.outputs.size() != 1) return;
    const std::string& s_in = sm.inputs[0];
    const auto* sdims = DimsOf(ed, s_in);
    if (!sdims || sdims->size() < 2 || sdims->size() > 4 || !IsFloat(ed, s_in)) return;
    const size_t rank = sdims->size();
    const int64_t axis = AttrInt(sm, "axis", ed.OpsetOf(sm) < 13 ? 1 : -1);
    if (axis != -1 && axis != static_cast<int64_t>(rank) - 1) return;

    // Softmax -> MatMul(P, V)
    const std::string& p = sm.outputs[0];
    const int mm2 = ed.SoleConsumer(p);
    if (mm2 < 0 || !IsOp(ed.node(mm2), "MatMul", 2) || ed.node(mm2).inputs[0] != p || ed.node(mm2).inputs[1] == p)
      return;
    std::vector<int> nodes = {softmax, mm2};

    // Back from the Softmax: an optional mask, then scalar scales, then MatMul(Q, K^T).
    std::string v = s_in, mask;
    int reader = softmax;
    bool causal = false;
    float fill = 0;
    bool has_fill = false;
    const Tensor* negate = nullptr;  // the Where condition is this constant, the keep mask its negation
    Tensor negated;
    if (const int m = ed.Producer(v); m >= 0 && ed.SoleConsumer(v) == reader) {
      const ir::Node& mn = ed.node(m);
      if (IsOp(mn, "Add", 2) && mn.inputs.size() == 2 && mn.outputs.size() == 1) {
        // The scores side is the one a MatMul (through scalar scales) produces.
        for (int side = 0; side < 2 && mask.empty(); ++side) {
          const std::string& s = mn.inputs[static_cast<size_t>(side)];
          const std::string& o = mn.inputs[static_cast<size_t>(1 - side)];
          if (s == o || !FromMatMul(ed, s, m)) continue;
          if (!IsFloat(ed, o) || !ed.SameShape(s, v) || !FitsScores(ed, o, rank)) return;
          mask = o;
          v = s;
        }
        if (mask.empty()) return;
        nodes.push_back(m);
        reader = m;
      } else if (IsOp(mn, "Where", 3) && mn.inputs.size() == 3 && mn.outputs.size() == 1) {
        double f;
        std::string keep;
        std::string s;
        if (ed.ConstantScalar(mn.inputs[1], &f) && FromMatMul(ed, mn.inputs[2], m)) {  // Where(!keep, fill, S)
          const int nt = ed.Producer(mn.inputs[0]);
          if (nt >= 0 && IsOp(ed.node(nt), "Not")) {
            keep = ed.node(nt).inputs[0];
          } else {  // a constant condition (a folded mask) is negated below
            negate = ed.Constant(mn.inputs[0]);
            if (!negate || negate->dtype() != DType::kBool) return;
            keep = mn.inputs[0];
          }
          s = mn.inputs[2];
        } else if (ed.ConstantScalar(mn.inputs[2], &f) && FromMatMul(ed, mn.inputs[1], m)) {  // Where(keep, S, fill)
          keep = mn.inputs[0];
          s = mn.inputs[1];
        } else {
          return;
        }
        if (ed.ElemType(keep) != DType::kBool || !ed.SameShape(s, v) || !FitsScores(ed, keep, rank)) return;
        const Tensor* ft = ed.Constant(mn.inputs[1] == s ? mn.inputs[2] : mn.inputs[1]);
        if (!ft || ft->dtype() != DType::kFloat || ft->rank() > static_cast<int64_t>(rank)) return;
        mask = keep;
        fill = static_cast<float>(f);
        has_fill = true;
        if (negate) {
          negated = Tensor(DType::kBool, negate->shape());
          for (int64_t i = 0; i < negate->numel(); ++i) negated.data<bool>()[i] = !negate->data<bool>()[i];
          causal = LowerTriangular(negated);
        } else {
          causal = ProvenCausal(ed, keep);
        }
        v = s;
        nodes.push_back(m);
        reader = m;
      }
    }
    double scale = 1;
    int mm1 = -1;
    for (;;) {
      const int q = ed.Producer(v);
      if (q < 0 || ed.SoleConsumer(v) != reader) return;
      std::string x;
      double c;
      if (ScalarFactor(ed, ed.node(q), &x, &c)) {
        scale *= c;
        nodes.push_back(q);
        v = x;
        reader = q;
        continue;
      }
      if (!IsOp(ed.node(q), "MatMul", 2) || ed.node(q).outputs.size() != 1) return;
      mm1 = q;
      break;
    }
    nodes.push_back(mm1);
    const ir::Node& n1 = ed.node(mm1);
    const ir::Node& n2 = ed.node(mm2);
    const std::string y2 = n2.outputs[0];
    if (!IsFloat(ed, n1.inputs[0]) || !IsFloat(ed, n1.inputs[1]) || !IsFloat(ed, n2.inputs[1]) || !IsFloat(ed, y2))
      return;

    ir::Node att;
    std::vector<int> absorbed;
    int last = -1;
    // The heads layout sees rank-3 scores as [b, 1, sq, sk]: a mask written against [b, sq, sk] would
    // no longer line up with them, so rank-3 graphs with a mask keep the core form.
    std::optional<int64_t> heads;
    if (rank != 3 || mask.empty()) heads = MatchHeads(ed, mm1, mm2, rank, &att.inputs, &scale, &absorbed, &last);
    if (heads) {
      att.attributes.push_back(MakeAttr("num_heads", *heads));
      if (att.inputs.size() == 1) {  // Q, K and V are the thirds of one tensor
        att.inputs.resize(3);
        att.attributes.push_back(MakeAttr("packed_qkv", int64_t{1}));
      }
    } else {
      // Core only: scalar scales on Q and K still fold in; the operands are read as they are.
      att.inputs.clear();
      absorbed.clear();
      const Source q = Trace(ed, n1.inputs[0], mm1, rank, true, false);
      const Source k = Trace(ed, n1.inputs[1], mm1, rank, true, false);
      if (!CoreShapesFit(ed, q.base, k.base, n2.inputs[1], rank)) return;
      scale *= q.scale * k.scale;
      att.inputs = {q.base, k.base, n2.inputs[1]};
      absorbed.insert(absorbed.end(), q.nodes.begin(), q.nodes.end());
      absorbed.insert(absorbed.end(), k.nodes.begin(), k.nodes.end());
      last = mm2;
    }
    if (negate) mask = ed.AddInitializer(mask + "_keep", std::move(negated));
    if (!mask.empty()) att.inputs.push_back(mask);
    att.op_type = "Attention";
    att.domain = std::string(kStrataDomain);
    att.name = ed.node(last).name;
    att.outputs = {ed.node(last).outputs[0]};
    att.attributes.push_back(MakeAttr("scale", static_cast<float>(scale)));
    if (causal) att.attributes.push_back(MakeAttr("causal", int64_t{1}));
    if (has_fill) att.attributes.push_back(MakeAttr("mask_fill", fill));

    nodes.insert(nodes.end(), absorbed.begin(), absorbed.end());
    for (int k : nodes)
      if (k != last) ed.Remove(k);
    ed.ReplaceNode(last, std::move(att));
  }

  // `s` (read by node `reader`) is a MatMul output, possibly through scalar Mul/Div.
  static bool FromMatMul(const GraphEditor& ed, std::string s, int reader) {
    for (;;) {
      const int p = ed.Producer(s);
      if (p < 0 || ed.SoleConsumer(s) != reader) return false;
      if (IsOp(ed.node(p), "MatMul", 2)) return true;
      std::string x;
      double c;
      if (!ScalarFactor(ed, ed.node(p), &x, &c)) return false;
      s = x;
      reader = p;
    }
  }

  // A mask of known rank no larger than the scores'.
  static bool FitsScores(const GraphEditor& ed, const std::string& m, size_t rank) {
    const auto r = ed.Rank(m);
    return r && *r <= static_cast<int64_t>(rank);
  }

  // Q [..., sq, d], K^T [..., d, sk], V [..., sk, dv] with the same leading dims (no broadcasting).
  static bool CoreShapesFit(const GraphEditor& ed, const std::string& q, const std::string& k, const std::string& v,
                            size_t rank) {
    const auto* dq = DimsOf(ed, q);
    const auto* dk = DimsOf(ed, k);
    const auto* dv = DimsOf(ed, v);
    if (!dq || !dk || !dv || dq->size() != rank || dk->size() != rank || dv->size() != rank) return false;
    for (size_t i = 0; i + 2 < rank; ++i)
      if (!SameDim((*dq)[i], (*dk)[i]) || !SameDim((*dq)[i], (*dv)[i])) return false;
    return IsFloat(ed, q) && IsFloat(ed, k) && IsFloat(ed, v);
  }

  // The Split node whose three equal outputs along the last axis are Q, K and V, each read only by
  // its absorbed chain (GPT-2's fused QKV projection), or -1.
  static int PackedSplit(const GraphEditor& ed, const Source& q, const Source& k, const Source& v) {
    const int sp = ed.Producer(q.base);
    if (sp < 0 || ed.Producer(k.base) != sp || ed.Producer(v.base) != sp) return -1;
    const ir::Node& n = ed.node(sp);
    if (!IsOp(n, "Split") || n.outputs.size() != 3 || n.outputs[0] != q.base || n.outputs[1] != k.base ||
        n.outputs[2] != v.base || !IsFloat(ed, n.inputs[0]))
      return -1;
    for (const Source* s : {&q, &k, &v})
      if (s->nodes.empty() || ed.SoleConsumer(s->base) != s->nodes.back()) return -1;
    const auto* dx = DimsOf(ed, n.inputs[0]);
    const int64_t axis = AttrInt(n, "axis", 0);
    if (!dx || dx->size() != 3 || (axis != 2 && axis != -1) || !(*dx)[2].known() || (*dx)[2].value % 3 != 0)
      return -1;
    // Equal thirds: no sizes (or num_outputs = 3), or sizes w, w, w.
    std::vector<int64_t> sizes;
    if (ed.OpsetOf(n) < 13) {
      if (const ir::Attribute* a = n.attr("split")) sizes = a->ints;
    } else if (n.inputs.size() > 1 && !n.inputs[1].empty()) {
      const Tensor* t = ed.Constant(n.inputs[1]);
      if (!t || t->rank() != 1) return -1;
      for (int64_t i = 0; i < t->numel(); ++i) sizes.push_back(t->GetAsInt64(i));
    }
    const int64_t w = (*dx)[2].value / 3;
    if (!sizes.empty() && sizes != std::vector<int64_t>{w, w, w}) return -1;
    return sp;
  }

  // The heads layout around the two MatMuls; returns the head count and sets the inputs, the
  // absorbed nodes and the node the fused one replaces.
  static std::optional<int64_t> MatchHeads(const GraphEditor& ed, int mm1, int mm2, size_t rank,
                                           std::vector<std::string>* inputs, double* scale, std::vector<int>* absorbed,
                                           int* last) {
    if (rank != 3 && rank != 4) return std::nullopt;
    const bool split = rank == 4;
    const Source q = Trace(ed, ed.node(mm1).inputs[0], mm1, rank, true, true);
    const Source k = Trace(ed, ed.node(mm1).inputs[1], mm1, rank, true, true);
    const Source v = Trace(ed, ed.node(mm2).inputs[1], mm2, rank, false, true);
    using P = std::vector<int64_t>;
    const P qp = split ? P{0, 2, 1, 3} : P{0, 1, 2}, kp = split ? P{0, 2, 3, 1} : P{0, 2, 1};
    if (q.split != split || k.split != split || v.split != split || q.perm != qp || k.perm != kp || v.perm != qp)
      return std::nullopt;
    const int64_t heads = split ? q.heads : 1;
    if (split && (k.heads != heads || v.heads != heads || k.dim != q.dim)) return std::nullopt;
    // The [b, s, h*d] tensors: same batch, K and V the same length, Q and K the same width.
    const auto* dq = DimsOf(ed, q.base);
    const auto* dk = DimsOf(ed, k.base);
    const auto* dv = DimsOf(ed, v.base);
    if (!dq || !dk || !dv || dq->size() != 3 || dk->size() != 3 || dv->size() != 3) return std::nullopt;
    if (!SameDim((*dq)[0], (*dk)[0]) || !SameDim((*dq)[0], (*dv)[0]) || !SameDim((*dk)[1], (*dv)[1]) ||
        !SameDim((*dq)[2], (*dk)[2]) || !(*dv)[2].known())
      return std::nullopt;
    if (!IsFloat(ed, q.base) || !IsFloat(ed, k.base) || !IsFloat(ed, v.base)) return std::nullopt;
    const int64_t width_v = (*dv)[2].value;
    // Output: [b, h, sq, dv] -> Transpose 0,2,1,3 -> Reshape [b, sq, h*dv]; rank 3 needs nothing.
    std::vector<int> out_nodes;
    std::string y = ed.node(mm2).outputs[0];
    if (split) {
      const int t = ed.SoleConsumer(y);
      if (t < 0 || !IsOp(ed.node(t), "Transpose") || ed.node(t).outputs.size() != 1 || Perm(ed, ed.node(t)) != qp)
        return std::nullopt;
      const int r = ed.SoleConsumer(ed.node(t).outputs[0]);
      if (r < 0 || !IsOp(ed.node(r), "Reshape", 2) || ed.node(r).inputs[0] != ed.node(t).outputs[0] ||
          ed.node(r).outputs.size() != 1)
        return std::nullopt;
      const auto* dr = DimsOf(ed, ed.node(r).outputs[0]);
      if (!dr || dr->size() != 3 || !(*dr)[2].known() || (*dr)[2].value != width_v) return std::nullopt;
      out_nodes = {t, r};
      y = ed.node(r).outputs[0];
    }
    const auto* dy = DimsOf(ed, y);
    if (!dy || dy->size() != 3 || !SameDim((*dy)[0], (*dq)[0]) || !SameDim((*dy)[1], (*dq)[1]) || !(*dy)[2].known() ||
        (*dy)[2].value != width_v || !IsFloat(ed, y))
      return std::nullopt;
    *inputs = {q.base, k.base, v.base};
    if (const int sp = PackedSplit(ed, q, k, v); sp >= 0) {
      *inputs = {ed.node(sp).inputs[0]};
      absorbed->push_back(sp);
    }
    *scale *= q.scale * k.scale;
    for (const Source* s : {&q, &k, &v}) absorbed->insert(absorbed->end(), s->nodes.begin(), s->nodes.end());
    absorbed->insert(absorbed->end(), out_nodes.begin(), out_nodes.end());
    *last = out_nodes.empty() ? mm2 : out_nodes.back();
    return heads;
  }

  std::map<const Tensor*, bool> triangular_;
};

const PassRegistrar kReg{{"attention-recognition", kOrder, [] { return std::make_unique<AttentionRecognition>(); }}};

}  // namespace
}  // namespace strata::passes
