// uk::GemmF32 (Strata's AVX2 GEMM) against a double-precision reference, across row, column and K
// tails (K past one 256 step), alpha/beta, bias and a tile epilogue, at 1 and 2 threads; and the
// batch invariance it promises: a row's bits do not depend on M or the thread count.
#include <gtest/gtest.h>
#include <omp.h>

#include <atomic>
#include <cmath>
#include <optional>
#include <vector>

#include "isa_scope.h"
#include "passes_test_util.h"
#include "kernels/cpu/ukernels/gemm_f32.h"
#include "kernels/cpu/ukernels/packed_gemm_f32.h"

namespace strata::testing {
namespace {

using cpu::uk::GemmF32Args;

class GemmF32Test : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!cpu::vec::KernelsFor(cpu::vec::Isa::kAvx2)) GTEST_SKIP() << "this CPU has no AVX2";
    scope_.emplace(cpu::vec::Isa::kAvx2);
    ASSERT_TRUE(cpu::uk::GemmF32Available());
    saved_threads_ = omp_get_max_threads();
  }
  void TearDown() override { omp_set_num_threads(saved_threads_); }

  std::optional<IsaScope> scope_;
  int saved_threads_ = 1;
};

// The epilogue used below: y = max(y, 0) on the tile, counting the elements it saw.
struct ReluCount {
  mutable std::atomic<int64_t> seen{0};
  static void Apply(const void* ctx, float* c, int64_t ldc, int64_t rows, int64_t cols) {
    for (int64_t r = 0; r < rows; ++r)
      for (int64_t j = 0; j < cols; ++j) c[r * ldc + j] = std::max(c[r * ldc + j], 0.f);
    static_cast<const ReluCount*>(ctx)->seen += rows * cols;
  }
};

TEST_F(GemmF32Test, MatchesTheReference) {
  // {300, 10, 700}: one panel, so 2 threads split the rows.
  for (auto [m, n, k] : {std::tuple<int64_t, int64_t, int64_t>{1, 1, 1}, {5, 15, 7}, {6, 16, 256}, {7, 17, 257},
                         {13, 40, 600}, {200, 33, 64}, {64, 300, 1000}, {300, 10, 700}}) {
    for (bool transposed : {false, true}) {
      for (int variant = 0; variant < 3; ++variant) {  // plain; alpha, beta and bias; with the epilogue
        for (int threads : {1, 2}) {
          SCOPED_TRACE(::testing::Message() << "m=" << m << " n=" << n << " k=" << k << " transposed=" << transposed
                                            << " variant=" << variant << " threads=" << threads);
          omp_set_num_threads(threads);
          const auto a = Values(m * k, 1), b = Values(k * n, 2);
          const auto c0 = Values(m * n, 3), bias = Values(n, 4);
          std::vector<float> packed(static_cast<size_t>(cpu::uk::GemmF32PackedFloats(k, n)), NAN);
          cpu::uk::GemmF32PackB(b.data(), k, n, transposed, packed.data());
          std::vector<float> c = variant ? c0 : std::vector<float>(c0.size(), NAN);
          ReluCount relu;
          const cpu::uk::GemmF32Epilogue ep{ReluCount::Apply, &relu};
          GemmF32Args g;
          g.m = m, g.n = n, g.k = k, g.a = a.data(), g.lda = k, g.packed_b = packed.data(), g.c = c.data(), g.ldc = n;
          if (variant) g.alpha = 0.5f, g.beta = -1.5f, g.bias = bias.data();
          if (variant == 2) g.epilogue = &ep;
          cpu::uk::GemmF32(g);
          for (int64_t i = 0; i < m; ++i)
            for (int64_t j = 0; j < n; ++j) {
              double ref = 0, mag = 0;
              for (int64_t p = 0; p < k; ++p) {
                const double bv = transposed ? b[static_cast<size_t>(j * k + p)] : b[static_cast<size_t>(p * n + j)];
                ref += double(a[static_cast<size_t>(i * k + p)]) * bv;
                mag += std::abs(double(a[static_cast<size_t>(i * k + p)]) * bv);
              }
              if (variant) ref = 0.5 * ref - 1.5 * c0[static_cast<size_t>(i * n + j)] + bias[static_cast<size_t>(j)];
              if (variant == 2) ref = std::max(ref, 0.0);
              ASSERT_NEAR(c[static_cast<size_t>(i * n + j)], ref, 1e-6 * (mag + 4)) << "i=" << i << " j=" << j;
            }
          if (variant == 2) {
            EXPECT_EQ(relu.seen.load(), m * n) << "each element passes the epilogue once";
          }
        }
      }
    }
  }
}

TEST_F(GemmF32Test, RowsDoNotDependOnTheBatchOrThreads) {
  for (int64_t n : {70, 9}) {  // split by columns, and (one panel) by rows
    SCOPED_TRACE(::testing::Message() << "n=" << n);
    const int64_t m = n < 16 ? 200 : 37, k = 700;  // large enough to go parallel
    const auto a = Values(m * k, 5), b = Values(k * n, 6);
    std::vector<float> packed(static_cast<size_t>(cpu::uk::GemmF32PackedFloats(k, n)));
    cpu::uk::GemmF32PackB(b.data(), k, n, false, packed.data());
    auto run = [&](int64_t rows, const float* a_rows, int threads) {
      omp_set_num_threads(threads);
      std::vector<float> c(static_cast<size_t>(rows * n));
      GemmF32Args g;
      g.m = rows, g.n = n, g.k = k, g.a = a_rows, g.lda = k, g.packed_b = packed.data(), g.c = c.data(), g.ldc = n;
      cpu::uk::GemmF32(g);
      return c;
    };
    const auto all = run(m, a.data(), 2);
    EXPECT_EQ(run(m, a.data(), 1), all);
    for (int64_t i : {0, 5, 36}) {
      const auto one = run(1, a.data() + i * k, 1);
      for (int64_t j = 0; j < n; ++j)
        ASSERT_EQ(one[static_cast<size_t>(j)], all[static_cast<size_t>(i * n + j)]) << "row " << i << " col " << j;
    }
  }
}

