// Helpers for graph-pass tests: build a model with ModelBuilder, optimise it, count op types, and
// compare its outputs with the unoptimised run (both through strata::Session).
#pragma once

#include <gtest/gtest.h>

#include <cmath>
#include <map>
#include <random>
#include <string>
#include <vector>

#include "onnx/importer.h"
#include "passes/graph_pass.h"
#include "runtime/session.h"
#include "test_model_builder.h"

namespace strata::testing {

using TP = onnx::TensorProto;

inline void SetInts(onnx::NodeProto& n, const std::string& name, const std::vector<int64_t>& v) {
  auto* a = n.add_attribute();
  a->set_name(name);
  a->set_type(onnx::AttributeProto::INTS);
  for (auto x : v) a->add_ints(x);
}
inline void SetInt(onnx::NodeProto& n, const std::string& name, int64_t v) {
  auto* a = n.add_attribute();
  a->set_name(name);
  a->set_type(onnx::AttributeProto::INT);
  a->set_i(v);
}
inline void SetFloat(onnx::NodeProto& n, const std::string& name, float v) {
  auto* a = n.add_attribute();
  a->set_name(name);
  a->set_type(onnx::AttributeProto::FLOAT);
  a->set_f(v);
}
inline void SetString(onnx::NodeProto& n, const std::string& name, const std::string& v) {
  auto* a = n.add_attribute();
  a->set_name(name);
  a->set_type(onnx::AttributeProto::STRING);
  a->set_s(v);
}
inline void Int64Init(ModelBuilder& b, const std::string& name, const std::vector<int64_t>& v, bool scalar = false) {
  auto* t = b.proto().mutable_graph()->add_initializer();
  t->set_name(name);
  t->set_data_type(TP::INT64);
  if (!scalar) t->add_dims(static_cast<int64_t>(v.size()));
  for (auto x : v) t->add_int64_data(x);
}
inline void ScalarInit(ModelBuilder& b, const std::string& name, float v) { b.Initializer(name, {v}, {}); }
// Deterministic values in [-2, 2) with a few exact zeros and negatives, so activations see both sides.
inline std::vector<float> Values(int64_t n, unsigned seed) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> d(-2.f, 2.f);
  std::vector<float> v(static_cast<size_t>(n));
  for (auto& x : v) x = d(rng);
  if (n > 3) v[1] = 0.f;
  return v;
}
inline void RandomInit(ModelBuilder& b, const std::string& name, const std::vector<int64_t>& dims, unsigned seed) {
  int64_t n = 1;
  for (auto d : dims) n *= d;
  b.Initializer(name, Values(n, seed), dims);
}

// Strata imports opsets up to 18, so tests write Gelu into older models the way the passes do: with
// the node's opset override set to 20.
inline ir::Model Import(ModelBuilder& b) {
  const std::string bytes = b.Bytes();
  auto m = onnx_io::LoadModelFromBytes(bytes.data(), bytes.size());
  EXPECT_TRUE(m.ok()) << m.status().ToString();
  for (auto& n : m->graph->nodes)
    if (n.op_type == "Gelu") n.opset = 20;
  return std::move(m).value();
}

using OpCounts = std::map<std::string, int>;
inline OpCounts CountOps(const ir::Model& m) {
  OpCounts c;
  for (const auto& n : m.graph->nodes) ++c[n.op_type];
  return c;
}
inline int Count(const OpCounts& c, const std::string& op) {
  auto it = c.find(op);
  return it == c.end() ? 0 : it->second;
}

// Runs the model at -O0 and at -O`level` on random float/double inputs (shapes from the declared inputs, all
// dims known) and expects the same outputs within `tol` (absolute plus relative). Returns the op
// counts of the optimised graph.
inline OpCounts CheckOptimized(ModelBuilder& b, int level, double tol = 1e-5) {
  SessionOptions o0, on;
  o0.opt_level = 0;
  on.opt_level = level;
  auto ref = Session::FromModel(Import(b), o0);
  auto opt = Session::FromModel(Import(b), on);
  EXPECT_TRUE(ref.ok()) << ref.status().ToString();
  EXPECT_TRUE(opt.ok()) << opt.status().ToString();
  if (!ref.ok() || !opt.ok()) return {};
  std::vector<Value> inputs;
  unsigned seed = 7;
  for (const auto& vi : (*ref)->inputs()) {
    Shape s;
    for (const auto& d : *vi.type.shape) s.push_back(d.value);
    Tensor t(vi.type.elem_type, s);
    const auto v = Values(t.numel(), seed++);
    if (t.dtype() == DType::kDouble) std::copy(v.begin(), v.end(), t.data<double>());
    else std::copy(v.begin(), v.end(), t.data<float>());
    inputs.emplace_back(std::move(t));
  }
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
      if (std::isnan(a) && std::isnan(c)) continue;
      if (!(std::fabs(a - c) <= tol + tol * std::fabs(a))) {
        if (bad++ < 5) ADD_FAILURE() << "output " << k << " element " << i << ": unoptimised " << a << ", -O" << level << " " << c;
      }
    }
    EXPECT_EQ(bad, 0) << "output " << k;
  }
  // The graph interface never changes.
  EXPECT_EQ((*ref)->inputs().size(), (*opt)->inputs().size());
  for (size_t k = 0; k < (*ref)->outputs().size(); ++k) EXPECT_EQ((*ref)->outputs()[k].name, (*opt)->outputs()[k].name);
  return CountOps((*opt)->model());
}

// Applies one registered pass (after shape inference) and returns whether it changed anything.
inline bool ApplyPass(ir::Model& m, const std::string& name) {
  auto p = passes::PassRegistry::Global().Create(name);
  EXPECT_TRUE(p) << name;
  if (!p) return false;
  auto r = p->Apply(m);
  EXPECT_TRUE(r.ok()) << r.status().ToString();
  return r.ok() && *r;
}

}  // namespace strata::testing
