#include "kernels/cpu/ukernels/packed_gemm_f32.h"

#include <algorithm>
#include <utility>

#include "kernels/cpu/ukernels/gemm_f32.h"

namespace strata::cpu::uk {

using dnnl::memory;

bool PackedGemmF32::Pack(const float* w, int64_t k, int64_t n, bool transposed, GemmPostOps post) {
  if (k <= 0 || n <= 0 || (post.alpha != 1.f && post.bias)) return false;
  k_ = k;
  n_ = n;
  transposed_ = transposed;
  post_ = std::move(post);
  if (GemmF32Available()) {
    w_buffer_ = AllocateLargeBuffer(static_cast<size_t>(GemmF32PackedFloats(k, n)) * sizeof(float));
    if (!w_buffer_) return false;
    GemmF32PackB(w, k, n, transposed, static_cast<float*>(w_buffer_.get()));
    own_ = packed_ = true;
    return true;
  }
  try {
    attr_ = onednn::MatMulAttr(post_.alpha, post_.beta, post_.activations);
    plain_md_ = memory::desc({k, n}, memory::data_type::f32, transposed ? memory::dims{1, k} : memory::dims{n, 1});
    if (post_.bias) bias_md_ = memory::desc({1, n}, memory::data_type::f32, memory::dims{n, 1});
    const memory::desc any({k, n}, memory::data_type::f32, memory::format_tag::any);
    Entry e;
    if (!MakeEntry(1, any, e)) return false;
    w_md_ = e.pd.weights_desc();
    w_buffer_ = AllocateLargeBuffer(w_md_.get_size());
    if (!w_buffer_) return false;
    w_ = memory(w_md_, onednn::Engine(), w_buffer_.get());
    memory src(plain_md_, onednn::Engine(), const_cast<float*>(w));
    dnnl::reorder(src, w_).execute(onednn::Stream(), src, w_);
    onednn::Stream().wait();
    entries_.push_back(std::move(e));
  } catch (const dnnl::error&) {  // no oneDNN matmul for these weights: the caller keeps them plain
    entries_.clear();
    return false;
  }
  packed_ = true;
  return true;
}

bool PackedGemmF32::Run(int64_t m, const float* a, const float* bias, float* y) {
  if (own_) {
    GemmF32Args g;
    g.m = m;
    g.n = n_;
    g.k = k_;
    g.a = a;
    g.lda = k_;
    g.packed_b = static_cast<const float*>(w_buffer_.get());
    g.c = y;
    g.ldc = n_;
    g.alpha = post_.alpha;
    g.beta = post_.beta;
    g.bias = post_.bias ? bias : nullptr;
    const GemmF32Epilogue ep{[](const void* ctx, float* c, int64_t ldc, int64_t rows, int64_t cols) {
                               ApplyActivations(*static_cast<const std::vector<ActivationOp>*>(ctx), c, ldc, rows, cols);
                             },
                             &post_.activations};
    if (!post_.activations.empty()) g.epilogue = &ep;
    GemmF32(g);
    return true;
  }
  const Entry* e = Find(m);
  if (!e) return false;
  call_.Arg(DNNL_ARG_SRC, e->a_md, a).Arg(DNNL_ARG_WEIGHTS, w_md_, w_.get_data_handle()).Arg(DNNL_ARG_DST, e->y_md, y);
  if (post_.bias) call_.Arg(DNNL_ARG_BIAS, bias_md_, bias);
  call_.Execute(e->prim);
  return true;
}

const float* PackedGemmF32::PlainWeights() {
  if (!plain_.empty()) return plain_.data();
  plain_.resize(static_cast<size_t>(k_ * n_));
  if (own_) {
    GemmF32UnpackB(static_cast<const float*>(w_buffer_.get()), k_, n_, transposed_, plain_.data());
  } else {
    memory dst(plain_md_, onednn::Engine(), plain_.data());
    dnnl::reorder(w_, dst).execute(onednn::Stream(), w_, dst);
    onednn::Stream().wait();
  }
  return plain_.data();
}

bool PackedGemmF32::MakeEntry(int64_t m, const memory::desc& w_md, Entry& e) const {
  try {
    e.m = m;
    e.a_md = memory::desc({m, k_}, memory::data_type::f32, memory::dims{k_, 1});
    e.y_md = memory::desc({m, n_}, memory::data_type::f32, memory::dims{n_, 1});
    e.pd = dnnl::matmul::primitive_desc(dnnl::matmul::desc(e.a_md, w_md, post_.bias ? bias_md_ : memory::desc(), e.y_md),
                                        attr_, onednn::Engine());
    e.prim = dnnl::matmul(e.pd);
    return true;
  } catch (const dnnl::error&) {  // no primitive for this M: Run reports false and the caller falls back
    return false;
  }
}

// The primitive for M rows, made on first use; the least recently made goes when there are many.
const PackedGemmF32::Entry* PackedGemmF32::Find(int64_t m) {
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

}  // namespace strata::cpu::uk
