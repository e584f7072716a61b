// SessionOptions::profile: per-step times summed over the runs since the last TakeProfile.
#include <gtest/gtest.h>

#include "passes_test_util.h"

namespace strata::testing {
namespace {

std::unique_ptr<Session> TwoSteps(bool profile) {
  ModelBuilder b;
  b.Input("x", TP::FLOAT, {4, 8}).Output("y", TP::FLOAT, {4, 8});
  b.Node("Relu", {"x"}, {"r"}, "relu");
  b.Node("Neg", {"r"}, {"y"});  // unnamed: reported by its output
  SessionOptions o;
  o.opt_level = 0;
  o.profile = profile;
  auto s = Session::FromModel(Import(b), o);
  EXPECT_TRUE(s.ok()) << s.status().ToString();
  return std::move(s).value();
}

Status RunOnce(Session& s) {
  Tensor x(DType::kFloat, {4, 8});
  std::vector<Value> out;
  return s.Run(std::vector<Value>{Value(x)}, out);
}

TEST(Profile, CountsEveryStepOfTheRunsSinceTheLastTake) {
  auto s = TwoSteps(true);
  for (int i = 0; i < 3; ++i) ASSERT_TRUE(RunOnce(*s).ok());
  const std::vector<StepTiming> p = s->TakeProfile();
  ASSERT_EQ(p.size(), 2u);
  EXPECT_EQ(p[0].op, "Relu");
  EXPECT_EQ(p[0].node, "relu");
  EXPECT_EQ(p[1].op, "Neg");
  EXPECT_EQ(p[1].node, "y");
  for (const StepTiming& t : p) {
    EXPECT_EQ(t.calls, 3);
    EXPECT_GE(t.seconds, 0.0);
  }
  EXPECT_TRUE(s->TakeProfile().empty());  // taken: nothing ran since
  ASSERT_TRUE(RunOnce(*s).ok());
  const std::vector<StepTiming> q = s->TakeProfile();
  ASSERT_EQ(q.size(), 2u);
  EXPECT_EQ(q[0].calls, 1);
}

TEST(Profile, OffByDefault) {
  auto s = TwoSteps(false);
  ASSERT_TRUE(RunOnce(*s).ok());
  EXPECT_TRUE(s->TakeProfile().empty());
}

}  // namespace
}  // namespace strata::testing
