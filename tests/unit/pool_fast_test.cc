// The float32 MaxPool/AveragePool fast path (pool_pool.cc) against an independent double-precision
// reference of the ONNX definitions, across 1-D/2-D/3-D windows, pads, strides, dilations,
// ceil_mode, count_include_pad and auto_pad, and across the AVX-512 and portable row kernels.
// Channels-last pooling is checked through the conv-layout pass (passes_conv_layout_test.cc).
#include <limits>

#include "kernels/cpu/vec_math.h"
#include "passes_test_util.h"

namespace strata::testing {
namespace {

using cpu::vec::Isa;

struct IsaScope {
  explicit IsaScope(Isa isa) { cpu::vec::ForceIsa(isa); }
  ~IsaScope() { cpu::vec::ForceIsa(cpu::vec::BestIsa()); }
};

std::vector<Isa> Isas() {
  std::vector<Isa> v{Isa::kScalar};
  if (cpu::vec::BestIsa() == Isa::kAvx512) v.push_back(Isa::kAvx512);
  return v;
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
      SessionOptions opts;
      opts.opt_level = 0;
      auto sess = Session::FromModel(Import(b), opts);
      ASSERT_TRUE(sess.ok()) << sess.status().ToString();
      std::vector<Value> got;
      const std::vector<Value> inputs{Value(x)};
      const Status st = (*sess)->Run(inputs, got);
      ASSERT_TRUE(st.ok()) << st.ToString();
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

}  // namespace
}  // namespace strata::testing
