#include "passes/shape_inference.h"
#include "passes_test_util.h"

namespace strata::testing {
namespace {

// Conv (with or without bias, grouped or not) followed by BatchNormalization with random stats.
void BuildConvBn(ModelBuilder& b, int64_t c, int64_t m, int64_t group, bool bias, int64_t hw) {
  b.Input("x", TP::FLOAT, {2, c, hw, hw + 1}).Output("y", TP::FLOAT, {2, m, hw, hw + 1});
  RandomInit(b, "w", {m, c / group, 3, 3}, 1);
  if (bias) RandomInit(b, "b", {m}, 2);
  RandomInit(b, "scale", {m}, 3);
  RandomInit(b, "beta", {m}, 4);
  RandomInit(b, "mean", {m}, 5);
  std::vector<float> var = Values(m, 6);
  for (auto& v : var) v = v * v + 0.1f;
  b.Initializer("var", var, {m});
  auto& conv = b.Node("Conv", bias ? std::vector<std::string>{"x", "w", "b"} : std::vector<std::string>{"x", "w"}, {"c"});
  SetInts(conv, "pads", {1, 1, 1, 1});
  SetInt(conv, "group", group);
  SetFloat(b.Node("BatchNormalization", {"c", "scale", "beta", "mean", "var"}, {"y"}), "epsilon", 1e-3f);
}

TEST(ConvBnFolding, FoldsAcrossShapes) {
  for (int64_t c : {1, 3, 8}) {
    for (bool bias : {false, true}) {
      for (int64_t group : {int64_t{1}, c}) {
        SCOPED_TRACE(::testing::Message() << "c=" << c << " bias=" << bias << " group=" << group);
        ModelBuilder b;
        BuildConvBn(b, c, 2 * c, group, bias, 5);
        const OpCounts counts = CheckOptimized(b, 2, 1e-4);
        EXPECT_EQ(Count(counts, "BatchNormalization"), 0);
        EXPECT_EQ(Count(counts, "Conv"), 1);
      }
    }
  }
}

TEST(ConvBnFolding, NotAtLevelOne) {
  ModelBuilder b;
  BuildConvBn(b, 3, 4, 1, true, 4);
  EXPECT_EQ(Count(CheckOptimized(b, 1), "BatchNormalization"), 1);
}

TEST(ConvBnFolding, RefusesSharedConvOutputAndNonConstantStats) {
  ModelBuilder b;
  BuildConvBn(b, 2, 2, 1, true, 4);
  b.Output("c", TP::FLOAT, {2, 2, 4, 5});  // the Conv output is also a graph output
  ir::Model m = Import(b);
  ASSERT_TRUE(passes::InferShapes(m).ok());
  EXPECT_FALSE(ApplyPass(m, "conv-bn-folding"));

  ModelBuilder b2;
  b2.Input("x", TP::FLOAT, {1, 2, 4, 4}).Input("mean", TP::FLOAT, {2}).Output("y", TP::FLOAT, {1, 2, 4, 4});
  RandomInit(b2, "w", {2, 2, 1, 1}, 1);
  RandomInit(b2, "scale", {2}, 3);
  RandomInit(b2, "beta", {2}, 4);
  b2.Initializer("var", {1.f, 2.f}, {2});
  b2.Node("Conv", {"x", "w"}, {"c"});
  b2.Node("BatchNormalization", {"c", "scale", "beta", "mean", "var"}, {"y"});
  ir::Model m2 = Import(b2);
  ASSERT_TRUE(passes::InferShapes(m2).ok());
  EXPECT_FALSE(ApplyPass(m2, "conv-bn-folding"));
}

}  // namespace
}  // namespace strata::testing
