// MatMul, Gemm, MatMulInteger, QLinearMatMul, and the fused com.strata FusedMatMul/FusedGemm (bias,
// residual and activations as oneDNN post-ops; fused_epilogue.h). float32 runs on oneDNN's matmul
// primitive (16-bit floats are widened to float32 and use it too); other dtypes use a portable
// reference GEMM.
#include <cstring>
#include <memory>
#include <mutex>
#include <optional>

#include "core/large_buffer.h"
#include "kernels/cpu/fused_epilogue.h"
#include "kernels/cpu/nn_common.h"
#include "kernels/cpu/ukernels/gemm_f32.h"

namespace strata::cpu {
namespace {

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
Status BuildMatMulGeom(const Shape& a, const Shape& b, MatMulGeom& g) {
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
DnnlMatMul MakeDnnlMatMul(const MatMulGeom& g, const Epilogue* ep = nullptr, bool bias = false) {
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
Status PackedOutputShape(const Tensor& a, const PackedMatMul& p, const char* op, Shape& out) {
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
Status RunPacked(PackedMatMul& p, FloatMatMul& fallback, MatMulGeom& geom, const Tensor& A, const float* bias,
                 const float* residual, float* y) {
  const int64_t M = A.numel() / p.K();
  if (M == 0) return Status::Ok();
  // The residual enters as a sum post-op, which accumulates into the destination.
  if (residual) ParallelCopy(residual, y, M * p.N());
  if (p.Run(M, A.data<float>(), bias, y)) return Status::Ok();
  RETURN_IF_ERROR(BuildMatMulGeom(A.shape(), Shape{p.K(), p.N()}, geom));
  fallback.Run(geom, A.data<float>(), p.PlainWeights(), y, bias, residual);
  return Status::Ok();
}

Shape KnownShape(const KernelInfo& info, int i, bool* known) {
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

using MatMulTypes = TypeList<float, double, Float16, BFloat16, int32_t, int64_t, uint32_t, uint64_t>;

class MatMulKernel final : public OpKernel {
 public:
  Status Init(const KernelInfo& info) {
    RETURN_IF_ERROR(CheckInputDType(info, 0, DTypesOf(MatMulTypes{})));
    bool ka, kb;
    Shape a = KnownShape(info, 0, &ka), b = KnownShape(info, 1, &kb);
    const ir::TypeInfo* t = info.input_type(0);
    const bool float_a = t && t->elem_type == DType::kFloat;
    if (const Tensor* w = info.constant_input(1); float_a && w && packed_.Pack(*w, false, {}, false, {})) {
      info.ReleaseConstantInput(1);
      return Status::Ok();
    }
    if (ka && kb && float_a && BuildMatMulGeom(a, b, geom_).ok()) fmm_.Prepare(geom_);
    return Status::Ok();
  }

  Status Compute(KernelContext& ctx) override {
    const Tensor& A = ctx.input_tensor(0);
    std::lock_guard<std::mutex> lock(mu_);  // the geometry and cached primitives are per-kernel state
    if (packed_.packed()) {
      Shape out;
      RETURN_IF_ERROR(PackedOutputShape(A, packed_, "MatMul", out));
      ASSIGN_OR_RETURN(Tensor * Y, ctx.AllocateOutput(0, DType::kFloat, out));
      return RunPacked(packed_, fmm_, geom_, A, nullptr, nullptr, Y->data<float>());
    }
    const Tensor& B = ctx.input_tensor(1);
    if (A.dtype() != B.dtype()) return InvalidArgument("MatMul: A and B dtypes differ");
    RETURN_IF_ERROR(BuildMatMulGeom(A.shape(), B.shape(), geom_));
    const MatMulGeom& g = geom_;
    ASSIGN_OR_RETURN(Tensor * Y, ctx.AllocateOutput(0, A.dtype(), g.out));
    return Dispatch(MatMulTypes{}, A.dtype(), [&](auto* tag) -> Status {
      using T = std::remove_pointer_t<decltype(tag)>;
      if constexpr (std::is_same_v<T, float>) {
        fmm_.Run(g, A.data<float>(), B.data<float>(), Y->data<float>());
      } else if constexpr (std::is_same_v<T, Float16> || std::is_same_v<T, BFloat16>) {
        std::vector<float> a(static_cast<size_t>(A.numel())), b(static_cast<size_t>(B.numel())),
            y(static_cast<size_t>(Y->numel()));
        nn::ConvertBuffer(A.data<T>(), a.data(), A.numel());
        nn::ConvertBuffer(B.data<T>(), b.data(), B.numel());
        fmm_.Run(g, a.data(), b.data(), y.data());
        nn::ConvertBufferToHalf(y.data(), Y->data<T>(), Y->numel());
      } else {
        if (g.K == 0) {  // empty sums
          std::fill_n(Y->data<T>(), Y->numel(), T{});
          return Status::Ok();
        }
        BatchedMatMulRef<T>(g, A.data<T>(), B.data<T>(), Y->data<T>());
      }
      return Status::Ok();
    });
  }

 private:
  std::mutex mu_;
  MatMulGeom geom_;
  FloatMatMul fmm_;
  PackedMatMul packed_;  // when B is a constant float32 matrix
};

// FusedMatMul (com.strata): float32 MatMul with a [N] bias, a residual and activations fused.
class FusedMatMulKernel final : public OpKernel {
 public:
  Status Init(const KernelInfo& info) {
    RETURN_IF_ERROR(CheckInputDType(info, 0, {DType::kFloat}));
    RETURN_IF_ERROR(ep_.Load(info));
    bias_ = info.input_present(2);
    fmm_.Configure(&ep_, bias_);
    if (const Tensor* w = info.constant_input(1); w && packed_.Pack(*w, false, ep_.Attr(), bias_, {1.f, ep_.has_residual() ? 1.f : 0.f, &ep_})) {
      info.ReleaseConstantInput(1);
      return Status::Ok();
    }
    bool ka, kb;
    Shape a = KnownShape(info, 0, &ka), b = KnownShape(info, 1, &kb);
    if (ka && kb && BuildMatMulGeom(a, b, geom_).ok()) fmm_.Prepare(geom_);
    return Status::Ok();
  }

  // The residual's buffer can become the output's: oneDNN's sum post-op reads each element before
  // writing it, and the reference path keeps a copy.
  int InPlaceInput() const override { return ep_.has_residual() ? 3 : -1; }

  Status Compute(KernelContext& ctx) override {
    const Tensor& A = ctx.input_tensor(0);
    std::lock_guard<std::mutex> lock(mu_);  // the geometry and cached primitives are per-kernel state
    if (packed_.packed()) {
      Shape out;
      RETURN_IF_ERROR(PackedOutputShape(A, packed_, "FusedMatMul", out));
      const float* bias = nullptr;
      const float* residual = nullptr;
      RETURN_IF_ERROR(EpilogueInputs(ctx, packed_.N(), out, bias, residual));
      ASSIGN_OR_RETURN(Tensor * Y, ctx.AllocateOutput(0, DType::kFloat, out));
      return RunPacked(packed_, fmm_, geom_, A, bias, residual, Y->data<float>());
    }
    const Tensor& B = ctx.input_tensor(1);
    if (A.dtype() != DType::kFloat || B.dtype() != DType::kFloat) return InvalidArgument("FusedMatMul: A and B must be float32");
    RETURN_IF_ERROR(BuildMatMulGeom(A.shape(), B.shape(), geom_));
    const MatMulGeom& g = geom_;
    const float* bias = nullptr;
    const float* residual = nullptr;
    RETURN_IF_ERROR(EpilogueInputs(ctx, g.N, g.out, bias, residual));
    ASSIGN_OR_RETURN(Tensor * Y, ctx.AllocateOutput(0, DType::kFloat, g.out));
    fmm_.Run(g, A.data<float>(), B.data<float>(), Y->data<float>(), bias, residual);
    return Status::Ok();
  }

 private:
  // The optional bias [N] and residual (shaped like the output), checked.
  Status EpilogueInputs(KernelContext& ctx, int64_t N, const Shape& out, const float*& bias, const float*& residual) {
    if (bias_) {
      const Tensor& t = ctx.input_tensor(2);
      if (t.dtype() != DType::kFloat || t.rank() != 1 || t.dim(0) != N)
        return InvalidArgument("FusedMatMul: bias must be float32 [" + std::to_string(N) + "], got " +
                               ShapeToString(t.shape()));
      bias = t.data<float>();
    }
    if (ep_.has_residual()) {
      const Tensor& r = ctx.input_tensor(3);
      if (r.dtype() != DType::kFloat || r.shape() != out)
        return InvalidArgument("FusedMatMul: residual must be float32 " + ShapeToString(out) + ", got " +
                               ShapeToString(r.shape()));
      residual = r.data<float>();
    }
    return Status::Ok();
  }

  std::mutex mu_;
  Epilogue ep_;
  bool bias_ = false;
  MatMulGeom geom_;
  FloatMatMul fmm_;
  PackedMatMul packed_;  // when B is a constant float32 matrix
};

// ---- Gemm ----

using GemmTypes = TypeList<float, double, Float16, BFloat16, int32_t, int64_t, uint32_t, uint64_t>;

class GemmKernel final : public OpKernel {
 public:
  Status Init(const KernelInfo& info) {
    RETURN_IF_ERROR(CheckInputDType(info, 0, DTypesOf(GemmTypes{})));
    trans_a_ = info.attr_int("transA", 0) != 0;
    trans_b_ = info.attr_int("transB", 0) != 0;
    alpha_ = info.attr_float("alpha", 1.f);
    beta_ = info.attr_float("beta", 1.f);
    if (info.node().domain == "com.strata") {  // FusedGemm: float32 only
      RETURN_IF_ERROR(CheckInputDType(info, 0, {DType::kFloat}));
      RETURN_IF_ERROR(ep_.Load(info));
    }
    bool ka, kb;
    const Shape a = KnownShape(info, 0, &ka), b = KnownShape(info, 1, &kb);
    const ir::TypeInfo* t = info.input_type(0);
    const bool float_a = t && t->elem_type == DType::kFloat;
    if (const Tensor* w = info.constant_input(1); float_a && w && !trans_a_) {
      const bool sum = (info.input_present(2) && beta_ != 0.f) || ep_.has_residual();
      if (packed_.Pack(*w, trans_b_, MakeAttr(sum, ep_.has_residual() ? 1.f : beta_), false,
                       {alpha_, sum ? (ep_.has_residual() ? 1.f : beta_) : 0.f, &ep_})) {
        info.ReleaseConstantInput(1);
        return Status::Ok();
      }
    }
    if (ka && kb && a.size() == 2 && b.size() == 2 && float_a) {
      const int64_t M = trans_a_ ? a[1] : a[0], K = trans_a_ ? a[0] : a[1], N = trans_b_ ? b[0] : b[1];
      const bool use_c = info.input_present(2) && beta_ != 0.f;
      if (M > 0 && N > 0 && K > 0) Prepare(M, N, K, use_c || ep_.has_residual(), ep_.has_residual() ? 1.f : beta_);
    }
    return Status::Ok();
  }

  Status Compute(KernelContext& ctx) override {
    const Tensor& A = ctx.input_tensor(0);
    // Packed weights were float32 [K, N] (after transB); their input is absent once released.
    const Tensor* B = packed_.packed() ? nullptr : &ctx.input_tensor(1);
    const DType b_dtype = B ? B->dtype() : DType::kFloat;
    const Tensor* C = ctx.has_input(2) ? &ctx.input_tensor(2) : nullptr;
    if (A.rank() != 2 || (B && B->rank() != 2)) return InvalidArgument("Gemm: A and B must be 2-D");
    if (A.dtype() != b_dtype || (C && C->dtype() != A.dtype())) return InvalidArgument("Gemm: input dtypes differ");
    const int64_t M = trans_a_ ? A.dim(1) : A.dim(0), K = trans_a_ ? A.dim(0) : A.dim(1);
    const int64_t KB = B ? (trans_b_ ? B->dim(1) : B->dim(0)) : packed_.K();
    const int64_t N = B ? (trans_b_ ? B->dim(0) : B->dim(1)) : packed_.N();
    if (K != KB)
      return InvalidArgument("Gemm: inner dimensions differ: " + ShapeToString(A.shape()) + " x " +
                             ShapeToString(B ? B->shape() : (trans_b_ ? Shape{N, KB} : Shape{KB, N})));
    if (C) {
      if (C->rank() > 2) return InvalidArgument("Gemm: C must have rank <= 2");
      auto bs = BroadcastShapes(C->shape(), Shape{M, N});
      if (!bs.ok() || *bs != Shape{M, N})
        return InvalidArgument("Gemm: C of shape " + ShapeToString(C->shape()) + " does not broadcast to " +
                               ShapeToString({M, N}));
    }
    const float* residual = nullptr;
    if (ep_.has_residual()) {
      const Tensor& r = ctx.input_tensor(3);
      if (r.dtype() != DType::kFloat || r.shape() != Shape{M, N})
        return InvalidArgument("FusedGemm: residual must be float32 " + ShapeToString({M, N}) + ", got " +
                               ShapeToString(r.shape()));
      residual = r.data<float>();
    }
    ASSIGN_OR_RETURN(Tensor * Y, ctx.AllocateOutput(0, A.dtype(), {M, N}));
    std::lock_guard<std::mutex> lock(mu_);  // the cached primitive is per-kernel state
    return Dispatch(GemmTypes{}, A.dtype(), [&](auto* tag) -> Status {
      using T = std::remove_pointer_t<decltype(tag)>;
      if constexpr (std::is_same_v<T, float>) {
        RunFloat(M, N, K, A.data<float>(), B ? B->data<float>() : nullptr, C ? C->data<float>() : nullptr,
                 C ? &C->shape() : nullptr, Y->data<float>(), residual);
      } else if constexpr (std::is_same_v<T, Float16> || std::is_same_v<T, BFloat16>) {
        std::vector<float> a(static_cast<size_t>(A.numel())), b(static_cast<size_t>(B->numel())),
            y(static_cast<size_t>(Y->numel())), c;
        nn::ConvertBuffer(A.data<T>(), a.data(), A.numel());
        nn::ConvertBuffer(B->data<T>(), b.data(), B->numel());
        if (C) {
          c.resize(static_cast<size_t>(C->numel()));
          nn::ConvertBuffer(C->data<T>(), c.data(), C->numel());
        }
        RunFloat(M, N, K, a.data(), b.data(), C ? c.data() : nullptr, C ? &C->shape() : nullptr, y.data(), nullptr);
        nn::ConvertBufferToHalf(y.data(), Y->data<T>(), Y->numel());
      } else {
        RunRef<T>(M, N, K, A.data<T>(), B->data<T>(), C ? C->data<T>() : nullptr, C ? &C->shape() : nullptr,
                  Y->data<T>());
      }
      return Status::Ok();
    });
  }

 private:
  // Y = C broadcast to [M, N] (as type T).
  template <typename T>
  static void FillC(int64_t M, int64_t N, const T* c, const Shape& cs, T* y) {
    const Shape full{M, N};
    const auto st = BroadcastStrides(cs, full);
    for (int64_t i = 0; i < M; ++i)
      for (int64_t j = 0; j < N; ++j) y[i * N + j] = c[i * st[0] + j * st[1]];
  }

  // alpha, then the epilogue. `sum`: the primitive adds sum_scale times what is in Y before it runs
  // (beta*C and/or the residual).
  dnnl::primitive_attr MakeAttr(bool sum, float sum_scale) const {
    dnnl::primitive_attr attr;
    if (alpha_ != 1.f) attr.set_output_scales(0, {alpha_});
    if (sum || !ep_.empty()) attr.set_post_ops(ep_.PostOps(sum, sum_scale));
    return attr;
  }

  void Prepare(int64_t M, int64_t N, int64_t K, bool sum, float sum_scale) {
    if (prepared_ && M == m_ && N == n_ && K == k_ && sum == sum_ && sum_scale == sum_scale_) return;
    prepared_ = true;
    m_ = M; n_ = N; k_ = K; sum_ = sum; sum_scale_ = sum_scale;
    prim_ok_ = false;
    try {
      a_md_ = memory::desc({M, K}, memory::data_type::f32, trans_a_ ? memory::dims{1, M} : memory::dims{K, 1});
      b_md_ = memory::desc({K, N}, memory::data_type::f32, trans_b_ ? memory::dims{1, K} : memory::dims{N, 1});
      y_md_ = memory::desc({M, N}, memory::data_type::f32, memory::dims{N, 1});
      dnnl::matmul::desc desc(a_md_, b_md_, y_md_);
      dnnl::matmul::primitive_desc pd(desc, MakeAttr(sum, sum_scale), Engine());
      prim_ = dnnl::matmul(pd);
      prim_ok_ = true;
    } catch (const dnnl::error&) {
      prim_ok_ = false;
    }
  }

  // y = activations(alpha*a*b + beta*c + residual); without an epilogue, plain Gemm.
  void RunFloat(int64_t M, int64_t N, int64_t K, const float* a, const float* b, const float* c, const Shape* cs,
                float* y, const float* residual) {
    const int64_t n = M * N;
    if (n == 0) return;
    const bool use_c = c && beta_ != 0.f;
    if (K > 0) {
      // The prior contents of y that the sum post-op adds.
      auto fill_sum = [&] {
        if (use_c) FillC(M, N, c, *cs, y);
        if (residual && use_c) {
          ParallelFor(n, [&](int64_t b, int64_t e) {
            for (int64_t i = b; i < e; ++i) y[i] = beta_ * y[i] + residual[i];
          }, int64_t{1} << 16);
        } else if (residual) {
          ParallelCopy(residual, y, n);
        }
      };
      if (packed_.packed()) {
        fill_sum();
        if (packed_.Run(M, a, nullptr, y)) return;
        b = packed_.PlainWeights();
      } else {
        Prepare(M, N, K, use_c || residual, residual ? 1.f : beta_);
        if (prim_ok_) {
          fill_sum();
          call_.Arg(DNNL_ARG_SRC, a_md_, a).Arg(DNNL_ARG_WEIGHTS, b_md_, b).Arg(DNNL_ARG_DST, y_md_, y);
          call_.Execute(prim_);
          return;
        }
      }
      RunRef<float>(M, N, K, a, b, c, cs, y);
    } else if (use_c) {
      FillC(M, N, c, *cs, y);
      for (int64_t i = 0; i < n; ++i) y[i] *= beta_;
    } else {
      std::fill(y, y + n, 0.f);
    }
    ep_.Apply(y, n, residual);
  }

  template <typename T>
  void RunRef(int64_t M, int64_t N, int64_t K, const T* a, const T* b, const T* c, const Shape* cs, T* y) {
    using Acc = ComputeType<T>;
    std::vector<T> at, bt;
    if (trans_a_) {
      at.resize(static_cast<size_t>(M * K));
      for (int64_t i = 0; i < M; ++i)
        for (int64_t k = 0; k < K; ++k) at[static_cast<size_t>(i * K + k)] = a[k * M + i];
      a = at.data();
    }
    if (trans_b_) {
      bt.resize(static_cast<size_t>(K * N));
      for (int64_t k = 0; k < K; ++k)
        for (int64_t j = 0; j < N; ++j) bt[static_cast<size_t>(k * N + j)] = b[j * K + k];
      b = bt.data();
    }
    std::vector<Acc> acc(static_cast<size_t>(M * N));
    nn::GemmRef<Acc>(M, N, K, a, b, acc.data(), false);
    std::vector<T> cf;
    if (c) {
      cf.resize(static_cast<size_t>(M * N));
      FillC(M, N, c, *cs, cf.data());
    }
    const bool exact = alpha_ == 1.f && beta_ == 1.f;
    for (int64_t i = 0; i < M * N; ++i) {
      const size_t u = static_cast<size_t>(i);
      if (exact) {
        y[i] = static_cast<T>(acc[u] + (c ? static_cast<Acc>(cf[u]) : Acc(0)));
      } else {
        double v = static_cast<double>(alpha_) * static_cast<double>(acc[u]);
        if (c) v += static_cast<double>(beta_) * static_cast<double>(cf[u]);
        y[i] = CastValue<T, double>(v);
      }
    }
  }

  std::mutex mu_;
  bool trans_a_ = false, trans_b_ = false;
  float alpha_ = 1.f, beta_ = 1.f;
  bool prepared_ = false, prim_ok_ = false, sum_ = false;
  float sum_scale_ = 1.f;
  Epilogue ep_;  // FusedGemm only
  int64_t m_ = -1, n_ = -1, k_ = -1;
  dnnl::matmul prim_;
  memory::desc a_md_, b_md_, y_md_;
  nn::DnnlCall call_;
  PackedMatMul packed_;  // when B is a constant float32 matrix and A is not transposed
};

// ---- MatMulInteger / QLinearMatMul ----

// Reads a zero point that is either a scalar or one value per row (`per` entries).
template <typename T>
Status ReadZeroPoints(const Tensor* t, int64_t per, std::vector<int32_t>& out, const char* what) {
  if (!t) { out.assign(1, 0); return Status::Ok(); }
  if (t->numel() == 1) { out.assign(1, static_cast<int32_t>(t->data<T>()[0])); return Status::Ok(); }
  if (t->numel() != per) return InvalidArgument(std::string(what) + ": zero point has " + std::to_string(t->numel()) +
                                                " values, expected 1 or " + std::to_string(per));
  out.resize(static_cast<size_t>(per));
  for (int64_t i = 0; i < per; ++i) out[static_cast<size_t>(i)] = static_cast<int32_t>(t->data<T>()[i]);
  return Status::Ok();
}

// Widens A (minus its per-row zero point) and B (minus its per-column zero point) to int32.
template <typename TA, typename TB>
void WidenAB(const MatMulGeom& g, const Tensor& A, const Tensor& B, const std::vector<int32_t>& azp,
             const std::vector<int32_t>& bzp, std::vector<int32_t>& a, std::vector<int32_t>& b) {
  a.resize(static_cast<size_t>(A.numel()));
  b.resize(static_cast<size_t>(B.numel()));
  const TA* pa = A.data<TA>();
  const TB* pb = B.data<TB>();
  const int64_t K = std::max<int64_t>(g.K, 1), N = std::max<int64_t>(g.N, 1), M = std::max<int64_t>(g.M, 1);
  for (int64_t i = 0; i < A.numel(); ++i) {
    const int64_t row = (i / K) % M;
    a[static_cast<size_t>(i)] = static_cast<int32_t>(pa[i]) - azp[azp.size() == 1 ? 0 : static_cast<size_t>(row)];
  }
  for (int64_t i = 0; i < B.numel(); ++i) {
    const int64_t col = i % N;
    b[static_cast<size_t>(i)] = static_cast<int32_t>(pb[i]) - bzp[bzp.size() == 1 ? 0 : static_cast<size_t>(col)];
  }
}

using QTypes = TypeList<uint8_t, int8_t>;

class MatMulIntegerKernel final : public OpKernel {
 public:
  Status Init(const KernelInfo& info) { return CheckInputDType(info, 0, DTypesOf(QTypes{})); }
  Status Compute(KernelContext& ctx) override {
    const Tensor& A = ctx.input_tensor(0);
    const Tensor& B = ctx.input_tensor(1);
    MatMulGeom g;
    RETURN_IF_ERROR(BuildMatMulGeom(A.shape(), B.shape(), g));
    ASSIGN_OR_RETURN(Tensor * Y, ctx.AllocateOutput(0, DType::kInt32, g.out));
    const Tensor* azp_t = ctx.has_input(2) ? &ctx.input_tensor(2) : nullptr;
    const Tensor* bzp_t = ctx.has_input(3) ? &ctx.input_tensor(3) : nullptr;
    if (azp_t && azp_t->dtype() != A.dtype()) return InvalidArgument("MatMulInteger: a_zero_point dtype differs from A");
    if (bzp_t && bzp_t->dtype() != B.dtype()) return InvalidArgument("MatMulInteger: b_zero_point dtype differs from B");
    std::vector<int32_t> azp, bzp, a, b;
    RETURN_IF_ERROR(Dispatch(QTypes{}, A.dtype(), [&](auto* ta) -> Status {
      using TA = std::remove_pointer_t<decltype(ta)>;
      RETURN_IF_ERROR(ReadZeroPoints<TA>(azp_t, g.M, azp, "MatMulInteger a_zero_point"));
      return Dispatch(QTypes{}, B.dtype(), [&](auto* tb) -> Status {
        using TB = std::remove_pointer_t<decltype(tb)>;
        RETURN_IF_ERROR(ReadZeroPoints<TB>(bzp_t, g.N, bzp, "MatMulInteger b_zero_point"));
        WidenAB<TA, TB>(g, A, B, azp, bzp, a, b);
        return Status::Ok();
      });
    }));
    if (g.K > 0) BatchedMatMulRef<int32_t>(g, a.data(), b.data(), Y->data<int32_t>());
    return Status::Ok();
  }
};

// Reads a float scale that is a scalar or has `per` entries.
Status ReadScales(const Tensor& t, int64_t per, std::vector<float>& out, const char* what) {
  if (t.dtype() != DType::kFloat) return InvalidArgument(std::string(what) + " must be float");
  if (t.numel() == 1) { out.assign(1, t.data<float>()[0]); return Status::Ok(); }
  if (t.numel() != per) return InvalidArgument(std::string(what) + " has " + std::to_string(t.numel()) +
                                               " values, expected 1 or " + std::to_string(per));
  out.assign(t.data<float>(), t.data<float>() + per);
  return Status::Ok();
}

class QLinearMatMulKernel final : public OpKernel {
 public:
  Status Init(const KernelInfo& info) { return CheckInputDType(info, 0, DTypesOf(QTypes{})); }
  Status Compute(KernelContext& ctx) override {
    for (int i = 0; i < 8; ++i)
      if (!ctx.has_input(i)) return InvalidArgument("QLinearMatMul needs 8 inputs");
    const Tensor& A = ctx.input_tensor(0);
    const Tensor& B = ctx.input_tensor(3);
    const Tensor& yzp_t = ctx.input_tensor(7);
    MatMulGeom g;
    RETURN_IF_ERROR(BuildMatMulGeom(A.shape(), B.shape(), g));
    std::vector<float> as, bs, ys;
    RETURN_IF_ERROR(ReadScales(ctx.input_tensor(1), g.M, as, "a_scale"));
    RETURN_IF_ERROR(ReadScales(ctx.input_tensor(4), g.N, bs, "b_scale"));
    RETURN_IF_ERROR(ReadScales(ctx.input_tensor(6), 1, ys, "y_scale"));
    if (ctx.input_tensor(2).dtype() != A.dtype() || ctx.input_tensor(5).dtype() != B.dtype())
      return InvalidArgument("QLinearMatMul: zero point dtypes must match their inputs");
    std::vector<int32_t> azp, bzp, a, b;
    RETURN_IF_ERROR(Dispatch(QTypes{}, A.dtype(), [&](auto* ta) -> Status {
      using TA = std::remove_pointer_t<decltype(ta)>;
      RETURN_IF_ERROR(ReadZeroPoints<TA>(&ctx.input_tensor(2), g.M, azp, "a_zero_point"));
      return Dispatch(QTypes{}, B.dtype(), [&](auto* tb) -> Status {
        using TB = std::remove_pointer_t<decltype(tb)>;
        RETURN_IF_ERROR(ReadZeroPoints<TB>(&ctx.input_tensor(5), g.N, bzp, "b_zero_point"));
        WidenAB<TA, TB>(g, A, B, azp, bzp, a, b);
        return Status::Ok();
      });
    }));
    std::vector<int32_t> acc(static_cast<size_t>(NumElements(g.out)), 0);
    if (g.K > 0) BatchedMatMulRef<int32_t>(g, a.data(), b.data(), acc.data());
    ASSIGN_OR_RETURN(Tensor * Y, ctx.AllocateOutput(0, yzp_t.dtype(), g.out));
    return Dispatch(QTypes{}, yzp_t.dtype(), [&](auto* ty) -> Status {
      using TY = std::remove_pointer_t<decltype(ty)>;
      if (yzp_t.numel() != 1) return InvalidArgument("y_zero_point must be a scalar");
      const float zp = static_cast<float>(yzp_t.data<TY>()[0]);
      TY* y = Y->data<TY>();
      const int64_t mn = g.M * g.N;
      for (size_t i = 0; i < acc.size(); ++i) {
        const int64_t r = (static_cast<int64_t>(i) % std::max<int64_t>(mn, 1)) / std::max<int64_t>(g.N, 1);
        const int64_t c = static_cast<int64_t>(i) % std::max<int64_t>(g.N, 1);
        const float scale = as[as.size() == 1 ? 0 : static_cast<size_t>(r)] *
                            bs[bs.size() == 1 ? 0 : static_cast<size_t>(c)] / ys[0];
        y[i] = nn::SaturateRound<TY>(static_cast<double>(static_cast<float>(acc[i]) * scale) + zp);
      }
      return Status::Ok();
    });
  }
};

const KernelRegistrar kMatMul{{.op_type = "MatMul", .since = 1, .until = 18, .dtypes = DTypesOf(MatMulTypes{}),
                               .factory = MakeKernel<MatMulKernel>}};
const KernelRegistrar kGemm{{.op_type = "Gemm", .since = 1, .until = 18, .dtypes = DTypesOf(GemmTypes{}),
                             .factory = MakeKernel<GemmKernel>}};
const KernelRegistrar kFusedMatMul{{.op_type = "FusedMatMul", .domain = "com.strata", .since = 1, .until = 1,
                                    .dtypes = {DType::kFloat}, .factory = MakeKernel<FusedMatMulKernel>}};
const KernelRegistrar kFusedGemm{{.op_type = "FusedGemm", .domain = "com.strata", .since = 1, .until = 1,
                                  .dtypes = {DType::kFloat}, .factory = MakeKernel<GemmKernel>}};
const KernelRegistrar kMatMulInteger{{.op_type = "MatMulInteger", .since = 10, .until = 18,
                                      .dtypes = DTypesOf(QTypes{}), .factory = MakeKernel<MatMulIntegerKernel>}};
const KernelRegistrar kQLinearMatMul{{.op_type = "QLinearMatMul", .since = 10, .until = 18,
                                      .dtypes = DTypesOf(QTypes{}), .factory = MakeKernel<QLinearMatMulKernel>}};

}  // namespace
}  // namespace strata::cpu