TEST_F(GemmF32Test, UnpackRestoresTheWeights) {
  const int64_t k = 9, n = 35;
  const auto b = Values(k * n, 7);
  for (bool transposed : {false, true}) {
    std::vector<float> packed(static_cast<size_t>(cpu::uk::GemmF32PackedFloats(k, n))), back(b.size());
    cpu::uk::GemmF32PackB(b.data(), k, n, transposed, packed.data());
    cpu::uk::GemmF32UnpackB(packed.data(), k, n, transposed, back.data());
    EXPECT_EQ(back, b) << "transposed=" << transposed;
  }
}

// A and C as views into wider matrices (row strides past K and N), as a caller without its own
// buffers passes them: columns outside the view stay untouched.
TEST_F(GemmF32Test, StridedAAndC) {
  const int64_t m = 11, n = 21, k = 300, lda = k + 5, ldc = n + 3;
  const auto a = Values(m * lda, 8), b = Values(k * n, 9);
  std::vector<float> packed(static_cast<size_t>(cpu::uk::GemmF32PackedFloats(k, n)));
  cpu::uk::GemmF32PackB(b.data(), k, n, false, packed.data());
  std::vector<float> c(static_cast<size_t>(m * ldc), -7.f);
  GemmF32Args g;
  g.m = m, g.n = n, g.k = k, g.a = a.data(), g.lda = lda, g.packed_b = packed.data(), g.c = c.data(), g.ldc = ldc;
  cpu::uk::GemmF32(g);
  for (int64_t i = 0; i < m; ++i) {
    for (int64_t j = 0; j < n; ++j) {
      double ref = 0, mag = 0;
      for (int64_t p = 0; p < k; ++p) {
        ref += double(a[static_cast<size_t>(i * lda + p)]) * b[static_cast<size_t>(p * n + j)];
        mag += std::abs(double(a[static_cast<size_t>(i * lda + p)]) * b[static_cast<size_t>(p * n + j)]);
      }
      ASSERT_NEAR(c[static_cast<size_t>(i * ldc + j)], ref, 1e-6 * (mag + 4)) << "i=" << i << " j=" << j;
    }
    for (int64_t j = n; j < ldc; ++j) ASSERT_EQ(c[static_cast<size_t>(i * ldc + j)], -7.f) << "outside the view";
  }
}

}  // namespace
}  // namespace strata::testing

namespace strata::testing {
namespace {

// PackedGemmF32 on whichever back-end each ISA level picks (AVX2: Strata's GEMM; else oneDNN): the
// same products, post-ops and plain weights from both.
TEST(PackedGemmF32, BothBackEndsAgree) {
  const int64_t m = 7, k = 40, n = 19;
  const auto a = Values(m * k, 11), w = Values(k * n, 12), bias = Values(n, 13);
  for (cpu::vec::Isa isa : AvailableIsas()) {
    IsaScope scope(isa);
    for (bool transposed : {false, true}) {
      SCOPED_TRACE(::testing::Message() << "isa=" << cpu::vec::IsaName(isa) << " transposed=" << transposed);
      cpu::uk::PackedGemmF32 p;
      cpu::uk::GemmPostOps post;
      post.bias = true;
      post.activations = {{cpu::uk::Activation::kRelu}};
      ASSERT_TRUE(p.Pack(w.data(), k, n, transposed, post));
      std::vector<float> y(static_cast<size_t>(m * n), NAN);
      ASSERT_TRUE(p.Run(m, a.data(), bias.data(), y.data()));
      for (int64_t i = 0; i < m; ++i)
        for (int64_t j = 0; j < n; ++j) {
          double ref = bias[static_cast<size_t>(j)];
          for (int64_t q = 0; q < k; ++q)
            ref += double(a[static_cast<size_t>(i * k + q)]) *
                   w[static_cast<size_t>(transposed ? j * k + q : q * n + j)];
          ASSERT_NEAR(y[static_cast<size_t>(i * n + j)], std::max(ref, 0.0), 1e-4) << "i=" << i << " j=" << j;
        }
      // The reference paths read these with the layout they gave to Pack.
      const float* plain = p.PlainWeights();
      EXPECT_EQ(std::vector<float>(plain, plain + k * n), w);
    }
  }
}

// oneDNN scales the bias with alpha and Strata's GEMM does not, so neither takes the pair.
TEST(PackedGemmF32, RefusesAlphaWithBias) {
  const auto w = Values(4 * 4, 14);
  cpu::uk::PackedGemmF32 p;
  cpu::uk::GemmPostOps post;
  post.alpha = 2.f;
  post.bias = true;
  EXPECT_FALSE(p.Pack(w.data(), 4, 4, false, post));
  EXPECT_FALSE(p.packed());
}

}  // namespace
}  // namespace strata::testing
