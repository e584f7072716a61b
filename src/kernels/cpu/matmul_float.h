// Float32 matmul machinery shared by the MatMul, FusedMatMul and Gemm kernels: numpy batch geometry,
// oneDNN matmuls with plain inputs (FloatMatMul), and constant weights packed once at load
// (ukernels/packed_gemm_f32.h).
#pragma once

#include <algorithm>
#include <utility>
#include <vector>

#include "core/large_buffer.h"
#include "kernels/cpu/fused_epilogue.h"
#include "kernels/cpu/nn_common.h"
#include "kernels/cpu/ukernels/packed_gemm_f32.h"

namespace strata::cpu::matmul {

using dnnl::memory;
using nn::Engine;
using nn::Stream;

// ---- Batched matmul geometry (numpy semantics, including 1-D promotion) ----

struct MatMulGeom {
  Shape a_shape, b_shape, out;
  int64_t M = 0, N = 0, K = 0;
  Shape batch;                       // broadcast batch shape
  std::vector<int64_t> a_off, b_off;  // per batch: element offsets of each A/B matrix
  Shape a_batch, b_batch;            // batch dims of A/B padded to batch rank
  bool built = false;                // describes a_shape x b_shape
};

// Fills `g` for A of shape `a` times B of shape `b`. A kernel keeps its MatMulGeom between runs: when
// the shapes are those of the last successful build, it is reused as it is.
inline Status BuildMatMulGeom(const Shape& a, const Shape& b, MatMulGeom& g) {
  if (g.built && a == g.a_shape && b == g.b_shape) return Status::Ok();
  g.built = false;
  if (a.empty() || b.empty()) return InvalidArgument("MatMul inputs must have rank >= 1");
  g.a_shape = a;
  g.b_shape = b;
  Shape a2 = a, b2 = b;
  if (a2.size() == 1) a2.insert(a2.begin(), 1);
  if (b2.size() == 1) b2.push_back(1);
  g.M = a2[a2.size() - 2];
  g.K = a2[a2.size() - 1];
  g.N = b2[b2.size() - 1];
  if (b2[b2.size() - 2] != g.K)
    return InvalidArgument("MatMul: inner dimensions differ: " + ShapeToString(a) + " x " + ShapeToString(b));
  Shape ab(a2.begin(), a2.end() - 2), bb(b2.begin(), b2.end() - 2);
  ASSIGN_OR_RETURN(g.batch, BroadcastShapes(ab, bb));
  g.out = g.batch;
  if (a.size() >= 2) g.out.push_back(g.M);
  if (b.size() >= 2) g.out.push_back(g.N);
  const size_t br = g.batch.size();
  g.a_batch.assign(br - ab.size(), 1);
  g.a_batch.insert(g.a_batch.end(), ab.begin(), ab.end());
  g.b_batch.assign(br - bb.size(), 1);
  g.b_batch.insert(g.b_batch.end(), bb.begin(), bb.end());
  const int64_t nb = NumElements(g.batch);
  g.a_off.resize(static_cast<size_t>(nb));
  g.b_off.resize(static_cast<size_t>(nb));
  const auto sa = BroadcastStrides(ab, g.batch), sb = BroadcastStrides(bb, g.batch);
  const int64_t am = g.M * g.K, bm = g.K * g.N;
  if (br == 0) {
    g.a_off[0] = 0;
    g.b_off[0] = 0;
  } else {
    ForEachBroadcast2(g.batch, sa, sb, [&](int64_t o, int64_t ia, int64_t ib) {
      g.a_off[static_cast<size_t>(o)] = ia * am;
      g.b_off[static_cast<size_t>(o)] = ib * bm;
    });
  }
  g.built = true;
  return Status::Ok();
}

template <typename Acc, typename TA, typename TB>
void BatchedMatMulRef(const MatMulGeom& g, const TA* a, const TB* b, Acc* y) {
  const int64_t ym = g.M * g.N;
  for (size_t i = 0; i < g.a_off.size(); ++i)
    nn::GemmRef<Acc>(g.M, g.N, g.K, a + g.a_off[i], b + g.b_off[i], y + static_cast<int64_t>(i) * ym, false);
}

// A cached oneDNN float32 matmul for one pair of input shapes.
struct DnnlMatMul {
  dnnl::matmul prim;
  memory::desc a_md, b_md, y_md, bias_md;
  bool ok = false;
};

// `ep` (optional) adds post-ops; `bias` a [N] bias broadcast over the rows.
inline DnnlMatMul MakeDnnlMatMul(const MatMulGeom& g, const Epilogue* ep = nullptr, bool bias = false) {
  DnnlMatMul d;
  if (g.M == 0 || g.N == 0 || g.K == 0 || NumElements(g.batch) == 0) return d;
  if (g.batch.size() + 2 > DNNL_MAX_NDIMS) return d;
  std::vector<int64_t> ad = g.a_batch, bd = g.b_batch, yd = g.batch;
  ad.push_back(g.M); ad.push_back(g.K);
  bd.push_back(g.K); bd.push_back(g.N);
  yd.push_back(g.M); yd.push_back(g.N);
  try {
    d.a_md = nn::PlainDesc(ad);
    d.b_md = nn::PlainDesc(bd);
    d.y_md = nn::PlainDesc(yd);
    if (bias) {
      std::vector<int64_t> bd(yd.size(), 1);
      bd.back() = g.N;
      d.bias_md = nn::PlainDesc(bd);
    }
    dnnl::matmul::desc desc(d.a_md, d.b_md, d.bias_md, d.y_md);
    dnnl::matmul::primitive_desc pd(desc, ep ? ep->Attr() : dnnl::primitive_attr(), Engine());
    d.prim = dnnl::matmul(pd);
    d.ok = true;
  } catch (const dnnl::error&) {
    d.ok = false;
  }
  return d;
}

// Float32 batched matmul: oneDNN when it accepts the shapes, else the reference loops. With an
// epilogue (FusedMatMul): y = activations(a*b + bias + residual).
class FloatMatMul {
 public:
  // Set once, before the first Prepare.
  void Configure(const Epilogue* ep, bool bias) {
    ep_ = ep;
    bias_ = bias;
  }
  void Prepare(const MatMulGeom& g) {
    if (prepared_ && g.a_shape == geom_a_ && g.b_shape == geom_b_) return;
    dnnl_ = MakeDnnlMatMul(g, ep_, bias_);
    geom_a_ = g.a_shape;
    geom_b_ = g.b_shape;
    prepared_ = true;
  }
  void Run(const MatMulGeom& g, const float* a, const float* b, float* y, const float* bias = nullptr,
           const float* residual = nullptr) {
    Prepare(g);
    const int64_t n = NumElements(g.out);
    if (n == 0) return;
    if (dnnl_.ok && g.K > 0) {
      // The residual enters as a sum post-op, which accumulates into the destination.
      if (residual) ParallelCopy(residual, y, n);
      call_.Arg(DNNL_ARG_SRC, dnnl_.a_md, a).Arg(DNNL_ARG_WEIGHTS, dnnl_.b_md, b).Arg(DNNL_ARG_DST, dnnl_.y_md, y);
      if (bias_) call_.Arg(DNNL_ARG_BIAS, dnnl_.bias_md, bias);
      call_.Execute(dnnl_.prim);
      return;
    }
    std::vector<float> kept;  // the residual, when the output took over its buffer (in place)
    if (residual == y) {
      kept.assign(residual, residual + n);
      residual = kept.data();
    }
    if (g.K == 0) std::fill(y, y + n, 0.f);
    else BatchedMatMulRef<float>(g, a, b, y);
    if (bias_)
      for (int64_t i = 0; i < n; ++i) y[i] += bias[i % g.N];
    if (ep_) ep_->Apply(y, n, residual);
  }

