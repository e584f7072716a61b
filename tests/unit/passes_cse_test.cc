#include "passes/shape_inference.h"
#include "passes_test_util.h"

namespace strata::testing {
namespace {

TEST(CommonSubexpressionElimination, MergesEqualNodesAndChains) {
  ModelBuilder b;
  b.Input("x", TP::FLOAT, {2, 5}).Output("y", TP::FLOAT, {2, 5});
  ScalarInit(b, "two_a", 2.f);
  ScalarInit(b, "two_b", 2.f);  // equal contents: merged, so the Muls below match
  b.Node("Relu", {"x"}, {"r1"});
  b.Node("Relu", {"x"}, {"r2"});
  b.Node("Mul", {"r1", "two_a"}, {"m1"});
  b.Node("Mul", {"r2", "two_b"}, {"m2"});
  b.Node("Add", {"m1", "m2"}, {"y"});
  const OpCounts c = CheckOptimized(b, 1);
  EXPECT_EQ(c, (OpCounts{{"Add", 1}, {"Mul", 1}, {"Relu", 1}}));
}

TEST(CommonSubexpressionElimination, DifferentAttributesOrInputsStay) {
  ModelBuilder b;
  b.Input("x", TP::FLOAT, {7}).Input("z", TP::FLOAT, {7}).Output("y", TP::FLOAT, {7});
  SetFloat(b.Node("LeakyRelu", {"x"}, {"a"}), "alpha", 0.1f);
  SetFloat(b.Node("LeakyRelu", {"x"}, {"b"}), "alpha", 0.2f);
  b.Node("Sub", {"x", "z"}, {"c"});
  b.Node("Sub", {"z", "x"}, {"d"});
  b.Node("Sum", {"a", "b", "c", "d"}, {"y"});
  ir::Model m = Import(b);
  ASSERT_TRUE(passes::InferShapes(m).ok());
  EXPECT_FALSE(ApplyPass(m, "common-subexpression-elimination"));
  EXPECT_EQ(m.graph->nodes.size(), 5u);
  CheckOptimized(b, 3);
}

TEST(CommonSubexpressionElimination, DuplicateWritingAGraphOutputStays) {
  // The second Relu writes graph output y: its node must stay. The third merges into the first.
  ModelBuilder b;
  b.Input("x", TP::FLOAT, {6}).Output("y", TP::FLOAT, {6}).Output("z", TP::FLOAT, {6});
  b.Node("Relu", {"x"}, {"a"});
  b.Node("Relu", {"x"}, {"y"});
  b.Node("Relu", {"x"}, {"c"});
  b.Node("Add", {"a", "c"}, {"z"});
  EXPECT_EQ(CheckOptimized(b, 1), (OpCounts{{"Add", 1}, {"Relu", 2}}));
}

TEST(CommonSubexpressionElimination, RandomOpsAreNeverMerged) {
  ModelBuilder b;
  b.Input("x", TP::FLOAT, {3}).Output("y", TP::FLOAT, {3});
  b.Node("RandomUniformLike", {"x"}, {"a"});
  b.Node("RandomUniformLike", {"x"}, {"b"});
  b.Node("Sub", {"a", "b"}, {"y"});
  ir::Model m = Import(b);
  ASSERT_TRUE(passes::InferShapes(m).ok());
  EXPECT_FALSE(ApplyPass(m, "common-subexpression-elimination"));
  EXPECT_EQ(Count(CountOps(m), "RandomUniformLike"), 2);
}

}  // namespace
}  // namespace strata::testing
