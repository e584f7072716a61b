// Counts heap allocations made by steady-state runs. The executable defines malloc and friends, which
// the dynamic linker binds for every library in the process (libstdc++, oneDNN, libgomp), and
// forwards them to glibc's own entry points, counting while a run is being measured.
#include <gtest/gtest.h>
#include <malloc.h>

#include <dlfcn.h>
#include <execinfo.h>

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>

#include "onnx/importer.h"
#include "runtime/session.h"
#include "test_model_builder.h"

extern "C" {
void* __libc_malloc(size_t);
void* __libc_calloc(size_t, size_t);
void* __libc_realloc(void*, size_t);
void* __libc_memalign(size_t, size_t);
void __libc_free(void*);
}

namespace {
std::atomic<bool> counting{false};
std::atomic<long> allocations{0};
// Every counted allocation's call stack, to tell Strata's own allocations from those oneDNN 2.6
// makes inside dnnl_primitive_execute (it builds an argument map per call, which no caller can avoid).
constexpr int kTraceDepth = 24, kMaxTraces = 4096;
void* traces[kMaxTraces][kTraceDepth];
int trace_depth[kMaxTraces];
std::atomic<int> num_traces{0};
inline void Count() {
  if (!counting.load(std::memory_order_relaxed)) return;
  allocations.fetch_add(1, std::memory_order_relaxed);
  counting = false;  // backtrace itself must not recurse into the count
  const int i = num_traces.fetch_add(1);
  if (i < kMaxTraces) trace_depth[i] = backtrace(traces[i], kTraceDepth);
  counting = true;
}
bool InsideOneDnnExecute(int i) {
  for (int f = 0; f < trace_depth[i]; ++f) {
    Dl_info info{};
    if (dladdr(traces[i][f], &info) && info.dli_sname && std::strcmp(info.dli_sname, "dnnl_primitive_execute") == 0)
      return true;
  }
  return false;
}
}  // namespace

extern "C" {
void* malloc(size_t n) {
  Count();
  return __libc_malloc(n);
}
void* calloc(size_t n, size_t m) {
  Count();
  return __libc_calloc(n, m);
}
void* realloc(void* p, size_t n) {
  Count();
  return __libc_realloc(p, n);
}
void free(void* p) { __libc_free(p); }
void* memalign(size_t a, size_t n) {
  Count();
  return __libc_memalign(a, n);
}
void* aligned_alloc(size_t a, size_t n) {
  Count();
  return __libc_memalign(a, n);
}
int posix_memalign(void** out, size_t a, size_t n) {
  Count();
  void* p = __libc_memalign(a, n);
  if (!p) return ENOMEM;
  *out = p;
  return 0;
}
}

