#include "kernels/cpu/nn_common.h"
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
      // The last conv adds the stem's NHWC output and feeds GlobalAveragePool, which reads NHWC too.
      EXPECT_EQ(LayoutAttr(m, "r2", "residual_layout"), "NHWC");
      EXPECT_EQ(LayoutAttr(m, "r2", "y_layout"), "NHWC");
      EXPECT_EQ(LayoutAttr(m, "y", "layout"), "NHWC");
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

const ir::Node* NodeWriting(const ir::Model& m, const std::string& output) {
  for (const auto& n : m.graph->nodes)
    if (!n.outputs.empty() && n.outputs[0] == output) return &n;
  return nullptr;
}

struct PoolCase {
  const char* op;
  std::vector<int64_t> kernel, strides, pads, dilations;
  bool ceil_mode = false, include_pad = false;
};

// stem conv -> relu -> pool -> [conv -> relu -> conv] + pool -> relu -> GlobalAveragePool: ResNet's
// stem and first block.
void BuildPooledChain(ModelBuilder& b, int64_t c, int64_t hw, const PoolCase& pc) {
  b.Input("x", TP::FLOAT, {2, 3, hw, hw}).Output("y", TP::FLOAT, {2, c, 1, 1});
  RandomInit(b, "w0", {c, 3, 3, 3}, 1);
  RandomInit(b, "w1", {c, c, 3, 3}, 2);
  RandomInit(b, "b1", {c}, 3);
  RandomInit(b, "w2", {c, c, 1, 1}, 4);
  SetInts(b.Node("Conv", {"x", "w0"}, {"c0"}), "pads", {1, 1, 1, 1});
  b.Node("Relu", {"c0"}, {"r0"});
  auto& p = b.Node(pc.op, {"r0"}, {"p"});
  SetInts(p, "kernel_shape", pc.kernel);
  if (!pc.strides.empty()) SetInts(p, "strides", pc.strides);
  if (!pc.pads.empty()) SetInts(p, "pads", pc.pads);
  if (!pc.dilations.empty()) SetInts(p, "dilations", pc.dilations);
  if (pc.ceil_mode) SetInt(p, "ceil_mode", 1);
  if (pc.include_pad) SetInt(p, "count_include_pad", 1);
  SetInts(b.Node("Conv", {"p", "w1", "b1"}, {"c1"}), "pads", {1, 1, 1, 1});
  b.Node("Relu", {"c1"}, {"r1"});
  b.Node("Conv", {"r1", "w2"}, {"c2"});
  b.Node("Add", {"c2", "p"}, {"s"});
  b.Node("Relu", {"s"}, {"r2"});
  b.Node("GlobalAveragePool", {"r2"}, {"y"});
}

TEST(ConvLayout, ChannelsLastThroughPoolingMatchesTheUnoptimisedRun) {
  const std::vector<PoolCase> cases = {
      {"MaxPool", {3, 3}, {2, 2}, {1, 1, 1, 1}, {}},                       // ResNet's stem
      {"MaxPool", {2, 3}, {2, 1}, {0, 1, 1, 1}, {2, 1}, true},             // dilations, ceil_mode
      {"AveragePool", {3, 3}, {2, 2}, {1, 1, 1, 1}, {}, true, true},       // ceil_mode, count_include_pad
      {"AveragePool", {2, 2}, {1, 1}, {0, 0, 1, 1}, {}, false, false},
  };
  for (const PoolCase& pc : cases)
    for (int64_t c : {8, 20}) {
      for (int64_t hw : {7, 12}) {
        SCOPED_TRACE(::testing::Message() << pc.op << " kernel " << pc.kernel[0] << "x" << pc.kernel[1] << " c=" << c
                                          << " hw=" << hw);
        ModelBuilder b;
        BuildPooledChain(b, c, hw, pc);
        const OpCounts counts = CheckOptimized(b, 3, 1e-4);
        EXPECT_EQ(Count(counts, "FusedConv"), 3);
        EXPECT_EQ(Count(counts, pc.op), 1);
        EXPECT_EQ(Count(counts, "GlobalAveragePool"), 1);
        EXPECT_EQ(counts.size(), 3u);

        ir::Model m = Import(b);
        ASSERT_TRUE(passes::InferShapes(m).ok());
        ASSERT_TRUE(passes::Optimize(m, 3).ok());
        EXPECT_EQ(LayoutAttr(m, "r0", "y_layout"), "NHWC");
        EXPECT_EQ(LayoutAttr(m, "p", "layout"), "NHWC");
        EXPECT_EQ(LayoutAttr(m, "r1", "x_layout"), "NHWC");
        EXPECT_EQ(LayoutAttr(m, "r2", "residual_layout"), "NHWC");
        // The last conv feeds only GlobalAveragePool, whose [N, C, 1, 1] output is layout-free.
        EXPECT_EQ(LayoutAttr(m, "r2", "y_layout"), "NHWC");
        EXPECT_EQ(LayoutAttr(m, "y", "layout"), "NHWC");
        const ir::Node* pool = NodeWriting(m, "p");
        ASSERT_NE(pool, nullptr);
        EXPECT_EQ(pool->domain, "com.strata");
        EXPECT_EQ(pool->opset, 13);  // keeps the ONNX opset its attributes were written for
      }
    }
}

