// The arena planner, and main-graph runs in the planned arena against heap runs.
#include <gtest/gtest.h>

#include <random>

#include "kernels/cpu/nn_common.h"
#include "onnx/importer.h"
#include "passes_test_util.h"
#include "runtime/memory_plan.h"
#include "runtime/session.h"
#include "test_model_builder.h"

namespace strata {
namespace {

using testing::ModelBuilder;

bool Overlap(const BufferLifetime& a, const BufferLifetime& b) { return a.first <= b.last && b.first <= a.last; }

void ExpectValidLayout(const std::vector<BufferLifetime>& bufs, const ArenaLayout& l) {
  ASSERT_EQ(l.offsets.size(), bufs.size());
  for (size_t i = 0; i < bufs.size(); ++i) {
    EXPECT_EQ(l.offsets[i] % kArenaAlignment, 0u);
    EXPECT_LE(l.offsets[i] + bufs[i].bytes, l.arena_bytes);
    for (size_t j = i + 1; j < bufs.size(); ++j) {
      if (!Overlap(bufs[i], bufs[j]) || bufs[i].bytes == 0 || bufs[j].bytes == 0) continue;
      const bool disjoint = l.offsets[i] + bufs[i].bytes <= l.offsets[j] || l.offsets[j] + bufs[j].bytes <= l.offsets[i];
      EXPECT_TRUE(disjoint) << "buffers " << i << " and " << j << " are live together and share bytes";
    }
  }
  EXPECT_LE(l.arena_bytes, l.total_bytes);
}

TEST(PlanArena, ChainReusesMemoryOfDeadBuffers) {
  // a -> b -> c -> d: each buffer dies when the next is made, so two slots suffice.
  std::vector<BufferLifetime> bufs = {{1000, 0, 1}, {1000, 1, 2}, {1000, 2, 3}, {1000, 3, 4}};
  const ArenaLayout l = PlanArena(bufs);
  ExpectValidLayout(bufs, l);
  EXPECT_EQ(l.total_bytes, 4 * 1024u);
  EXPECT_EQ(l.arena_bytes, 2 * 1024u);
}

TEST(PlanArena, RandomLifetimesNeverShareLiveBytes) {
  std::mt19937 rng(7);
  for (int trial = 0; trial < 200; ++trial) {
    std::vector<BufferLifetime> bufs(std::uniform_int_distribution<int>(0, 40)(rng));
    for (auto& b : bufs) {
      b.first = std::uniform_int_distribution<int>(0, 30)(rng);
      b.last = b.first + std::uniform_int_distribution<int>(0, 8)(rng);
      b.bytes = std::uniform_int_distribution<size_t>(0, 5000)(rng);
    }
    ExpectValidLayout(bufs, PlanArena(bufs));
  }
}

std::unique_ptr<Session> Load(const std::string& bytes, bool plan_memory) {
  auto model = onnx_io::LoadModelFromBytes(bytes.data(), bytes.size());
  EXPECT_TRUE(model.ok()) << model.status().ToString();
  SessionOptions opts;
  opts.plan_memory = plan_memory;
  opts.opt_level = 2;  // -O3 fuses the elementwise chains below, and with them the intermediates planned here
  auto s = Session::FromModel(std::move(model).value(), opts);
  EXPECT_TRUE(s.ok()) << s.status().ToString();
  return std::move(s).value();
}

Tensor Random(const Shape& shape, uint32_t seed) {
  Tensor t(DType::kFloat, shape);
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> u(-2.f, 2.f);
  for (int64_t i = 0; i < t.numel(); ++i) t.data<float>()[i] = u(rng);
  return t;
}

void ExpectEqual(const Tensor& a, const Tensor& b) {
  ASSERT_EQ(a.shape(), b.shape());
  for (int64_t i = 0; i < a.numel(); ++i) ASSERT_EQ(a.data<float>()[i], b.data<float>()[i]) << "element " << i;
}

// A chain with a branch, a view (Reshape) that outlives its source's producer, and two graph
// outputs, one of which is a view of an intermediate.
std::string BranchyModel() {
  ModelBuilder b;
  b.Input("x", onnx::TensorProto::FLOAT, {-1, 64});
  b.Output("y", onnx::TensorProto::FLOAT, {-1, 64});
  b.Output("r", onnx::TensorProto::FLOAT, {-1});
  b.Initializer("shape", {}, {1}).clear_float_data();
  auto& shape = b.proto().mutable_graph()->mutable_initializer()->at(0);
  shape.set_data_type(onnx::TensorProto::INT64);
  shape.add_int64_data(-1);
  b.Node("Relu", {"x"}, {"a"});
  b.Node("Exp", {"a"}, {"e"});
  b.Node("Reshape", {"e"}, {"flat"});
  b.proto().mutable_graph()->mutable_node()->rbegin()->add_input("shape");
  b.Node("Neg", {"a"}, {"n"});
  b.Node("Add", {"n", "e"}, {"s"});
  b.Node("Tanh", {"s"}, {"t"});
  b.Node("Mul", {"t", "a"}, {"y"});
  b.Node("Identity", {"flat"}, {"r"});
  return b.Bytes();
}

TEST(PlannedRun, MatchesHeapRunAndOutputsSurviveLaterRuns) {
  const std::string bytes = BranchyModel();
  auto planned = Load(bytes, true);
  auto heap = Load(bytes, false);
  std::vector<Value> first;
  const Tensor x0 = Random({8, 64}, 1);
  ASSERT_TRUE(planned->Run(std::vector<Value>{x0}, first).ok());
  EXPECT_FALSE(planned->last_plan_stats().planned);  // the first run records
  const Tensor y0 = first[0].tensor().Clone(), r0 = first[1].tensor().Clone();
  for (uint32_t seed = 2; seed < 6; ++seed) {
    const Tensor x = Random({8, 64}, seed);
    std::vector<Value> got, want;
    ASSERT_TRUE(planned->Run(std::vector<Value>{x}, got).ok());
    ASSERT_TRUE(heap->Run(std::vector<Value>{x}, want).ok());
    const PlanStats st = planned->last_plan_stats();
    EXPECT_TRUE(st.planned);
    EXPECT_GT(st.planned_buffers, 0);
    EXPECT_LT(st.arena_bytes, st.planned_bytes);  // dead intermediates share memory
    ExpectEqual(got[0].tensor(), want[0].tensor());
    ExpectEqual(got[1].tensor(), want[1].tensor());
  }
  // The outputs of the first run are the caller's: later runs must not have written over them.
  ExpectEqual(first[0].tensor(), y0);
  ExpectEqual(first[1].tensor(), r0);
}

TEST(PlannedRun, PassingOutputsBackReusesOnlyBuffersNobodyHolds) {
  auto planned = Load(BranchyModel(), true);
  auto heap = Load(BranchyModel(), false);
  std::vector<Value> outputs;  // passed back every run, as a serving loop does
  Tensor held;
  Tensor held_copy;
  for (uint32_t seed = 1; seed < 8; ++seed) {
    const Tensor x = Random({8, 64}, seed);
    ASSERT_TRUE(planned->Run(std::vector<Value>{x}, outputs).ok());
    std::vector<Value> want;
    ASSERT_TRUE(heap->Run(std::vector<Value>{x}, want).ok());
    ExpectEqual(outputs[0].tensor(), want[0].tensor());
    ExpectEqual(outputs[1].tensor(), want[1].tensor());
    if (seed == 4) {  // the caller keeps one result: later runs must not write into it
      held = outputs[0].tensor();
      held_copy = held.Clone();
    }
  }
  ExpectEqual(held, held_copy);
}

TEST(PlannedRun, RecordsContractionWorkFromActualShapes) {
  ModelBuilder b;
  b.Input("x", onnx::TensorProto::FLOAT, {-1, 64}).Output("y", onnx::TensorProto::FLOAT, {-1, 32});
  b.Initializer("w", std::vector<float>(64 * 32, 0.5f), {64, 32});
  b.Node("MatMul", {"x", "w"}, {"m"});
  b.Node("Relu", {"m"}, {"y"});
  auto s = Load(b.Bytes(), true);
  for (int64_t rows : {8, 3}) {
    std::vector<Value> out;
    ASSERT_TRUE(s->Run(std::vector<Value>{Random({rows, 64}, 1)}, out).ok());
    EXPECT_EQ(s->last_plan_stats().matmul_flops, 2.0 * static_cast<double>(rows) * 32 * 64);  // 2 per MAC
  }
}

// A convolution packs its weights at load and frees them (they arrive absent at run time); its
// work still counts them: 2 * output elements * (C/G * kernel) per batch.
TEST(PlannedRun, RecordsConvolutionWorkAfterItsWeightsAreFreed) {
  ModelBuilder b;
  b.Input("x", onnx::TensorProto::FLOAT, {-1, 4, 8, 8}).Output("y", onnx::TensorProto::FLOAT, {-1, 6, 8, 8});
  b.Initializer("w", std::vector<float>(6 * 4 * 9, 0.25f), {6, 4, 3, 3});
  testing::SetInts(b.Node("Conv", {"x", "w"}, {"y"}), "pads", {1, 1, 1, 1});
  auto s = Load(b.Bytes(), true);
  EXPECT_EQ(s->model().graph->initializers.count("w"), 0u);  // freed once packed
  for (int64_t n : {1, 3}) {
    std::vector<Value> out;
    ASSERT_TRUE(s->Run(std::vector<Value>{Random({n, 4, 8, 8}, 1)}, out).ok());
    EXPECT_EQ(s->last_plan_stats().matmul_flops, 2.0 * static_cast<double>(n) * 6 * 8 * 8 * (4 * 9));
  }
}

TEST(PlannedRun, RecordsFusedAttentionWork) {
  // At -O3 MatMul -> Div -> Softmax -> MatMul becomes one com.strata:Attention; its work is still
  // both products: 2 * (b*h*sq*sk*d + b*h*sq*sk*dv).
  ModelBuilder b;
  b.Input("q", onnx::TensorProto::FLOAT, {1, 2, 5, 8}).Input("kt", onnx::TensorProto::FLOAT, {1, 2, 8, 7});
  b.Input("v", onnx::TensorProto::FLOAT, {1, 2, 7, 4}).Output("y", onnx::TensorProto::FLOAT, {1, 2, 5, 4});
  b.Initializer("c", {2.f}, {});
  b.Node("MatMul", {"q", "kt"}, {"s"});
  b.Node("Div", {"s", "c"}, {"sd"});
  auto& sm = b.Node("Softmax", {"sd"}, {"p"});
  auto* axis = sm.add_attribute();
  axis->set_name("axis");
  axis->set_type(onnx::AttributeProto::INT);
  axis->set_i(-1);
  b.Node("MatMul", {"p", "v"}, {"y"});
  const std::string bytes = b.Bytes();
  auto model = onnx_io::LoadModelFromBytes(bytes.data(), bytes.size());
  ASSERT_TRUE(model.ok()) << model.status().ToString();
  auto s = Session::FromModel(std::move(model).value());
  ASSERT_TRUE(s.ok()) << s.status().ToString();
  int attention = 0;
  for (const auto& n : (*s)->model().graph->nodes) attention += n.op_type == "Attention";
  ASSERT_EQ(attention, 1);
  std::vector<Value> out;
  ASSERT_TRUE((*s)->Run(std::vector<Value>{Random({1, 2, 5, 8}, 1), Random({1, 2, 8, 7}, 2), Random({1, 2, 7, 4}, 3)}, out).ok());
  EXPECT_EQ((*s)->last_plan_stats().matmul_flops, 2.0 * (2 * 5 * 7 * 8 + 2 * 5 * 7 * 4));
}

TEST(PlannedRun, NewInputShapesGetTheirOwnPlan) {
  auto planned = Load(BranchyModel(), true);
  auto heap = Load(BranchyModel(), false);
  for (int64_t rows : {4, 16, 4, 1, 16, 1}) {
    const Tensor x = Random({rows, 64}, static_cast<uint32_t>(rows));
    std::vector<Value> got, want;
    ASSERT_TRUE(planned->Run(std::vector<Value>{x}, got).ok());
    ASSERT_TRUE(heap->Run(std::vector<Value>{x}, want).ok());
    ExpectEqual(got[0].tensor(), want[0].tensor());
    ExpectEqual(got[1].tensor(), want[1].tensor());
  }
}

TEST(PlannedRun, DataDependentShapesFallBackSafely) {
  // NonZero's output size depends on the values, not the input shape: the recorded sizes go stale.
  ModelBuilder b;
  b.Input("x", onnx::TensorProto::FLOAT, {32});
  b.Output("y", onnx::TensorProto::FLOAT, {-1});
  b.Node("Relu", {"x"}, {"a"});
  b.Node("NonZero", {"a"}, {"idx"});
  b.Node("Cast", {"idx"}, {"f"}).add_attribute()->CopyFrom([] {
    onnx::AttributeProto a;
    a.set_name("to");
    a.set_type(onnx::AttributeProto::INT);
    a.set_i(onnx::TensorProto::FLOAT);
    return a;
  }());
  b.Node("Exp", {"f"}, {"e"});
  b.Node("ReduceSum", {"e"}, {"y0"}).add_attribute()->CopyFrom([] {
    onnx::AttributeProto a;
    a.set_name("keepdims");
    a.set_type(onnx::AttributeProto::INT);
    a.set_i(0);
    return a;
  }());
  b.Node("Reshape", {"y0", "minus1"}, {"y"});
  b.Initializer("minus1", {}, {1}).clear_float_data();
  auto& m1 = *b.proto().mutable_graph()->mutable_initializer()->rbegin();
  m1.set_data_type(onnx::TensorProto::INT64);
  m1.add_int64_data(-1);
  auto planned = Load(b.Bytes(), true);
  auto heap = Load(b.Bytes(), false);
  for (uint32_t seed = 0; seed < 8; ++seed) {
    const Tensor x = Random({32}, seed);
    std::vector<Value> got, want;
    ASSERT_TRUE(planned->Run(std::vector<Value>{x}, got).ok());
    ASSERT_TRUE(heap->Run(std::vector<Value>{x}, want).ok());
    ExpectEqual(got[0].tensor(), want[0].tensor());
  }
}

// ---- In place: an output taking over the buffer of an input it is the last reader of ----

// x -> FusedConv+Relu -> a -> Conv -> c -> Relu(Conv(c) + a) -> Conv -> y. At -O3 the residual Add
// fuses into the third Conv, and all activations between the Convs are channels-last.
// `a_read_after` makes a graph output of a + r, so the fused Conv is no longer a's last reader;
// `src_is_residual` makes the third Conv read a as its source too.
std::string ConvResidualModel(bool a_read_after, bool src_is_residual) {
  using testing::SetInts;
  ModelBuilder b;
  b.Input("x", onnx::TensorProto::FLOAT, {2, 8, 9, 9});
  b.Output("y", onnx::TensorProto::FLOAT, {2, 8, 9, 9});
  testing::RandomInit(b, "w1", {8, 8, 3, 3}, 1);
  testing::RandomInit(b, "b1", {8}, 2);
  testing::RandomInit(b, "w2", {8, 8, 1, 1}, 3);
  testing::RandomInit(b, "w3", {8, 8, 3, 3}, 4);
  testing::RandomInit(b, "w4", {8, 8, 1, 1}, 5);
  SetInts(b.Node("Conv", {"x", "w1", "b1"}, {"c1"}), "pads", {1, 1, 1, 1});
  b.Node("Relu", {"c1"}, {"a"});
  b.Node("Conv", {"a", "w2"}, {"c"});
  SetInts(b.Node("Conv", {src_is_residual ? "a" : "c", "w3"}, {"d"}), "pads", {1, 1, 1, 1});
  b.Node("Add", {"d", "a"}, {"s"});
  b.Node("Relu", {"s"}, {"r"});
  b.Node("Conv", {"r", "w4"}, {"y"});
  if (a_read_after) {
    b.Output("z", onnx::TensorProto::FLOAT, {2, 8, 9, 9});
    b.Node("Add", {"r", "a"}, {"z"});
  }
  return b.Bytes();
}

// x -> FusedMatMul(+b1) -> h -> FusedMatMul(Relu) -> g -> FusedMatMul(+ h) -> Transpose -> y.
std::string MatMulResidualModel() {
  ModelBuilder b;
  b.Input("x", onnx::TensorProto::FLOAT, {6, 16});
  b.Output("y", onnx::TensorProto::FLOAT, {16, 6});
  testing::RandomInit(b, "w1", {16, 16}, 1);
  testing::RandomInit(b, "b1", {16}, 2);
  testing::RandomInit(b, "w2", {16, 16}, 3);
  testing::RandomInit(b, "w3", {16, 16}, 4);
  b.Node("MatMul", {"x", "w1"}, {"m1"});
  b.Node("Add", {"m1", "b1"}, {"h"});
  b.Node("MatMul", {"h", "w2"}, {"m2"});
  b.Node("Relu", {"m2"}, {"g"});
  b.Node("MatMul", {"g", "w3"}, {"m3"});
  b.Node("Add", {"m3", "h"}, {"s"});
  testing::SetInts(b.Node("Transpose", {"s"}, {"y"}), "perm", {1, 0});
  return b.Bytes();
}

std::unique_ptr<Session> LoadOptimized(const std::string& bytes, bool plan_memory, int level = 3) {
  auto model = onnx_io::LoadModelFromBytes(bytes.data(), bytes.size());
  EXPECT_TRUE(model.ok()) << model.status().ToString();
  SessionOptions opts;
  opts.plan_memory = plan_memory;
  opts.opt_level = level;
  auto s = Session::FromModel(std::move(model).value(), opts);
  EXPECT_TRUE(s.ok()) << s.status().ToString();
  return std::move(s).value();
}

int CountOp(const Session& s, const std::string& op) {
  int n = 0;
  for (const auto& node : s.model().graph->nodes) n += node.op_type == op;
  return n;
}

// Runs `bytes` planned (the first run records, the rest use the plan) and on the heap on the same
// inputs, expects equal outputs, and returns the planned runs' count of in-place buffers.
int InPlaceBuffersOfPlannedRuns(const std::string& bytes, const Shape& x_shape, int level = 3) {
  auto planned = LoadOptimized(bytes, true, level);
  auto heap = LoadOptimized(bytes, false, level);
  int in_place = -1;
  for (uint32_t seed = 1; seed < 5; ++seed) {
    const Tensor x = Random(x_shape, seed);
    std::vector<Value> got, want;
    EXPECT_TRUE(planned->Run(std::vector<Value>{x}, got).ok());
    EXPECT_TRUE(heap->Run(std::vector<Value>{x}, want).ok());
    for (size_t k = 0; k < want.size(); ++k) ExpectEqual(got[k].tensor(), want[k].tensor());
    const PlanStats st = planned->last_plan_stats();
    if (seed > 1) {
      EXPECT_TRUE(st.planned);
      in_place = st.in_place_buffers;
    }
  }
  return in_place;
}

TEST(InPlace, FusedConvWritesOverTheResidualItReadsLast) {
  const std::string bytes = ConvResidualModel(false, false);
  ASSERT_EQ(CountOp(*LoadOptimized(bytes, true), "FusedConv"), 4);
  for (int level : {2, 3}) {  // NCHW, and channels-last
    EXPECT_EQ(InPlaceBuffersOfPlannedRuns(bytes, {2, 8, 9, 9}, level), 1) << "-O" << level;
  }
}

TEST(InPlace, ConvReferencePathsKeepTheResidualBeforeWritingOverIt) {
  for (int level : {2, 3}) {
    cpu::nn::ForceConvReference(true);
    const int in_place = InPlaceBuffersOfPlannedRuns(ConvResidualModel(false, false), {2, 8, 9, 9}, level);
    cpu::nn::ForceConvReference(false);
    EXPECT_EQ(in_place, 1) << "-O" << level;
  }
}

TEST(InPlace, NotWhenTheResidualIsReadLater) {
  EXPECT_EQ(InPlaceBuffersOfPlannedRuns(ConvResidualModel(true, false), {2, 8, 9, 9}), 0);
}

TEST(InPlace, NotWhenTheResidualIsAlsoTheSource) {
  const std::string bytes = ConvResidualModel(false, true);
  ASSERT_EQ(CountOp(*LoadOptimized(bytes, true), "FusedConv"), 3);  // the second Conv is dead
  EXPECT_EQ(InPlaceBuffersOfPlannedRuns(bytes, {2, 8, 9, 9}), 0);
}

TEST(InPlace, FusedMatMulWritesOverTheResidualItReadsLast) {
  const std::string bytes = MatMulResidualModel();
  ASSERT_EQ(CountOp(*LoadOptimized(bytes, true), "FusedMatMul"), 3);
  EXPECT_EQ(InPlaceBuffersOfPlannedRuns(bytes, {6, 16}), 1);
}

}  // namespace
}  // namespace strata
