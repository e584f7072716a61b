// vec_math micro-kernels: every kernel at every ISA level this CPU has, against double-precision
// references, over tail sizes and special values; and the float32 kernels wired to them (Softmax,
// LogSoftmax, LayerNormalization, Reduce*, Gelu, Erf, ...) against straightforward double loops.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <functional>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "isa_scope.h"
#include "kernels/cpu/ukernels/vec_math.h"
#include "onnx/importer.h"
#include "runtime/session.h"
#include "test_model_builder.h"

namespace strata {
namespace {

using cpu::vec::Isa;
using cpu::vec::Kernels;
using testing::ModelBuilder;

constexpr float kInf = std::numeric_limits<float>::infinity();
constexpr float kNaN = std::numeric_limits<float>::quiet_NaN();
const int64_t kSizes[] = {0, 1, 7, 15, 16, 17, 31, 33, 1000};

std::vector<const Kernels*> AllLevels() {
  std::vector<const Kernels*> v;
  for (Isa i : {Isa::kScalar, Isa::kAvx2, Isa::kAvx512})
    if (const Kernels* k = cpu::vec::KernelsFor(i)) v.push_back(k);
  return v;
}

// Restores the dispatch level at scope exit.
using testing::IsaScope;

// Error of `got` in units of the float spacing at `want` (subnormal spacing below FLT_MIN).
double UlpError(float got, double want) {
  if (std::isnan(want)) return std::isnan(got) ? 0 : 1e30;
  if (std::isnan(got)) return 1e30;
  if (std::isinf(want) || std::fabs(want) > std::numeric_limits<float>::max())
    return static_cast<double>(got) == (want > 0 ? kInf : -kInf) ? 0 : 1e30;
  const double a = std::max(std::fabs(want), static_cast<double>(std::numeric_limits<float>::min()));
  const double ulp = std::ldexp(1.0, std::ilogb(a) - 23);
  return std::fabs(static_cast<double>(got) - want) / ulp;
}

// Inputs: a dense sweep over [lo, hi], random values, and the special values.
std::vector<float> Inputs(float lo, float hi) {
  std::vector<float> v;
  const int steps = 200000;
  for (int i = 0; i <= steps; ++i) v.push_back(lo + (hi - lo) * static_cast<float>(i) / steps);
  std::mt19937 rng(7);
  std::normal_distribution<float> nd(0.0f, 3.0f);
  for (int i = 0; i < 20000; ++i) v.push_back(nd(rng));
  for (float s : {0.0f, -0.0f, kInf, -kInf, kNaN, 1e-30f, -1e-30f, 1e-45f, 88.7228317f, 88.72284f, -87.3f, -103.9f,
                  -104.0f, 0.625f, -0.625f, 0.921875f, -0.921875f, 3.92f, -3.92f, 9.0f, -9.0f, 100.0f, -100.0f,
                  std::numeric_limits<float>::max(), -std::numeric_limits<float>::max()})
    v.push_back(s);
  return v;
}

using Fn = void (*)(const float*, float*, int64_t);
struct MapCase {
  const char* name;
  Fn Kernels::*fn;
  std::function<double(double)> ref;
  float lo, hi;
  double max_ulp;  // documented bounds in vec_math.h
  double max_abs;  // absolute bound scaled by max(1, |x|); 0 = not checked
};

double Sigmoid(double x) { return 1.0 / (1.0 + std::exp(-x)); }
double GeluErf(double x) { return 0.5 * x * (1.0 + std::erf(x / std::sqrt(2.0))); }
double GeluTanh(double x) {
  return 0.5 * x * (1.0 + std::tanh(std::sqrt(2.0 / M_PI) * (x + 0.044715 * x * x * x)));
}

std::vector<MapCase> MapCases() {
  return {
      {"exp", &Kernels::exp, [](double x) { return std::exp(x); }, -110.0f, 90.0f, 2, 0},
      {"tanh", &Kernels::tanh, [](double x) { return std::tanh(x); }, -12.0f, 12.0f, 2, 0},
      {"sigmoid", &Kernels::sigmoid, Sigmoid, -110.0f, 110.0f, 3, 0},
      {"erf", &Kernels::erf, [](double x) { return std::erf(x); }, -5.0f, 5.0f, 3, 1.2e-7},
      {"gelu_erf", &Kernels::gelu_erf, GeluErf, -12.0f, 12.0f, 0, 2e-7},
      {"gelu_tanh", &Kernels::gelu_tanh, GeluTanh, -12.0f, 12.0f, 0, 2e-7},
  };
}

TEST(VecMath, ReportsItsLevels) {
  EXPECT_NE(cpu::vec::KernelsFor(Isa::kScalar), nullptr);
  EXPECT_EQ(cpu::vec::KernelsFor(cpu::vec::BestIsa())->isa, cpu::vec::BestIsa());
  // Forcing above what the CPU has clamps to the best level.
  IsaScope scope(Isa::kAvx512);
  EXPECT_EQ(cpu::vec::Active().isa, cpu::vec::BestIsa());
  EXPECT_EQ(cpu::vec::ForceIsa(Isa::kScalar), Isa::kScalar);
  EXPECT_EQ(cpu::vec::Active().isa, Isa::kScalar);
  std::printf("best ISA: %s\n", cpu::vec::IsaName(cpu::vec::BestIsa()));
}

TEST(VecMath, UnaryMapsMatchDoubleReference) {
  for (const MapCase& c : MapCases()) {
    const std::vector<float> x = Inputs(c.lo, c.hi);
    for (const Kernels* k : AllLevels()) {
      std::vector<float> y(x.size());
      (k->*c.fn)(x.data(), y.data(), static_cast<int64_t>(x.size()));
      double worst_ulp = 0, worst_abs = 0;
      float at_ulp = 0, at_abs = 0;
      for (size_t i = 0; i < x.size(); ++i) {
        const double want = c.ref(x[i]);
        if (std::isnan(x[i])) {
          EXPECT_TRUE(std::isnan(y[i])) << c.name << " " << cpu::vec::IsaName(k->isa) << " of NaN";
          continue;
        }
        if (c.max_ulp > 0) {
          const double u = UlpError(y[i], want);
          if (u > worst_ulp) worst_ulp = u, at_ulp = x[i];
        }
        if (c.max_abs > 0 && std::isfinite(want)) {
          const double e = std::fabs(y[i] - want) / std::max(1.0, std::fabs(static_cast<double>(x[i])));
          if (e > worst_abs) worst_abs = e, at_abs = x[i];
        }
      }
      std::printf("%-9s %-6s max %.3g ulp (x=%.9g), max abs %.3g (x=%.9g)\n", c.name, cpu::vec::IsaName(k->isa),
                  worst_ulp, at_ulp, worst_abs, at_abs);
      if (c.max_ulp > 0) {
        EXPECT_LE(worst_ulp, c.max_ulp) << c.name << " " << cpu::vec::IsaName(k->isa) << " x=" << at_ulp;
      }
      if (c.max_abs > 0) {
        EXPECT_LE(worst_abs, c.max_abs) << c.name << " " << cpu::vec::IsaName(k->isa) << " x=" << at_abs;
      }
    }
  }
}

TEST(VecMath, SpecialValuesBehaveLikeLibm) {
  for (const Kernels* k : AllLevels()) {
    const std::string isa = cpu::vec::IsaName(k->isa);
    auto one = [&](Fn Kernels::*fn, float v) {
      float y = 0;
      (k->*fn)(&v, &y, 1);
      return y;
    };
    EXPECT_EQ(one(&Kernels::exp, -kInf), 0.0f) << isa;
    EXPECT_EQ(one(&Kernels::exp, kInf), kInf) << isa;
    EXPECT_EQ(one(&Kernels::exp, 89.0f), kInf) << isa;
    EXPECT_EQ(one(&Kernels::exp, -200.0f), 0.0f) << isa;
    EXPECT_EQ(one(&Kernels::exp, 0.0f), 1.0f) << isa;
    EXPECT_GT(one(&Kernels::exp, -100.0f), 0.0f) << isa << ": subnormal results are kept";
    EXPECT_EQ(one(&Kernels::tanh, kInf), 1.0f) << isa;
    EXPECT_EQ(one(&Kernels::tanh, -kInf), -1.0f) << isa;
    EXPECT_EQ(one(&Kernels::tanh, 20.0f), 1.0f) << isa;
    EXPECT_TRUE(std::signbit(one(&Kernels::tanh, -0.0f))) << isa;
    EXPECT_EQ(one(&Kernels::sigmoid, kInf), 1.0f) << isa;
    EXPECT_EQ(one(&Kernels::sigmoid, -kInf), 0.0f) << isa;
    EXPECT_EQ(one(&Kernels::sigmoid, 0.0f), 0.5f) << isa;
    EXPECT_EQ(one(&Kernels::erf, kInf), 1.0f) << isa;
    EXPECT_EQ(one(&Kernels::erf, -kInf), -1.0f) << isa;
    EXPECT_TRUE(std::signbit(one(&Kernels::erf, -0.0f))) << isa;
    EXPECT_EQ(one(&Kernels::gelu_erf, kInf), kInf) << isa;
    EXPECT_EQ(one(&Kernels::gelu_tanh, kInf), kInf) << isa;
    EXPECT_EQ(one(&Kernels::gelu_erf, 0.0f), 0.0f) << isa;
    for (auto fn : {&Kernels::exp, &Kernels::tanh, &Kernels::sigmoid, &Kernels::erf, &Kernels::gelu_erf,
                    &Kernels::gelu_tanh})
      EXPECT_TRUE(std::isnan(one(fn, kNaN))) << isa;
  }
}

// Every size (tails included) writes exactly n outputs, in place too.
TEST(VecMath, TailsWriteExactlyNElements) {
  std::mt19937 rng(3);
  std::uniform_real_distribution<float> ud(-6.0f, 6.0f);
  for (const MapCase& c : MapCases()) {
    for (const Kernels* k : AllLevels()) {
      for (int64_t n : kSizes) {
        std::vector<float> x(static_cast<size_t>(n) + 16), y(x.size(), -777.0f);
        for (float& v : x) v = ud(rng);
        (k->*c.fn)(x.data(), y.data(), n);
        for (int64_t i = 0; i < n; ++i)
          ASSERT_NEAR(y[static_cast<size_t>(i)], c.ref(x[static_cast<size_t>(i)]),
                      1e-6 * (1 + std::fabs(c.ref(x[static_cast<size_t>(i)]))))
              << c.name << " " << cpu::vec::IsaName(k->isa) << " n=" << n << " i=" << i;
        for (size_t i = static_cast<size_t>(n); i < y.size(); ++i)
          ASSERT_EQ(y[i], -777.0f) << c.name << " wrote past n=" << n;
        std::vector<float> z(x.begin(), x.begin() + n);
        (k->*c.fn)(z.data(), z.data(), n);
        for (int64_t i = 0; i < n; ++i)
          ASSERT_EQ(z[static_cast<size_t>(i)], y[static_cast<size_t>(i)]) << c.name << " in place, n=" << n;
      }
    }
  }
}

std::vector<float> RandomRow(int64_t n, uint32_t seed, float scale = 4.0f) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> nd(0.5f, scale);
  std::vector<float> v(static_cast<size_t>(n));
  for (float& f : v) f = nd(rng);
  return v;
}

TEST(VecMath, RowReductionsMatchDoubleReference) {
  for (const Kernels* k : AllLevels()) {
    const std::string isa = cpu::vec::IsaName(k->isa);
    for (int64_t n : kSizes) {
      std::vector<float> x = RandomRow(n, static_cast<uint32_t>(n) + 11);
      double mx = -INFINITY, mn = INFINITY, sum = 0, asum = 0;
      for (float v : x) {
        mx = std::max<double>(mx, v);
        mn = std::min<double>(mn, v);
        sum += v;
        asum += std::fabs(v);
      }
      EXPECT_EQ(k->row_max(x.data(), n), static_cast<float>(mx)) << isa << " n=" << n;
      EXPECT_EQ(k->row_min(x.data(), n), static_cast<float>(mn)) << isa << " n=" << n;
      EXPECT_NEAR(k->row_sum(x.data(), n), sum, 1e-6 * asum + 1e-7) << isa << " n=" << n;
      if (n > 0) {
        for (int64_t pos : {int64_t{0}, n / 2, n - 1}) {  // a NaN anywhere, tails included, wins
          std::vector<float> xn = x;
          xn[static_cast<size_t>(pos)] = kNaN;
          EXPECT_TRUE(std::isnan(k->row_max(xn.data(), n))) << isa << " n=" << n << " pos=" << pos;
          EXPECT_TRUE(std::isnan(k->row_min(xn.data(), n))) << isa << " n=" << n << " pos=" << pos;
        }
        x[static_cast<size_t>(n - 1)] = kInf;
        EXPECT_EQ(k->row_max(x.data(), n), kInf) << isa;
      }
    }
  }
}

TEST(VecMath, SoftmaxAndLayerNormRowsMatchDoubleReference) {
  for (const Kernels* k : AllLevels()) {
    const std::string isa = cpu::vec::IsaName(k->isa);
    for (int64_t n : kSizes) {
      if (n == 0) continue;
      const size_t un = static_cast<size_t>(n);
      std::vector<float> x = RandomRow(n, static_cast<uint32_t>(n) * 3 + 1, 5.0f);
      std::vector<float> y(un + 8, -777.0f);
      double mx = -INFINITY, s = 0;
      for (float v : x) mx = std::max<double>(mx, v);
      for (float v : x) s += std::exp(v - mx);
      k->softmax_row(x.data(), y.data(), n);
      for (size_t i = 0; i < un; ++i) ASSERT_NEAR(y[i], std::exp(x[i] - mx) / s, 2e-7) << isa << " n=" << n;
      EXPECT_EQ(y[un], -777.0f);
      k->log_softmax_row(x.data(), y.data(), n);
      for (size_t i = 0; i < un; ++i)
        ASSERT_NEAR(y[i], x[i] - mx - std::log(s), 2e-6 * (1 + std::fabs(x[i] - mx))) << isa << " n=" << n;
      // In place, as the kernels run when the planner reuses the input buffer.
      std::vector<float> z = x;
      k->softmax_row(z.data(), z.data(), n);
      for (size_t i = 0; i < un; ++i) ASSERT_NEAR(z[i], std::exp(x[i] - mx) / s, 2e-7);
      z = x;
      k->log_softmax_row(z.data(), z.data(), n);
      for (size_t i = 0; i < un; ++i)
        ASSERT_NEAR(z[i], x[i] - mx - std::log(s), 2e-6 * (1 + std::fabs(x[i] - mx))) << isa << " in place";

      const std::vector<float> g = RandomRow(n, 5, 1.0f), b = RandomRow(n, 6, 1.0f);
      double mean = 0, var = 0;
      for (float v : x) mean += v;
      mean /= static_cast<double>(n);
      for (float v : x) var += (v - mean) * (v - mean);
      var /= static_cast<double>(n);
      const double rstd = 1.0 / std::sqrt(var + 1e-5);
      float m_out = 0, r_out = 0;
      for (const float* bias : {b.data(), static_cast<const float*>(nullptr)}) {
        k->layer_norm_row(x.data(), y.data(), n, g.data(), bias, 1e-5f, &m_out, &r_out);
        EXPECT_NEAR(m_out, mean, 1e-5 * (1 + std::fabs(mean))) << isa << " n=" << n;
        EXPECT_NEAR(r_out, rstd, 1e-5 * rstd) << isa << " n=" << n;
        for (size_t i = 0; i < un; ++i) {
          const double want = (x[i] - mean) * rstd * g[i] + (bias ? b[i] : 0.0);
          ASSERT_NEAR(y[i], want, 1e-5 * (1 + std::fabs(want))) << isa << " n=" << n << " i=" << i;
        }
        EXPECT_EQ(y[un], -777.0f);
      }
    }
  }
}

// ---- the wired float32 kernels, run through a Session at every ISA level ----

Result<std::unique_ptr<Session>> SessionFrom(const ModelBuilder& b, int64_t node_opset = 0) {
  const std::string bytes = b.Bytes();
  auto model = onnx_io::LoadModelFromBytes(bytes.data(), bytes.size());
  if (!model.ok()) return model.status();
  if (node_opset) model->graph->nodes[0].opset = node_opset;
  return Session::FromModel(std::move(model).value());
}

Tensor FloatTensor(const Shape& shape, uint32_t seed, float scale = 3.0f) {
  Tensor t(DType::kFloat, shape);
  const std::vector<float> v = RandomRow(t.numel(), seed, scale);
  std::memcpy(t.data<float>(), v.data(), v.size() * sizeof(float));
  return t;
}

std::vector<float> RunOne(const ModelBuilder& b, const Tensor& x, int64_t node_opset = 0) {
  auto s = SessionFrom(b, node_opset);
  EXPECT_TRUE(s.ok()) << s.status().ToString();
  if (!s.ok()) return {};
  std::vector<Value> outs;
  const std::vector<Value> ins = {x};
  const Status st = (*s)->Run(ins, outs);
  EXPECT_TRUE(st.ok()) << st.ToString();
  if (!st.ok()) return {};
  const Tensor& y = outs.at(0).tensor();
  return std::vector<float>(y.data<float>(), y.data<float>() + y.numel());
}

std::vector<Isa> Levels() {
  std::vector<Isa> v;
  for (const Kernels* k : AllLevels()) v.push_back(k->isa);
  return v;
}

void ExpectNear(const std::vector<float>& got, const std::vector<double>& want, double tol, const std::string& what) {
  ASSERT_EQ(got.size(), want.size()) << what;
  for (size_t i = 0; i < got.size(); ++i)
    ASSERT_NEAR(got[i], want[i], tol * (1 + std::fabs(want[i]))) << what << " at " << i;
}

TEST(VecMathWired, SoftmaxAndLogSoftmaxAlongEveryAxis) {
  const Shape shape{2, 3, 37};
  const Tensor x = FloatTensor(shape, 21, 4.0f);
  const float* xd = x.data<float>();
  for (const char* op : {"Softmax", "LogSoftmax"}) {
    for (int axis : {-1, 1}) {  // innermost (vectorised rows) and strided
      ModelBuilder b(13);
      b.Input("x", onnx::TensorProto::FLOAT, {2, 3, 37}).Output("y", onnx::TensorProto::FLOAT, {2, 3, 37});
      auto& n = b.Node(op, {"x"}, {"y"});
      auto* a = n.add_attribute();
      a->set_name("axis");
      a->set_type(onnx::AttributeProto::INT);
      a->set_i(axis);
      // Reference in double.
      const int64_t L = axis == -1 ? 37 : 3, inner = axis == -1 ? 1 : 37, outer = x.numel() / (L * inner);
      std::vector<double> want(static_cast<size_t>(x.numel()));
      for (int64_t o = 0; o < outer; ++o)
        for (int64_t j = 0; j < inner; ++j) {
          auto at = [&](int64_t l) { return static_cast<size_t>((o * L + l) * inner + j); };
          double mx = -INFINITY, s = 0;
          for (int64_t l = 0; l < L; ++l) mx = std::max<double>(mx, xd[at(l)]);
          for (int64_t l = 0; l < L; ++l) s += std::exp(xd[at(l)] - mx);
          for (int64_t l = 0; l < L; ++l)
            want[at(l)] = op[0] == 'S' ? std::exp(xd[at(l)] - mx) / s : xd[at(l)] - mx - std::log(s);
        }
      for (Isa isa : Levels()) {
        IsaScope scope(isa);
        ExpectNear(RunOne(b, x), want, 2e-6, std::string(op) + " axis " + std::to_string(axis) + " " +
                                                 cpu::vec::IsaName(isa));
      }
    }
  }
}

// Float16 Softmax/LogSoftmax convert to float and use the same kernels (the row kernel in place
// for the innermost axis, vec_math exp for a strided axis).
TEST(VecMathWired, Float16SoftmaxAndLogSoftmaxAlongEveryAxis) {
  const Tensor xf = FloatTensor({2, 3, 37}, 22, 4.0f);
  Tensor x(DType::kFloat16, xf.shape());
  for (int64_t i = 0; i < x.numel(); ++i) x.data<Float16>()[i] = Float16(xf.data<float>()[i]);
  for (const char* op : {"Softmax", "LogSoftmax"}) {
    for (int axis : {-1, 1}) {
      ModelBuilder b(13);
      b.Input("x", onnx::TensorProto::FLOAT16, {2, 3, 37}).Output("y", onnx::TensorProto::FLOAT16, {2, 3, 37});
      auto* a = b.Node(op, {"x"}, {"y"}).add_attribute();
      a->set_name("axis");
      a->set_type(onnx::AttributeProto::INT);
      a->set_i(axis);
      const int64_t L = axis == -1 ? 37 : 3, inner = axis == -1 ? 1 : 37, outer = x.numel() / (L * inner);
      std::vector<double> want(static_cast<size_t>(x.numel()));
      for (int64_t o = 0; o < outer; ++o)
        for (int64_t j = 0; j < inner; ++j) {
          auto at = [&](int64_t l) { return static_cast<size_t>((o * L + l) * inner + j); };
          auto xv = [&](int64_t l) { return static_cast<double>(static_cast<float>(x.data<Float16>()[at(l)])); };
          double mx = -INFINITY, s = 0;
          for (int64_t l = 0; l < L; ++l) mx = std::max(mx, xv(l));
          for (int64_t l = 0; l < L; ++l) s += std::exp(xv(l) - mx);
          for (int64_t l = 0; l < L; ++l) want[at(l)] = op[0] == 'S' ? std::exp(xv(l) - mx) / s : xv(l) - mx - std::log(s);
        }
      for (Isa isa : Levels()) {
        IsaScope scope(isa);
        auto sess = SessionFrom(b);
        ASSERT_TRUE(sess.ok()) << sess.status().ToString();
        std::vector<Value> outs;
        const std::vector<Value> ins = {x};
        ASSERT_TRUE((*sess)->Run(ins, outs).ok());
        const Tensor& y = outs.at(0).tensor();
        for (int64_t i = 0; i < y.numel(); ++i) {
          const double w = want[static_cast<size_t>(i)];
          ASSERT_NEAR(static_cast<float>(y.data<Float16>()[i]), w, 1e-3 * (1 + std::fabs(w)))
              << op << " axis " << axis << " " << cpu::vec::IsaName(isa) << " at " << i;
        }
      }
    }
  }
}

TEST(VecMathWired, LayerNormalizationMatchesDoubleReference) {
  for (int64_t H : {1, 17, 64, 100}) {
    ModelBuilder b(17);
    b.Input("x", onnx::TensorProto::FLOAT, {3, 5, H}).Output("y", onnx::TensorProto::FLOAT, {3, 5, H});
    const std::vector<float> g = RandomRow(H, 1, 1.0f), bias = RandomRow(H, 2, 1.0f);
    b.Initializer("g", g, {H});
    b.Initializer("b", bias, {H});
    b.Node("LayerNormalization", {"x", "g", "b"}, {"y"});
    const Tensor x = FloatTensor({3, 5, H}, 9, 2.0f);
    const float* xd = x.data<float>();
    std::vector<double> want(static_cast<size_t>(x.numel()));
    for (int64_t r = 0; r < 15; ++r) {
      double mean = 0, var = 0;
      for (int64_t i = 0; i < H; ++i) mean += xd[r * H + i];
      mean /= static_cast<double>(H);
      for (int64_t i = 0; i < H; ++i) var += (xd[r * H + i] - mean) * (xd[r * H + i] - mean);
      const double rstd = 1 / std::sqrt(var / static_cast<double>(H) + 1e-5);
      for (int64_t i = 0; i < H; ++i)
        want[static_cast<size_t>(r * H + i)] = (xd[r * H + i] - mean) * rstd * g[static_cast<size_t>(i)] +
                                               bias[static_cast<size_t>(i)];
    }
    for (Isa isa : Levels()) {
      IsaScope scope(isa);
      ExpectNear(RunOne(b, x), want, 1e-5, "LayerNorm H=" + std::to_string(H) + " " + cpu::vec::IsaName(isa));
    }
  }
}

// No bias, and the optional Mean / InvStdDev outputs.
TEST(VecMathWired, LayerNormalizationStatisticsWithoutBias) {
  ModelBuilder b(17);
  b.Input("x", onnx::TensorProto::FLOAT, {6, 19}).Output("y", onnx::TensorProto::FLOAT, {6, 19});
  b.Output("mean", onnx::TensorProto::FLOAT, {6, 1}).Output("rstd", onnx::TensorProto::FLOAT, {6, 1});
  const std::vector<float> g = RandomRow(19, 3, 1.0f);
  b.Initializer("g", g, {19});
  b.Node("LayerNormalization", {"x", "g"}, {"y", "mean", "rstd"});
  const Tensor x = FloatTensor({6, 19}, 10, 2.0f);
  const float* xd = x.data<float>();
  for (Isa isa : Levels()) {
    IsaScope scope(isa);
    auto s = SessionFrom(b);
    ASSERT_TRUE(s.ok()) << s.status().ToString();
    std::vector<Value> outs;
    const std::vector<Value> ins = {x};
    ASSERT_TRUE((*s)->Run(ins, outs).ok());
    ASSERT_EQ(outs.size(), 3u);
    for (int64_t r = 0; r < 6; ++r) {
      double mean = 0, var = 0;
      for (int64_t i = 0; i < 19; ++i) mean += xd[r * 19 + i];
      mean /= 19;
      for (int64_t i = 0; i < 19; ++i) var += (xd[r * 19 + i] - mean) * (xd[r * 19 + i] - mean);
      const double rstd = 1 / std::sqrt(var / 19 + 1e-5);
      EXPECT_NEAR(outs[1].tensor().data<float>()[r], mean, 1e-6 * (1 + std::fabs(mean))) << cpu::vec::IsaName(isa);
      EXPECT_NEAR(outs[2].tensor().data<float>()[r], rstd, 1e-5 * rstd) << cpu::vec::IsaName(isa);
      for (int64_t i = 0; i < 19; ++i)
        ASSERT_NEAR(outs[0].tensor().data<float>()[r * 19 + i], (xd[r * 19 + i] - mean) * rstd * g[static_cast<size_t>(i)],
                    1e-5) << cpu::vec::IsaName(isa);
    }
  }
}

TEST(VecMathWired, UnaryOpsAndGeluMatchDoubleReference) {
  const Tensor x = FloatTensor({3, 1001}, 4, 3.0f);
  const float* xd = x.data<float>();
  struct Case {
    const char* op;
    const char* approx;  // Gelu only
    std::function<double(double)> ref;
  };
  const Case cases[] = {{"Exp", nullptr, [](double v) { return std::exp(v); }},
                        {"Tanh", nullptr, [](double v) { return std::tanh(v); }},
                        {"Sigmoid", nullptr, Sigmoid},
                        {"Erf", nullptr, [](double v) { return std::erf(v); }},
                        {"Gelu", "none", GeluErf},
                        {"Gelu", "tanh", GeluTanh}};
  for (const Case& c : cases) {
    ModelBuilder b(18);
    b.Input("x", onnx::TensorProto::FLOAT, {3, 1001}).Output("y", onnx::TensorProto::FLOAT, {3, 1001});
    auto& n = b.Node(c.op, {"x"}, {"y"});
    if (c.approx) {
      auto* a = n.add_attribute();
      a->set_name("approximate");
      a->set_type(onnx::AttributeProto::STRING);
      a->set_s(c.approx);
    }
    std::vector<double> want(static_cast<size_t>(x.numel()));
    for (size_t i = 0; i < want.size(); ++i) want[i] = c.ref(xd[i]);
    for (Isa isa : Levels()) {
      IsaScope scope(isa);
      ExpectNear(RunOne(b, x, c.approx ? 20 : 0), want, 1e-6,
                 std::string(c.op) + (c.approx ? c.approx : "") + " " + cpu::vec::IsaName(isa));
    }
  }
}

TEST(VecMathWired, InnermostReductionsMatchDoubleReference) {
  const Tensor x = FloatTensor({4, 6, 33}, 12, 3.0f);
  const float* xd = x.data<float>();
  for (const char* op : {"ReduceMax", "ReduceMin", "ReduceSum", "ReduceMean"}) {
    ModelBuilder b(13);
    b.Input("x", onnx::TensorProto::FLOAT, {4, 6, 33}).Output("y", onnx::TensorProto::FLOAT, {4, 6, 1});
    auto& n = b.Node(op, {"x"}, {"y"});
    if (std::string(op) == "ReduceSum") {  // axes is an input from opset 13
      auto* t = b.proto().mutable_graph()->add_initializer();
      t->set_name("axes");
      t->set_data_type(onnx::TensorProto::INT64);
      t->add_dims(1);
      t->add_int64_data(-1);
      n.add_input("axes");
    } else {
      auto* a = n.add_attribute();
      a->set_name("axes");
      a->set_type(onnx::AttributeProto::INTS);
      a->add_ints(-1);
    }
    std::vector<double> want(24);
    for (size_t r = 0; r < 24; ++r) {
      double mx = -INFINITY, mn = INFINITY, s = 0;
      for (size_t i = 0; i < 33; ++i) {
        const double v = xd[r * 33 + i];
        mx = std::max(mx, v);
        mn = std::min(mn, v);
        s += v;
      }
      const std::string o = op;
      want[r] = o == "ReduceMax" ? mx : o == "ReduceMin" ? mn : o == "ReduceSum" ? s : s / 33;
    }
    for (Isa isa : Levels()) {
      IsaScope scope(isa);
      ExpectNear(RunOne(b, x), want, 1e-6, std::string(op) + " " + cpu::vec::IsaName(isa));
    }
  }
}

}  // namespace
}  // namespace strata
