// com.strata:Attention against a double-precision reference: both layouts, odd lengths, head dims
// that are not multiples of 16, additive, bool and causal masks (also with sq != sk), fully masked
// rows, query rows split into parts, 1 and 2 threads, and the AVX-512, AVX2 and scalar code paths.
#include <gtest/gtest.h>

#include <array>
#include <cmath>
#include <limits>
#include <random>
#include <tuple>

#include "isa_scope.h"
#include "kernels/cpu/ukernels/vec_math.h"
#include "passes_test_util.h"

namespace strata::testing {
namespace {

constexpr float kInf = std::numeric_limits<float>::infinity();

enum class MaskKind { kNone, kAdditive, kKeep };

struct Case {
  int64_t b = 1, h = 1, sq = 1, sk = 1, d = 64, dv = 64;
  bool heads_layout = true;  // num_heads = h; else [b, h, s, d] with K transposed
  bool packed = false;       // heads layout with Q, K and V side by side in one input (sq == sk, d == dv)
  MaskKind mask = MaskKind::kNone;
  std::vector<int64_t> mask_dims;  // broadcast to [b, h, sq, sk]
  bool causal = false;
  float fill = -kInf;
  float scale = 0.125f;
  bool masked_row = false;  // additive mask: one query row entirely -inf
};

std::vector<float> Random(int64_t n, unsigned seed, float lo = -1.f, float hi = 1.f) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> u(lo, hi);
  std::vector<float> v(static_cast<size_t>(n));
  for (auto& x : v) x = u(rng);
  return v;
}

int64_t Prod(const std::vector<int64_t>& d) {
  int64_t n = 1;
  for (auto x : d) n *= x;
  return n;
}


// A com.strata Attention node writing "y" in `mb` (its domain imported), with its scale.
onnx::NodeProto& AttentionNode(ModelBuilder& mb, const std::vector<std::string>& inputs, float scale,
                               const std::string& name = "") {
  auto* imp = mb.proto().add_opset_import();
  imp->set_domain("com.strata");
  imp->set_version(1);
  auto& n = mb.Node("Attention", inputs, {"y"}, name);
  n.set_domain("com.strata");
  SetFloat(n, "scale", scale);
  return n;
}

// Runs `mb` at -O0 on zero float inputs of these shapes; the run's status (the model must load).
Status RunOnZeros(ModelBuilder& mb, const std::vector<Shape>& shapes, bool check_input_shapes = true) {
  SessionOptions o;
  o.opt_level = 0;
  o.check_input_shapes = check_input_shapes;
  auto s = Session::FromModel(Import(mb), o);
  EXPECT_TRUE(s.ok()) << s.status().ToString();
  if (!s.ok()) return s.status();
  std::vector<Value> in, out;
  for (const Shape& shape : shapes) in.emplace_back(Tensor(DType::kFloat, shape));
  return (*s)->Run(in, out);
}

// Offset of element (b, h, i, j) of a tensor of `dims` broadcast to [b, h, sq, sk].
int64_t MaskOffset(const std::vector<int64_t>& dims, int64_t b, int64_t h, int64_t i, int64_t j) {
  std::vector<int64_t> d4 = dims;
  while (d4.size() < 4) d4.insert(d4.begin(), 1);
  const int64_t idx[4] = {b, h, i, j};
  int64_t off = 0;
  for (int a = 0; a < 4; ++a) off = off * d4[static_cast<size_t>(a)] + (d4[static_cast<size_t>(a)] == 1 ? 0 : idx[a]);
  return off;
}

void RunCase(const Case& c, int threads) {
  SCOPED_TRACE(::testing::Message() << "b " << c.b << " h " << c.h << " sq " << c.sq << " sk " << c.sk << " d " << c.d
                                    << " dv " << c.dv << " heads_layout " << c.heads_layout << " mask "
                                    << static_cast<int>(c.mask) << " causal " << c.causal << " fill " << c.fill
                                    << " threads " << threads);
  // Logical tensors in [b, h, s, d] order; laid out as the op wants.
  const auto q = Random(c.b * c.h * c.sq * c.d, 1), k = Random(c.b * c.h * c.sk * c.d, 2),
             v = Random(c.b * c.h * c.sk * c.dv, 3);
  auto Q = [&](int64_t b, int64_t h, int64_t i, int64_t x) {
    return q[static_cast<size_t>(((b * c.h + h) * c.sq + i) * c.d + x)];
  };
  auto K = [&](int64_t b, int64_t h, int64_t j, int64_t x) {
    return k[static_cast<size_t>(((b * c.h + h) * c.sk + j) * c.d + x)];
  };
  auto V = [&](int64_t b, int64_t h, int64_t j, int64_t x) {
    return v[static_cast<size_t>(((b * c.h + h) * c.sk + j) * c.dv + x)];
  };
  std::vector<int64_t> qd, kd, vd, yd;
  std::vector<float> qt, kt, vt;
  if (c.heads_layout) {
    qd = {c.b, c.sq, c.h * c.d}, kd = {c.b, c.sk, c.h * c.d}, vd = {c.b, c.sk, c.h * c.dv},
    yd = {c.b, c.sq, c.h * c.dv};
    for (int64_t b = 0; b < c.b; ++b)
      for (int64_t i = 0; i < c.sq; ++i)
        for (int64_t h = 0; h < c.h; ++h)
          for (int64_t x = 0; x < c.d; ++x) qt.push_back(Q(b, h, i, x));
    for (int64_t b = 0; b < c.b; ++b)
      for (int64_t j = 0; j < c.sk; ++j)
        for (int64_t h = 0; h < c.h; ++h) {
          for (int64_t x = 0; x < c.d; ++x) kt.push_back(K(b, h, j, x));
        }
    for (int64_t b = 0; b < c.b; ++b)
      for (int64_t j = 0; j < c.sk; ++j)
        for (int64_t h = 0; h < c.h; ++h)
          for (int64_t x = 0; x < c.dv; ++x) vt.push_back(V(b, h, j, x));
  } else {
    qd = {c.b, c.h, c.sq, c.d}, kd = {c.b, c.h, c.d, c.sk}, vd = {c.b, c.h, c.sk, c.dv}, yd = {c.b, c.h, c.sq, c.dv};
    qt = q, vt = v;
    for (int64_t b = 0; b < c.b; ++b)
      for (int64_t h = 0; h < c.h; ++h)
        for (int64_t x = 0; x < c.d; ++x)
          for (int64_t j = 0; j < c.sk; ++j) kt.push_back(K(b, h, j, x));
  }
  std::vector<float> addm;
  std::vector<char> keepm;
  if (c.mask == MaskKind::kAdditive) {
    addm = Random(Prod(c.mask_dims), 4, -3.f, 1.f);
    if (c.masked_row)  // every key of query 0 hidden (in every broadcast copy)
      for (int64_t j = 0; j < c.sk; ++j) addm[static_cast<size_t>(MaskOffset(c.mask_dims, 0, 0, 0, j))] = -kInf;
  } else if (c.mask == MaskKind::kKeep) {
    std::vector<int64_t> d4 = c.mask_dims;
    while (d4.size() < 4) d4.insert(d4.begin(), 1);
    std::mt19937 rng(5);
    for (int64_t n = 0; n < Prod(c.mask_dims); ++n) {
      const int64_t i = n / d4[3] % d4[2], j = n % d4[3];
      keepm.push_back(c.causal ? j <= i : rng() % 4 != 0);
    }
  }

  ModelBuilder mb;
  std::vector<int64_t> xd = {c.b, c.sq, 3 * c.h * c.d};
  std::vector<float> xt;  // [Q | K | V] per row
  if (c.packed) {
    mb.Input("qkv", TP::FLOAT, xd);
    for (int64_t r = 0; r < c.b * c.sq; ++r)
      for (auto* t : {&qt, &kt, &vt}) xt.insert(xt.end(), t->begin() + r * c.h * c.d, t->begin() + (r + 1) * c.h * c.d);
  } else {
    mb.Input("q", TP::FLOAT, qd).Input("k", TP::FLOAT, kd).Input("v", TP::FLOAT, vd);
  }
  mb.Output("y", TP::FLOAT, yd);
  std::vector<std::string> ins = c.packed ? std::vector<std::string>{"qkv", "", ""} : std::vector<std::string>{"q", "k", "v"};
  if (c.mask == MaskKind::kAdditive) {
    mb.Initializer("m", addm, c.mask_dims);
    ins.push_back("m");
  } else if (c.mask == MaskKind::kKeep) {
    auto* t = mb.proto().mutable_graph()->add_initializer();
    t->set_name("m");
    t->set_data_type(TP::BOOL);
    for (auto x : c.mask_dims) t->add_dims(x);
    for (char x : keepm) t->add_int32_data(x);
    ins.push_back("m");
  }
  auto& n = AttentionNode(mb, ins, c.scale);
  if (c.heads_layout) SetInt(n, "num_heads", c.h);
  if (c.packed) SetInt(n, "packed_qkv", 1);
  if (c.causal) SetInt(n, "causal", 1);
  if (c.mask == MaskKind::kKeep || c.causal) SetFloat(n, "mask_fill", c.fill);

  SessionOptions o;
  o.opt_level = 0;
  o.num_threads = threads;
  auto s = Session::FromModel(Import(mb), o);
  ASSERT_TRUE(s.ok()) << s.status().ToString();
  std::vector<Value> in, out;
  for (auto* p : c.packed ? std::vector<std::vector<float>*>{&xt} : std::vector<std::vector<float>*>{&qt, &kt, &vt}) {
    const auto& dims = p == &xt ? xd : p == &qt ? qd : p == &kt ? kd : vd;
    Tensor t(DType::kFloat, Shape(dims));
    std::copy(p->begin(), p->end(), t.data<float>());
    in.emplace_back(std::move(t));
  }
  Status st = (*s)->Run(in, out);
  ASSERT_TRUE(st.ok()) << st.ToString();
  const Tensor& y = out[0].tensor();
  ASSERT_EQ(y.shape(), Shape(yd));

  int bad = 0;
  std::vector<double> sc(static_cast<size_t>(c.sk));
  for (int64_t b = 0; b < c.b; ++b)
    for (int64_t h = 0; h < c.h; ++h)
      for (int64_t i = 0; i < c.sq; ++i) {
        double mx = -INFINITY;
        for (int64_t j = 0; j < c.sk; ++j) {
          double a = 0;
          for (int64_t x = 0; x < c.d; ++x) a += static_cast<double>(Q(b, h, i, x)) * K(b, h, j, x);
          a *= c.scale;
          const int64_t mo = MaskOffset(c.mask_dims, b, h, i, j);
          if (c.mask == MaskKind::kAdditive) a += addm[static_cast<size_t>(mo)];
          if (c.mask == MaskKind::kKeep && !keepm[static_cast<size_t>(mo)]) a = c.fill;
          if (c.mask == MaskKind::kNone && c.causal && j > i) a = c.fill;  // the rule alone
          sc[static_cast<size_t>(j)] = a;
          mx = std::max(mx, a);
        }
        double sum = 0;
        for (auto& e : sc) sum += (e = std::exp(e - mx));  // NaN for a row of -inf, as the unfused graph
        for (int64_t x = 0; x < c.dv; ++x) {
          double want = 0;
          for (int64_t j = 0; j < c.sk; ++j) want += sc[static_cast<size_t>(j)] / sum * V(b, h, j, x);
          const int64_t at =
              c.heads_layout ? (b * c.sq + i) * c.h * c.dv + h * c.dv + x : ((b * c.h + h) * c.sq + i) * c.dv + x;
          const double got = y.data<float>()[at];
          if (std::isnan(want) && std::isnan(got)) continue;
          if (!(std::fabs(got - want) <= 1e-5 * (1 + std::fabs(want))) && bad++ < 5)
            ADD_FAILURE() << "b " << b << " h " << h << " i " << i << " x " << x << ": want " << want << " got " << got;
        }
      }
  EXPECT_EQ(bad, 0);
}

// Runs `c` on every ISA level this CPU has, at 1 and 2 threads.
void RunAll(const Case& c) {
  for (auto isa : AvailableIsas()) {
    IsaScope scope(isa);
    for (int threads : {1, 2}) RunCase(c, threads);
  }
}

TEST(AttentionKernel, HeadsLayoutShapes) {
  for (int64_t s : {1, 7, 128, 129})
    for (int64_t d : {64, 32, 80}) {
      Case c;
      c.b = 2, c.h = 2, c.sq = s, c.sk = s, c.d = d, c.dv = d;
      c.scale = 1.f / std::sqrt(static_cast<float>(d));
      RunAll(c);
    }
}

TEST(AttentionKernel, PackedQkv) {
  for (int64_t seq : {1, 7, 129}) {
    Case c;
    c.b = 2, c.h = 3, c.sq = seq, c.sk = seq, c.d = 32, c.dv = 32, c.packed = true;
    c.mask = MaskKind::kKeep, c.mask_dims = {1, 1, seq, seq}, c.causal = true;
    RunAll(c);
  }
}

TEST(AttentionKernel, CoreLayoutAndOddDims) {
  for (auto [sq, sk, d, dv] : std::vector<std::array<int64_t, 4>>{{7, 129, 80, 32}, {33, 5, 3, 17}, {1, 1, 1, 1}}) {
    Case c;
    c.b = 2, c.h = 3, c.sq = sq, c.sk = sk, c.d = d, c.dv = dv, c.heads_layout = false;
    RunAll(c);
  }
}

TEST(AttentionKernel, AdditiveMasks) {
  for (auto dims : std::vector<std::vector<int64_t>>{{2, 1, 1, 37}, {1, 37}, {2, 2, 37, 37}, {37, 1}}) {
    Case c;
    c.b = 2, c.h = 2, c.sq = 37, c.sk = 37, c.d = 32, c.dv = 32, c.mask = MaskKind::kAdditive, c.mask_dims = dims;
    RunAll(c);
  }
}

TEST(AttentionKernel, FullyMaskedRowIsNaN) {
  Case c;
  c.b = 2, c.h = 2, c.sq = 9, c.sk = 9, c.d = 64, c.dv = 64, c.mask = MaskKind::kAdditive, c.mask_dims = {2, 1, 9, 9};
  c.masked_row = true;
  RunAll(c);
}

TEST(AttentionKernel, KeepMasks) {
  for (float fill : {-kInf, -3.4e38f, -5.f}) {
    Case c;
    c.b = 2, c.h = 2, c.sq = 20, c.sk = 20, c.d = 64, c.dv = 64, c.mask = MaskKind::kKeep, c.mask_dims = {1, 1, 20, 20};
    c.fill = fill;
    RunAll(c);
  }
}

TEST(AttentionKernel, Causal) {
  // A finite fill close enough to the scores that the skipped keys count: the block is redone.
  for (float fill : {-kInf, -3.4e38f, -1.f})
    for (int64_t s : {1, 7, 128, 129}) {
      Case c;
      c.b = 2, c.h = 3, c.sq = s, c.sk = s, c.d = 64, c.dv = 64, c.mask = MaskKind::kKeep, c.mask_dims = {1, 1, s, s};
      c.causal = true, c.fill = fill;
      RunAll(c);
    }
}

TEST(AttentionKernel, QueryRowsSplitAcrossParts) {
  // One head of 130 rows: Run splits the query rows into parts (2 at 1 thread, 4 at 2) that start at
  // rows 32, 65 and 97, not multiples of the 4-row block, and each part packs K^T itself.
  for (auto [mask, causal, fill] : std::vector<std::tuple<MaskKind, bool, float>>{
           {MaskKind::kKeep, true, -kInf}, {MaskKind::kKeep, true, -1.f}, {MaskKind::kKeep, false, -kInf},
           {MaskKind::kNone, true, -kInf}, {MaskKind::kNone, false, -kInf}})
    for (bool heads_layout : {true, false}) {
      Case c;
      c.b = 1, c.h = 1, c.sq = 130, c.sk = 130, c.d = 64, c.dv = 64, c.heads_layout = heads_layout;
      c.mask = mask, c.causal = causal, c.fill = fill;
      if (mask == MaskKind::kKeep) c.mask_dims = {1, 1, 130, 130};
      RunAll(c);
    }
}

TEST(AttentionKernel, CausalWithMoreOrFewerQueriesThanKeys) {
  // causal hides key j from query i when j > i (top-left aligned), with no mask or with an [sq, sk] one.
  for (auto [sq, sk] : std::vector<std::array<int64_t, 2>>{{9, 5}, {5, 9}, {37, 20}, {20, 37}})
    for (MaskKind mask : {MaskKind::kNone, MaskKind::kKeep})
      for (float fill : {-kInf, -1.f}) {
        Case c;
        c.b = 2, c.h = 2, c.sq = sq, c.sk = sk, c.d = 32, c.dv = 32, c.heads_layout = false, c.causal = true;
        c.mask = mask, c.fill = fill;
        if (mask == MaskKind::kKeep) c.mask_dims = {1, 1, sq, sk};
        RunAll(c);
      }
}

TEST(AttentionKernel, CausalWithBroadcastMaskUsesTheMask) {
  // A [1, sk] mask is not the [sq, sk] corner the pass proved, so its values decide.
  Case c;
  c.b = 1, c.h = 2, c.sq = 9, c.sk = 9, c.d = 16, c.dv = 16, c.mask = MaskKind::kKeep, c.mask_dims = {1, 9};
  c.causal = true;
  RunAll(c);
}

TEST(AttentionKernel, RejectsBadShapes) {
  ModelBuilder mb;
  mb.Input("q", TP::FLOAT, {1, 4, 8}).Input("k", TP::FLOAT, {1, 5, 8}).Input("v", TP::FLOAT, {1, 4, 8});
  mb.Output("y", TP::FLOAT, {1, 4, 8});
  SetInt(AttentionNode(mb, {"q", "k", "v"}, 1.f), "num_heads", 2);
  const Status st = RunOnZeros(mb, {{1, 4, 8}, {1, 5, 8}, {1, 4, 8}});
  EXPECT_FALSE(st.ok());
  EXPECT_NE(st.ToString().find("Attention"), std::string::npos) << st.ToString();
}

TEST(AttentionKernel, RejectsCausalWithAFloatMask) {
  // Adding the mask and applying the causal rule would both be plausible readings: neither is guessed.
  ModelBuilder mb;
  mb.Input("q", TP::FLOAT, {1, 4, 8}).Input("k", TP::FLOAT, {1, 4, 8}).Input("v", TP::FLOAT, {1, 4, 8});
  mb.Initializer("m", std::vector<float>(16, 0.f), {4, 4});
  mb.Output("y", TP::FLOAT, {1, 4, 8});
  auto& n = AttentionNode(mb, {"q", "k", "v", "m"}, 1.f, "att0");
  SetInt(n, "num_heads", 2);
  SetInt(n, "causal", 1);
  const Status st = RunOnZeros(mb, {{1, 4, 8}, {1, 4, 8}, {1, 4, 8}});
  EXPECT_EQ(st.code(), StatusCode::kInvalidArgument) << st.ToString();
  EXPECT_NE(st.ToString().find("att0"), std::string::npos) << st.ToString();
  EXPECT_NE(st.ToString().find("causal=1 needs a bool mask or none; got a float mask"), std::string::npos)
      << st.ToString();
}

TEST(AttentionKernel, RejectsPackedWidthsThatDoNotSplitIntoHeads) {
  // A hand-written node: 3 * num_heads wraps to 2 here, and [1, 2, 6] does not hold 3 * h * d
  // for any d >= 1. Either must be an error, never an output left unwritten.
  for (int64_t heads : {int64_t{4}, int64_t{6148914691236517206}}) {
    SCOPED_TRACE(heads);
    ModelBuilder mb;
    mb.Input("qkv", TP::FLOAT, {1, 2, 6}).Output("y", TP::FLOAT, {1, 2, 2});
    auto& n = AttentionNode(mb, {"qkv", "", ""}, 1.f);
    SetInt(n, "num_heads", heads);
    SetInt(n, "packed_qkv", 1);
    const Status st = RunOnZeros(mb, {{1, 2, 6}}, /*check_input_shapes=*/false);
    EXPECT_FALSE(st.ok());
    EXPECT_NE(st.ToString().find("packed QKV"), std::string::npos) << st.ToString();
  }
}

}  // namespace
}  // namespace strata::testing
