// MatMul, FusedMatMul and Gemm with constant weights pack them once at load (oneDNN's blocked layout,
// or Strata's own GEMM's panels on AVX2, which the isa_avx2 CTest pass runs) and free the original initializer (KernelInfo::ReleaseConstantInput). These tests compare
// against double-precision loops, across row counts that change from run to run, and check which
// initializers the session freed.
#include <gtest/gtest.h>

#include <cmath>

#include "passes_test_util.h"

namespace strata::testing {
namespace {

Tensor FloatTensor(const Shape& shape, unsigned seed) {
  Tensor t(DType::kFloat, shape);
  const auto v = Values(t.numel(), seed);
  std::copy(v.begin(), v.end(), t.data<float>());
  return t;
}

// y[r, n] = sum_k a[r, k] * w(k, n), with w(k, n) = w[k*N + n], or w[n*K + k] when `trans`.
std::vector<double> RowsTimes(const float* a, int64_t rows, const std::vector<float>& w, int64_t K, int64_t N, bool trans) {
  std::vector<double> y(static_cast<size_t>(rows * N));
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t n = 0; n < N; ++n) {
      double acc = 0;
      for (int64_t k = 0; k < K; ++k)
        acc += static_cast<double>(a[r * K + k]) * w[static_cast<size_t>(trans ? n * K + k : k * N + n)];
      y[static_cast<size_t>(r * N + n)] = acc;
    }
  return y;
}

void ExpectNear(const Tensor& got, const std::vector<double>& want, double tol = 1e-4) {
  ASSERT_EQ(got.numel(), static_cast<int64_t>(want.size()));
  int bad = 0;
  for (int64_t i = 0; i < got.numel(); ++i) {
    const double w = want[static_cast<size_t>(i)], g = got.data<float>()[i];
    if (!(std::fabs(w - g) <= tol * (1 + std::fabs(w))) && bad++ < 5) ADD_FAILURE() << "element " << i << ": want " << w << ", got " << g;
  }
  EXPECT_EQ(bad, 0);
}

bool HasInitializer(const Session& s, const std::string& name) { return s.model().graph->initializers.count(name) > 0; }

TEST(PackedWeights, MatMulRowsOfAnyLeadingShapeShareThePackedWeights) {
  const int64_t K = 37, N = 130;
  ModelBuilder b;
  b.Input("a", TP::FLOAT, {-1, 5, K}).Output("y", TP::FLOAT, {-1, 5, N});
  const auto w = Values(K * N, 3);
  b.Initializer("w", w, {K, N});
  b.Node("MatMul", {"a", "w"}, {"y"});
  auto s = Session::FromModel(Import(b));
  ASSERT_TRUE(s.ok()) << s.status().ToString();
  EXPECT_FALSE(HasInitializer(**s, "w"));  // packed, then freed
  // New row counts, then one seen before (its primitive is cached).
  for (int64_t batch : {1, 3, 8, 1, 3}) {
    SCOPED_TRACE(batch);
    const Tensor a = FloatTensor({batch, 5, K}, static_cast<unsigned>(batch));
    std::vector<Value> out;
    ASSERT_TRUE((*s)->Run(std::vector<Value>{Value(a)}, out).ok());
    EXPECT_EQ(out[0].tensor().shape(), (Shape{batch, 5, N}));
    ExpectNear(out[0].tensor(), RowsTimes(a.data<float>(), batch * 5, w, K, N, false));
  }
}

TEST(PackedWeights, MatMulVectorTimesMatrix) {
  const int64_t K = 64, N = 3;
  ModelBuilder b;
  b.Input("a", TP::FLOAT, {K}).Output("y", TP::FLOAT, {N});
  const auto w = Values(K * N, 4);
  b.Initializer("w", w, {K, N});
  b.Node("MatMul", {"a", "w"}, {"y"});
  auto s = Session::FromModel(Import(b));
  ASSERT_TRUE(s.ok()) << s.status().ToString();
  const Tensor a = FloatTensor({K}, 9);
  std::vector<Value> out;
  ASSERT_TRUE((*s)->Run(std::vector<Value>{Value(a)}, out).ok());
  EXPECT_EQ(out[0].tensor().shape(), (Shape{N}));
  ExpectNear(out[0].tensor(), RowsTimes(a.data<float>(), 1, w, K, N, false));
}

TEST(PackedWeights, WrongInnerDimensionIsAnErrorNotACrash) {
  ModelBuilder b;
  b.Input("a", TP::FLOAT, {-1, -1}).Output("y", TP::FLOAT, {-1, 6});
  b.Initializer("w", Values(4 * 6, 5), {4, 6});
  b.Node("MatMul", {"a", "w"}, {"y"});
  SessionOptions o;
  o.check_input_shapes = false;
  auto s = Session::FromModel(Import(b), o);
  ASSERT_TRUE(s.ok()) << s.status().ToString();
  std::vector<Value> out;
  const Status st = (*s)->Run(std::vector<Value>{Value(FloatTensor({2, 5}, 1))}, out);
  EXPECT_FALSE(st.ok());
  EXPECT_NE(st.message().find("inner dimensions differ"), std::string::npos) << st.ToString();
}

TEST(PackedWeights, FusedMatMulWithBiasResidualAndActivation) {
  const int64_t K = 48, N = 33;
  ModelBuilder b;
  b.Input("a", TP::FLOAT, {-1, K}).Input("r", TP::FLOAT, {-1, N}).Output("y", TP::FLOAT, {-1, N});
  const auto w = Values(K * N, 6), bias = Values(N, 7);
  b.Initializer("w", w, {K, N});
  b.Initializer("bias", bias, {N});
  b.Node("MatMul", {"a", "w"}, {"m"});
  b.Node("Add", {"m", "bias"}, {"mb"});
  b.Node("Add", {"mb", "r"}, {"s"});
  b.Node("Relu", {"s"}, {"y"});
  auto s = Session::FromModel(Import(b));
  ASSERT_TRUE(s.ok()) << s.status().ToString();
  EXPECT_EQ(Count(CountOps((*s)->model()), "FusedMatMul"), 1);
  EXPECT_FALSE(HasInitializer(**s, "w"));
  EXPECT_TRUE(HasInitializer(**s, "bias"));  // read at run time
  for (int64_t rows : {1, 7, 64}) {
    SCOPED_TRACE(rows);
    const Tensor a = FloatTensor({rows, K}, 11), r = FloatTensor({rows, N}, 12);
    std::vector<Value> out;
    ASSERT_TRUE((*s)->Run(std::vector<Value>{Value(a), Value(r)}, out).ok());
    auto want = RowsTimes(a.data<float>(), rows, w, K, N, false);
    for (int64_t i = 0; i < rows * N; ++i) {
      double& v = want[static_cast<size_t>(i)];
      v = std::max(0.0, v + bias[static_cast<size_t>(i % N)] + r.data<float>()[i]);
    }
    ExpectNear(out[0].tensor(), want);
  }
}

TEST(PackedWeights, GemmTransposedWeightsWithAlphaBetaAndC) {
  const int64_t K = 20, N = 9;
  for (int trans_b : {0, 1}) {
    SCOPED_TRACE(trans_b);
    ModelBuilder b;
    b.Input("a", TP::FLOAT, {3, K}).Output("y", TP::FLOAT, {3, N});
    const auto w = Values(K * N, 13), c = Values(N, 14);
    b.Initializer("w", w, trans_b ? std::vector<int64_t>{N, K} : std::vector<int64_t>{K, N});
    b.Initializer("c", c, {N});
    auto& n = b.Node("Gemm", {"a", "w", "c"}, {"y"});
    SetInt(n, "transB", trans_b);
    SetFloat(n, "alpha", 0.5f);
    SetFloat(n, "beta", 2.f);
    SessionOptions o;
    o.opt_level = 0;
    auto s = Session::FromModel(Import(b), o);
    ASSERT_TRUE(s.ok()) << s.status().ToString();
    EXPECT_FALSE(HasInitializer(**s, "w"));
    const Tensor a = FloatTensor({3, K}, 15);
    std::vector<Value> out;
    ASSERT_TRUE((*s)->Run(std::vector<Value>{Value(a)}, out).ok());
    auto want = RowsTimes(a.data<float>(), 3, w, K, N, trans_b);
    for (size_t i = 0; i < want.size(); ++i) want[i] = 0.5 * want[i] + 2.0 * c[i % N];
    ExpectNear(out[0].tensor(), want);
  }
}

// Residuals of more than 64K elements are placed in the destination on all threads (ParallelCopy),
// and Gemm's beta*C + residual is formed in parallel too: every element must still come out right.
TEST(PackedWeights, LargeResidualsSplitAcrossThreads) {
  const int64_t K = 16, N = 33, rows = 2100;  // rows * N > 64K
  for (bool gemm : {false, true}) {
    SCOPED_TRACE(gemm ? "FusedGemm" : "FusedMatMul");
    ModelBuilder b;
    b.Input("a", TP::FLOAT, {rows, K}).Input("r", TP::FLOAT, {rows, N}).Output("y", TP::FLOAT, {rows, N});
    const auto w = Values(K * N, 21), c = Values(N, 22);
    b.Initializer("w", w, {K, N});
    if (gemm) {
      b.Initializer("c", c, {N});
      SetFloat(b.Node("Gemm", {"a", "w", "c"}, {"m"}), "beta", 2.f);
    } else {
      b.Node("MatMul", {"a", "w"}, {"m"});
    }
    b.Node("Add", {"m", "r"}, {"y"});
    SessionOptions o;
    o.num_threads = 2;
    auto s = Session::FromModel(Import(b), o);
    ASSERT_TRUE(s.ok()) << s.status().ToString();
    EXPECT_EQ(Count(CountOps((*s)->model()), gemm ? "FusedGemm" : "FusedMatMul"), 1);
    const Tensor a = FloatTensor({rows, K}, 23), r = FloatTensor({rows, N}, 24);
    std::vector<Value> out;
    ASSERT_TRUE((*s)->Run(std::vector<Value>{Value(a), Value(r)}, out).ok());
    auto want = RowsTimes(a.data<float>(), rows, w, K, N, false);
    for (int64_t i = 0; i < rows * N; ++i)
      want[static_cast<size_t>(i)] += (gemm ? 2.0 * c[static_cast<size_t>(i % N)] : 0.0) + r.data<float>()[i];
    ExpectNear(out[0].tensor(), want);
  }
}

TEST(PackedWeights, WeightsOtherReadersNeedAreKept) {
  const int64_t K = 6, N = 6;
  ModelBuilder b;
  b.Input("a", TP::FLOAT, {2, K}).Output("y", TP::FLOAT, {2, N}).Output("z", TP::FLOAT, {K, N});
  b.Output("w2", TP::FLOAT, {K, N});
  const auto w = Values(K * N, 21), w2 = Values(K * N, 22);
  b.Initializer("w", w, {K, N});
  b.Initializer("w2", w2, {K, N});
  b.Node("MatMul", {"a", "w"}, {"m"});
  b.Node("MatMul", {"m", "w2"}, {"y"});
  b.Node("Add", {"w", "w"}, {"z"});  // a reader that does not pack
  SessionOptions o;
  o.opt_level = 0;
  auto s = Session::FromModel(Import(b), o);
  ASSERT_TRUE(s.ok()) << s.status().ToString();
  EXPECT_TRUE(HasInitializer(**s, "w"));
  EXPECT_TRUE(HasInitializer(**s, "w2"));  // a graph output
  const Tensor a = FloatTensor({2, K}, 23);
  std::vector<Value> out;
  ASSERT_TRUE((*s)->Run(std::vector<Value>{Value(a)}, out).ok());
  const auto m = RowsTimes(a.data<float>(), 2, w, K, N, false);
  std::vector<float> mf(m.begin(), m.end());
  ExpectNear(out[0].tensor(), RowsTimes(mf.data(), 2, w2, K, N, false));
  std::vector<double> z(w.begin(), w.end());
  for (double& v : z) v *= 2;
  ExpectNear(out[1].tensor(), z);
  ExpectNear(out[2].tensor(), std::vector<double>(w2.begin(), w2.end()), 0);
}

}  // namespace
}  // namespace strata::testing
