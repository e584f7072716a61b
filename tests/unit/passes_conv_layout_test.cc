#include "passes/shape_inference.h"
#include "passes_test_util.h"

namespace strata::testing {
namespace {

std::string LayoutAttr(const ir::Model& m, const std::string& output, const std::string& attr) {
  for (const auto& n : m.graph->nodes)
    if (!n.outputs.empty() && n.outputs[0] == output) {
      const ir::Attribute* a = n.attr(attr);
      return a ? a->s : "";
    }
  return "missing node";
}

// stem conv -> relu -> [conv -> relu -> conv] + skip -> relu -> GlobalAveragePool: a ResNet block.
void BuildResidualChain(ModelBuilder& b, int64_t c, int64_t hw, int64_t group) {
  b.Input("x", TP::FLOAT, {2, 3, hw, hw}).Output("y", TP::FLOAT, {2, c, 1, 1});
  RandomInit(b, "w0", {c, 3, 3, 3}, 1);
  RandomInit(b, "w1", {c, c / group, 3, 3}, 2);
  RandomInit(b, "b1", {c}, 3);
  RandomInit(b, "w2", {c, c, 1, 1}, 4);
  SetInts(b.Node("Conv", {"x", "w0"}, {"c0"}), "pads", {1, 1, 1, 1});
  b.Node("Relu", {"c0"}, {"r0"});
  auto& c1 = b.Node("Conv", {"r0", "w1", "b1"}, {"c1"});
  SetInts(c1, "pads", {1, 1, 1, 1});
  SetInt(c1, "group", group);
  b.Node("Relu", {"c1"}, {"r1"});
  b.Node("Conv", {"r1", "w2"}, {"c2"});
  b.Node("Add", {"c2", "r0"}, {"s"});
  b.Node("Relu", {"s"}, {"r2"});
  b.Node("GlobalAveragePool", {"r2"}, {"y"});
}

TEST(ConvLayout, ChainsRunChannelsLastAndMatchTheUnoptimisedRun) {
  for (int64_t group : {1, 8}) {
    for (int64_t hw : {5, 12}) {
      SCOPED_TRACE(::testing::Message() << "group=" << group << " hw=" << hw);
      ModelBuilder b;
      BuildResidualChain(b, 8, hw, group);
      const OpCounts counts = CheckOptimized(b, 3, 1e-4);
      EXPECT_EQ(Count(counts, "FusedConv"), 3);

      ir::Model m = Import(b);
      ASSERT_TRUE(passes::InferShapes(m).ok());
      ASSERT_TRUE(passes::Optimize(m, 3).ok());
      // The stem reads the graph input (NCHW) and feeds convolutions only: its output goes NHWC.
      EXPECT_EQ(LayoutAttr(m, "r0", "x_layout"), "NCHW");
      EXPECT_EQ(LayoutAttr(m, "r0", "y_layout"), "NHWC");
      EXPECT_EQ(LayoutAttr(m, "r1", "x_layout"), "NHWC");
      EXPECT_EQ(LayoutAttr(m, "r1", "y_layout"), "NHWC");
      // The last conv adds the stem's NHWC output and feeds GlobalAveragePool, which wants NCHW.
      EXPECT_EQ(LayoutAttr(m, "r2", "residual_layout"), "NHWC");
      EXPECT_EQ(LayoutAttr(m, "r2", "y_layout"), "NCHW");
    }
  }
}

TEST(ConvLayout, GraphOutputsAndNonConvReadersStayNchw) {
  ModelBuilder b;
  b.Input("x", TP::FLOAT, {1, 4, 6, 6}).Output("a", TP::FLOAT, {1, 4, 6, 6}).Output("y", TP::FLOAT, {1, 4, 6, 6});
  RandomInit(b, "w", {4, 4, 1, 1}, 1);
  b.Node("Conv", {"x", "w"}, {"a"});   // a graph output, also read by a conv
  b.Node("Conv", {"a", "w"}, {"c"});   // read by Sigmoid, not a conv
  b.Node("Sigmoid", {"c"}, {"y"});
  ir::Model m = Import(b);
  ASSERT_TRUE(passes::InferShapes(m).ok());
  ASSERT_TRUE(passes::Optimize(m, 3).ok());
  for (const auto& n : m.graph->nodes)
    for (const char* attr : {"x_layout", "y_layout", "residual_layout"})
      if (const ir::Attribute* a = n.attr(attr)) {
        EXPECT_EQ(a->s, "NCHW") << n.Describe() << " " << attr;
      }
  CheckOptimized(b, 3, 1e-5);
}

TEST(ConvLayout, NotBelowLevelThree) {
  ModelBuilder b;
  BuildResidualChain(b, 8, 5, 1);
  ir::Model m = Import(b);
  ASSERT_TRUE(passes::InferShapes(m).ok());
  ASSERT_TRUE(passes::Optimize(m, 2).ok());
  for (const auto& n : m.graph->nodes) EXPECT_EQ(n.attr("y_layout"), nullptr) << n.Describe();
}

}  // namespace
}  // namespace strata::testing
