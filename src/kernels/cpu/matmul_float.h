// Float32 matmul machinery shared by the MatMul, FusedMatMul and Gemm kernels: numpy batch geometry,
// oneDNN matmuls with plain inputs (FloatMatMul), and weights packed once at load (PackedMatMul: for
// oneDNN's blocked layout, or for Strata's own AVX2 GEMM, ukernels/gemm_f32.h).
#pragma once

#include <algorithm>
#include <vector>

#include "core/large_buffer.h"
#include "kernels/cpu/fused_epilogue.h"
#include "kernels/cpu/nn_common.h"
#include "kernels/cpu/ukernels/gemm_f32.h"

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

// What Strata's own GEMM does after the product: y = alpha * AB + beta * y (y holds the residual or
// Gemm's C, as for oneDNN's sum post-op) + bias, then the epilogue's activations.
struct OwnEpilogue {
  float alpha = 1.f, beta = 0.f;
  const Epilogue* ep = nullptr;
};

// A float32 matmul against constant weights, reordered once at load into the blocked layout that
// oneDNN's matmul prefers (about 20-30% faster than reading plain row-major weights). oneDNN picks
// the same layout whatever M is, so rows of A of any leading shape flatten into M and share one
// packed copy; each new M gets its own primitive over it.
class PackedMatMul {
 public:
  // Packs B = `w` ([K, N], or [N, K] when `trans`) for y = post-ops(a*B [+ bias]), the post-ops
  // given twice: as oneDNN's `attr`, and as `own` for Strata's GEMM (ukernels/gemm_f32.h), which
  // runs instead where it exists (AVX2). False (nothing packed) when neither can.
  bool Pack(const Tensor& w, bool trans, const dnnl::primitive_attr& attr, bool bias, const OwnEpilogue& own) {
    if (w.dtype() != DType::kFloat || w.rank() != 2) return false;
    K_ = trans ? w.dim(1) : w.dim(0);
    N_ = trans ? w.dim(0) : w.dim(1);
    if (K_ == 0 || N_ == 0) return false;
    attr_ = attr;
    bias_ = bias;
    if (uk::GemmF32Available()) {
      w_buffer_ = AllocateLargeBuffer(static_cast<size_t>(uk::GemmF32PackedFloats(K_, N_)) * sizeof(float));
      if (!w_buffer_) return false;
      uk::GemmF32PackB(w.data<float>(), K_, N_, trans, static_cast<float*>(w_buffer_.get()));
      own_ = own;
      own_packed_ = packed_ = true;
      return true;
    }
    try {
      plain_md_ = memory::desc({K_, N_}, memory::data_type::f32, trans ? memory::dims{1, K_} : memory::dims{N_, 1});
      if (bias) bias_md_ = memory::desc({1, N_}, memory::data_type::f32, memory::dims{N_, 1});
      const memory::desc any({K_, N_}, memory::data_type::f32, memory::format_tag::any);
      Entry e;
      if (!MakeEntry(1, any, e)) return false;
      w_md_ = e.pd.weights_desc();
      w_buffer_ = AllocateLargeBuffer(w_md_.get_size());
      if (!w_buffer_) return false;
      w_ = memory(w_md_, Engine(), w_buffer_.get());
      memory src(plain_md_, Engine(), const_cast<float*>(w.data<float>()));
      dnnl::reorder(src, w_).execute(Stream(), src, w_);
      Stream().wait();
      entries_.push_back(std::move(e));
    } catch (const dnnl::error&) {
      entries_.clear();
      return false;
    }
    packed_ = true;
    return true;
  }
  bool packed() const { return packed_; }
  int64_t K() const { return K_; }
  int64_t N() const { return N_; }