namespace strata {
namespace {

using testing::ModelBuilder;

onnx::AttributeProto IntAttr(const std::string& name, int64_t v) {
  onnx::AttributeProto a;
  a.set_name(name);
  a.set_type(onnx::AttributeProto::INT);
  a.set_i(v);
  return a;
}

std::vector<float> RandomValues(size_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> u(-0.5f, 0.5f);
  std::vector<float> v(n);
  for (auto& x : v) x = u(rng);
  return v;
}

struct SteadyState {
  long strata = 0;  // per run, made by Strata's code (including calls it makes into libraries)
  long onednn_execute = 0;  // per run, made inside oneDNN's primitive execution
};

// Heap allocations per run once the plan for these input shapes exists. The caller passes its
// output vector back each time, as a serving loop does. STRATA_ALLOC_TRACE=1 prints Strata's.
SteadyState AllocationsPerSteadyRun(const std::string& bytes, const std::vector<Value>& inputs, int threads) {
  auto model = onnx_io::LoadModelFromBytes(bytes.data(), bytes.size());
  EXPECT_TRUE(model.ok()) << model.status().ToString();
  SessionOptions opts;
  opts.num_threads = threads;
  auto session = Session::FromModel(std::move(model).value(), opts);
  EXPECT_TRUE(session.ok()) << session.status().ToString();
  std::vector<Value> outputs;
  for (int i = 0; i < 3; ++i) EXPECT_TRUE((*session)->Run(inputs, outputs).ok());
  constexpr int kRuns = 10;
  void* warm[4];
  backtrace(warm, 4);  // loads the unwinder before counting starts
  allocations = 0;
  num_traces = 0;
  counting = true;
  for (int i = 0; i < kRuns; ++i) (void)(*session)->Run(inputs, outputs);
  counting = false;
  EXPECT_TRUE((*session)->last_plan_stats().planned);
  SteadyState r;
  const int traced = std::min(num_traces.load(), kMaxTraces);
  EXPECT_EQ(traced, allocations.load()) << "trace buffer too small";
  for (int i = 0; i < traced; ++i) {
    if (InsideOneDnnExecute(i)) {
      ++r.onednn_execute;
      continue;
    }
    ++r.strata;
    if (std::getenv("STRATA_ALLOC_TRACE")) {
      std::fprintf(stderr, "allocation %d:\n", i);
      backtrace_symbols_fd(traces[i] + 2, trace_depth[i] - 2, 2);
    }
  }
  r.strata /= kRuns;
  r.onednn_execute /= kRuns;
  std::printf("steady state: %ld allocations per run by Strata, %ld inside oneDNN primitive execution\n", r.strata,
              r.onednn_execute);
  return r;
}

Tensor RandomTensor(const Shape& shape, uint32_t seed) {
  Tensor t(DType::kFloat, shape);
  const auto v = RandomValues(static_cast<size_t>(t.numel()), seed);
  std::copy(v.begin(), v.end(), t.data<float>());
  return t;
}

TEST(SteadyStateAllocations, Mlp) {
  ModelBuilder b;
  b.Input("x", onnx::TensorProto::FLOAT, {-1, 64}).Output("y", onnx::TensorProto::FLOAT, {-1, 10});
  b.Initializer("w1", RandomValues(64 * 128, 1), {128, 64});
  b.Initializer("b1", RandomValues(128, 2), {128});
  b.Initializer("w2", RandomValues(128 * 10, 3), {10, 128});
  b.Initializer("b2", RandomValues(10, 4), {10});
  b.Node("Gemm", {"x", "w1", "b1"}, {"h"}).add_attribute()->CopyFrom(IntAttr("transB", 1));
  b.Node("Relu", {"h"}, {"r"});
  b.Node("Gemm", {"r", "w2", "b2"}, {"y"}).add_attribute()->CopyFrom(IntAttr("transB", 1));
  const SteadyState n = AllocationsPerSteadyRun(b.Bytes(), {Value(RandomTensor({1, 64}, 5))}, 1);
  EXPECT_EQ(n.strata, 0) << "heap allocations per steady-state run (STRATA_ALLOC_TRACE=1 shows where)";
}

onnx::AttributeProto IntsAttr(const std::string& name, const std::vector<int64_t>& v) {
  onnx::AttributeProto a;
  a.set_name(name);
  a.set_type(onnx::AttributeProto::INTS);
  for (int64_t x : v) a.add_ints(x);
  return a;
}

TEST(SteadyStateAllocations, SmallCnn) {
  ModelBuilder b;
  b.Input("x", onnx::TensorProto::FLOAT, {1, 8, -1, -1}).Output("y", onnx::TensorProto::FLOAT, {1, 4});
  b.Initializer("w1", RandomValues(16 * 8 * 9, 1), {16, 8, 3, 3});
  b.Initializer("b1", RandomValues(16, 2), {16});
  b.Initializer("w2", RandomValues(16 * 16, 3), {16, 16, 1, 1});
  b.Initializer("fc", RandomValues(16 * 4, 4), {16, 4});
  b.Node("Conv", {"x", "w1", "b1"}, {"c1"}).add_attribute()->CopyFrom(IntsAttr("pads", {1, 1, 1, 1}));
  b.Node("Relu", {"c1"}, {"r1"});
  b.Node("Conv", {"r1", "w2"}, {"c2"});
  b.Node("Add", {"c2", "r1"}, {"s"});
  b.Node("Clip", {"s"}, {"k"});
  b.Node("GlobalAveragePool", {"k"}, {"g"});
  b.Node("Flatten", {"g"}, {"f"});
  b.Node("MatMul", {"f", "fc"}, {"y"});
  // 16x16 images keep every step below the serial threshold; 64x64 ones run the big steps on 2 threads.
  for (auto [hw, threads] : {std::pair<int64_t, int>{16, 1}, {64, 2}}) {
    const SteadyState n = AllocationsPerSteadyRun(b.Bytes(), {Value(RandomTensor({1, 8, hw, hw}, 5))}, threads);
    EXPECT_EQ(n.strata, 0) << "heap allocations per steady-state run at " << threads
                           << " threads (STRATA_ALLOC_TRACE=1 shows where)";
  }
}

// A 3x3 convolution between channels-last ones runs on oneDNN's Winograd kernel at 1 and 2 threads
// (with a residual, and channel counts that are not whole 16-channel blocks); Strata converts its
// blocked activations itself because oneDNN's reorders allocate on their worker threads.
TEST(SteadyStateAllocations, WinogradBetweenChannelsLastConvolutions) {
  ModelBuilder b;
  b.Input("x", onnx::TensorProto::FLOAT, {1, 24, 32, 32}).Output("y", onnx::TensorProto::FLOAT, {1, 24, 32, 32});
  b.Initializer("w1", RandomValues(24 * 24, 1), {24, 24, 1, 1});
  b.Initializer("w2", RandomValues(24 * 24 * 9, 2), {24, 24, 3, 3});
  b.Initializer("b2", RandomValues(24, 3), {24});
  b.Initializer("w3", RandomValues(24 * 24, 4), {24, 24, 1, 1});
  b.Node("Conv", {"x", "w1"}, {"c1"});
  b.Node("Relu", {"c1"}, {"r1"});
  b.Node("Conv", {"r1", "w2", "b2"}, {"c2"}).add_attribute()->CopyFrom(IntsAttr("pads", {1, 1, 1, 1}));
  b.Node("Add", {"c2", "r1"}, {"s"});
  b.Node("Relu", {"s"}, {"r2"});
  b.Node("Conv", {"r2", "w3"}, {"y"});
  for (int threads : {1, 2}) {
    const SteadyState n = AllocationsPerSteadyRun(b.Bytes(), {Value(RandomTensor({1, 24, 32, 32}, 5))}, threads);
    EXPECT_EQ(n.strata, 0) << "heap allocations per steady-state run at " << threads
                           << " threads (STRATA_ALLOC_TRACE=1 shows where)";
  }
}

TEST(SteadyStateAllocations, AttentionBlock) {
  // Scores = softmax(q k^T / 8), context = scores v, then a decomposed layer norm.
  ModelBuilder b;
  b.Input("x", onnx::TensorProto::FLOAT, {1, 16, 32}).Output("y", onnx::TensorProto::FLOAT, {1, 16, 32});
  b.Initializer("wq", RandomValues(32 * 32, 1), {32, 32});
  b.Initializer("wk", RandomValues(32 * 32, 2), {32, 32});
  b.Initializer("wv", RandomValues(32 * 32, 3), {32, 32});
  b.Initializer("scale", {0.125f}, {});
  b.Initializer("eps", {1e-5f}, {});
  b.Node("MatMul", {"x", "wq"}, {"q"});
  b.Node("MatMul", {"x", "wk"}, {"k"});
  b.Node("MatMul", {"x", "wv"}, {"v"});
  b.Node("Transpose", {"k"}, {"kt"}).add_attribute()->CopyFrom(IntsAttr("perm", {0, 2, 1}));
  b.Node("MatMul", {"q", "kt"}, {"qk"});
  b.Node("Mul", {"qk", "scale"}, {"qks"});
  b.Node("Softmax", {"qks"}, {"p"}).add_attribute()->CopyFrom(IntAttr("axis", -1));
  b.Node("MatMul", {"p", "v"}, {"ctx"});
  b.Node("Add", {"ctx", "x"}, {"h"});
  b.Node("ReduceMean", {"h"}, {"mu"}).add_attribute()->CopyFrom(IntsAttr("axes", {-1}));
  b.Node("Sub", {"h", "mu"}, {"d"});
  b.Node("Mul", {"d", "d"}, {"d2"});
  b.Node("ReduceMean", {"d2"}, {"var"}).add_attribute()->CopyFrom(IntsAttr("axes", {-1}));
  b.Node("Add", {"var", "eps"}, {"ve"});
  b.Node("Sqrt", {"ve"}, {"sd"});
  b.Node("Div", {"d", "sd"}, {"y"});
  const SteadyState n = AllocationsPerSteadyRun(b.Bytes(), {Value(RandomTensor({1, 16, 32}, 5))}, 1);
  EXPECT_EQ(n.strata, 0) << "heap allocations per steady-state run (STRATA_ALLOC_TRACE=1 shows where)";
}

onnx::TensorProto& IntInit(testing::ModelBuilder& b, const std::string& name, const std::vector<int64_t>& v,
                           const std::vector<int64_t>& dims) {
  auto* t = b.proto().mutable_graph()->add_initializer();
  t->set_name(name);
  t->set_data_type(onnx::TensorProto::INT64);
  for (auto d : dims) t->add_dims(d);
  for (auto x : v) t->add_int64_data(x);
  return *t;
}
TEST(SteadyStateAllocations, LayerNormalization) {
  ModelBuilder b(17);
  b.Input("x", onnx::TensorProto::FLOAT, {2, 16, 64}).Output("y", onnx::TensorProto::FLOAT, {2, 16, 64});
  b.Initializer("gamma", RandomValues(64, 1), {64});
  b.Initializer("beta", RandomValues(64, 2), {64});
  b.Node("LayerNormalization", {"x", "gamma", "beta"}, {"y"});
  const SteadyState n = AllocationsPerSteadyRun(b.Bytes(), {Value(RandomTensor({2, 16, 64}, 5))}, 1);
  EXPECT_EQ(n.strata, 0) << "heap allocations per steady-state run (STRATA_ALLOC_TRACE=1 shows where)";
}

// Shape computations, views and copies as transformer exports use them.
TEST(SteadyStateAllocations, DataMovementOps) {
  testing::ModelBuilder b;
  b.Input("x", onnx::TensorProto::FLOAT, {-1, 16, 64}).Input("ids", onnx::TensorProto::INT64, {-1, 16});
  b.Output("y", onnx::TensorProto::FLOAT, {-1, -1, -1, -1}).Output("e", onnx::TensorProto::FLOAT, {-1, -1, -1});
  b.Output("z", onnx::TensorProto::FLOAT, {-1, -1, -1}).Output("w", onnx::TensorProto::FLOAT, {-1, -1, -1, -1});
  b.Initializer("emb", std::vector<float>(100 * 64, 0.5f), {100, 64});
  IntInit(b, "i0", {0}, {});
  IntInit(b, "i1", {1}, {});
  IntInit(b, "ax0", {0}, {1});
  IntInit(b, "c4", {4}, {1});
  IntInit(b, "c16", {16}, {1});
  IntInit(b, "st", {0}, {1});
  IntInit(b, "en", {8}, {1});
  IntInit(b, "sax", {2}, {1});
  IntInit(b, "sq", {1}, {1});
  IntInit(b, "exs", {2, 1, 1, 1}, {4});
  b.Node("Shape", {"x"}, {"s"});
  b.Node("Gather", {"s", "i0"}, {"bsz"});
  b.Node("Gather", {"s", "i1"}, {"len"});
  b.Node("Unsqueeze", {"bsz", "ax0"}, {"bu"});
  b.Node("Unsqueeze", {"len", "ax0"}, {"lu"});
  b.Node("Concat", {"bu", "lu", "c4", "c16"}, {"ns"}).add_attribute()->CopyFrom(IntAttr("axis", 0));
  b.Node("Reshape", {"x", "ns"}, {"r"});
  b.Node("Transpose", {"r"}, {"t"}).add_attribute()->CopyFrom(IntsAttr("perm", {0, 2, 1, 3}));
  b.Node("Slice", {"t", "st", "en", "sax"}, {"sl"});
  b.Node("Expand", {"sl", "exs"}, {"w"});
  b.Node("Gather", {"emb", "ids"}, {"e"});
  b.Node("Unsqueeze", {"e", "ax0"}, {"eu"});
  b.Node("Squeeze", {"eu", "ax0"}, {"es"});
  b.Node("Split", {"es"}, {"z", "z2"}).add_attribute()->CopyFrom(IntAttr("axis", 2));
  b.Node("Identity", {"t"}, {"y"});
  Tensor ids(DType::kInt64, {1, 16});
  for (int i = 0; i < 16; ++i) ids.data<int64_t>()[i] = i * 3;
  const SteadyState n = AllocationsPerSteadyRun(b.Bytes(), {Value(RandomTensor({1, 16, 64}, 5)), Value(ids)}, 1);
  EXPECT_EQ(n.strata, 0) << "heap allocations per steady-state run (STRATA_ALLOC_TRACE=1 shows where)";
}
// Elementwise chains that -O3 fuses into com.strata FusedElementwise: an attention mask built from an
// int64 input, broadcast adds, and a Where on a bool mask (the kernel's per-thread registers are
// allocated once, in the warm-up runs).
TEST(SteadyStateAllocations, FusedElementwiseChains) {
  testing::ModelBuilder b;
  b.Input("s", onnx::TensorProto::FLOAT, {2, 4, 64, 64}).Input("m", onnx::TensorProto::INT64, {2, 1, 1, 64});
  b.Input("c", onnx::TensorProto::BOOL, {1, 1, 64, 64}).Output("y", onnx::TensorProto::FLOAT, {2, 4, 64, 64});
  b.Initializer("one", {1.f}, {});
  b.Initializer("big", {-10000.f}, {});
  b.Initializer("eight", {8.f}, {});
  b.Initializer("low", {-1e30f}, {});
  b.Node("Cast", {"m"}, {"mf"}).add_attribute()->CopyFrom(IntAttr("to", onnx::TensorProto::FLOAT));
  b.Node("Sub", {"one", "mf"}, {"inv"});
  b.Node("Mul", {"inv", "big"}, {"mask"});
  b.Node("Div", {"s", "eight"}, {"d"});
  b.Node("Add", {"d", "mask"}, {"a"});
  b.Node("Not", {"c"}, {"nc"});
  b.Node("Where", {"nc", "low", "a"}, {"w"});
  b.Node("Tanh", {"w"}, {"y"});
  Tensor m(DType::kInt64, {2, 1, 1, 64});
  for (int i = 0; i < 128; ++i) m.data<int64_t>()[i] = i % 5 != 0;
  Tensor c(DType::kBool, {1, 1, 64, 64});
  for (int i = 0; i < 64 * 64; ++i) c.data<bool>()[i] = i % 64 <= i / 64;
  for (int threads : {1, 2}) {
    const SteadyState n =
        AllocationsPerSteadyRun(b.Bytes(), {Value(RandomTensor({2, 4, 64, 64}, 5)), Value(m), Value(c)}, threads);
    EXPECT_EQ(n.strata, 0) << "heap allocations per steady-state run at " << threads
                           << " threads (STRATA_ALLOC_TRACE=1 shows where)";
  }
}

// The BERT attention pattern (fused into com.strata:Attention at -O3), large enough to run on two
// threads: per-thread scratch must be reused, not reallocated, once it has grown.
TEST(SteadyStateAllocations, MultiHeadAttention) {
  ModelBuilder b;
  b.Input("q", onnx::TensorProto::FLOAT, {1, 64, 128}).Input("k", onnx::TensorProto::FLOAT, {1, 64, 128});
  b.Input("v", onnx::TensorProto::FLOAT, {1, 64, 128}).Input("mask", onnx::TensorProto::FLOAT, {1, 1, 1, 64});
  b.Output("y", onnx::TensorProto::FLOAT, {1, 64, 128});
  IntInit(b, "split", {1, 64, 4, 32}, {4});
  IntInit(b, "merge", {1, 64, 128}, {3});
  b.Initializer("c", {5.65685f}, {});
  b.Node("Reshape", {"q", "split"}, {"q4"});
  b.Node("Transpose", {"q4"}, {"qt"}).add_attribute()->CopyFrom(IntsAttr("perm", {0, 2, 1, 3}));
  b.Node("Reshape", {"k", "split"}, {"k4"});
  b.Node("Transpose", {"k4"}, {"kt"}).add_attribute()->CopyFrom(IntsAttr("perm", {0, 2, 3, 1}));
  b.Node("Reshape", {"v", "split"}, {"v4"});
  b.Node("Transpose", {"v4"}, {"vt"}).add_attribute()->CopyFrom(IntsAttr("perm", {0, 2, 1, 3}));
  b.Node("MatMul", {"qt", "kt"}, {"s"});
  b.Node("Div", {"s", "c"}, {"sd"});
  b.Node("Add", {"sd", "mask"}, {"sm"});
  b.Node("Softmax", {"sm"}, {"p"}).add_attribute()->CopyFrom(IntAttr("axis", -1));
  b.Node("MatMul", {"p", "vt"}, {"o"});
  b.Node("Transpose", {"o"}, {"ot"}).add_attribute()->CopyFrom(IntsAttr("perm", {0, 2, 1, 3}));
  b.Node("Reshape", {"ot", "merge"}, {"y"});
  const std::vector<Value> in = {Value(RandomTensor({1, 64, 128}, 1)), Value(RandomTensor({1, 64, 128}, 2)),
                                 Value(RandomTensor({1, 64, 128}, 3)), Value(RandomTensor({1, 1, 1, 64}, 4))};
  for (int threads : {1, 2}) {
    const SteadyState n = AllocationsPerSteadyRun(b.Bytes(), in, threads);
    EXPECT_EQ(n.strata, 0) << "heap allocations per steady-state run at " << threads
                           << " threads (STRATA_ALLOC_TRACE=1 shows where)";
    EXPECT_EQ(n.onednn_execute, 0) << "the fused kernel does not call oneDNN";
  }
}
}  // namespace
}  // namespace strata
