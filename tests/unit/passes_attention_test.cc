// attention-recognition: the BERT and GPT-2 export patterns become one com.strata:Attention whose
// output matches the unoptimised graph; intermediates read elsewhere, non-scalar scales and
// unexpected permutations are refused (or fall back to the core form).
#include <limits>

#include "passes/graph_editor.h"
#include "passes/shape_inference.h"
#include "passes_test_util.h"

namespace strata::testing {
namespace {

constexpr int64_t kB = 2, kS = 7, kH = 2, kD = 16, kW = kH * kD;

struct Options {
  bool scale_as_mul = false;        // Mul by 1/4 instead of Div by 4
  bool scale_on_q = false;          // Mul(q, 1/4) before the reshape, nothing on the scores
  bool mask = true;                 // additive [b, 1, 1, s] mask input
  bool mask_inf_row = false;        // the mask is a constant with batch 1 entirely -inf
  std::vector<int64_t> scale_dims;  // non-empty: the scale constant has these dims (non-scalar)
  std::vector<int64_t> q_perm = {0, 2, 1, 3};
  bool scores_as_output = false;  // the Div output is also a graph output
  bool k_two_transposes = false;  // K: Transpose 0,2,1,3 then 0,1,3,2 (the Hugging Face export)
  bool scale_on_v = false;        // Mul(v, 1/4): scales the output, so it is not absorbed
  int64_t softmax_axis = -1;      // < -1: attribute left out (the opset's default)
};

void Perm(onnx::NodeProto& n, const std::vector<int64_t>& p) { SetInts(n, "perm", p); }

// The BERT export: per-head Reshape/Transpose, MatMul, Div, Add(mask), Softmax, MatMul, back.
void BuildBert(ModelBuilder& b, const Options& o) {
  b.Input("q", TP::FLOAT, {kB, kS, kW}).Input("k", TP::FLOAT, {kB, kS, kW}).Input("v", TP::FLOAT, {kB, kS, kW});
  if (o.mask && !o.mask_inf_row) b.Input("mask", TP::FLOAT, {kB, 1, 1, kS});
  b.Output("y", TP::FLOAT, {kB, kS, kW});
  if (o.scores_as_output) b.Output("sd", TP::FLOAT, {kB, kH, kS, kS});
  Int64Init(b, "split", {kB, kS, kH, kD});
  Int64Init(b, "merge", {kB, kS, kW});
  std::string q = "q";
  if (o.scale_on_q) {
    ScalarInit(b, "qscale", 0.25f);
    b.Node("Mul", {"q", "qscale"}, {"qs"});
    q = "qs";
  }
  b.Node("Reshape", {q, "split"}, {"q4"});
  Perm(b.Node("Transpose", {"q4"}, {"qt"}), o.q_perm);
  b.Node("Reshape", {"k", "split"}, {"k4"});
  if (o.k_two_transposes) {
    Perm(b.Node("Transpose", {"k4"}, {"kh"}), {0, 2, 1, 3});
    Perm(b.Node("Transpose", {"kh"}, {"kt"}), {0, 1, 3, 2});
  } else {
    Perm(b.Node("Transpose", {"k4"}, {"kt"}), {0, 2, 3, 1});
  }
  std::string v = "v";
  if (o.scale_on_v) {
    ScalarInit(b, "vscale", 0.25f);
    b.Node("Mul", {"v", "vscale"}, {"vs"});
    v = "vs";
  }
  b.Node("Reshape", {v, "split"}, {"v4"});
  Perm(b.Node("Transpose", {"v4"}, {"vt"}), {0, 2, 1, 3});
  b.Node("MatMul", {"qt", "kt"}, {"s"});
  std::string scores = "s";
  if (!o.scale_on_q) {
    if (!o.scale_dims.empty()) {
      b.Initializer("c", std::vector<float>(static_cast<size_t>(kS), 4.f), o.scale_dims);
    } else {
      ScalarInit(b, "c", o.scale_as_mul ? 0.25f : 4.f);
    }
    b.Node(o.scale_as_mul ? "Mul" : "Div", {"s", "c"}, {"sd"});
    scores = "sd";
  }
  if (o.mask) {
    if (o.mask_inf_row) {
      std::vector<float> m(static_cast<size_t>(kB * kS), 0.f);
      for (int64_t j = 0; j < kS; ++j) m[static_cast<size_t>(kS + j)] = -std::numeric_limits<float>::infinity();
      b.Initializer("mask", m, {kB, 1, 1, kS});
    }
    b.Node("Add", {scores, "mask"}, {"sm"});
    scores = "sm";
  }
  auto& sm = b.Node("Softmax", {scores}, {"p"});
  if (o.softmax_axis >= -1) SetInt(sm, "axis", o.softmax_axis);
  b.Node("MatMul", {"p", "vt"}, {"o"});
  Perm(b.Node("Transpose", {"o"}, {"ot"}), {0, 2, 1, 3});
  b.Node("Reshape", {"ot", "merge"}, {"y"});
}

TEST(AttentionRecognition, BertPattern) {
  ModelBuilder b;
  BuildBert(b, {});
  EXPECT_EQ(CheckOptimized(b, 3), (OpCounts{{"Attention", 1}}));
  ModelBuilder b2;  // -O2 leaves it alone
  BuildBert(b2, {});
  EXPECT_EQ(Count(CheckOptimized(b2, 2), "Attention"), 0);
}

TEST(AttentionRecognition, ScaleFormsAndNoMask) {
  for (int form = 0; form < 3; ++form) {
    SCOPED_TRACE(form);
    Options o;
    o.scale_as_mul = form == 1;
    o.scale_on_q = form == 2;
    o.mask = form != 1;
    ModelBuilder b;
    BuildBert(b, o);
    EXPECT_EQ(CheckOptimized(b, 3), (OpCounts{{"Attention", 1}}));
  }
}

TEST(AttentionRecognition, ScaleOnVStaysOutside) {
  Options o;
  o.scale_on_v = true;
  ModelBuilder b;
  BuildBert(b, o);
  EXPECT_EQ(CheckOptimized(b, 3), (OpCounts{{"Attention", 1}, {"Mul", 1}}));
}

TEST(AttentionRecognition, SoftmaxBeforeOpset13) {
  // Opset 11 coerces to 2-D at `axis`: the last axis (3 or -1) is a row softmax, the default 1 is not.
  for (int64_t axis : {int64_t{3}, int64_t{-1}, int64_t{-2}}) {
    SCOPED_TRACE(axis);
    Options o;
    o.softmax_axis = axis;
    ModelBuilder b(11);
    BuildBert(b, o);
    EXPECT_EQ(Count(CheckOptimized(b, 3), "Attention"), axis == -2 ? 0 : 1);
  }
}

TEST(AttentionRecognition, TwoTransposesOnK) {
  Options o;
  o.k_two_transposes = true;
  ModelBuilder b;
  BuildBert(b, o);
  EXPECT_EQ(CheckOptimized(b, 3), (OpCounts{{"Attention", 1}}));
}

TEST(AttentionRecognition, FullyMaskedBatchMatchesUnfused) {
  // Softmax over a row of -inf is NaN in the unfused graph; the fused kernel returns the same.
  Options o;
  o.mask_inf_row = true;
  ModelBuilder b;
  BuildBert(b, o);
  EXPECT_EQ(CheckOptimized(b, 3), (OpCounts{{"Attention", 1}}));
}

TEST(AttentionRecognition, RefusesMultiConsumerScores) {
  Options o;
  o.scores_as_output = true;
  ModelBuilder b;
  BuildBert(b, o);
  EXPECT_EQ(Count(CheckOptimized(b, 3), "Attention"), 0);
}

TEST(AttentionRecognition, RefusesNonScalarScale) {
  Options o;
  o.scale_dims = {1, 1, 1, kS};
  ModelBuilder b;
  BuildBert(b, o);
  const OpCounts c = CheckOptimized(b, 3);
  EXPECT_EQ(Count(c, "Attention"), 0);
  EXPECT_EQ(Count(c, "Softmax"), 1);
}

TEST(AttentionRecognition, UnexpectedPermKeepsTransposesAndFusesTheCore) {
  // Q transposed by 2,0,1,3 ([h, b, s, d]; b == h here) is not the heads layout, so only the
  // MatMul..MatMul core is fused and every Transpose stays.
  static_assert(kB == kH);
  Options o;
  o.q_perm = {2, 0, 1, 3};
  ModelBuilder b;
  BuildBert(b, o);
  const OpCounts c = CheckOptimized(b, 3);
  EXPECT_EQ(Count(c, "Attention"), 1);
  EXPECT_EQ(Count(c, "Transpose"), 4);
  EXPECT_EQ(Count(c, "MatMul"), 0);
}

TEST(AttentionRecognition, SingleHeadRank3) {
  // q k^T with K transposed 0,2,1 and rank-3 operands: the one-head case of the heads layout.
  ModelBuilder b;
  b.Input("x", TP::FLOAT, {2, 9, 24}).Output("y", TP::FLOAT, {2, 9, 24});
  RandomInit(b, "wq", {24, 24}, 1);
  RandomInit(b, "wk", {24, 24}, 2);
  RandomInit(b, "wv", {24, 24}, 3);
  ScalarInit(b, "c", 0.2f);
  b.Node("MatMul", {"x", "wq"}, {"q"});
  b.Node("MatMul", {"x", "wk"}, {"k"});
  b.Node("MatMul", {"x", "wv"}, {"v"});
  Perm(b.Node("Transpose", {"k"}, {"kt"}), {0, 2, 1});
  b.Node("MatMul", {"q", "kt"}, {"s"});
  b.Node("Mul", {"s", "c"}, {"sc"});
  SetInt(b.Node("Softmax", {"sc"}, {"p"}), "axis", -1);
  b.Node("MatMul", {"p", "v"}, {"o"});
  b.Node("Add", {"o", "x"}, {"y"});
  const OpCounts c = CheckOptimized(b, 3);
  EXPECT_EQ(Count(c, "Attention"), 1);
  EXPECT_EQ(Count(c, "Transpose"), 0);
}

TEST(AttentionRecognition, SingleHeadRank3WithMaskAtBatch2) {
  // A [b, 1, sk] mask lines up with rank-3 scores [b, sq, sk]; it must still do so after the rewrite
  // (the one-head layout would see scores [b, 1, sq, sk] and mismatch the mask at b > 1).
  ModelBuilder b;
  b.Input("x", TP::FLOAT, {2, 9, 24}).Input("m", TP::FLOAT, {2, 1, 9}).Output("y", TP::FLOAT, {2, 9, 24});
  RandomInit(b, "wq", {24, 24}, 1);
  RandomInit(b, "wk", {24, 24}, 2);
  RandomInit(b, "wv", {24, 24}, 3);
  ScalarInit(b, "c", 0.2f);
  b.Node("MatMul", {"x", "wq"}, {"q"});
  b.Node("MatMul", {"x", "wk"}, {"k"});
  b.Node("MatMul", {"x", "wv"}, {"v"});
  Perm(b.Node("Transpose", {"k"}, {"kt"}), {0, 2, 1});
  b.Node("MatMul", {"q", "kt"}, {"s"});
  b.Node("Mul", {"s", "c"}, {"sc"});
  b.Node("Add", {"sc", "m"}, {"sm"});
  SetInt(b.Node("Softmax", {"sm"}, {"p"}), "axis", -1);
  b.Node("MatMul", {"p", "v"}, {"y"});
  const OpCounts c = CheckOptimized(b, 3);
  EXPECT_EQ(Count(c, "Attention"), 1);
}

TEST(AttentionRecognition, CoreForm) {
  // Q [b, h, s, d], K^T [b, h, d, s], V [b, h, s, d] as graph inputs: nothing to absorb around them.
  ModelBuilder b;
  b.Input("q", TP::FLOAT, {2, 3, 5, 8}).Input("kt", TP::FLOAT, {2, 3, 8, 6}).Input("v", TP::FLOAT, {2, 3, 6, 4});
  b.Output("y", TP::FLOAT, {2, 3, 5, 4});
  ScalarInit(b, "c", 3.f);
  b.Node("MatMul", {"q", "kt"}, {"s"});
  b.Node("Div", {"s", "c"}, {"sc"});
  SetInt(b.Node("Softmax", {"sc"}, {"p"}), "axis", 3);
  b.Node("MatMul", {"p", "v"}, {"y"});
  EXPECT_EQ(CheckOptimized(b, 3), (OpCounts{{"Attention", 1}}));
}

struct Gpt2Options {
  bool lower_triangular = true;  // else the buffer is upper-triangular
  bool dynamic_end = false;      // slice ends computed from the input's shape
  bool split = false;            // Q, K and V are the thirds of one [1, s, 3*h*d] input
  int64_t shift_axis = 0;        // 2 or 3: that axis is sliced from 1 to seq + 1 instead of 0 to seq
  bool where_keep = false;       // Where(keep, scores, fill) instead of Where(Not(keep), fill, scores)
};

// The GPT-2 export: a bool buffer [1, 1, L, L] sliced to [seq, seq], Not, Where(-big, scores).
// With `split`, Q, K and V are the thirds of one [1, s, 3*h*d] input (GPT-2's fused projection).
void BuildGpt2(ModelBuilder& b, const Gpt2Options& o) {
  constexpr int64_t kL = 16;
  if (o.split) {
    b.Input("qkv", TP::FLOAT, {1, kS, 3 * kW});
    Int64Init(b, "thirds", {kW, kW, kW});
    SetInt(b.Node("Split", {"qkv", "thirds"}, {"q", "k", "v"}), "axis", 2);
  } else {
    b.Input("q", TP::FLOAT, {1, kS, kW}).Input("k", TP::FLOAT, {1, kS, kW}).Input("v", TP::FLOAT, {1, kS, kW});
  }
  b.Output("y", TP::FLOAT, {1, kS, kW});
  auto* buf = b.proto().mutable_graph()->add_initializer();
  buf->set_name("bias");
  buf->set_data_type(TP::BOOL);
  for (int64_t d : {int64_t{1}, int64_t{1}, kL, kL}) buf->add_dims(d);
  for (int64_t i = 0; i < kL; ++i)
    for (int64_t j = 0; j < kL; ++j) buf->add_int32_data(o.lower_triangular ? j <= i : j >= i);
  Int64Init(b, "split", {1, kS, kH, kD});
  Int64Init(b, "merge", {1, kS, kW});
  Int64Init(b, "zero", {0});
  Int64Init(b, "ax2", {2});
  Int64Init(b, "ax3", {3});
  Int64Init(b, "one", {1});
  Int64Init(b, "idx1", {1}, true);
  if (o.dynamic_end) {  // end = q.shape[1], as the export computes it
    b.Node("Shape", {o.split ? "qkv" : "q"}, {"qshape"});
    b.Node("Gather", {"qshape", "idx1"}, {"seq"});
    b.Node("Unsqueeze", {"seq", "zero"}, {"end"});
  } else {
    Int64Init(b, "end", {kS});
  }
  if (o.shift_axis != 0) b.Node("Add", {"end", "one"}, {"end1"});
  b.Node("Slice", {"bias", o.shift_axis == 2 ? "one" : "zero", o.shift_axis == 2 ? "end1" : "end", "ax2", "one"}, {"b1"});
  b.Node("Slice", {"b1", o.shift_axis == 3 ? "one" : "zero", o.shift_axis == 3 ? "end1" : "end", "ax3", "one"}, {"b2"});
  if (!o.where_keep) b.Node("Not", {"b2"}, {"nb"});
  ScalarInit(b, "fill", -3.4028234663852886e38f);
  b.Node("Reshape", {"q", "split"}, {"q4"});
  Perm(b.Node("Transpose", {"q4"}, {"qt"}), {0, 2, 1, 3});
  b.Node("Reshape", {"k", "split"}, {"k4"});
  Perm(b.Node("Transpose", {"k4"}, {"kt"}), {0, 2, 3, 1});
  b.Node("Reshape", {"v", "split"}, {"v4"});
  Perm(b.Node("Transpose", {"v4"}, {"vt"}), {0, 2, 1, 3});
  b.Node("MatMul", {"qt", "kt"}, {"s"});
  ScalarInit(b, "c", 4.f);
  b.Node("Div", {"s", "c"}, {"sd"});
  if (o.where_keep) {
    b.Node("Where", {"b2", "sd", "fill"}, {"sw"});
  } else {
    b.Node("Where", {"nb", "fill", "sd"}, {"sw"});
  }
  SetInt(b.Node("Softmax", {"sw"}, {"p"}), "axis", -1);
  b.Node("MatMul", {"p", "vt"}, {"o"});
  Perm(b.Node("Transpose", {"o"}, {"ot"}), {0, 2, 1, 3});
  b.Node("Reshape", {"ot", "merge"}, {"y"});
}

const ir::Node* FindOp(const ir::Model& m, const std::string& op) {
  for (const auto& n : m.graph->nodes)
    if (n.op_type == op) return &n;
  return nullptr;
}

TEST(AttentionRecognition, Gpt2CausalPattern) {
  for (bool dynamic_end : {false, true}) {
    SCOPED_TRACE(dynamic_end);
    ModelBuilder b;
    BuildGpt2(b, {.dynamic_end = dynamic_end});
    const OpCounts c = CheckOptimized(b, 3);
    EXPECT_EQ(Count(c, "Attention"), 1);
    EXPECT_EQ(Count(c, "Where") + Count(c, "Softmax") + Count(c, "MatMul") + Count(c, "Transpose"), 0);
    {  // Causal also when constant folding has first turned the static mask into a constant condition.
      ModelBuilder b1;
      BuildGpt2(b1, {.dynamic_end = dynamic_end});
      auto s = Session::FromModel(Import(b1), SessionOptions{});
      ASSERT_TRUE(s.ok()) << s.status().ToString();
      const ir::Node* a = FindOp((*s)->model(), "Attention");
      ASSERT_NE(a, nullptr);
      EXPECT_EQ(passes::AttrInt(*a, "causal", 0), 1);
    }
    // Straight after import the slices are still there: the pass reads through them.
    ModelBuilder b2;
    BuildGpt2(b2, {.dynamic_end = dynamic_end});
    ir::Model m = Import(b2);
    ASSERT_TRUE(passes::InferShapes(m).ok());
    EXPECT_TRUE(ApplyPass(m, "attention-recognition"));
    const ir::Node* a = FindOp(m, "Attention");
    ASSERT_NE(a, nullptr);
    EXPECT_EQ(passes::AttrInt(*a, "causal", 0), 1);
    EXPECT_EQ(passes::AttrInt(*a, "num_heads", 0), kH);
    EXPECT_EQ(a->inputs.size(), 4u);
    EXPECT_EQ(a->inputs[3], "b2");
  }
}

TEST(AttentionRecognition, Gpt2SplitQkvIsReadInPlace) {
  ModelBuilder b;
  BuildGpt2(b, {.dynamic_end = true, .split = true});
  const OpCounts c = CheckOptimized(b, 3);
  EXPECT_EQ(Count(c, "Attention"), 1);
  EXPECT_EQ(Count(c, "Split"), 0);
  ModelBuilder b2;
  BuildGpt2(b2, {.dynamic_end = true, .split = true});
  ir::Model m = Import(b2);
  ASSERT_TRUE(passes::InferShapes(m).ok());
  EXPECT_TRUE(ApplyPass(m, "attention-recognition"));
  const ir::Node* a = FindOp(m, "Attention");
  ASSERT_NE(a, nullptr);
  EXPECT_EQ(passes::AttrInt(*a, "packed_qkv", 0), 1);
  EXPECT_EQ(a->inputs, (std::vector<std::string>{"qkv", "", "", "b2"}));
}

TEST(AttentionRecognition, NonTriangularBufferIsAGeneralMask) {
  ModelBuilder b;
  BuildGpt2(b, {.lower_triangular = false, .dynamic_end = true});
  EXPECT_EQ(Count(CheckOptimized(b, 3), "Attention"), 1);
  ModelBuilder b2;
  BuildGpt2(b2, {.lower_triangular = false, .dynamic_end = true});
  ir::Model m = Import(b2);
  ASSERT_TRUE(passes::InferShapes(m).ok());
  EXPECT_TRUE(ApplyPass(m, "attention-recognition"));
  const ir::Node* a = FindOp(m, "Attention");
  ASSERT_NE(a, nullptr);
  EXPECT_EQ(passes::AttrInt(*a, "causal", 0), 0);
}

// Applies the pass to `o`'s graph straight after import (the slices still there, as with a
// symbolic sequence length; in a session constant folding would first turn the static mask into a
// constant), expects its output to match the unoptimised graph's, and returns the Attention node's
// `causal` attribute (-1 when there is no Attention node).
int64_t CausalAfterPass(const Gpt2Options& o) {
  ModelBuilder b;
  BuildGpt2(b, o);
  ir::Model m = Import(b);
  EXPECT_TRUE(passes::InferShapes(m).ok());
  EXPECT_TRUE(ApplyPass(m, "attention-recognition"));
  const ir::Node* a = FindOp(m, "Attention");
  if (!a) return -1;
  const int64_t causal = passes::AttrInt(*a, "causal", 0);
  SessionOptions o0;
  o0.opt_level = 0;
  auto ref = Session::FromModel(Import(b), o0);
  auto fused = Session::FromModel(std::move(m), o0);
  EXPECT_TRUE(ref.ok() && fused.ok());
  if (!ref.ok() || !fused.ok()) return causal;
  std::vector<Value> in, want, got;
  unsigned seed = 1;
  for (const auto& vi : (*ref)->inputs()) {
    Shape s;
    for (const auto& d : *vi.type.shape) s.push_back(d.value);
    Tensor t(DType::kFloat, s);
    const auto v = Values(t.numel(), seed++);
    std::copy(v.begin(), v.end(), t.data<float>());
    in.emplace_back(std::move(t));
  }
  EXPECT_TRUE((*ref)->Run(in, want).ok());
  EXPECT_TRUE((*fused)->Run(in, got).ok());
  if (want.size() != 1 || got.size() != 1) return causal;
  const Tensor& w = want[0].tensor();
  const Tensor& g = got[0].tensor();
  EXPECT_EQ(w.shape(), g.shape());
  int bad = 0;
  for (int64_t i = 0; i < std::min(w.numel(), g.numel()); ++i) {
    const float x = w.data<float>()[i], y = g.data<float>()[i];
    if (!(std::fabs(x - y) <= 1e-5f * (1 + std::fabs(x))) && bad++ < 5)
      ADD_FAILURE() << "element " << i << ": unfused " << x << ", after the pass " << y;
  }
  return causal;
}

TEST(AttentionRecognition, ShiftedSliceOfTheTriangleIsNotCausal) {
  // Slicing the lower-triangular buffer from 1 on the key axis keeps j <= i - 1 (row 0 empty), from 1
  // on the query axis j <= i + 1: neither is the causal rule, so the mask's values must decide.
  for (int64_t axis : {int64_t{2}, int64_t{3}})
    for (bool dynamic_end : {false, true}) {
      SCOPED_TRACE(::testing::Message() << "axis " << axis << " dynamic_end " << dynamic_end);
      const Gpt2Options o{.dynamic_end = dynamic_end, .shift_axis = axis};
      EXPECT_EQ(CausalAfterPass(o), 0);
      ModelBuilder b;
      BuildGpt2(b, o);
      EXPECT_EQ(Count(CheckOptimized(b, 3), "Attention"), 1);
    }
}

TEST(AttentionRecognition, WhereKeepScoresFillForm) {
  // Where(keep, S, fill): the keep mask is the condition itself (no Not), causal when proven.
  for (bool lower_triangular : {true, false})
    for (bool dynamic_end : {false, true}) {
      SCOPED_TRACE(::testing::Message() << "lower_triangular " << lower_triangular << " dynamic_end " << dynamic_end);
      const Gpt2Options o{.lower_triangular = lower_triangular, .dynamic_end = dynamic_end, .where_keep = true};
      EXPECT_EQ(CausalAfterPass(o), lower_triangular ? 1 : 0);
      ModelBuilder b;
      BuildGpt2(b, o);
      const OpCounts c = CheckOptimized(b, 3);
      EXPECT_EQ(Count(c, "Attention"), 1);
      EXPECT_EQ(Count(c, "Where") + Count(c, "Softmax") + Count(c, "MatMul"), 0);
    }
}

}  // namespace
}  // namespace strata::testing
