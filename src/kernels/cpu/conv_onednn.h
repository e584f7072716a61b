// float32 convolutions and transposed convolutions on oneDNN (for conv_float.cc): primitives built
// for one shape, their weights packed once into the layout the kernel wants and shared between
// batch sizes, activations copied between layouts by Strata, and the choice of Winograd kernels.
#pragma once

#include <memory>
#include <utility>

#include "kernels/cpu/conv_reference.h"
#include "kernels/cpu/fused_epilogue.h"
#include "kernels/cpu/nn_common.h"
#include "kernels/cpu/ukernels/layout_copy.h"

namespace strata::cpu::conv {

// Physical layouts of a FusedConv's activations (the logical shapes are always NCHW).
struct ConvLayouts {
  bool x_nhwc = false, y_nhwc = false, residual_nhwc = false;
  bool any() const { return x_nhwc || y_nhwc || residual_nhwc; }
};

// Activations between the user's layout and the one a primitive wants, copied by Strata
// (ukernels/layout_copy.h) rather than by oneDNN 2.6's reorder primitives, which allocate on their
// worker threads on every run (that would put heap allocations on the hot path at more than one
// thread). The layouts Strata's convolutions meet: channels-first and channels-last graph tensors,
// and the channel-blocked layouts oneDNN's kernels want (nChw8c on AVX2, nChw16c for AVX-512 Winograd).
struct LayoutCopy {
  uk::LayoutCopy copy;

  bool on() const { return copy.from != copy.to; }  // both channels-first when no copy applies

  // The copy from `user` to `prim` (and back), when both are layouts uk::LayoutCopy knows.
  static LayoutCopy Between(const dnnl::memory::desc& user, const dnnl::memory::desc& prim);

  void ToPrimitive(const float* x, float* y) const { copy.Run(x, y); }
  void FromPrimitive(const float* y, float* x) const {
    uk::LayoutCopy back = copy;
    std::swap(back.from, back.to);
    back.Run(y, x);
  }
};

// A oneDNN forward (de)convolution with plain user layouts on both sides.
struct DnnlConv {
  bool ok = false;
  dnnl::primitive prim;
  dnnl::memory::desc user_src, user_wei, user_dst, bias_md;
  dnnl::memory::desc user_res;  // layout of the residual (FusedConv with one), which may differ from the output's
  dnnl::memory::desc src_md, wei_md, dst_md;  // what the primitive wants
  // Weights in the primitive's layout (when it differs), made on first need and shared with the
  // primitives of other batch sizes that want the same layout. Huge-page backed (core/large_buffer.h).
  std::shared_ptr<void> wei_buffer;
  const void* wei_cached = nullptr;  // constant weights already in wei_buffer
  dnnl::reorder src_reorder, dst_reorder, wei_reorder, res_reorder;
  LayoutCopy src_copy, dst_copy, res_copy;  // used instead of those reorders when on
  onednn::DnnlCall src_call, dst_call, wei_call, res_call, conv_call;

  // `residual` (FusedConv) is what a sum post-op adds: it is placed in the destination first.
  // Reorder primitives are built once (Finish) and every call goes through DnnlCall, so a run
  // allocates nothing here. Fails when oneDNN does, or without memory for the primitive's layouts.
  Status Run(const float* x, const float* w, const float* b, float* y, bool weights_constant,
             const float* residual = nullptr);

  // Takes `other`'s packed constant weights when both primitives want the same weight layout (the
  // same convolution built for another batch size). Returns whether it did.
  bool ShareWeights(const DnnlConv& other);

  // Fills this primitive's weights from another primitive's packing of the same constant weights
  // (`from`, a blocked layout `from_md`), once the original weights are gone: directly when oneDNN
  // can reorder between the two layouts, else through the plain layout (Winograd's weights are made
  // from plain ones only). `id` (the released weights' address, never read) becomes wei_cached.
  // False when out of memory or when oneDNN has no reorder for it.
  bool PackFrom(const void* from, const dnnl::memory::desc& from_md, const void* id);

  // Reorders constant weights into the primitive's layout now (at load time) rather than on the first
  // run (which retries, and reports what went wrong, if this could not).
  void PackWeights(const float* w);

  // False when there is no memory for the reordered weights; throws dnnl::error.
  bool ReorderWeights(const float* w, bool constant);

  // Takes the layouts the primitive descriptor chose and builds what converts to and from them.
  template <typename PD>
  void Finish(const PD& pd);
};

// Builds the primitive for a convolution (FusedConv: `ep` adds its post-ops) or a transposed one.
// Its `ok` is false when oneDNN has none for it, or while nn::ForceConvReference is on.
std::unique_ptr<DnnlConv> MakeDnnlConv(const ConvShape& cs, bool has_bias, const Epilogue* ep,
                                       const ConvLayouts& layouts = {});
std::unique_ptr<DnnlConv> MakeDnnlConvT(const ConvTShape& cs, bool has_bias);

}  // namespace strata::cpu::conv
