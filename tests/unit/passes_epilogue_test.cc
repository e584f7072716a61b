#include "passes/shape_inference.h"
#include "passes_test_util.h"

namespace strata::testing {
namespace {

// Appends one activation node `op` reading `in`, writing `out` (with parameters where the op has them).
void Activation(ModelBuilder& b, const std::string& op, const std::string& in, const std::string& out, int opset) {
  if (op == "Clip") {
    if (opset >= 11) {
      ScalarInit(b, "clip_lo", -0.5f);
      ScalarInit(b, "clip_hi", 1.25f);
      b.Node("Clip", {in, "clip_lo", "clip_hi"}, {out});
    } else {
      auto& n = b.Node("Clip", {in}, {out});
      SetFloat(n, "min", -0.5f);
      SetFloat(n, "max", 1.25f);
    }
  } else if (op == "LeakyRelu") {
    SetFloat(b.Node(op, {in}, {out}), "alpha", 0.3f);
  } else if (op == "HardSigmoid") {
    auto& n = b.Node(op, {in}, {out});
    SetFloat(n, "alpha", 0.25f);
    SetFloat(n, "beta", 0.4f);
  } else if (op == "GeluTanh") {
    SetString(b.Node("Gelu", {in}, {out}), "approximate", "tanh");
  } else {
    b.Node(op, {in}, {out});
  }
}

const std::vector<std::string> kActivations = {"Relu",        "LeakyRelu", "Clip", "Sigmoid", "Tanh",
                                               "HardSigmoid", "HardSwish", "Gelu", "GeluTanh"};

TEST(EpilogueFusion, ConvResidualThenEachActivation) {
  for (const auto& act : kActivations) {
    SCOPED_TRACE(act);
    const int opset = act == "HardSwish" ? 14 : 13;
    ModelBuilder b(opset);
    b.Input("x", TP::FLOAT, {1, 3, 7, 9}).Input("r", TP::FLOAT, {1, 5, 7, 9}).Output("y", TP::FLOAT, {1, 5, 7, 9});
    RandomInit(b, "w", {5, 3, 3, 3}, 1);
    RandomInit(b, "bias", {5}, 2);
    SetInts(b.Node("Conv", {"x", "w", "bias"}, {"c"}), "pads", {1, 1, 1, 1});
    b.Node("Add", {"r", "c"}, {"s"});
    Activation(b, act, "s", "y", opset);
    const OpCounts c = CheckOptimized(b, 2, 1e-4);
    EXPECT_EQ(c, (OpCounts{{"FusedConv", 1}}));
  }
}

TEST(EpilogueFusion, MatMulBiasResidualActivationAcrossShapes) {
  // Shapes with tails (N = 17, 33) and a batched 3-D case.
  const std::vector<std::vector<int64_t>> a_shapes = {{4, 16}, {3, 5, 17}, {1, 64}};
  const std::vector<int64_t> ns = {33, 17, 8};
  for (size_t k = 0; k < a_shapes.size(); ++k) {
    for (const auto& act : kActivations) {
      SCOPED_TRACE(::testing::Message() << "case " << k << " " << act);
      const int opset = act == "HardSwish" ? 14 : 13;
      const auto& as = a_shapes[k];
      const int64_t K = as.back(), N = ns[k];
      std::vector<int64_t> ys = as;
      ys.back() = N;
      ModelBuilder b(opset);
      b.Input("a", TP::FLOAT, as).Input("r", TP::FLOAT, ys).Output("y", TP::FLOAT, ys);
      RandomInit(b, "w", {K, N}, 1);
      RandomInit(b, "bias", {N}, 2);
      b.Node("MatMul", {"a", "w"}, {"m"});
      b.Node("Add", {"bias", "m"}, {"mb"});
      b.Node("Add", {"mb", "r"}, {"s"});
      Activation(b, act, "s", "y", opset);
      const OpCounts c = CheckOptimized(b, 2, 1e-4);
      EXPECT_EQ(c, (OpCounts{{"FusedMatMul", 1}}));
    }
  }
}

TEST(EpilogueFusion, GemmWithCAndResidualAndClip) {
  ModelBuilder b(11);
  b.Input("a", TP::FLOAT, {6, 10}).Input("r", TP::FLOAT, {6, 7}).Output("y", TP::FLOAT, {6, 7});
  RandomInit(b, "w", {7, 10}, 1);
  RandomInit(b, "c", {7}, 2);
  auto& g = b.Node("Gemm", {"a", "w", "c"}, {"g"});
  SetInt(g, "transB", 1);
  SetFloat(g, "alpha", 0.5f);
  SetFloat(g, "beta", 2.f);
  b.Node("Add", {"g", "r"}, {"s"});
  Activation(b, "Clip", "s", "y", 11);
  EXPECT_EQ(CheckOptimized(b, 2, 1e-4), (OpCounts{{"FusedGemm", 1}}));
}

TEST(EpilogueFusion, GemmWithoutCTransposedA) {
  ModelBuilder b;
  b.Input("a", TP::FLOAT, {10, 6}).Input("r", TP::FLOAT, {6, 7}).Output("y", TP::FLOAT, {6, 7});
  RandomInit(b, "w", {10, 7}, 1);
  SetInt(b.Node("Gemm", {"a", "w"}, {"g"}), "transA", 1);
  b.Node("Add", {"r", "g"}, {"s"});
  b.Node("Tanh", {"s"}, {"y"});
  EXPECT_EQ(CheckOptimized(b, 2, 1e-4), (OpCounts{{"FusedGemm", 1}}));
}

TEST(EpilogueFusion, EmptyInnerDimensionUsesTheReferenceEpilogue) {
  // K = 0: oneDNN is not used; the reference path must still add the bias and apply the activation.
  ModelBuilder b;
  b.Input("a", TP::FLOAT, {3, 0}).Input("r", TP::FLOAT, {3, 4}).Output("y", TP::FLOAT, {3, 4});
  b.Initializer("w", {}, {0, 4});
  b.Initializer("bias", {-1.f, 0.5f, 2.f, -0.25f}, {4});
  b.Node("MatMul", {"a", "w"}, {"m"});
  b.Node("Add", {"m", "bias"}, {"mb"});
  b.Node("Add", {"mb", "r"}, {"s"});
  b.Node("Relu", {"s"}, {"y"});
  EXPECT_EQ(CheckOptimized(b, 2), (OpCounts{{"FusedMatMul", 1}}));
}

TEST(EpilogueFusion, ChainsOfActivationsFuse) {
  ModelBuilder b;
  b.Input("a", TP::FLOAT, {5, 8}).Output("y", TP::FLOAT, {5, 3});
  RandomInit(b, "w", {8, 3}, 1);
  b.Node("MatMul", {"a", "w"}, {"m"});
  b.Node("Relu", {"m"}, {"r"});
  b.Node("Sigmoid", {"r"}, {"y"});
  EXPECT_EQ(CheckOptimized(b, 2), (OpCounts{{"FusedMatMul", 1}}));
}

TEST(EpilogueFusion, Refusals) {
  // (1) the MatMul output has two readers; (2) a broadcasting Add is not a residual; (3) an
  // activation before a residual Add is not fused with it; (4) a float64 Conv.
  ModelBuilder b;
  b.Input("a", TP::FLOAT, {4, 8}).Input("row", TP::FLOAT, {1, 6}).Output("y1", TP::FLOAT, {4, 6})
      .Output("y2", TP::FLOAT, {4, 6}).Output("y3", TP::FLOAT, {4, 6});
  RandomInit(b, "w", {8, 6}, 1);
  b.Node("MatMul", {"a", "w"}, {"m"});
  b.Node("Relu", {"m"}, {"y1"});
  b.Node("Sigmoid", {"m"}, {"s"});  // m has two readers: nothing fuses into this MatMul
  b.Node("Add", {"s", "row"}, {"y2"});
  b.Node("MatMul", {"a", "w"}, {"m2"});  // CSE merges it with the first one
  b.Node("Neg", {"m2"}, {"y3"});
  const OpCounts c = CheckOptimized(b, 3);
  EXPECT_EQ(Count(c, "MatMul"), 1);
  EXPECT_EQ(Count(c, "FusedMatMul"), 0);

  ModelBuilder b2;
  b2.Input("a", TP::FLOAT, {4, 8}).Input("row", TP::FLOAT, {1, 6}).Input("r", TP::FLOAT, {4, 6})
      .Output("y", TP::FLOAT, {4, 6}).Output("z", TP::FLOAT, {4, 6});
  RandomInit(b2, "w", {8, 6}, 1);
  b2.Node("MatMul", {"a", "w"}, {"m"});
  b2.Node("Add", {"m", "row"}, {"y"});  // broadcast over rows, not a [N] constant: no fusion
  b2.Node("MatMul", {"r", "w2"}, {"m2"});
  RandomInit(b2, "w2", {6, 6}, 2);
  b2.Node("Relu", {"m2"}, {"rl"});
  b2.Node("Add", {"rl", "r"}, {"z"});  // residual after an activation: only the Relu fuses
  const OpCounts c2 = CheckOptimized(b2, 3);
  EXPECT_EQ(Count(c2, "MatMul"), 1);
  EXPECT_EQ(Count(c2, "FusedMatMul"), 1);
  EXPECT_EQ(Count(c2, "Add"), 2);

  ModelBuilder b3;
  b3.Input("x", TP::DOUBLE, {1, 2, 4, 4}).Output("y", TP::DOUBLE, {1, 2, 4, 4});
  auto* w = b3.proto().mutable_graph()->add_initializer();
  w->set_name("w");
  w->set_data_type(TP::DOUBLE);
  for (int64_t d : {2, 2, 1, 1}) w->add_dims(d);
  for (double v : {1.0, -2.0, 0.5, 3.0}) w->add_double_data(v);
  b3.Node("Conv", {"x", "w"}, {"c"});
  b3.Node("Relu", {"c"}, {"y"});
  EXPECT_EQ(CheckOptimized(b3, 3), (OpCounts{{"Conv", 1}, {"Relu", 1}}));
}

TEST(EpilogueFusion, SetsTheStrataOpsetImport) {
  ModelBuilder b;
  b.Input("a", TP::FLOAT, {2, 2}).Output("y", TP::FLOAT, {2, 2});
  RandomInit(b, "w", {2, 2}, 1);
  b.Node("MatMul", {"a", "w"}, {"m"});
  b.Node("Relu", {"m"}, {"y"});
  ir::Model m = Import(b);
  ASSERT_TRUE(passes::InferShapes(m).ok());
  ASSERT_TRUE(passes::Optimize(m, 2).ok());
  EXPECT_EQ(m.OpsetFor("com.strata"), 1);
  EXPECT_EQ(m.graph->nodes.at(0).domain, "com.strata");
}

}  // namespace
}  // namespace strata::testing