TEST(ConvLayout, PoolsOutsideConvChainsStayOnnx) {
  // A pool on the graph input, a pool whose output is a graph output, a pool read by a non-conv,
  // and a MaxPool returning Indices.
  ModelBuilder b;
  b.Input("x", TP::FLOAT, {1, 4, 8, 8})
      .Output("a", TP::FLOAT, {1, 4, 4, 4})
      .Output("y", TP::FLOAT, {1, 4, 4, 4})
      .Output("z", TP::FLOAT, {1, 4, 2, 2})
      .Output("i", TP::INT64, {1, 4, 2, 2});
  RandomInit(b, "w", {4, 4, 1, 1}, 1);
  auto pool = [&](const std::string& in, const std::vector<std::string>& out) {
    auto& n = b.Node("MaxPool", {in}, out);
    SetInts(n, "kernel_shape", {2, 2});
    SetInts(n, "strides", {2, 2});
  };
  pool("x", {"p0"});                      // reads the graph input
  b.Node("Conv", {"p0", "w"}, {"c0"});
  pool("c0", {"a"});                      // a graph output
  b.Node("Conv", {"x", "w"}, {"c1"});
  pool("c1", {"p1"});                     // read by Sigmoid
  b.Node("Sigmoid", {"p1"}, {"y"});
  b.Node("Conv", {"a", "w"}, {"c2"});
  pool("c2", {"z", "i"});                 // returns Indices
  ir::Model m = Import(b);
  ASSERT_TRUE(passes::InferShapes(m).ok());
  ASSERT_TRUE(passes::Optimize(m, 3).ok());
  for (const auto& n : m.graph->nodes) {
    if (n.op_type == "MaxPool") {
      EXPECT_EQ(n.domain, "ai.onnx") << n.Describe();
    }
    for (const char* attr : {"x_layout", "y_layout", "residual_layout", "layout"})
      if (const ir::Attribute* a = n.attr(attr)) {
        EXPECT_EQ(a->s, "NCHW") << n.Describe() << " " << attr;
      }
  }
  CheckOptimized(b, 3, 1e-5);
}

