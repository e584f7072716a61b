#include "passes/shape_inference.h"
#include "passes_test_util.h"

namespace strata::testing {
namespace {

constexpr float kSqrt2 = 1.41421356f;

enum class Tail { kXuHalf, kXhalfU, kUhalfX };

// 0.5 * x * u in the given order; u is the (1 + erf/tanh) value. Writes "y".
void BuildTail(ModelBuilder& b, Tail t, float half = 0.5f) {
  ScalarInit(b, "half", half);
  switch (t) {
    case Tail::kXuHalf:
      b.Node("Mul", {"x", "u"}, {"xu"});
      b.Node("Mul", {"xu", "half"}, {"y"});
      break;
    case Tail::kXhalfU:
      b.Node("Mul", {"half", "x"}, {"xh"});
      b.Node("Mul", {"xh", "u"}, {"y"});
      break;
    case Tail::kUhalfX:
      b.Node("Mul", {"u", "half"}, {"uh"});
      b.Node("Mul", {"x", "uh"}, {"y"});
      break;
  }
}

void BuildErfGelu(ModelBuilder& b, bool div, float c, Tail t, float half = 0.5f) {
  b.Input("x", TP::FLOAT, {3, 37}).Output("y", TP::FLOAT, {3, 37});
  ScalarInit(b, "c", c);
  ScalarInit(b, "one", 1.f);
  b.Node(div ? "Div" : "Mul", {"x", "c"}, {"a"});
  b.Node("Erf", {"a"}, {"e"});
  b.Node("Add", {"e", "one"}, {"u"});
  BuildTail(b, t, half);
}

// x^3 via Pow or x*(x*x).
void BuildTanhGelu(ModelBuilder& b, bool pow, Tail t, float k = 0.7978845608f) {
  b.Input("x", TP::FLOAT, {2, 5, 19}).Output("y", TP::FLOAT, {2, 5, 19});
  ScalarInit(b, "three", 3.f);
  ScalarInit(b, "c3", 0.044715f);
  ScalarInit(b, "k", k);
  ScalarInit(b, "one", 1.f);
  if (pow) {
    b.Node("Pow", {"x", "three"}, {"x3"});
  } else {
    b.Node("Mul", {"x", "x"}, {"x2"});
    b.Node("Mul", {"x", "x2"}, {"x3"});
  }
  b.Node("Mul", {"c3", "x3"}, {"q"});
  b.Node("Add", {"x", "q"}, {"r"});
  b.Node("Mul", {"k", "r"}, {"s"});
  b.Node("Tanh", {"s"}, {"t"});
  b.Node("Add", {"one", "t"}, {"u"});
  BuildTail(b, t);
}

TEST(GeluRecognition, ErfFormsInEveryOrder) {
  for (Tail t : {Tail::kXuHalf, Tail::kXhalfU, Tail::kUhalfX}) {
    for (bool div : {true, false}) {
      SCOPED_TRACE(::testing::Message() << "tail " << static_cast<int>(t) << " div " << div);
      ModelBuilder b;
      BuildErfGelu(b, div, div ? kSqrt2 : 1.f / kSqrt2, t);
      const OpCounts c = CheckOptimized(b, 3, 1e-5);
      EXPECT_EQ(c, (OpCounts{{"Gelu", 1}}));
    }
  }
}

TEST(GeluRecognition, TanhForms) {
  for (Tail t : {Tail::kXuHalf, Tail::kXhalfU, Tail::kUhalfX}) {
    for (bool pow : {true, false}) {
      SCOPED_TRACE(::testing::Message() << "tail " << static_cast<int>(t) << " pow " << pow);
      ModelBuilder b;
      BuildTanhGelu(b, pow, t);
      const OpCounts c = CheckOptimized(b, 3, 1e-5);
      EXPECT_EQ(c, (OpCounts{{"Gelu", 1}}));
    }
  }
}

// Refusals count Gelu nodes: at -O3 elementwise-fusion merges the ops that were not recognised.
TEST(GeluRecognition, RefusesWrongConstants) {
  {
    ModelBuilder b;
    BuildErfGelu(b, true, 1.5f, Tail::kXuHalf);  // not sqrt(2)
    EXPECT_EQ(Count(CheckOptimized(b, 3), "Gelu"), 0);
  }
  {
    ModelBuilder b;
    BuildErfGelu(b, false, kSqrt2, Tail::kXuHalf);  // x * sqrt(2), not x / sqrt(2)
    EXPECT_EQ(Count(CheckOptimized(b, 3), "Gelu"), 0);
  }
  {
    ModelBuilder b;
    BuildErfGelu(b, true, kSqrt2, Tail::kXhalfU, 0.25f);  // not 0.5
    EXPECT_EQ(Count(CheckOptimized(b, 3), "Gelu"), 0);
  }
  {
    ModelBuilder b;
    BuildTanhGelu(b, true, Tail::kXuHalf, 0.8f);  // not sqrt(2/pi)
    EXPECT_EQ(Count(CheckOptimized(b, 3), "Gelu"), 0);
  }
}

TEST(GeluRecognition, RefusesConstantsThatGrowTheRank) {
  // x is a scalar and every constant is [1]: y is [1], which Gelu(x) would not be.
  ModelBuilder b;
  b.Input("x", TP::FLOAT, {}).Output("y", TP::FLOAT, {1});
  for (auto [name, v] : {std::pair{"c", kSqrt2}, {"one", 1.f}, {"half", 0.5f}}) b.Initializer(name, {v}, {1});
  b.Node("Div", {"x", "c"}, {"a"});
  b.Node("Erf", {"a"}, {"e"});
  b.Node("Add", {"e", "one"}, {"u"});
  b.Node("Mul", {"x", "u"}, {"xu"});
  b.Node("Mul", {"xu", "half"}, {"y"});
  EXPECT_EQ(Count(CheckOptimized(b, 3), "Gelu"), 0);
}

TEST(GeluRecognition, ThenFusesIntoMatMul) {
  ModelBuilder b;
  b.Input("in", TP::FLOAT, {4, 8}).Output("y", TP::FLOAT, {4, 37});
  RandomInit(b, "w", {8, 37}, 1);
  RandomInit(b, "bias", {37}, 2);
  b.Node("MatMul", {"in", "w"}, {"mm"});
  b.Node("Add", {"mm", "bias"}, {"x"});
  ScalarInit(b, "c", kSqrt2);
  ScalarInit(b, "one", 1.f);
  b.Node("Div", {"x", "c"}, {"a"});
  b.Node("Erf", {"a"}, {"e"});
  b.Node("Add", {"e", "one"}, {"u"});
  BuildTail(b, Tail::kXuHalf);
  EXPECT_EQ(CheckOptimized(b, 3, 1e-4), (OpCounts{{"FusedMatMul", 1}}));
  EXPECT_EQ(Count(CheckOptimized(b, 2, 1e-4), "Erf"), 1);  // recognition is -O3 only
}

}  // namespace
}  // namespace strata::testing
