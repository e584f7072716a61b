// The float32 MaxPool/AveragePool fast path (pool_max_average.cc over ukernels/pool_rows.cc) against
// an independent double-precision reference of the ONNX definitions, across 1-D/2-D/3-D windows,
// pads, strides, dilations, ceil_mode, count_include_pad and auto_pad, and across the AVX-512 and
// portable row kernels; and MaxPool's NaN and signed zeros on every path (fast and generic, NCHW and
// channels-last).
// Channels-last pooling is checked through the conv-layout pass (passes_conv_layout_test.cc).
#include <cstring>
#include <limits>
#include <random>

#include "isa_scope.h"
#include "kernels/cpu/ukernels/vec_math.h"
#include "passes_test_util.h"

namespace strata::testing {
namespace {

using cpu::vec::Isa;

std::vector<Isa> Isas() {
  std::vector<Isa> v{Isa::kScalar};
  if (cpu::vec::BestIsa() == Isa::kAvx512) v.push_back(Isa::kAvx512);
  return v;
}

// Runs `m` at -O0 on input `x`; empty (and the test failed) on an error.
std::vector<Value> RunAtO0(ir::Model m, const Tensor& x) {
  SessionOptions opts;
  opts.opt_level = 0;
  auto sess = Session::FromModel(std::move(m), opts);
  EXPECT_TRUE(sess.ok()) << sess.status().ToString();
  if (!sess.ok()) return {};
  std::vector<Value> got;
  const Status st = (*sess)->Run(std::vector<Value>{Value(x)}, got);
  EXPECT_TRUE(st.ok()) << st.ToString();
  if (!st.ok()) got.clear();
  return got;
}

class PoolTester {
 public:
  PoolTester& op(std::string v) { op_ = std::move(v); return *this; }
  PoolTester& input(std::vector<int64_t> v) { in_ = std::move(v); return *this; }
  PoolTester& kernel(std::vector<int64_t> v) { k_ = std::move(v); return *this; }
  PoolTester& strides(std::vector<int64_t> v) { s_ = std::move(v); return *this; }
  PoolTester& dilations(std::vector<int64_t> v) { d_ = std::move(v); return *this; }
  PoolTester& pads(std::vector<int64_t> v) { pads_ = std::move(v); return *this; }
  PoolTester& auto_pad(std::string v) { auto_pad_ = std::move(v); return *this; }
  PoolTester& ceil_mode(bool v) { ceil_ = v; return *this; }
  PoolTester& include_pad(bool v) { include_pad_ = v; return *this; }
  // Overrides the random input (e.g. with infinities and NaN).
  PoolTester& values(std::vector<float> v) { values_ = std::move(v); return *this; }

