#include "passes/shape_inference.h"
#include "passes_test_util.h"

namespace strata::testing {
namespace {

TEST(DeadCodeElimination, RemovesUnreadChainsAndTheirInitializers) {
  ModelBuilder b;
  b.Input("x", TP::FLOAT, {2, 3}).Output("y", TP::FLOAT, {2, 3});
  RandomInit(b, "w", {2, 3}, 1);
  b.Node("Relu", {"x"}, {"y"});
  b.Node("Add", {"x", "w"}, {"dead1"});
  b.Node("Sigmoid", {"dead1"}, {"dead2"});
  ir::Model m = Import(b);
  ASSERT_TRUE(passes::InferShapes(m).ok());
  EXPECT_TRUE(ApplyPass(m, "dead-code-elimination"));
  EXPECT_EQ(CountOps(m), (OpCounts{{"Relu", 1}}));
  EXPECT_EQ(m.graph->initializers.count("w"), 0u);
  EXPECT_EQ(m.graph->FindValueInfo("dead1"), nullptr);
  EXPECT_FALSE(ApplyPass(m, "dead-code-elimination"));  // fixed point
  CheckOptimized(b, 1);
}

TEST(DeadCodeElimination, KeepsGraphOutputsAndValuesReadBySubgraphs) {
  // `a` is read only inside the If branches: it must survive, as must both outputs.
  ModelBuilder b;
  b.Input("x", TP::FLOAT, {4}).Output("y", TP::FLOAT, {4}).Output("z", TP::FLOAT, {4});
  b.Node("Relu", {"x"}, {"a"});
  b.Node("Neg", {"x"}, {"z"});
  auto* cond = b.proto().mutable_graph()->add_initializer();
  cond->set_name("cond");
  cond->set_data_type(TP::BOOL);
  cond->add_int32_data(1);
  auto& n = b.Node("If", {"cond"}, {"y"});
  for (const char* branch : {"then_branch", "else_branch"}) {
    auto* attr = n.add_attribute();
    attr->set_name(branch);
    attr->set_type(onnx::AttributeProto::GRAPH);
    auto* g = attr->mutable_g();
    g->set_name(branch);
    auto* id = g->add_node();
    id->set_op_type(std::string(branch) == "then_branch" ? "Identity" : "Neg");
    id->add_input("a");
    id->add_output(std::string(branch) + "_out");
    auto* o = g->add_output();
    o->set_name(std::string(branch) + "_out");
    o->mutable_type()->mutable_tensor_type()->set_elem_type(TP::FLOAT);
  }
  ir::Model m = Import(b);
  ASSERT_TRUE(passes::InferShapes(m).ok());
  EXPECT_FALSE(ApplyPass(m, "dead-code-elimination"));
  EXPECT_EQ(m.graph->nodes.size(), 3u);
  CheckOptimized(b, 3);
}

TEST(DeadCodeElimination, LevelZeroChangesNothing) {
  ModelBuilder b;
  b.Input("x", TP::FLOAT, {2}).Output("y", TP::FLOAT, {2});
  b.Node("Relu", {"x"}, {"y"});
  b.Node("Neg", {"x"}, {"dead"});
  ir::Model m = Import(b);
  ASSERT_TRUE(passes::InferShapes(m).ok());
  ASSERT_TRUE(passes::Optimize(m, 0).ok());
  EXPECT_EQ(m.graph->nodes.size(), 2u);
}

}  // namespace
}  // namespace strata::testing
