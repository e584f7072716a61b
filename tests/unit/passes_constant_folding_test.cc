#include "passes/shape_inference.h"
#include "passes_test_util.h"
#include "runtime/constant_folding.h"

namespace strata::testing {
namespace {

TEST(ConstantFolding, ShapeChainBecomesOneConstant) {
  // y = Reshape(x, Concat(Unsqueeze(Gather(Shape(x), 0)), [-1]))  -> Reshape(x, [2, -1])
  ModelBuilder b;
  b.Input("x", TP::FLOAT, {2, 3, 4}).Output("y", TP::FLOAT, {2, 12});
  Int64Init(b, "zero", {0}, true);
  Int64Init(b, "axes0", {0});
  Int64Init(b, "minus1", {-1});
  b.Node("Shape", {"x"}, {"s"});
  SetInt(b.Node("Gather", {"s", "zero"}, {"d0"}), "axis", 0);
  b.Node("Unsqueeze", {"d0", "axes0"}, {"d0v"});
  SetInt(b.Node("Concat", {"d0v", "minus1"}, {"shape"}), "axis", 0);
  b.Node("Reshape", {"x", "shape"}, {"y"});
  const OpCounts c = CheckOptimized(b, 1);
  EXPECT_EQ(c, (OpCounts{{"Reshape", 1}}));
}

TEST(ConstantFolding, ConstantNodesAndArithmeticFoldIntoInitializers) {
  ModelBuilder b;
  b.Input("x", TP::FLOAT, {4}).Output("y", TP::FLOAT, {4});
  auto& k = b.Node("Constant", {}, {"k"});
  auto* a = k.add_attribute();
  a->set_name("value");
  a->set_type(onnx::AttributeProto::TENSOR);
  a->mutable_t()->set_data_type(TP::FLOAT);
  a->mutable_t()->add_dims(4);
  for (float v : {1.f, 2.f, 3.f, 4.f}) a->mutable_t()->add_float_data(v);
  b.Node("Sqrt", {"k"}, {"s"});
  b.Node("Neg", {"s"}, {"n"});
  b.Node("Add", {"x", "n"}, {"y"});
  SessionOptions o;
  auto s = Session::FromModel(Import(b), o);
  ASSERT_TRUE(s.ok()) << s.status().ToString();
  EXPECT_EQ(CountOps((*s)->model()), (OpCounts{{"Add", 1}}));
  const auto& inits = (*s)->model().graph->initializers;
  ASSERT_EQ(inits.count("n"), 1u);
  EXPECT_FLOAT_EQ(inits.at("n").data<float>()[3], -2.f);
  CheckOptimized(b, 1);
}

TEST(ConstantFolding, LargeOutputsAndGraphOutputsAreNotFolded) {
  ModelBuilder b;
  b.Input("x", TP::FLOAT, {1024, 1024}).Output("y", TP::FLOAT, {1024, 1024}).Output("s", TP::INT64, {2});
  Int64Init(b, "shape", {1024, 1024});
  b.Node("ConstantOfShape", {"shape"}, {"big"});  // 4 MiB of zeros: above the cap
  b.Node("Add", {"x", "big"}, {"y"});
  b.Node("Shape", {"x"}, {"s"});  // a graph output keeps its producer
  ir::Model m = Import(b);
  ASSERT_TRUE(passes::InferShapes(m).ok());
  EXPECT_FALSE(ApplyPass(m, "constant-folding"));
  EXPECT_EQ(CountOps(m), (OpCounts{{"Add", 1}, {"ConstantOfShape", 1}, {"Shape", 1}}));
}

TEST(ConstantFolding, TransposeOfALargeWeightFolds) {
  // 2 MiB output, above kMaxFoldedBytes, but no larger than its input: folding costs no memory.
  ModelBuilder b;
  b.Input("x", TP::FLOAT, {2, 1024}).Output("y", TP::FLOAT, {2, 512});
  RandomInit(b, "w", {512, 1024}, 1);
  SetInts(b.Node("Transpose", {"w"}, {"wt"}), "perm", {1, 0});
  b.Node("MatMul", {"x", "wt"}, {"y"});
  ir::Model m = Import(b);
  ASSERT_TRUE(passes::InferShapes(m).ok());
  EXPECT_TRUE(ApplyPass(m, "constant-folding"));
  EXPECT_EQ(CountOps(m), (OpCounts{{"MatMul", 1}}));
  ASSERT_EQ(m.graph->initializers.count("wt"), 1u);
  EXPECT_EQ(m.graph->initializers.at("wt").shape(), (Shape{1024, 512}));
}

TEST(ConstantFolding, KnownDimsOfASymbolicShapeFold) {
  // x is [N, 3, 4]: Gather(Shape(x), 2) is 4 and Shape(x, start=1) is [3, 4]; Gather(Shape(x), 0) stays.
  ModelBuilder b;
  b.Input("x", TP::FLOAT, {-1, 3, 4}).Output("y", TP::FLOAT, {-1, 12});
  Int64Init(b, "two", {2}, true);
  Int64Init(b, "zero", {0}, true);
  Int64Init(b, "axes0", {0});
  b.Node("Shape", {"x"}, {"s"});
  SetInt(b.Node("Gather", {"s", "two"}, {"d2"}), "axis", 0);
  SetInt(b.Node("Gather", {"s", "zero"}, {"d0"}), "axis", 0);
  auto& tail = b.Node("Shape", {"x"}, {"t"});
  SetInt(tail, "start", 1);
  b.Node("ReduceProd", {"t"}, {"p"});  // keepdims: [12]
  b.Node("Unsqueeze", {"d0", "axes0"}, {"d0v"});
  b.Node("Mul", {"p", "d2"}, {"p2"});   // 48, folded
  b.Node("Div", {"p2", "d2"}, {"p3"});  // 12, folded
  SetInt(b.Node("Concat", {"d0v", "p3"}, {"shape"}), "axis", 0);
  b.Node("Reshape", {"x", "shape"}, {"y"});
  ir::Model m = Import(b);
  ASSERT_TRUE(passes::InferShapes(m).ok());
  ASSERT_TRUE(passes::Optimize(m, 1).ok());
  EXPECT_EQ(CountOps(m), (OpCounts{{"Concat", 1}, {"Gather", 1}, {"Reshape", 1}, {"Shape", 1}, {"Unsqueeze", 1}}));
  // And it still runs: N = 2.
  SessionOptions o;
  auto s = Session::FromModel(Import(b), o);
  ASSERT_TRUE(s.ok()) << s.status().ToString();
  Tensor x(DType::kFloat, {2, 3, 4});
  std::vector<Value> in{Value(x)}, out;
  ASSERT_TRUE((*s)->Run(in, out).ok());
  EXPECT_EQ(out[0].tensor().shape(), (Shape{2, 12}));
}

TEST(ConstantFolding, SymbolicShapesStay) {
  ModelBuilder b;
  b.Input("x", TP::FLOAT, {-1, 3}).Output("y", TP::FLOAT, {-1, 3});
  b.Node("Shape", {"x"}, {"s"});
  b.Node("Reshape", {"x", "s"}, {"y"});
  ir::Model m = Import(b);
  ASSERT_TRUE(passes::InferShapes(m).ok());
  EXPECT_FALSE(ApplyPass(m, "constant-folding"));
}

TEST(ConstantFolding, FailingNodesAreLeftForRunTime) {
  // Reshape of 6 elements to [4] fails: folding must not fail the load, the run reports it.
  ModelBuilder b;
  b.Input("x", TP::FLOAT, {1}).Output("y", TP::FLOAT, {4});
  RandomInit(b, "w", {6}, 3);
  Int64Init(b, "bad", {4});
  b.Node("Reshape", {"w", "bad"}, {"r"});
  b.Node("Add", {"x", "r"}, {"y"});
  ir::Model m = Import(b);
  (void)passes::InferShapes(m);  // may reject the bad Reshape; folding must cope either way
  auto p = passes::PassRegistry::Global().Create("constant-folding");
  auto r = p->Apply(m);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(Count(CountOps(m), "Reshape"), 1);
}

}  // namespace
}  // namespace strata::testing