 private:
  const Epilogue* ep_ = nullptr;
  bool bias_ = false;
  bool prepared_ = false;
  Shape geom_a_, geom_b_;
  DnnlMatMul dnnl_;
  nn::DnnlCall call_;
};

using PackedMatMul = uk::PackedGemmF32;

// Packs a constant float32 2-D `w` ([K, N], or [N, K] when `trans`) into `p`; false when it is not
// one or neither back-end takes it.
inline bool PackConstant(PackedMatMul& p, const Tensor& w, bool trans, uk::GemmPostOps post) {
  if (w.dtype() != DType::kFloat || w.rank() != 2) return false;
  return p.Pack(w.data<float>(), trans ? w.dim(1) : w.dim(0), trans ? w.dim(0) : w.dim(1), trans, std::move(post));
}

// Rows of A against packed [K, N] weights: A [..., K] -> Y [..., N] (numpy MatMul with a 2-D B).
inline Status PackedOutputShape(const Tensor& a, const PackedMatMul& p, const char* op, Shape& out) {
  if (a.dtype() != DType::kFloat)
    return InvalidArgument(std::string(op) + ": A is " + std::string(DTypeName(a.dtype())) +
                           ", but the constant B is float32");
  if (a.rank() == 0 || a.shape().back() != p.K())
    return InvalidArgument(std::string(op) + ": inner dimensions differ: " + ShapeToString(a.shape()) + " x [" +
                           std::to_string(p.K()) + "," + std::to_string(p.N()) + "]");
  out.assign(a.shape().begin(), a.shape().end() - 1);
  out.push_back(p.N());
  return Status::Ok();
}

// y = epilogue(A * packed B + bias + residual). When oneDNN has no primitive for this many rows, the
// plain path runs on the unpacked weights (`fallback` was configured with the same epilogue).
inline Status RunPacked(PackedMatMul& p, FloatMatMul& fallback, MatMulGeom& geom, const Tensor& A, const float* bias,
                 const float* residual, float* y) {
  const int64_t M = A.numel() / p.K();
  if (M == 0) return Status::Ok();
  // The residual enters as a sum post-op, which accumulates into the destination.
  if (residual) ParallelCopy(residual, y, M * p.N());
  bool done = false;
  RETURN_IF_ERROR(onednn::Call("packed matmul", [&] { done = p.Run(M, A.data<float>(), bias, y); }));
  if (done) return Status::Ok();
  RETURN_IF_ERROR(BuildMatMulGeom(A.shape(), Shape{p.K(), p.N()}, geom));
  return onednn::Call("matmul", [&] { fallback.Run(geom, A.data<float>(), p.PlainWeights(), y, bias, residual); });
}

inline Shape KnownShape(const KernelInfo& info, int i, bool* known) {
  *known = false;
  const ir::TypeInfo* t = info.input_type(i);
  if (!t || t->kind != ir::TypeInfo::Kind::kTensor || !t->shape) return {};
  Shape s;
  for (const auto& d : *t->shape) {
    if (!d.known()) return {};
    s.push_back(d.value);
  }
  *known = true;
  return s;
}

}  // namespace strata::cpu::matmul
