// elementwise-fusion (src/passes/elementwise_fusion.cc) and the FusedElementwise kernel: graphs are run
// unoptimised and at -O3 on inputs full of special values (NaN, +-inf, -0, subnormals, overflow), over
// sizes with block tails, at every ISA level and on 1 and 2 threads; outputs must have the same bits
// (docs/passes.md promises it), with any NaN where NaN.
#include <cstdio>

#include "isa_scope.h"
#include "kernels/cpu/ukernels/vec_math.h"
#include "passes_test_util.h"

namespace strata::testing {
namespace {

constexpr const char* kFused = "FusedElementwise";

// Random floats in [-4, 4) with every 5th element a special value (at offsets that depend on the seed,
// so two inputs hold NaN in different places).
std::vector<float> SpecialValues(int64_t n, unsigned seed) {
  static const float kSpecial[] = {std::nanf(""), INFINITY, -INFINITY, -0.f,   0.f,   1e-40f, -1e-40f,
                                   88.8f,         -104.f,   1e30f,     -1e30f, 1.f,   -1.f,   0.5f};
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> d(-4.f, 4.f);
  std::vector<float> v(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i)
    v[static_cast<size_t>(i)] = i % 5 == seed % 5 ? kSpecial[(i / 5 + seed) % std::size(kSpecial)] : d(rng);
  return v;
}

// One input per declared graph input, all dims known: floats from SpecialValues, bools and int64 random
// 0/1, int32 across +-2^26 with every 5th a value float32 rounds (2^24 + 1 and others) or 0/+-1.
std::vector<Value> MakeInputs(const Session& s, unsigned seed) {
  std::vector<Value> inputs;
  std::mt19937 rng(seed);
  for (const auto& vi : s.inputs()) {
    Shape shape;
    for (const auto& d : *vi.type.shape) shape.push_back(d.value);
    Tensor t(vi.type.elem_type, shape);
    if (t.dtype() == DType::kFloat) {
      const auto v = SpecialValues(t.numel(), seed++);
      std::copy(v.begin(), v.end(), t.data<float>());
    } else if (t.dtype() == DType::kDouble) {
      const auto v = SpecialValues(t.numel(), seed++);
      std::copy(v.begin(), v.end(), t.data<double>());
    } else if (t.dtype() == DType::kInt32) {
      static const int32_t kSpecial[] = {16777217, -16777219, 0, 1, -1, 536870911, -536870913};
      std::uniform_int_distribution<int32_t> d(-(1 << 26), 1 << 26);
      for (int64_t i = 0; i < t.numel(); ++i)
        t.data<int32_t>()[i] = i % 5 == seed % 5 ? kSpecial[(i / 5 + seed) % std::size(kSpecial)] : d(rng);
      ++seed;
    } else {
      for (int64_t i = 0; i < t.numel(); ++i) {
        const int bit = static_cast<int>(rng() % 3 != 0);
        if (t.dtype() == DType::kBool) t.data<bool>()[i] = bit;
        else if (t.dtype() == DType::kInt64) t.data<int64_t>()[i] = bit;
      }
    }
    inputs.emplace_back(std::move(t));
  }
  return inputs;
}

// Same value: both NaN, or the same bits (so the same sign on zeros).
bool SameValue(double want, double got) {
  if (std::isnan(want) || std::isnan(got)) return std::isnan(want) && std::isnan(got);
  return want == got && std::signbit(want) == std::signbit(got);
}

// Runs the model unoptimised and at -O3 (on `threads` threads) and compares every output. Returns the
// op counts of the optimised graph.
OpCounts CompareRuns(ModelBuilder& b, int threads = 1, unsigned seed = 11) {
  SessionOptions o0, o3;
  o0.opt_level = 0;
  o3.opt_level = 3;
  o0.num_threads = o3.num_threads = threads;
  auto ref = Session::FromModel(Import(b), o0);
  auto opt = Session::FromModel(Import(b), o3);
  EXPECT_TRUE(ref.ok()) << ref.status().ToString();
  EXPECT_TRUE(opt.ok()) << opt.status().ToString();
  if (!ref.ok() || !opt.ok()) return {};
  const std::vector<Value> inputs = MakeInputs(**ref, seed);
  std::vector<Value> want, got;
  Status st = (*ref)->Run(inputs, want);
  EXPECT_TRUE(st.ok()) << st.ToString();
  st = (*opt)->Run(inputs, got);
  EXPECT_TRUE(st.ok()) << st.ToString();
  EXPECT_EQ(want.size(), got.size());
  for (size_t k = 0; k < std::min(want.size(), got.size()); ++k) {
    const Tensor& w = want[k].tensor();
    const Tensor& g = got[k].tensor();
    EXPECT_EQ(w.shape(), g.shape()) << "output " << k;
    EXPECT_EQ(w.dtype(), g.dtype()) << "output " << k;
    if (w.shape() != g.shape() || w.dtype() != g.dtype()) continue;
    int bad = 0;
    for (int64_t i = 0; i < w.numel(); ++i) {
      const double a = w.GetAsDouble(i), c = g.GetAsDouble(i);
      if (!SameValue(a, c) && bad++ < 5)
        ADD_FAILURE() << "output " << k << " element " << i << ": unoptimised " << a << ", -O3 " << c;
    }
    EXPECT_EQ(bad, 0) << "output " << k;
  }
  return CountOps((*opt)->model());
}

const std::vector<std::vector<int64_t>> kShapes = {{1}, {17}, {1000}, {4097}, {3, 5, 67}};

TEST(ElementwiseFusion, UnaryPairsEveryOp) {
  struct Case {
    const char* op;
    float alpha = 0, beta = 0;
  };
  const Case cases[] = {{"Relu"}, {"Sigmoid"}, {"Tanh"}, {"Exp"},        {"Log"},             {"Sqrt"},
                        {"Neg"},  {"Abs"},     {"Erf"},  {"Reciprocal"}, {"LeakyRelu", 0.1f}, {"HardSigmoid", 0.3f, 0.4f},
                        {"Gelu"}, {"GeluTanh"}};
  for (const Case& c : cases) {
    for (const auto& shape : kShapes) {
      SCOPED_TRACE(::testing::Message() << c.op << " over " << shape.size() << "-d shape ending in " << shape.back());
      ModelBuilder b;
      b.Input("x", TP::FLOAT, shape).Output("y", TP::FLOAT, shape);
      ScalarInit(b, "k", 1.5f);
      b.Node("Mul", {"x", "k"}, {"a"});
      const std::string op = c.op;
      auto& n = b.Node(op == "GeluTanh" ? "Gelu" : op, {"a"}, {"u"});  // Import gives Gelu opset 20
      if (op == "GeluTanh") SetString(n, "approximate", "tanh");
      if (op == "LeakyRelu") SetFloat(n, "alpha", c.alpha);
      if (op == "HardSigmoid") {
        SetFloat(n, "alpha", c.alpha);
        SetFloat(n, "beta", c.beta);
      }
      b.Node("Neg", {"u"}, {"y"});
      EXPECT_EQ(CompareRuns(b), (OpCounts{{kFused, 1}}));
    }
  }
}

TEST(ElementwiseFusion, CastFromInt32AndBoolInAGroup) {
  // The kernel converts int32 (incl. values float32 rounds) and bool inputs as it loads them, for an
  // input of the output's shape and for a broadcast row.
  for (const auto& shape : kShapes) {
    SCOPED_TRACE(::testing::Message() << shape.size() << "-d shape ending in " << shape.back());
    ModelBuilder b;
    b.Input("x", TP::FLOAT, shape).Input("i", TP::INT32, shape).Input("c", TP::BOOL, {shape.back()});
    b.Input("r", TP::INT32, {shape.back()}).Output("y", TP::FLOAT, shape);
    SetInt(b.Node("Cast", {"i"}, {"fi"}), "to", TP::FLOAT);
    SetInt(b.Node("Cast", {"c"}, {"fc"}), "to", TP::FLOAT);
    SetInt(b.Node("Cast", {"r"}, {"fr"}), "to", TP::FLOAT);
    b.Node("Mul", {"x", "fc"}, {"a"});
    b.Node("Add", {"a", "fi"}, {"s"});
    b.Node("Sub", {"s", "fr"}, {"y"});
    EXPECT_EQ(CompareRuns(b), (OpCounts{{kFused, 1}}));
  }
}

TEST(ElementwiseFusion, LongUnaryChain) {
  for (const auto& shape : kShapes) {
    ModelBuilder b;
    b.Input("x", TP::FLOAT, shape).Output("y", TP::FLOAT, shape);
    b.Node("Abs", {"x"}, {"a"});
    b.Node("Sqrt", {"a"}, {"s"});
    b.Node("Log", {"s"}, {"l"});
    b.Node("Tanh", {"l"}, {"t"});
    b.Node("Exp", {"t"}, {"e"});
    b.Node("Sigmoid", {"e"}, {"g"});
    b.Node("Reciprocal", {"g"}, {"y"});
    EXPECT_EQ(CompareRuns(b), (OpCounts{{kFused, 1}}));
  }
}

TEST(ElementwiseFusion, ChainsLongerThan48NodesAreCut) {
  // 60 ops in a row: the group from the sink stops at 48, the 12 before it form a second group.
  ModelBuilder b;
  b.Input("x", TP::FLOAT, {1000}).Output("y", TP::FLOAT, {1000});
  std::string v = "x";
  for (int i = 0; i < 60; ++i) {
    char name[8];
    std::snprintf(name, sizeof name, "t%d", i);
    const std::string out = i == 59 ? "y" : name;
    b.Node(i % 3 == 0 ? "Neg" : i % 3 == 1 ? "Tanh" : "Abs", {v}, {out});
    v = out;
  }
  EXPECT_EQ(CompareRuns(b), (OpCounts{{kFused, 2}}));
}

TEST(ElementwiseFusion, BinaryBroadcastAndScalars) {
  // ((x + row) * col - 0.5) / z, Max with a [1, C, 1] tensor, Min with a scalar, Pow 2, Pow 3 (float and
  // int64 exponents), Clip with constant bounds.
  for (int64_t last : {1, 17, 1000}) {
    SCOPED_TRACE(::testing::Message() << "last dim " << last);
    ModelBuilder b;
    const std::vector<int64_t> shape = {2, 3, last};
    b.Input("x", TP::FLOAT, shape).Input("row", TP::FLOAT, {last}).Input("col", TP::FLOAT, {2, 1, 1});
    b.Input("z", TP::FLOAT, shape).Input("mid", TP::FLOAT, {1, 3, 1}).Output("y", TP::FLOAT, shape);
    ScalarInit(b, "half", 0.5f);
    ScalarInit(b, "lim", 3.f);
    ScalarInit(b, "two", 2.f);
    ScalarInit(b, "three", 3.f);
    Int64Init(b, "three_i", {3}, true);
    ScalarInit(b, "lo", -2.f);
    ScalarInit(b, "hi", 2.5f);
    b.Node("Add", {"x", "row"}, {"a"});
    b.Node("Mul", {"a", "col"}, {"m"});
    b.Node("Sub", {"m", "half"}, {"s"});
    b.Node("Div", {"s", "z"}, {"d"});
    b.Node("Max", {"d", "mid"}, {"mx"});
    b.Node("Min", {"lim", "mx"}, {"mn"});
    b.Node("Pow", {"mn", "two"}, {"p2"});
    b.Node("Pow", {"p2", "three"}, {"p3"});
    b.Node("Pow", {"mn", "three_i"}, {"p3i"});
    b.Node("Sub", {"p3", "p3i"}, {"q"});
    b.Node("Clip", {"q", "lo", "hi"}, {"y"});
    EXPECT_EQ(CompareRuns(b), (OpCounts{{kFused, 1}}));
  }
}

TEST(ElementwiseFusion, VariadicMaxMinAndScalarInput) {
  ModelBuilder b;
  b.Input("x", TP::FLOAT, {4, 33}).Input("y", TP::FLOAT, {33}).Input("s", TP::FLOAT, {1});
  b.Output("hi", TP::FLOAT, {4, 33}).Output("lo", TP::FLOAT, {4, 33});
  b.Node("Max", {"x", "y", "s"}, {"m"});
  b.Node("Relu", {"m"}, {"hi"});
  b.Node("Min", {"y", "x", "s"}, {"n"});
  b.Node("Neg", {"n"}, {"lo"});
  EXPECT_EQ(CompareRuns(b), (OpCounts{{kFused, 2}}));
}

TEST(ElementwiseFusion, DagWithSharedInputs) {
  // x * sigmoid(x), and (x + y) * (x - y) with the sum also read twice inside the group.
  ModelBuilder b;
  b.Input("x", TP::FLOAT, {5, 211}).Input("y", TP::FLOAT, {5, 211}).Output("out", TP::FLOAT, {5, 211});
  b.Node("Sigmoid", {"x"}, {"sg"});
  b.Node("Mul", {"x", "sg"}, {"sw"});
  b.Node("Add", {"x", "y"}, {"p"});
  b.Node("Sub", {"x", "y"}, {"m"});
  b.Node("Mul", {"p", "m"}, {"pm"});
  b.Node("Mul", {"pm", "p"}, {"pmp"});
  b.Node("Add", {"sw", "pmp"}, {"out"});
  EXPECT_EQ(CompareRuns(b), (OpCounts{{kFused, 1}}));
}

TEST(ElementwiseFusion, ValueReadOutsideTheChainSplitsIt) {
  // t = (x + y) * 2 is also read by ReduceSum: it stays materialised; the chains on both sides fuse.
  ModelBuilder b;
  b.Input("x", TP::FLOAT, {3, 100}).Input("y", TP::FLOAT, {3, 100});
  b.Output("out", TP::FLOAT, {3, 100}).Output("sum", TP::FLOAT, {3, 1});
  ScalarInit(b, "two", 2.f);
  b.Node("Add", {"x", "y"}, {"a"});
  b.Node("Mul", {"a", "two"}, {"t"});
  b.Node("Exp", {"t"}, {"e"});
  b.Node("Neg", {"e"}, {"out"});
  Int64Init(b, "axes", {1});
  b.Node("ReduceSum", {"t", "axes"}, {"sum"});
  const OpCounts c = CompareRuns(b);
  EXPECT_EQ(c, (OpCounts{{kFused, 2}, {"ReduceSum", 1}}));
}

TEST(ElementwiseFusion, GraphOutputsAreNeverFusedAway) {
  // r is a graph output: Relu stays, the chain after it fuses and ends in another graph output.
  ModelBuilder b;
  b.Input("x", TP::FLOAT, {4097}).Output("r", TP::FLOAT, {4097}).Output("y", TP::FLOAT, {4097});
  b.Node("Relu", {"x"}, {"r"});
  b.Node("Exp", {"r"}, {"e"});
  b.Node("Neg", {"e"}, {"y"});
  EXPECT_EQ(CompareRuns(b), (OpCounts{{"Relu", 1}, {kFused, 1}}));
}

TEST(ElementwiseFusion, SingleOpsAreLeftAlone) {
  ModelBuilder b;
  b.Input("x", TP::FLOAT, {64}).Output("y", TP::FLOAT, {64});
  b.Node("Exp", {"x"}, {"y"});
  EXPECT_EQ(CompareRuns(b), (OpCounts{{"Exp", 1}}));
}

TEST(ElementwiseFusion, OtherDtypesAreRefused) {
  {
    ModelBuilder b;
    b.Input("x", TP::DOUBLE, {100}).Output("y", TP::DOUBLE, {100});
    b.Node("Relu", {"x"}, {"r"});
    b.Node("Exp", {"r"}, {"y"});
    EXPECT_EQ(CompareRuns(b), (OpCounts{{"Relu", 1}, {"Exp", 1}}));
  }
  {
    ModelBuilder b;
    b.Input("x", TP::INT32, {100}).Input("z", TP::INT32, {100}).Output("y", TP::INT32, {100});
    b.Node("Add", {"x", "z"}, {"a"});
    b.Node("Sub", {"a", "z"}, {"y"});  // no overflow at the test's int32 values
    EXPECT_EQ(CompareRuns(b), (OpCounts{{"Add", 1}, {"Sub", 1}}));
  }
  {
    // Cast to float from float16 is not one of the loads the kernel converts.
    ModelBuilder b;
    b.Input("x", TP::FLOAT16, {100}).Output("y", TP::FLOAT, {100});
    SetInt(b.Node("Cast", {"x"}, {"c"}), "to", TP::FLOAT);
    b.Node("Relu", {"c"}, {"y"});
    SessionOptions o3;
    auto s = Session::FromModel(Import(b), o3);
    ASSERT_TRUE(s.ok()) << s.status().ToString();
    EXPECT_EQ(CountOps((*s)->model()), (OpCounts{{"Cast", 1}, {"Relu", 1}}));
  }
}

TEST(ElementwiseFusion, AttentionMasks) {
  // BERT: mask = (1 - float(m)) * -10000 over [B, 1, 1, S], shared by two layers' scores / 8 + mask.
  // GPT-2: where(not(causal), lowest, scores / 4).
  for (int64_t s : {1, 17, 64}) {
    SCOPED_TRACE(::testing::Message() << "seq " << s);
    ModelBuilder b;
    const std::vector<int64_t> shape = {2, 3, s, s};
    b.Input("q1", TP::FLOAT, shape).Input("q2", TP::FLOAT, shape).Input("q3", TP::FLOAT, shape);
    b.Input("m", TP::INT64, {2, 1, 1, s}).Input("causal", TP::BOOL, {1, 1, s, s});
    b.Output("bert1", TP::FLOAT, shape).Output("bert2", TP::FLOAT, shape).Output("gpt", TP::FLOAT, shape);
    ScalarInit(b, "one", 1.f);
    ScalarInit(b, "big", -10000.f);
    ScalarInit(b, "eight", 8.f);
    ScalarInit(b, "four", 4.f);
    ScalarInit(b, "lowest", -3.4028234663852886e38f);
    SetInt(b.Node("Cast", {"m"}, {"mf"}), "to", TP::FLOAT);
    b.Node("Sub", {"one", "mf"}, {"inv"});
    b.Node("Mul", {"inv", "big"}, {"mask"});
    b.Node("Div", {"q1", "eight"}, {"d1"});
    b.Node("Add", {"d1", "mask"}, {"bert1"});
    b.Node("Div", {"q2", "eight"}, {"d2"});
    b.Node("Add", {"mask", "d2"}, {"bert2"});
    b.Node("Div", {"q3", "four"}, {"d3"});
    b.Node("Not", {"causal"}, {"nc"});
    b.Node("Where", {"nc", "lowest", "d3"}, {"gpt"});
    EXPECT_EQ(CompareRuns(b), (OpCounts{{kFused, 4}}));
  }
}

TEST(ElementwiseFusion, LeavesEpilogueAndGeluToTheirPasses) {
  ModelBuilder b;
  b.Input("x", TP::FLOAT, {4, 16}).Output("y", TP::FLOAT, {4, 8}).Output("g", TP::FLOAT, {4, 16});
  RandomInit(b, "w", {16, 8}, 1);
  RandomInit(b, "bias", {8}, 2);
  b.Node("MatMul", {"x", "w"}, {"mm"});
  b.Node("Add", {"mm", "bias"}, {"mb"});
  b.Node("Relu", {"mb"}, {"r"});
  b.Node("Exp", {"r"}, {"e"});
  b.Node("Neg", {"e"}, {"y"});
  // erf GELU of x
  ScalarInit(b, "sqrt2", 1.41421356f);
  ScalarInit(b, "one", 1.f);
  ScalarInit(b, "half", 0.5f);
  b.Node("Div", {"x", "sqrt2"}, {"xd"});
  b.Node("Erf", {"xd"}, {"er"});
  b.Node("Add", {"er", "one"}, {"u"});
  b.Node("Mul", {"x", "u"}, {"xu"});
  b.Node("Mul", {"xu", "half"}, {"g"});
  // oneDNN's post-ops and the Gelu kernel round differently from the ops they replace (and oneDNN's
  // relu maps NaN to 0), so this compares finite values with a tolerance.
  EXPECT_EQ(CheckOptimized(b, 3, 1e-5), (OpCounts{{"FusedMatMul", 1}, {kFused, 1}, {"Gelu", 1}}));
}

// What epilogue fusion refuses is this pass's to take: after an activation the MatMul's epilogue
// takes no residual, so Add and Exp fuse here (they were once left alone as "maybe a residual").
TEST(ElementwiseFusion, TakesTheAddsEpilogueFusionRefuses) {
  ModelBuilder b;
  b.Input("x", TP::FLOAT, {4, 16}).Input("skip", TP::FLOAT, {4, 8}).Output("y", TP::FLOAT, {4, 8});
  RandomInit(b, "w", {16, 8}, 3);
  b.Node("MatMul", {"x", "w"}, {"mm"});
  b.Node("Relu", {"mm"}, {"r"});
  b.Node("Add", {"r", "skip"}, {"s"});
  b.Node("Exp", {"s"}, {"y"});
  EXPECT_EQ(CheckOptimized(b, 3, 1e-5), (OpCounts{{"FusedMatMul", 1}, {kFused, 1}}));
}

TEST(ElementwiseFusion, EveryIsaAndTwoThreads) {
  for (cpu::vec::Isa isa : AvailableIsas()) {
    IsaScope scope(isa);
    for (int threads : {1, 2}) {
      SCOPED_TRACE(::testing::Message() << cpu::vec::IsaName(isa) << ", " << threads << " threads");
      ModelBuilder b;
      // 3 * 40961 elements: many blocks, a tail, enough work for two threads.
      b.Input("x", TP::FLOAT, {3, 40961}).Input("w", TP::FLOAT, {40961}).Input("c", TP::BOOL, {40961});
      b.Input("col", TP::FLOAT, {3, 1}).Output("y", TP::FLOAT, {3, 40961});
      ScalarInit(b, "k", 0.75f);
      ScalarInit(b, "lo", -1.f);
      ScalarInit(b, "hi", 1.f);
      b.Node("Mul", {"x", "k"}, {"a"});
      b.Node("Add", {"a", "w"}, {"s"});
      b.Node("Tanh", {"s"}, {"t"});
      b.Node("Sqrt", {"s"}, {"q"});
      b.Node("Max", {"t", "q"}, {"m"});
      SetFloat(b.Node("HardSigmoid", {"x"}, {"h"}), "alpha", 0.3f);
      b.Node("Clip", {"h", "lo", "hi"}, {"cl"});
      b.Node("Where", {"c", "m", "cl"}, {"wh"});
      b.Node("Mul", {"wh", "col"}, {"y"});
      EXPECT_EQ(CompareRuns(b, threads), (OpCounts{{kFused, 1}}));
    }
  }
}

TEST(ElementwiseFusion, MalformedProgramsFailAtLoad) {
  auto load = [](const std::vector<std::string>& ops, const std::vector<int64_t>& operands) {
    ModelBuilder b;
    auto* imp = b.proto().add_opset_import();
    imp->set_domain("com.strata");
    imp->set_version(1);
    b.Input("x", TP::FLOAT, {8}).Output("y", TP::FLOAT, {8});
    auto& n = b.Node("FusedElementwise", {"x"}, {"y"});
    n.set_domain("com.strata");
    auto* a = n.add_attribute();
    a->set_name("ops");
    a->set_type(onnx::AttributeProto::STRINGS);
    for (const auto& o : ops) a->add_strings(o);
    SetInts(n, "operands", operands);
    for (const char* name : {"alphas", "betas"}) {
      auto* f = n.add_attribute();
      f->set_name(name);
      f->set_type(onnx::AttributeProto::FLOATS);
      for (size_t k = 0; k < ops.size(); ++k) f->add_floats(0.f);
    }
    SessionOptions o;
    o.opt_level = 0;
    return Session::FromModel(Import(b), o).status();
  };
  EXPECT_TRUE(load({"Relu", "Exp"}, {0, -1, -1, 1, -1, -1}).ok());
  EXPECT_FALSE(load({"Relu", "Exp"}, {0, -1, -1, 2, -1, -1}).ok());   // reads its own result
  EXPECT_FALSE(load({"Relu"}, {0, 0, -1}).ok());                      // unary op with two operands
  EXPECT_FALSE(load({"Add"}, {0, -1, -1}).ok());                      // binary op with one
  EXPECT_FALSE(load({"Frobnicate"}, {0, -1, -1}).ok());               // unknown op
  EXPECT_FALSE(load({"Relu", "Exp"}, {0, -1, -1}).ok());              // too few operands
  EXPECT_FALSE(load({}, {}).ok());                                    // empty program
  const Status st = load({"Relu"}, {-5, -1, -1});
  EXPECT_NE(st.ToString().find("operand 0"), std::string::npos) << st.ToString();
}

TEST(ElementwiseFusion, GroupsWithMoreInputsThanTheKernelTakesStayUnfused) {
  // Max over 70 inputs, then Relu: one group would need 70 inputs (the kernel takes 64), so the model
  // must still load and run, unfused.
  ModelBuilder b;
  std::vector<std::string> xs;
  for (int i = 0; i < 70; ++i) {
    char name[8];
    std::snprintf(name, sizeof name, "x%d", i);
    xs.emplace_back(name);
    b.Input(xs.back(), TP::FLOAT, {5});
  }
  b.Output("y", TP::FLOAT, {5});
  b.Node("Max", xs, {"m"});
  b.Node("Relu", {"m"}, {"y"});
  const OpCounts c = CheckOptimized(b, 3);
  EXPECT_EQ(Count(c, "FusedElementwise"), 0);
  EXPECT_EQ(Count(c, "Max"), 1);
}

}  // namespace
}  // namespace strata::testing