  void Test() const {
    const size_t nsp = k_.size();
    std::vector<int64_t> s = s_.empty() ? std::vector<int64_t>(nsp, 1) : s_;
    std::vector<int64_t> d = d_.empty() ? std::vector<int64_t>(nsp, 1) : d_;
    std::vector<int64_t> pb(nsp, 0), pe(nsp, 0), out(nsp);
    for (size_t i = 0; i < nsp; ++i) {
      const int64_t in = in_[i + 2], ek = (k_[i] - 1) * d[i] + 1;
      if (auto_pad_ == "SAME_UPPER" || auto_pad_ == "SAME_LOWER") {
        out[i] = (in + s[i] - 1) / s[i];
        const int64_t total = std::max<int64_t>(0, (out[i] - 1) * s[i] + ek - in);
        pb[i] = auto_pad_ == "SAME_UPPER" ? total / 2 : total - total / 2;
        pe[i] = total - pb[i];
        continue;
      }
      if (!pads_.empty()) {
        pb[i] = pads_[i];
        pe[i] = pads_[i + nsp];
      }
      const double span = static_cast<double>(in + pb[i] + pe[i] - ek) / static_cast<double>(s[i]);
      out[i] = static_cast<int64_t>(ceil_ ? std::ceil(span) : std::floor(span)) + 1;
      if (ceil_ && (out[i] - 1) * s[i] >= in + pb[i]) --out[i];  // windows start inside input or left pad
    }
    std::vector<int64_t> y_dims{in_[0], in_[1]};
    y_dims.insert(y_dims.end(), out.begin(), out.end());

    ModelBuilder b;
    b.Input("x", TP::FLOAT, in_).Output("y", TP::FLOAT, y_dims);
    auto& n = b.Node(op_, {"x"}, {"y"});
    SetInts(n, "kernel_shape", k_);
    if (!s_.empty()) SetInts(n, "strides", s_);
    if (!d_.empty()) SetInts(n, "dilations", d_);
    if (!pads_.empty()) SetInts(n, "pads", pads_);
    if (auto_pad_ != "NOTSET") SetString(n, "auto_pad", auto_pad_);
    if (ceil_) SetInt(n, "ceil_mode", 1);
    if (include_pad_) SetInt(n, "count_include_pad", 1);

    Tensor x(DType::kFloat, Shape(in_.begin(), in_.end()));
    const std::vector<float> xv = values_.empty() ? Values(x.numel(), 5) : values_;
    ASSERT_EQ(static_cast<int64_t>(xv.size()), x.numel());
    std::copy(xv.begin(), xv.end(), x.data<float>());

    // Reference: walk every tap of every window in double.
    const int64_t planes = in_[0] * in_[1];
    int64_t in_size = 1, out_size = 1, taps = 1;
    for (size_t i = 0; i < nsp; ++i) {
      in_size *= in_[i + 2];
      out_size *= out[i];
      taps *= k_[i];
    }
    std::vector<double> want(static_cast<size_t>(planes * out_size));
    std::vector<int64_t> o(nsp), k(nsp);
    for (int64_t p = 0; p < planes; ++p)
      for (int64_t oi = 0; oi < out_size; ++oi) {
        for (int64_t r = oi, i = static_cast<int64_t>(nsp) - 1; i >= 0; --i) {
          o[static_cast<size_t>(i)] = r % out[static_cast<size_t>(i)];
          r /= out[static_cast<size_t>(i)];
        }
        double best = -std::numeric_limits<double>::infinity(), sum = 0;
        bool nan = false;
        int64_t valid = 0, padded = 0;
        for (int64_t ki = 0; ki < taps; ++ki) {
          for (int64_t r = ki, i = static_cast<int64_t>(nsp) - 1; i >= 0; --i) {
            k[static_cast<size_t>(i)] = r % k_[static_cast<size_t>(i)];
            r /= k_[static_cast<size_t>(i)];
          }
          bool inside = true, in_pad = true;
          int64_t off = 0;
          for (size_t i = 0; i < nsp; ++i) {
            const int64_t c = o[i] * s[i] - pb[i] + k[i] * d[i];
            inside = inside && c >= 0 && c < in_[i + 2];
            in_pad = in_pad && c >= -pb[i] && c < in_[i + 2] + pe[i];
            off = off * in_[i + 2] + c;
          }
          padded += in_pad;
          if (!inside) continue;
          ++valid;
          const double v = xv[static_cast<size_t>(p * in_size + off)];
          nan = nan || std::isnan(v);
          best = std::max(best, v);
          sum += v;
        }
        double& w = want[static_cast<size_t>(p * out_size + oi)];
        if (op_ == "MaxPool") w = nan ? std::numeric_limits<double>::quiet_NaN() : best;
        else w = valid == 0 ? 0.0 : sum / static_cast<double>(include_pad_ ? padded : valid);
      }

    for (Isa isa : Isas()) {
      IsaScope scope(isa);
      SCOPED_TRACE(::testing::Message() << "isa " << cpu::vec::IsaName(isa));
      const std::vector<Value> got = RunAtO0(Import(b), x);
      ASSERT_FALSE(got.empty());
      const Tensor& y = got[0].tensor();
      ASSERT_EQ(y.shape(), Shape(y_dims.begin(), y_dims.end()));
      int bad = 0;
      for (int64_t i = 0; i < y.numel(); ++i) {
        const double w = want[static_cast<size_t>(i)], g = y.data<float>()[i];
        const bool same = std::isnan(w) ? std::isnan(g) : (w == g || std::fabs(w - g) <= 2e-6 * (1 + std::fabs(w)));
        if (!same && bad++ < 5) ADD_FAILURE() << "element " << i << ": want " << w << ", got " << g;
      }
      EXPECT_EQ(bad, 0);
    }
  }