// Runs `b` at -O3 (oneDNN) and at -O0 on the reference convolutions for each batch size in turn
// (the model's batch dim must be symbolic, or the one size given) and expects the same outputs, within
// `tol` times the largest output magnitude. `threads` is the -O3 session's (0: physical cores).
// `reference_batch`: from that batch size on, the optimised session builds no oneDNN primitive for
// the new shapes either, so its reference paths run (on weights packed at load).
void MatchReferenceAcrossBatches(ModelBuilder& b, const std::vector<int64_t>& batches, double tol, int threads = 0,
                                 int64_t reference_batch = 0) {
  SessionOptions o0, o3;
  o0.opt_level = 0;
  o3.opt_level = 3;
  o3.num_threads = threads;
  cpu::nn::ForceConvReference(true);
  auto ref = Session::FromModel(Import(b), o0);
  cpu::nn::ForceConvReference(false);
  auto opt = Session::FromModel(Import(b), o3);
  ASSERT_TRUE(ref.ok()) << ref.status().ToString();
  ASSERT_TRUE(opt.ok()) << opt.status().ToString();
  const auto& in = (*ref)->inputs()[0];
  unsigned seed = 20;
  for (int64_t n : batches) {
    SCOPED_TRACE(::testing::Message() << "batch " << n);
    Shape xs{n};
    for (size_t i = 1; i < in.type.shape->size(); ++i) xs.push_back((*in.type.shape)[i].value);
    Tensor x(DType::kFloat, xs);
    const auto v = Values(x.numel(), seed++);
    std::copy(v.begin(), v.end(), x.data<float>());
    const std::vector<Value> inputs{Value(x)};
    std::vector<Value> want, got;
    cpu::nn::ForceConvReference(true);
    Status st = (*ref)->Run(inputs, want);
    cpu::nn::ForceConvReference(false);
    ASSERT_TRUE(st.ok()) << st.ToString();
    const bool reference = reference_batch > 0 && n >= reference_batch;
    if (reference) cpu::nn::ForceConvReference(true);
    st = (*opt)->Run(inputs, got);
    if (reference) cpu::nn::ForceConvReference(false);
    ASSERT_TRUE(st.ok()) << st.ToString();
    const Tensor& w = want[0].tensor();
    const Tensor& g = got[0].tensor();
    ASSERT_EQ(w.shape(), g.shape());
    double scale = 1;
    for (int64_t i = 0; i < w.numel(); ++i) scale = std::max(scale, std::fabs(double{w.data<float>()[i]}));
    int bad = 0;
    for (int64_t i = 0; i < w.numel(); ++i) {
      const double a = w.data<float>()[i], c = g.data<float>()[i];
      if (!(std::fabs(a - c) <= tol * scale) && bad++ < 5)
        ADD_FAILURE() << "element " << i << ": reference " << a << ", -O3 " << c << " (max |y| " << scale << ")";
    }
    EXPECT_EQ(bad, 0);
  }
}

// A symbolic batch: the convolutions are built for batch 1 at load and for other batches on first use,
// sharing their packed weights; alternating batch sizes must keep giving the reference's answers,
// also after more sizes than the 4 each kernel keeps have evicted the entry that packed the weights.
TEST(ConvLayout, SymbolicBatchAcrossBatchSizes) {
  ModelBuilder b;
  b.Input("x", TP::FLOAT, {-1, 3, 9, 9}).Output("y", TP::FLOAT, {-1, 8, 1, 1});
  RandomInit(b, "w0", {8, 3, 3, 3}, 1);
  RandomInit(b, "w1", {8, 8, 3, 3}, 2);
  RandomInit(b, "b1", {8}, 3);
  SetInts(b.Node("Conv", {"x", "w0"}, {"c0"}), "pads", {1, 1, 1, 1});
  b.Node("Relu", {"c0"}, {"r0"});
  auto& p = b.Node("MaxPool", {"r0"}, {"p"});
  SetInts(p, "kernel_shape", {3, 3});
  SetInts(p, "strides", {2, 2});
  SetInts(p, "pads", {1, 1, 1, 1});
  SetInts(b.Node("Conv", {"p", "w1", "b1"}, {"c1"}), "pads", {1, 1, 1, 1});
  b.Node("Add", {"c1", "p"}, {"s"});
  b.Node("GlobalAveragePool", {"s"}, {"y"});
  MatchReferenceAcrossBatches(b, {1, 3, 1, 2, 3, 5, 2, 6, 7, 4, 2, 1}, 1e-5);
}

