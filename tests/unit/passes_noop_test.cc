#include "passes/shape_inference.h"
#include "passes_test_util.h"

namespace strata::testing {
namespace {

TEST(NoOpElimination, RemovesIdentityDropoutCastReshape) {
  ModelBuilder b;
  b.Input("x", TP::FLOAT, {2, 3, 4}).Output("y", TP::FLOAT, {2, 3, 4});
  Int64Init(b, "shape", {2, -1, 4});
  b.Node("Relu", {"x"}, {"a"});
  b.Node("Identity", {"a"}, {"b"});
  b.Node("Dropout", {"b"}, {"c", "mask"});  // mask requested but unread
  SetInt(b.Node("Cast", {"c"}, {"d"}), "to", TP::FLOAT);
  b.Node("Reshape", {"d", "shape"}, {"e"});
  b.Node("Sigmoid", {"e"}, {"y"});
  const OpCounts c = CheckOptimized(b, 1);
  EXPECT_EQ(c, (OpCounts{{"Relu", 1}, {"Sigmoid", 1}}));
}

TEST(NoOpElimination, RemovesIdentityTransposeAndDropoutWithFalseTrainingMode) {
  ModelBuilder b;
  b.Input("x", TP::FLOAT, {2, 3}).Output("y", TP::FLOAT, {2, 3});
  b.Initializer("ratio", {0.5f}, {});
  auto* off = b.proto().mutable_graph()->add_initializer();
  off->set_name("training");
  off->set_data_type(TP::BOOL);
  off->add_int32_data(0);
  b.Node("Relu", {"x"}, {"a"});
  SetInts(b.Node("Transpose", {"a"}, {"t"}), "perm", {0, 1});
  b.Node("Dropout", {"t", "ratio", "training"}, {"d"});
  b.Node("Sigmoid", {"d"}, {"y"});
  EXPECT_EQ(CheckOptimized(b, 1), (OpCounts{{"Relu", 1}, {"Sigmoid", 1}}));
}

TEST(NoOpElimination, GraphOutputKeepsItsNameThroughTheProducer) {
  ModelBuilder b;
  b.Input("x", TP::FLOAT, {5}).Output("y", TP::FLOAT, {5});
  b.Node("Relu", {"x"}, {"a"});
  b.Node("Identity", {"a"}, {"y"});
  const OpCounts c = CheckOptimized(b, 1);
  EXPECT_EQ(c, (OpCounts{{"Relu", 1}}));
}

TEST(NoOpElimination, IdentityFromGraphInputToOutputStays) {
  ModelBuilder b;
  b.Input("x", TP::FLOAT, {5}).Output("y", TP::FLOAT, {5});
  b.Node("Identity", {"x"}, {"y"});
  EXPECT_EQ(CheckOptimized(b, 3), (OpCounts{{"Identity", 1}}));
}

TEST(NoOpElimination, RefusesRealCastsReshapesAndTrainingDropout) {
  ModelBuilder b;
  b.Input("x", TP::FLOAT, {2, 6}).Output("y", TP::DOUBLE, {3, 4}).Output("z", TP::FLOAT, {2, 6});
  Int64Init(b, "shape", {3, 4});
  b.Node("Reshape", {"x", "shape"}, {"r"});
  SetInt(b.Node("Cast", {"r"}, {"y"}), "to", TP::DOUBLE);
  b.Node("Dropout", {"x"}, {"z", "mask"});
  b.proto().mutable_graph()->add_output()->set_name("mask");  // mask is read: Dropout stays
  ir::Model m = Import(b);
  ASSERT_TRUE(passes::InferShapes(m).ok());
  EXPECT_FALSE(ApplyPass(m, "noop-elimination"));
  EXPECT_EQ(CountOps(m), (OpCounts{{"Cast", 1}, {"Dropout", 1}, {"Reshape", 1}}));
}

TEST(NoOpElimination, InverseTransposesCancelOthersStay) {
  ModelBuilder b;
  b.Input("x", TP::FLOAT, {2, 3, 4}).Output("y", TP::FLOAT, {2, 3, 4}).Output("z", TP::FLOAT, {3, 4, 2});
  SetInts(b.Node("Transpose", {"x"}, {"t1"}), "perm", {1, 2, 0});
  SetInts(b.Node("Transpose", {"t1"}, {"t2"}), "perm", {2, 0, 1});  // inverse of {1,2,0}
  b.Node("Relu", {"t2"}, {"y"});
  SetInts(b.Node("Transpose", {"x"}, {"u1"}), "perm", {0, 2, 1});
  SetInts(b.Node("Transpose", {"u1"}, {"z"}), "perm", {2, 0, 1});  // not an inverse: {1,2,0} overall
  const OpCounts c = CheckOptimized(b, 1);
  EXPECT_EQ(Count(c, "Transpose"), 2);
  EXPECT_EQ(Count(c, "Relu"), 1);
}

TEST(NoOpElimination, UnsqueezeSqueezePairsCancel) {
  for (int opset : {11, 13}) {
    SCOPED_TRACE(opset);
    ModelBuilder b(opset);
    b.Input("x", TP::FLOAT, {3, 4}).Output("y", TP::FLOAT, {3, 4}).Output("z", TP::FLOAT, {3, 1, 4});
    auto& u = b.Node("Unsqueeze", opset >= 13 ? std::vector<std::string>{"x", "ax"} : std::vector<std::string>{"x"}, {"u"});
    auto& s = b.Node("Squeeze", opset >= 13 ? std::vector<std::string>{"u", "axn"} : std::vector<std::string>{"u"}, {"s"});
    if (opset >= 13) {
      Int64Init(b, "ax", {0, 3});
      Int64Init(b, "axn", {-1, 0});  // the same axes, written differently
    } else {
      SetInts(u, "axes", {0, 3});
      SetInts(s, "axes", {-1, 0});
    }
    b.Node("Relu", {"s"}, {"y"});
    // Squeeze then Unsqueeze of other axes: stays.
    auto& u2 = b.Node("Unsqueeze", opset >= 13 ? std::vector<std::string>{"x", "one"} : std::vector<std::string>{"x"}, {"v"});
    auto& s2 = b.Node("Squeeze", opset >= 13 ? std::vector<std::string>{"v", "zero"} : std::vector<std::string>{"v"}, {"w"});
    auto& u3 = b.Node("Unsqueeze", opset >= 13 ? std::vector<std::string>{"w", "one"} : std::vector<std::string>{"w"}, {"z"});
    if (opset >= 13) {
      Int64Init(b, "one", {1});
      Int64Init(b, "zero", {1});
    } else {
      SetInts(u2, "axes", {1});
      SetInts(s2, "axes", {1});
      SetInts(u3, "axes", {1});
    }
    const OpCounts c = CheckOptimized(b, 1);
    EXPECT_EQ(Count(c, "Relu"), 1);
    // u2/s2 cancel too (same axis); u3 remains, producing the output.
    EXPECT_EQ(Count(c, "Squeeze"), 0);
    EXPECT_EQ(Count(c, "Unsqueeze"), 1);
  }
}

}  // namespace
}  // namespace strata::testing
