// y[M, N] = post-ops(alpha * a[M, K] * W) for a constant float32 W packed once: the GEMM that MatMul,
// FusedMatMul and Gemm kernels run against weights, and that a model without an ONNX graph (the LLM
// engine) can call directly.
//
// W is packed for Strata's own AVX2 GEMM (gemm_f32.h) where the active ISA is AVX2, else into the
// blocked layout oneDNN's matmul picks (20-30% faster than plain weights on AVX-512). That layout
// does not depend on M, so rows of any leading shape flatten into M and share one packed copy; each
// new M gets its own oneDNN primitive over it (the last 8 kept).
#pragma once

#include <oneapi/dnnl/dnnl.hpp>

#include <cstdint>
#include <vector>

#include "core/large_buffer.h"
#include "kernels/cpu/ukernels/activation.h"
#include "kernels/cpu/ukernels/onednn.h"

namespace strata::cpu::uk {

// What follows the product, in order: y = alpha * aW + beta * y (y's prior contents: a residual or
// Gemm's C; nothing read when beta is 0) + bias, then the activations. alpha must be 1 with a bias:
// oneDNN would scale the bias too.
struct GemmPostOps {
  float alpha = 1.f, beta = 0.f;
  bool bias = false;
  std::vector<ActivationOp> activations;
};

class PackedGemmF32 {
 public:
  // Packs w ([K, N] row-major, or [N, K] when `transposed`). False (nothing packed) when neither
  // back-end can, or alpha != 1 with a bias; never throws.
  bool Pack(const float* w, int64_t k, int64_t n, bool transposed, GemmPostOps post);
  bool packed() const { return packed_; }
  int64_t K() const { return k_; }
  int64_t N() const { return n_; }

  // y = post-ops(a * W) for M rows of a (row stride K; y's row stride N). False when oneDNN has no
  // primitive for this M: the caller then computes with PlainWeights(). Throws dnnl::error.
  bool Run(int64_t m, const float* a, const float* bias, float* y);

  // W back in the layout Pack was given, unpacked on first use (only reference paths need it).
  // Throws dnnl::error or std::bad_alloc.
  const float* PlainWeights();

 private:
  struct Entry {
    int64_t m = 0;
    dnnl::matmul::primitive_desc pd;
    dnnl::matmul prim;
    dnnl::memory::desc a_md, y_md;
  };
  static constexpr size_t kMaxEntries = 8;

  bool MakeEntry(int64_t m, const dnnl::memory::desc& w_md, Entry& e) const;
  const Entry* Find(int64_t m);

  bool packed_ = false;
  bool own_ = false;  // packed for GemmF32 rather than oneDNN
  bool transposed_ = false;
  int64_t k_ = 0, n_ = 0;
  GemmPostOps post_;
  std::vector<int64_t> failed_m_;  // row counts oneDNN has no primitive for (the last few)
  dnnl::primitive_attr attr_;
  dnnl::memory::desc plain_md_, w_md_, bias_md_;
  LargeBuffer w_buffer_;
  dnnl::memory w_;  // views w_buffer_ (oneDNN packing)
  std::vector<Entry> entries_;
  std::vector<float> plain_;
  onednn::DnnlCall call_;
};

}  // namespace strata::cpu::uk