// 3x3 stride-1 convolutions with enough output positions run on oneDNN's Winograd kernel (blocked
// layouts, reordered from and to NCHW/NHWC), also with a residual and with spatial sizes that are
// not multiples of its 4x4 tiles; batch 1 at 20x20 stays direct. Winograd's transforms cost some
// precision: single elements here are off by up to ~1e-4 of their own value (three layers, weights
// far larger than trained ones), so the bound is looser than for direct kernels.
TEST(ConvLayout, WinogradConvolutionsMatchTheReference) {
  // 24 channels leave the blocked layout's second 16-channel block half padding.
  for (auto [c, hw] : {std::pair<int64_t, int64_t>{64, 20}, {64, 29}, {24, 29}}) {
    SCOPED_TRACE(::testing::Message() << "c=" << c << " hw=" << hw);
    ModelBuilder b;
    b.Input("x", TP::FLOAT, {-1, c, hw, hw}).Output("y", TP::FLOAT, {-1, c, hw, hw});
    RandomInit(b, "w0", {c, c, 3, 3}, 1);
    RandomInit(b, "b0", {c}, 2);
    RandomInit(b, "w1", {c, c, 3, 3}, 3);
    RandomInit(b, "w2", {c, c, 3, 3}, 4);
    SetInts(b.Node("Conv", {"x", "w0", "b0"}, {"c0"}), "pads", {1, 1, 1, 1});  // NCHW in, NHWC out
    b.Node("Relu", {"c0"}, {"r0"});
    SetInts(b.Node("Conv", {"r0", "w1"}, {"c1"}), "pads", {1, 1, 1, 1});  // NHWC in and out
    b.Node("Relu", {"c1"}, {"r1"});
    SetInts(b.Node("Conv", {"r1", "w2"}, {"c2"}), "pads", {1, 1, 1, 1});
    b.Node("Add", {"c2", "r0"}, {"s"});  // residual, NHWC
    b.Node("Relu", {"s"}, {"y"});
    for (int threads : {1, 2}) {  // at 2 threads only the middle one is Winograd (WinogradEligible)
      SCOPED_TRACE(::testing::Message() << "threads=" << threads);
      MatchReferenceAcrossBatches(b, {1, 2}, 2e-4, threads);
    }
  }
}

// Convolution weights are packed when the model loads (batch 1), and the original initializers are
// freed: every other batch size's layout is made from that packed copy (at 20x20, batch 2 takes
// Winograd, whose weights only come from plain ones), and the reference path unpacks it. A layer
// packed for Winograd at load (29x29 on one thread) keeps its initializer: oneDNN converts into that
// layout only, never out of it, so its other batch sizes and the reference path need the original.
TEST(ConvLayout, WeightsReleasedAtLoadServeOtherBatchSizesAndTheReference) {
  for (auto [hw, threads] : {std::pair<int64_t, int>{20, 0}, {29, 1}}) {
    SCOPED_TRACE(::testing::Message() << "hw=" << hw << " threads=" << threads);
    ModelBuilder b;
    b.Input("x", TP::FLOAT, {-1, 32, hw, hw}).Output("y", TP::FLOAT, {-1, 32, hw, hw});
    RandomInit(b, "w0", {32, 32, 3, 3}, 1);
    RandomInit(b, "w1", {32, 32, 3, 3}, 2);
    RandomInit(b, "w2", {32, 32, 1, 1}, 3);
    SetInts(b.Node("Conv", {"x", "w0"}, {"c0"}), "pads", {1, 1, 1, 1});
    b.Node("Relu", {"c0"}, {"r0"});
    SetInts(b.Node("Conv", {"r0", "w1"}, {"c1"}), "pads", {1, 1, 1, 1});
    b.Node("Relu", {"c1"}, {"r1"});
    b.Node("Conv", {"r1", "w2"}, {"y"});
    SessionOptions o;
    o.num_threads = threads;
    auto s = Session::FromModel(Import(b), o);
    ASSERT_TRUE(s.ok()) << s.status().ToString();
    const auto& inits = (*s)->model().graph->initializers;
    const bool winograd_at_load = hw == 29 && cpu::nn::WinogradAvailable();
    EXPECT_EQ(inits.count("w0"), winograd_at_load ? 1u : 0u);
    EXPECT_EQ(inits.count("w1"), winograd_at_load ? 1u : 0u);
    EXPECT_EQ(inits.count("w2"), 0u);
    MatchReferenceAcrossBatches(b, {1, 2, 3, 1, 4}, 2e-4, threads, 4);
  }
}

// The test above passes whichever kernel runs; this one checks which kernel oneDNN really runs
// (its verbose mode names each primitive it creates and runs). A 3x3 convolution at 29x29 (batch 1
// is above the threshold) takes Winograd on one thread whatever its layouts, and on two threads
// only between channels-last activations, which Strata converts to the kernel's blocked layout
// itself: a lone convolution reads and writes NCHW graph tensors, the middle one of a chain does not.
// oneDNN's verbose log of one run of `b` on a [1, 64, hw, hw] input.
std::string OneDnnRunLog(ModelBuilder& b, int threads, int64_t hw = 29) {
  Tensor x(DType::kFloat, {1, 64, hw, hw});
  const auto v = Values(x.numel(), 5);
  std::copy(v.begin(), v.end(), x.data<float>());
  SessionOptions o;
  o.num_threads = threads;
  ::testing::internal::CaptureStdout();
  dnnl::set_verbose(2);
  auto s = Session::FromModel(Import(b), o);
  std::vector<Value> out;
  const Status st = s.ok() ? (*s)->Run(std::vector<Value>{Value(x)}, out) : s.status();
  dnnl::set_verbose(0);
  const std::string log = ::testing::internal::GetCapturedStdout();
  EXPECT_TRUE(st.ok()) << st.ToString();
  return log;
}

