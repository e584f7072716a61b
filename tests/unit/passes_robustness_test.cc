// Passes see imported graphs before any kernel has checked them: malformed nodes must be skipped,
// never crash a pattern matcher.
#include "passes/shape_inference.h"
#include "passes_test_util.h"

namespace strata::testing {
namespace {

TEST(PassRobustness, MalformedNodesAreSkipped) {
  ModelBuilder b;
  b.Input("x", TP::FLOAT, {2, 4}).Output("y", TP::FLOAT, {2, 4});
  ScalarInit(b, "two", 2.f);
  ScalarInit(b, "c", 1.41421356f);
  b.Node("ReduceMean", {"x"}, {"m"});
  b.Node("Sub", {"x"}, {"d"});            // one input
  b.Node("Pow", {"d"}, {"p"});            // one input
  b.Node("Sqrt", {}, {"s"});              // none
  b.Node("Div", {"d", "s"}, {"n"});
  b.Node("Mul", {"n"}, {"g"});            // one input
  b.Node("Erf", {}, {"e"});
  b.Node("Tanh", {}, {"t"});
  b.Node("Add", {"e", "t"}, {});          // no output
  b.Node("Transpose", {}, {"tr"});
  b.Node("Transpose", {"tr"}, {"tr2"});
  b.Node("Conv", {"x"}, {"cv"});
  b.Node("BatchNormalization", {"cv", "two", "two", "two", "two"}, {"bn"});
  b.Node("MatMul", {"x"}, {"mm"});
  b.Node("Relu", {"mm"}, {"r"});
  b.Node("Shape", {}, {"sh"});
  b.Node("Gather", {"sh", "two"}, {"gs"});
  b.Node("Div", {"x", "c"}, {"dv"});
  b.Node("Erf", {"dv"}, {"er"});
  b.Node("Add", {"er"}, {"u"});           // one input
  b.Node("Mul", {"x", "u"}, {"xu"});
  b.Node("Identity", {"x"}, {"y"});
  ir::Model m = Import(b);
  (void)passes::InferShapes(m);  // may reject the graph; the passes must cope either way
  for (int level = 0; level <= 3; ++level) {
    ir::Model copy = m;
    copy.graph = std::make_shared<ir::Graph>(*m.graph);
    (void)passes::Optimize(copy, level);
  }
  SUCCEED();
}

}  // namespace
}  // namespace strata::testing
