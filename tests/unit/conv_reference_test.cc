// The reference path of FusedConv with channels-last activations (what runs when oneDNN refuses a
// convolution): converting NHWC inputs, residuals and outputs around the NCHW reference must give
// what the unoptimised graph gives on oneDNN.
#include "kernels/cpu/nn_common.h"
#include "passes_test_util.h"

namespace strata::testing {
namespace {

// stem conv -> relu -> conv(+bias, groups) -> relu -> 1x1 conv + stem -> relu: at -O3 three FusedConvs
// whose intermediate activations are channels-last, with a channels-last residual.
void BuildChain(ModelBuilder& b, int64_t c, int64_t hw, int64_t group) {
  b.Input("x", TP::FLOAT, {2, 3, hw, hw}).Output("y", TP::FLOAT, {2, c, hw, hw});
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
  b.Node("Relu", {"s"}, {"y"});
}

std::vector<Value> RunOnce(ModelBuilder& b, int level, const Tensor& x, int* nhwc_attrs) {
  SessionOptions o;
  o.opt_level = level;
  auto s = Session::FromModel(Import(b), o);
  EXPECT_TRUE(s.ok()) << s.status().ToString();
  if (!s.ok()) return {};
  *nhwc_attrs = 0;
  for (const auto& n : (*s)->model().graph->nodes)
    for (const char* attr : {"x_layout", "y_layout", "residual_layout"})
      if (const ir::Attribute* a = n.attr(attr); a && a->s == "NHWC") ++*nhwc_attrs;
  const std::vector<Value> inputs{Value(x)};
  std::vector<Value> out;
  const Status st = (*s)->Run(inputs, out);
  EXPECT_TRUE(st.ok()) << st.ToString();
  return out;
}

TEST(ConvReference, ChannelsLastFusedConvMatchesOneDnn) {
  for (int64_t group : {1, 4}) {
    for (int64_t hw : {5, 9}) {
      SCOPED_TRACE(::testing::Message() << "group=" << group << " hw=" << hw);
      ModelBuilder b;
      BuildChain(b, 8, hw, group);
      Tensor x(DType::kFloat, {2, 3, hw, hw});
      const auto v = Values(x.numel(), 11);
      std::copy(v.begin(), v.end(), x.data<float>());

      int nhwc = 0;
      const std::vector<Value> want = RunOnce(b, 0, x, &nhwc);
      cpu::nn::ForceConvReference(true);
      const std::vector<Value> got = RunOnce(b, 3, x, &nhwc);
      cpu::nn::ForceConvReference(false);
      // The stem's output, the middle conv's input and output, the last conv's input and residual: the
      // reference path converts every one of them.
      EXPECT_EQ(nhwc, 5);
      ASSERT_EQ(want.size(), 1u);
      ASSERT_EQ(got.size(), 1u);
      const Tensor& w = want[0].tensor();
      const Tensor& g = got[0].tensor();
      ASSERT_EQ(w.shape(), g.shape());
      int bad = 0;
      for (int64_t i = 0; i < w.numel(); ++i) {
        const float a = w.data<float>()[i], c = g.data<float>()[i];
        if (!(std::fabs(a - c) <= 1e-4f + 1e-4f * std::fabs(a)) && bad++ < 5)
          ADD_FAILURE() << "element " << i << ": oneDNN NCHW " << a << ", reference NHWC " << c;
      }
      EXPECT_EQ(bad, 0);
    }
  }
}

}  // namespace
}  // namespace strata::testing