// A chain of three convolutions: NCHW in, channels-last between, NCHW out.
void BuildConvChain(ModelBuilder& chain, int64_t hw = 29) {
  chain.Input("x", TP::FLOAT, {1, 64, hw, hw}).Output("y", TP::FLOAT, {1, 64, hw, hw});
  RandomInit(chain, "w1", {64, 64, 1, 1}, 2);
  RandomInit(chain, "w", {64, 64, 3, 3}, 1);
  RandomInit(chain, "w3", {64, 64, 1, 1}, 3);
  chain.Node("Conv", {"x", "w1"}, {"a"});
  SetInts(chain.Node("Conv", {"a", "w"}, {"c"}), "pads", {1, 1, 1, 1});
  chain.Node("Conv", {"c", "w3"}, {"y"});
}

// Between channels-last activations the direct kernel reads and writes them as they are, on every
// ISA: oneDNN 2.6's AVX2 kernels would pick nChw8c and cost a copy on each side.
TEST(ConvLayout, DirectKernelsReadChannelsLastActivationsInPlace) {
  ModelBuilder chain;
  BuildConvChain(chain, 20);  // below Winograd's threshold
  const std::string log = OneDnnRunLog(chain, 1, 20);
  // The middle (3x3) one; the 1x1 ones have an NCHW graph tensor on one side.
  const size_t at = log.find("exec,cpu,convolution,");
  const size_t middle = log.find("kh3", at);
  ASSERT_NE(middle, std::string::npos) << log;
  const size_t line_begin = log.rfind('\n', middle) + 1;
  const std::string line = log.substr(line_begin, log.find('\n', middle) - line_begin);
  EXPECT_NE(line.find("src_f32::blocked:acdb:f0 "), std::string::npos) << line;
  EXPECT_NE(line.find("dst_f32::blocked:acdb:f0"), std::string::npos) << line;
}

TEST(ConvLayout, WinogradOnTwoThreadsOnlyBetweenChannelsLastActivations) {
  auto wino_runs = [](ModelBuilder& b, int threads) {
    return OneDnnRunLog(b, threads).find("exec,cpu,convolution,jit_wino_4x3") != std::string::npos;
  };
  ModelBuilder lone;
  lone.Input("x", TP::FLOAT, {1, 64, 29, 29}).Output("y", TP::FLOAT, {1, 64, 29, 29});
  RandomInit(lone, "w", {64, 64, 3, 3}, 1);
  SetInts(lone.Node("Conv", {"x", "w"}, {"y"}), "pads", {1, 1, 1, 1});
  ModelBuilder chain;
  BuildConvChain(chain);
  // Without oneDNN's Winograd kernel (AVX2 CPUs), every one of them stays direct.
  const bool wino = cpu::nn::WinogradAvailable();
  EXPECT_EQ(wino_runs(lone, 1), wino);
  EXPECT_FALSE(wino_runs(lone, 2));
  EXPECT_EQ(wino_runs(chain, 1), wino);
  EXPECT_EQ(wino_runs(chain, 2), wino);
}

// The tests above assert kernel choices through WinogradAvailable, so it must not simply say no
// where oneDNN 2.6 has the kernel: on AVX-512 unless ONEDNN_MAX_CPU_ISA lowers it.
TEST(ConvLayout, WinogradAvailableWhereOneDnnHasIt) {
  // oneDNN's ISA values are bit sets, not an order (avx2_vnni is numerically above avx512_core).
  const auto isa = static_cast<unsigned>(dnnl::get_effective_cpu_isa());
  const bool avx512 = (isa & dnnl_cpu_isa_avx512_core) == dnnl_cpu_isa_avx512_core;
  EXPECT_EQ(cpu::nn::WinogradAvailable(), avx512);
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
