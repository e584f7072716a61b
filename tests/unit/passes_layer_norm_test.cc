#include "passes/shape_inference.h"
#include "passes_test_util.h"

namespace strata::testing {
namespace {

struct LnSpec {
  std::vector<int64_t> x = {2, 5, 16};
  std::vector<int64_t> axes = {-1};
  float eps = 1e-5f;
  float exponent = 2.f;
  bool beta = true;
  bool gamma_first = false;  // Mul(gamma, n) instead of Mul(n, gamma)
  int64_t param_leading_ones = 0;  // gamma/beta get this many leading 1 dims
};

// The opset-13 torch export of LayerNorm, spelled out.
void BuildLayerNorm(ModelBuilder& b, const LnSpec& s) {
  std::vector<int64_t> norm;
  for (int64_t a : s.axes) norm.push_back(s.x[static_cast<size_t>(a < 0 ? a + static_cast<int64_t>(s.x.size()) : a)]);
  std::vector<int64_t> param(static_cast<size_t>(s.param_leading_ones), 1), y = s.x;
  param.insert(param.end(), norm.begin(), norm.end());
  // The Mul broadcasts x against gamma: a gamma of higher rank than x adds leading 1s to y.
  while (y.size() < param.size()) y.insert(y.begin(), 1);
  b.Input("x", TP::FLOAT, s.x).Output("y", TP::FLOAT, y);
  RandomInit(b, "gamma", param, 1);
  RandomInit(b, "beta", param, 2);
  ScalarInit(b, "two", s.exponent);
  ScalarInit(b, "eps", s.eps);
  SetInts(b.Node("ReduceMean", {"x"}, {"m"}), "axes", s.axes);
  b.Node("Sub", {"x", "m"}, {"d"});
  b.Node("Pow", {"d", "two"}, {"p"});
  SetInts(b.Node("ReduceMean", {"p"}, {"v"}), "axes", s.axes);
  b.Node("Add", {"v", "eps"}, {"e"});
  b.Node("Sqrt", {"e"}, {"sd"});
  b.Node("Div", {"d", "sd"}, {"n"});
  b.Node("Mul", s.gamma_first ? std::vector<std::string>{"gamma", "n"} : std::vector<std::string>{"n", "gamma"},
         {s.beta ? "g" : "y"});
  if (s.beta) b.Node("Add", {"g", "beta"}, {"y"});
}

TEST(LayerNormRecognition, RecognisesTheTorchExport) {
  std::vector<LnSpec> specs(6);
  specs[1].x = {3, 7};          // odd width
  specs[5].param_leading_ones = 1;  // gamma/beta [1, 16] for x [2, 5, 16]: no rank growth
  specs[2].axes = {1, 2};       // two trailing axes
  specs[3].beta = false;        // no bias
  specs[4].gamma_first = true;  // operand order
  specs[4].eps = 1e-12f;
  for (size_t k = 0; k < specs.size(); ++k) {
    SCOPED_TRACE(k);
    ModelBuilder b;
    BuildLayerNorm(b, specs[k]);
    const OpCounts c = CheckOptimized(b, 3, 1e-4);
    EXPECT_EQ(c, (OpCounts{{"LayerNormalization", 1}}));
  }
}

TEST(LayerNormRecognition, OnlyAtLevelThree) {
  ModelBuilder b;
  BuildLayerNorm(b, {});
  EXPECT_EQ(Count(CheckOptimized(b, 2), "LayerNormalization"), 0);
}

TEST(LayerNormRecognition, RefusesWrongConstantsAndAxes) {
  std::vector<LnSpec> specs(4);
  specs[0].eps = 0.5f;        // not an epsilon
  specs[1].exponent = 3.f;    // not a variance
  specs[2].axes = {1};        // not the trailing axis (gamma still broadcasts: x is [2, 5, 5])
  specs[2].x = {2, 5, 5};
  specs[3].x = {5, 16};       // gamma/beta [1, 1, 16] make y [1, 5, 16]; LayerNormalization keeps rank 2
  specs[3].param_leading_ones = 2;
  for (size_t k = 0; k < specs.size(); ++k) {
    SCOPED_TRACE(k);
    ModelBuilder b;
    BuildLayerNorm(b, specs[k]);
    const OpCounts c = CheckOptimized(b, 3, 1e-4);
    EXPECT_EQ(Count(c, "LayerNormalization"), 0);
    EXPECT_EQ(Count(c, "ReduceMean"), 2);
  }
}

TEST(LayerNormRecognition, RefusesWhenAnIntermediateIsReadElsewhere) {
  ModelBuilder b;
  BuildLayerNorm(b, {});
  b.Output("v", TP::FLOAT, {2, 5, 1});  // the variance is also an output
  const OpCounts c = CheckOptimized(b, 3, 1e-4);
  EXPECT_EQ(Count(c, "LayerNormalization"), 0);
}

}  // namespace
}  // namespace strata::testing