  // y[M, N] = post-ops(a[M, K] * B [+ bias]); a sum post-op adds what `y` holds. False when oneDNN
  // has no primitive for this M; the caller then computes with PlainWeights().
  bool Run(int64_t M, const float* a, const float* bias, float* y) {
    if (own_packed_) {
      uk::GemmF32Args g;
      g.m = M;
      g.n = N_;
      g.k = K_;
      g.a = a;
      g.lda = K_;
      g.packed_b = static_cast<const float*>(w_buffer_.get());
      g.c = y;
      g.ldc = N_;
      g.alpha = own_.alpha;
      g.beta = own_.beta;
      g.bias = bias_ ? bias : nullptr;
      const uk::GemmF32Epilogue ep{[](const void* ctx, float* c, int64_t ldc, int64_t rows, int64_t cols) {
                                     static_cast<const Epilogue*>(ctx)->ApplyActivations(c, ldc, rows, cols);
                                   },
                                   own_.ep};
      if (own_.ep && own_.ep->has_activations()) g.epilogue = &ep;
      uk::GemmF32(g);
      return true;
    }
    const Entry* e = Find(M);
    if (!e) return false;
    call_.Arg(DNNL_ARG_SRC, e->a_md, a).Arg(DNNL_ARG_WEIGHTS, w_md_, w_.get_data_handle()).Arg(DNNL_ARG_DST, e->y_md, y);
    if (bias_) call_.Arg(DNNL_ARG_BIAS, bias_md_, bias);
    call_.Execute(e->prim);
    return true;
  }

  // The weights back in their original layout, unpacked on first use (only reference paths need it).
  const float* PlainWeights() {
    if (plain_.empty() && own_packed_) {
      plain_.resize(static_cast<size_t>(K_ * N_));
      uk::GemmF32UnpackB(static_cast<const float*>(w_buffer_.get()), K_, N_, plain_.data());
    } else if (plain_.empty()) {
      plain_.resize(static_cast<size_t>(K_ * N_));
      memory dst(plain_md_, Engine(), plain_.data());
      dnnl::reorder(w_, dst).execute(Stream(), w_, dst);
      Stream().wait();
    }
    return plain_.data();
  }

 private:
  struct Entry {
    int64_t m = 0;
    dnnl::matmul::primitive_desc pd;
    dnnl::matmul prim;
    memory::desc a_md, y_md;
  };
  static constexpr size_t kMaxEntries = 8;

  bool MakeEntry(int64_t m, const memory::desc& w_md, Entry& e) const {
    try {
      e.m = m;
      e.a_md = memory::desc({m, K_}, memory::data_type::f32, memory::dims{K_, 1});
      e.y_md = memory::desc({m, N_}, memory::data_type::f32, memory::dims{N_, 1});
      e.pd = dnnl::matmul::primitive_desc(dnnl::matmul::desc(e.a_md, w_md, bias_ ? bias_md_ : memory::desc(), e.y_md),
                                          attr_, Engine());
      e.prim = dnnl::matmul(e.pd);
      return true;
    } catch (const dnnl::error&) {
      return false;
    }
  }
  // The primitive for M rows, made on first use; the least recently made goes when there are many.
  const Entry* Find(int64_t m) {
    for (const Entry& e : entries_)
      if (e.m == m) return &e;
    if (std::find(failed_m_.begin(), failed_m_.end(), m) != failed_m_.end()) return nullptr;
    Entry e;
    if (!MakeEntry(m, w_md_, e)) {  // remembered, so the plain path does not retry it on every run
      if (failed_m_.size() >= kMaxEntries) failed_m_.erase(failed_m_.begin());
      failed_m_.push_back(m);
      return nullptr;
    }
    if (entries_.size() >= kMaxEntries) entries_.erase(entries_.begin());
    entries_.push_back(std::move(e));
    return &entries_.back();
  }

  bool packed_ = false, bias_ = false;
  bool own_packed_ = false;  // packed for uk::GemmF32 rather than oneDNN
  OwnEpilogue own_;
  int64_t K_ = 0, N_ = 0;
  std::vector<int64_t> failed_m_;  // row counts oneDNN has no primitive for (the last few)
  dnnl::primitive_attr attr_;
  memory::desc plain_md_, w_md_, bias_md_;
  LargeBuffer w_buffer_;
  memory w_;  // views w_buffer_
  std::vector<Entry> entries_;
  std::vector<float> plain_;
  nn::DnnlCall call_;
};

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