 private:
  std::string op_ = "MaxPool", auto_pad_ = "NOTSET";
  std::vector<int64_t> in_, k_, s_, d_, pads_;
  bool ceil_ = false, include_pad_ = false;
  std::vector<float> values_;
};

TEST(PoolFast, MaxPool2d) {
  for (int64_t c : {1, 3, 17, 64}) {
    SCOPED_TRACE(::testing::Message() << "c=" << c);
    PoolTester().input({1, c, 112, 112}).kernel({3, 3}).strides({2, 2}).pads({1, 1, 1, 1}).Test();  // ResNet stem
    PoolTester().input({2, c, 9, 7}).kernel({2, 2}).strides({2, 2}).Test();
    PoolTester().input({2, c, 9, 7}).kernel({3, 2}).strides({2, 3}).pads({1, 0, 2, 1}).ceil_mode(true).Test();
  }
  PoolTester().input({1, 5, 10, 11}).kernel({3, 3}).dilations({2, 3}).pads({2, 1, 2, 3}).Test();
  PoolTester().input({1, 5, 10, 11}).kernel({3, 3}).strides({3, 2}).dilations({2, 2}).ceil_mode(true).Test();
  PoolTester().input({2, 4, 8, 9}).kernel({3, 4}).strides({2, 2}).auto_pad("SAME_UPPER").Test();
  PoolTester().input({2, 4, 8, 9}).kernel({3, 4}).strides({3, 2}).auto_pad("SAME_LOWER").Test();
  PoolTester().input({1, 2, 1, 1}).kernel({1, 1}).Test();
  PoolTester().input({1, 3, 300, 5}).kernel({9, 9}).pads({4, 4, 4, 4}).Test();  // 81 taps: more than one batch
}

TEST(PoolFast, AveragePool2d) {
  for (bool include : {false, true}) {
    for (int64_t c : {1, 16, 21}) {
      SCOPED_TRACE(::testing::Message() << "include_pad=" << include << " c=" << c);
      PoolTester().op("AveragePool").input({2, c, 14, 13}).kernel({3, 3}).pads({1, 1, 1, 1}).include_pad(include).Test();
      PoolTester().op("AveragePool").input({1, c, 14, 13}).kernel({3, 3}).strides({2, 2}).pads({1, 0, 1, 2})
          .ceil_mode(true).include_pad(include).Test();
      PoolTester().op("AveragePool").input({1, c, 7, 7}).kernel({7, 7}).include_pad(include).Test();
      PoolTester().op("AveragePool").input({1, c, 8, 9}).kernel({2, 3}).strides({2, 2}).auto_pad("SAME_UPPER")
          .include_pad(include).Test();
    }
  }
  PoolTester().op("AveragePool").input({1, 2, 40, 40}).kernel({10, 10}).pads({5, 5, 5, 5}).include_pad(true).Test();
}

TEST(PoolFast, OneAndThreeSpatialDims) {
  PoolTester().input({2, 3, 17}).kernel({3}).strides({2}).pads({1, 1}).ceil_mode(true).Test();
  PoolTester().op("AveragePool").input({2, 3, 17}).kernel({4}).strides({3}).pads({2, 1}).include_pad(true).Test();
  PoolTester().input({1, 2, 5, 6, 7}).kernel({2, 3, 3}).strides({2, 2, 1}).pads({1, 0, 1, 0, 1, 1}).Test();
  PoolTester().op("AveragePool").input({1, 2, 5, 6, 7}).kernel({3, 3, 2}).strides({1, 2, 2}).pads({1, 1, 0, 1, 1, 1})
      .ceil_mode(true).Test();
}

TEST(PoolFast, InfinitiesAndNaN) {
  const float inf = std::numeric_limits<float>::infinity(), nan = std::numeric_limits<float>::quiet_NaN();
  // An all -inf window gives -inf (not the lowest finite float); a NaN anywhere in a window wins.
  std::vector<float> v(1 * 3 * 6 * 6, -inf);
  v[7] = nan;            // channel 0, early in a window
  v[36 + 35] = nan;      // channel 1, last tap of the last window
  v[72 + 14] = 3.f;
  v[72 + 15] = inf;
  for (int64_t c : {3}) {
    PoolTester().input({1, c, 6, 6}).kernel({3, 3}).strides({2, 2}).pads({1, 1, 1, 1}).values(v).Test();
    PoolTester().input({1, c, 6, 6}).kernel({2, 2}).values(v).Test();
    PoolTester().op("AveragePool").input({1, c, 6, 6}).kernel({2, 2}).values(v).Test();
  }
}


// MaxPool where windows mix +0 and -0. x86 max returns its second operand on ties, so a kernel's
// operand order (and its tap order: NCHW reduces the window's rows before its columns) used to pick
// the sign. Every path now returns +0 when a window's maximum is zero and it holds a +0 (as IEEE
// 754-2019 maximum), whatever the ISA, layout, tap order or Indices output.
struct SignedZeroCase {
  std::vector<int64_t> in, k, s, pads;
};

void CheckSignedZeros(const SignedZeroCase& c, bool channels_last, bool indices) {
  SCOPED_TRACE(::testing::Message() << (channels_last ? "NHWC" : "NCHW") << (indices ? " with Indices" : ""));
  const size_t nsp = c.k.size();
  ASSERT_TRUE(!channels_last || nsp == 2);
  std::vector<int64_t> out(nsp);
  int64_t in_size = 1, out_size = 1, taps = 1;
  for (size_t i = 0; i < nsp; ++i) {
    out[i] = (c.in[i + 2] + c.pads[i] + c.pads[i + nsp] - c.k[i]) / c.s[i] + 1;
    in_size *= c.in[i + 2];
    out_size *= out[i];
    taps *= c.k[i];
  }
  const int64_t n = c.in[0], ch = c.in[1], planes = n * ch;
  std::vector<int64_t> y_dims{n, ch};
  y_dims.insert(y_dims.end(), out.begin(), out.end());

  // Mostly zeros of either sign, some -1 and a few 0.5: most windows peak at a mixed zero.
  std::mt19937 rng(11);
  std::vector<float> xv(static_cast<size_t>(planes * in_size));
  for (auto& v : xv) {
    const unsigned r = rng() % 16;
    v = r < 6 ? 0.f : r < 12 ? -0.f : r < 15 ? -1.f : 0.5f;
  }
  // A few planes of -0 only (a zero maximum stays -0) and of +0 only.
  for (int64_t i = 0; i < in_size; ++i) {
    xv[static_cast<size_t>(i)] = -0.f;
    if (planes > 1) xv[static_cast<size_t>(in_size + i)] = 0.f;
  }

  // Reference over the NCHW planes: the largest tap, +0 over -0.
  std::vector<float> want(static_cast<size_t>(planes * out_size));
  int mixed = 0;
  for (int64_t p = 0; p < planes; ++p)
    for (int64_t oi = 0; oi < out_size; ++oi) {
      float best = -std::numeric_limits<float>::infinity();
      bool pos0 = false, neg0 = false;
      for (int64_t ki = 0; ki < taps; ++ki) {
        bool inside = true;
        int64_t off = 0;
        for (int64_t r = oi, rk = ki, i = static_cast<int64_t>(nsp) - 1; i >= 0; --i) {
          const size_t u = static_cast<size_t>(i);
          const int64_t coord = (r % out[u]) * c.s[u] - c.pads[u] + rk % c.k[u];
          r /= out[u];
          rk /= c.k[u];
          int64_t stride = 1;
          for (size_t j = u + 1; j < nsp; ++j) stride *= c.in[j + 2];
          inside = inside && coord >= 0 && coord < c.in[u + 2];
          off += coord * stride;
        }
        if (!inside) continue;
        const float v = xv[static_cast<size_t>(p * in_size + off)];
        if (v == 0.f) (std::signbit(v) ? neg0 : pos0) = true;
        best = std::max(best, v);
      }
      if (best == 0.f) best = pos0 ? 0.f : -0.f;
      mixed += best == 0.f && pos0 && neg0;
      want[static_cast<size_t>(p * out_size + oi)] = best;
    }
  ASSERT_GT(mixed, 10) << "the data should mix zeros in many windows";

  // Channels-last runs the com.strata form on the same logical shape with NHWC buffers.
  const int64_t hw = channels_last ? in_size : 1, ohw = channels_last ? out_size : 1;
  auto to_buffer = [&](int64_t i, int64_t size, int64_t hw_size) {  // NCHW index -> buffer index
    if (!channels_last) return i;
    const int64_t b = i / (ch * size), cc = i / size % ch, q = i % size;
    return (b * hw_size + q) * ch + cc;
  };
  ModelBuilder b;
  b.Input("x", TP::FLOAT, c.in).Output("y", TP::FLOAT, y_dims);
  if (indices) b.Output("i", TP::INT64, y_dims);
  if (channels_last) {
    auto* imp = b.proto().add_opset_import();
    imp->set_domain("com.strata");
    imp->set_version(1);
  }
  auto& node = b.Node("MaxPool", {"x"}, indices ? std::vector<std::string>{"y", "i"} : std::vector<std::string>{"y"});
  SetInts(node, "kernel_shape", c.k);
  SetInts(node, "strides", c.s);
  SetInts(node, "pads", c.pads);
  if (channels_last) {
    node.set_domain("com.strata");
    SetString(node, "layout", "NHWC");
  }
  Tensor x(DType::kFloat, Shape(c.in.begin(), c.in.end()));
  for (int64_t i = 0; i < x.numel(); ++i) x.data<float>()[to_buffer(i, in_size, hw)] = xv[static_cast<size_t>(i)];

  for (Isa isa : Isas()) {
    IsaScope scope(isa);
    SCOPED_TRACE(::testing::Message() << "isa " << cpu::vec::IsaName(isa));
    ir::Model m = Import(b);
    for (auto& nd : m.graph->nodes) nd.opset = 13;  // the com.strata form keeps its ONNX opset
    const std::vector<Value> got = RunAtO0(std::move(m), x);
    ASSERT_FALSE(got.empty());
    const Tensor& y = got[0].tensor();
    ASSERT_EQ(y.numel(), static_cast<int64_t>(want.size()));
    int bad = 0;
    for (int64_t i = 0; i < y.numel(); ++i) {
      const float w = want[static_cast<size_t>(i)], g = y.data<float>()[to_buffer(i, out_size, ohw)];
      if ((w != g || std::signbit(w) != std::signbit(g)) && bad++ < 5)
        ADD_FAILURE() << "element " << i << ": want " << w << ", got " << g;
      if (indices) {  // the index names a tap holding exactly the output's bits
        const int64_t at = got[1].tensor().data<int64_t>()[i];
        ASSERT_TRUE(at >= 0 && at < x.numel()) << at;
        if (std::memcmp(&xv[static_cast<size_t>(at)], &g, sizeof g) != 0 && bad++ < 5)
          ADD_FAILURE() << "element " << i << ": index " << at << " holds " << xv[static_cast<size_t>(at)] << ", y " << g;
      }
    }
    EXPECT_EQ(bad, 0);
  }
}

TEST(PoolFast, MaxPoolSignedZeros) {
  const std::vector<SignedZeroCase> cases = {
      {{2, 3, 6, 70}, {3, 3}, {2, 2}, {1, 1, 1, 1}},  // NCHW rows of 70: the 64-wide loop and a tail
      {{1, 67, 5, 6}, {2, 3}, {1, 2}, {0, 1, 1, 0}},  // channels-last rows of 67
      {{2, 2, 9, 8}, {3, 2}, {2, 1}, {1, 0, 1, 1}},
  };
  for (const auto& c : cases)
    for (bool cl : {false, true})
      for (bool ind : {false, true})
        if (!(cl && ind)) CheckSignedZeros(c, cl, ind);
  CheckSignedZeros({{2, 3, 40}, {4}, {3}, {2, 1}}, false, false);
  CheckSignedZeros({{2, 3, 40}, {4}, {3}, {2, 1}}, false, true);
}

// NaN in a window wins on the generic path too (the one with Indices, and other dtypes), and its
// index is the first NaN's: the fast path and the generic path give the same Y.
TEST(PoolFast, MaxPoolNaNWithIndices) {
  const float nan = std::numeric_limits<float>::quiet_NaN();
  for (TP::DataType dt : {TP::FLOAT, TP::DOUBLE})
    for (bool indices : {true, false}) {
      SCOPED_TRACE(::testing::Message() << (dt == TP::FLOAT ? "float" : "double") << (indices ? " with Indices" : ""));
      ModelBuilder b;
      b.Input("x", dt, {1, 2, 1, 4}).Output("y", dt, {1, 2, 1, 1});
      if (indices) b.Output("i", TP::INT64, {1, 2, 1, 1});
      auto& n = b.Node("MaxPool", {"x"}, indices ? std::vector<std::string>{"y", "i"} : std::vector<std::string>{"y"});
      SetInts(n, "kernel_shape", {1, 4});
      // Plane 0: NaN after a smaller tap, then larger ones. Plane 1: two NaNs, the first one wins.
      const std::vector<double> xv = {1, nan, 3, 2, 5, nan, 7, nan};
      Tensor x(dt == TP::FLOAT ? DType::kFloat : DType::kDouble, Shape{1, 2, 1, 4});
      for (int64_t i = 0; i < 8; ++i) {
        if (dt == TP::FLOAT) x.data<float>()[i] = static_cast<float>(xv[static_cast<size_t>(i)]);
        else x.data<double>()[i] = xv[static_cast<size_t>(i)];
      }
      const std::vector<Value> got = RunAtO0(Import(b), x);
      ASSERT_FALSE(got.empty());
      for (int64_t p = 0; p < 2; ++p) EXPECT_TRUE(std::isnan(got[0].tensor().GetAsDouble(p))) << "plane " << p;
      if (indices) {
        EXPECT_EQ(got[1].tensor().data<int64_t>()[0], 1);
        EXPECT_EQ(got[1].tensor().data<int64_t>()[1], 4 + 1);
      }
    }
}

// GlobalMaxPool follows MaxPool's rules: a NaN anywhere gives NaN (std::max dropped a NaN that came
// after the first tap), and a zero maximum is +0 when the plane holds a +0.
TEST(PoolFast, GlobalMaxPoolNaNAndSignedZeros) {
  const float nan = std::numeric_limits<float>::quiet_NaN();
  for (TP::DataType dt : {TP::FLOAT, TP::DOUBLE}) {
    SCOPED_TRACE(dt == TP::FLOAT ? "float" : "double");
    ModelBuilder b;
    b.Input("x", dt, {1, 3, 4}).Output("y", dt, {1, 3, 1});
    b.Node("GlobalMaxPool", {"x"}, {"y"});
    // Plane 0: NaN after a smaller tap. Plane 1: -0, then +0, then -0 and negatives. Plane 2: only -0.
    const std::vector<double> xv = {1, nan, 3, 2, -0.0, 0.0, -0.0, -1, -0.0, -2, -0.0, -3};
    Tensor x(dt == TP::FLOAT ? DType::kFloat : DType::kDouble, Shape{1, 3, 4});
    for (int64_t i = 0; i < 12; ++i) {
      if (dt == TP::FLOAT) x.data<float>()[i] = static_cast<float>(xv[static_cast<size_t>(i)]);
      else x.data<double>()[i] = xv[static_cast<size_t>(i)];
    }
    const std::vector<Value> got = RunAtO0(Import(b), x);
    ASSERT_FALSE(got.empty());
    const Tensor& y = got[0].tensor();
    EXPECT_TRUE(std::isnan(y.GetAsDouble(0)));
    EXPECT_EQ(y.GetAsDouble(1), 0.0);
    EXPECT_FALSE(std::signbit(y.GetAsDouble(1)));
    EXPECT_EQ(y.GetAsDouble(2), 0.0);
    EXPECT_TRUE(std::signbit(y.GetAsDouble(2)));
  }
}

// Channels-last GlobalAveragePool (the com.strata form) sums each channel's positions in the order
// the NCHW loop does: both layouts give the same bits, at every ISA, also past one batch of row
// pointers (81 and 100 positions) and with channel tails.
TEST(PoolFast, GlobalAveragePoolChannelsLastSameBits) {
  const std::vector<std::vector<int64_t>> shapes = {{1, 2048, 7, 7}, {2, 67, 9, 9}, {1, 5, 10, 10}, {3, 16, 1, 1}};
  for (const auto& in : shapes) {
    SCOPED_TRACE(::testing::Message() << "C=" << in[1] << " H=" << in[2] << " W=" << in[3]);
    const int64_t n = in[0], c = in[1], hw = in[2] * in[3];
    const std::vector<float> xv = Values(n * c * hw, 3);
    auto run = [&](bool channels_last) {
      ModelBuilder b;
      b.Input("x", TP::FLOAT, in).Output("y", TP::FLOAT, {n, c, 1, 1});
      auto& node = b.Node("GlobalAveragePool", {"x"}, {"y"});
      if (channels_last) {
        auto* imp = b.proto().add_opset_import();
        imp->set_domain("com.strata");
        imp->set_version(1);
        node.set_domain("com.strata");
        SetString(node, "layout", "NHWC");
      }
      Tensor x(DType::kFloat, Shape(in.begin(), in.end()));
      for (int64_t bi = 0; bi < n; ++bi)
        for (int64_t ci = 0; ci < c; ++ci)
          for (int64_t q = 0; q < hw; ++q)
            x.data<float>()[channels_last ? (bi * hw + q) * c + ci : (bi * c + ci) * hw + q] =
                xv[static_cast<size_t>((bi * c + ci) * hw + q)];
      ir::Model m = Import(b);
      for (auto& nd : m.graph->nodes) nd.opset = 13;
      const std::vector<Value> got = RunAtO0(std::move(m), x);
      std::vector<float> y;
      if (!got.empty()) y.assign(got[0].tensor().data<float>(), got[0].tensor().data<float>() + n * c);
      return y;
    };
    for (Isa isa : Isas()) {
      IsaScope scope(isa);
      SCOPED_TRACE(::testing::Message() << "isa " << cpu::vec::IsaName(isa));
      const std::vector<float> want = run(false), got = run(true);
      ASSERT_EQ(want.size(), got.size());
      int bad = 0;
      for (size_t i = 0; i < want.size(); ++i)
        if (std::memcmp(&want[i], &got[i], sizeof(float)) != 0 && bad++ < 5)
          ADD_FAILURE() << "element " << i << ": NCHW " << want[i] << ", NHWC " << got[i];
      EXPECT_EQ(bad, 0);
    }
  }
}

}  // namespace
}  // namespace strata::testing
