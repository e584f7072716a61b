// Threading behaviour that users notice: idle CPU between requests.
#include <gtest/gtest.h>
#include <sys/resource.h>

#include <omp.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <thread>

#include "kernels/cpu/common.h"
#include "onnx/importer.h"
#include "runtime/kernel.h"
#include "runtime/session.h"
#include "runtime/threading.h"
#include "test_model_builder.h"

namespace strata {
namespace {

double ProcessCpuSeconds() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  return static_cast<double>(u.ru_utime.tv_sec + u.ru_stime.tv_sec) +
         1e-6 * static_cast<double>(u.ru_utime.tv_usec + u.ru_stime.tv_usec);
}

// After a burst of multi-threaded runs, the worker threads may spin briefly, then must sleep:
// an idle server should not burn a core (ONNX Runtime's most-reported complaint).
TEST(Threading, IdleRuntimeUsesAlmostNoCpu) {
  testing::ModelBuilder b;
  b.Input("a", onnx::TensorProto::FLOAT, {256, 256}).Output("y", onnx::TensorProto::FLOAT, {256, 256});
  b.Node("MatMul", {"a", "a"}, {"m"});
  b.Node("Relu", {"m"}, {"y"});
  const std::string bytes = b.Bytes();
  auto model = onnx_io::LoadModelFromBytes(bytes.data(), bytes.size());
  ASSERT_TRUE(model.ok());
  SessionOptions opts;
  opts.num_threads = 2;
  auto session = Session::FromModel(std::move(model).value(), opts);
  ASSERT_TRUE(session.ok()) << session.status().ToString();
  Tensor a(DType::kFloat, {256, 256});
  for (int64_t i = 0; i < a.numel(); ++i) a.data<float>()[i] = static_cast<float>(i % 7) * 0.01f;
  std::vector<Value> out;
  for (int i = 0; i < 20; ++i) ASSERT_TRUE((*session)->Run(std::vector<Value>{a}, out).ok());

  std::this_thread::sleep_for(std::chrono::milliseconds(50));  // the brief spin may end here
  const double cpu0 = ProcessCpuSeconds();
  const auto t0 = std::chrono::steady_clock::now();
  std::this_thread::sleep_for(std::chrono::milliseconds(500));
  const double wall = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  const double share = (ProcessCpuSeconds() - cpu0) / wall;
  EXPECT_LT(share, 0.01) << "idle process used " << share * 100 << "% of a core";
}

// Records how many threads a parallel region would get while the kernel runs.
std::atomic<int> probed_threads{0};
class ThreadProbeKernel final : public OpKernel {
 public:
  Status Init(const KernelInfo&) { return Status::Ok(); }
  Status Compute(KernelContext& ctx) override {
    probed_threads = omp_get_max_threads();
    ctx.SetOutput(0, ctx.input(0));
    return Status::Ok();
  }
};
const KernelRegistrar kProbe{{.op_type = "ThreadProbe", .domain = "test.strata", .factory = MakeKernel<ThreadProbeKernel>}};

// Runs out of scratch memory on a worker thread of a parallel loop, as a kernel whose ThreadScratch
// returns null does.
class OutOfScratchKernel final : public OpKernel {
 public:
  Status Init(const KernelInfo&) { return Status::Ok(); }
  Status Compute(KernelContext& ctx) override {
    cpu::ParallelFor(1 << 20, [](int64_t begin, int64_t) {
      if (begin > 0) throw std::bad_alloc();
    }, /*threshold=*/2);
    ctx.SetOutput(0, ctx.input(0));
    return Status::Ok();
  }
};
const KernelRegistrar kOutOfScratch{
    {.op_type = "OutOfScratch", .domain = "test.strata", .factory = MakeKernel<OutOfScratchKernel>}};

// Runs the one-node model `op` (domain test.strata) on `elements` floats at 2 threads.
Status RunTestOp(const std::string& op, int64_t elements) {
  testing::ModelBuilder b;
  b.Input("x", onnx::TensorProto::FLOAT, {elements}).Output("y", onnx::TensorProto::FLOAT, {elements});
  auto* imp = b.proto().add_opset_import();
  imp->set_domain("test.strata");
  imp->set_version(1);
  b.Node(op, {"x"}, {"y"}).set_domain("test.strata");
  const std::string bytes = b.Bytes();
  auto model = onnx_io::LoadModelFromBytes(bytes.data(), bytes.size());
  if (!model.ok()) return model.status();
  SessionOptions opts;
  opts.num_threads = 2;
  auto session = Session::FromModel(std::move(model).value(), opts);
  if (!session.ok()) return session.status();
  std::vector<Value> out;
  return (*session)->Run(std::vector<Value>{Tensor(DType::kFloat, {elements})}, out);
}

int ThreadsSeenFor(int64_t elements) {
  probed_threads = 0;
  const Status st = RunTestOp("ThreadProbe", elements);
  EXPECT_TRUE(st.ok()) << st.ToString();
  return probed_threads;
}

// Running out of memory inside a parallel loop is an error naming the node, not the end of the
// process (an exception escaping an OpenMP region calls std::terminate).
TEST(Threading, OutOfMemoryOnAWorkerThreadIsAnError) {
  const Status st = RunTestOp("OutOfScratch", kSerialWorkElements);  // large enough for both threads
  ASSERT_FALSE(st.ok());
  EXPECT_NE(st.message().find("out of memory"), std::string::npos) << st.ToString();
  EXPECT_NE(st.message().find("OutOfScratch"), std::string::npos) << st.ToString();
}

// Waking the other threads costs more than small ops take, so those run on the calling thread.
TEST(Threading, SmallStepsRunOnOneThreadAndLargeOnesGetThePool) {
  EXPECT_EQ(ThreadsSeenFor(16), 1);
  EXPECT_EQ(ThreadsSeenFor(kSerialWorkElements - 1), 1);
  EXPECT_EQ(ThreadsSeenFor(kSerialWorkElements), 2);
  EXPECT_EQ(omp_get_max_threads(), 2);  // restored after the small step
}

// Session::Run may be called from several threads at once. Kernels with state (here a seeded random
// engine) must keep each run's use of it whole: every run's output must be one that a sequential
// run of the same session produces.
TEST(Threading, ConcurrentRunsKeepStatefulKernelsConsistent) {
  testing::ModelBuilder b;
  b.Output("y", onnx::TensorProto::FLOAT, {50000});
  auto& n = b.Node("RandomUniform", {}, {"y"});
  auto* seed = n.add_attribute();
  seed->set_name("seed");
  seed->set_type(onnx::AttributeProto::FLOAT);
  seed->set_f(7.f);
  auto* shape = n.add_attribute();
  shape->set_name("shape");
  shape->set_type(onnx::AttributeProto::INTS);
  shape->add_ints(50000);
  auto load = [&] {
    const std::string bytes = b.Bytes();
    auto model = onnx_io::LoadModelFromBytes(bytes.data(), bytes.size());
    EXPECT_TRUE(model.ok()) << model.status().ToString();
    SessionOptions opts;
    opts.num_threads = 1;
    auto s = Session::FromModel(std::move(model).value(), opts);
    EXPECT_TRUE(s.ok()) << s.status().ToString();
    return std::move(s).value();
  };
  constexpr int kRunsPerThread = 40;
  auto as_vector = [](const Value& v) {
    const Tensor& t = v.tensor();
    return std::vector<float>(t.data<float>(), t.data<float>() + t.numel());
  };
  std::vector<std::vector<float>> sequential;
  auto reference = load();
  for (int i = 0; i < 2 * kRunsPerThread; ++i) {
    std::vector<Value> out;
    ASSERT_TRUE(reference->Run({}, out).ok());
    sequential.push_back(as_vector(out[0]));
  }
  auto shared = load();
  std::vector<std::vector<float>> got[2];
  std::thread workers[2];
  for (int w = 0; w < 2; ++w)
    workers[w] = std::thread([&, w] {
      for (int i = 0; i < kRunsPerThread; ++i) {
        std::vector<Value> out;
        if (shared->Run({}, out).ok()) got[w].push_back(as_vector(out[0]));
      }
    });
  for (auto& t : workers) t.join();
  std::vector<std::vector<float>> concurrent = got[0];
  concurrent.insert(concurrent.end(), got[1].begin(), got[1].end());
  std::sort(sequential.begin(), sequential.end());
  std::sort(concurrent.begin(), concurrent.end());
  EXPECT_TRUE(concurrent == sequential) << "some concurrent run drew an interleaved random sequence";
}

}  // namespace
}  // namespace strata
