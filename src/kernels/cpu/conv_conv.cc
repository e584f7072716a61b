// Conv, ConvTranspose, ConvInteger, QLinearConv, Col2Im, and com.strata FusedConv (Conv with a
// residual and activations as oneDNN post-ops; fused_epilogue.h).
// float32 Conv/ConvTranspose run on oneDNN (float16 is widened to float32); everything else uses
// im2col/col2im plus the reference GEMM.
#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <mutex>
#include <optional>
#include <vector>

#include "core/large_buffer.h"
#include "kernels/cpu/fused_epilogue.h"
#include "kernels/cpu/nn_common.h"
#include "kernels/cpu/tensor_util.h"
#include "kernels/cpu/ukernels/layout_copy.h"
#include "kernels/cpu/ukernels/vec_math.h"

namespace strata::cpu {
namespace {

using dnnl::memory;
using nn::Engine;
using nn::SpatialAttrs;
using nn::SpatialGeom;
using nn::Stream;

// For im2col and col2im: the image row (a line along the innermost dim) that window tap `kidx` of
// output position `oidx` reads, over every dim but the innermost; false when it falls in the padding.
bool TapLine(const SpatialGeom& g, int nd, const Shape& oidx, const Shape& kidx, int64_t& line) {
  bool valid = true;
  line = 0;
  for (int d = 0; d < nd - 1; ++d) {
    const int64_t ic = oidx[static_cast<size_t>(d)] * g.strides[d] - g.pad_begin[d] + kidx[static_cast<size_t>(d)] * g.dilations[d];
    if (ic < 0 || ic >= g.in[d]) valid = false;
    line = line * g.in[d] + ic;
  }
  return valid;
}

// Advances `oidx` to the next output line (all dims but the innermost).
void NextOutputLine(const SpatialGeom& g, int nd, Shape& oidx) {
  for (int d = nd - 2; d >= 0; --d) {
    if (++oidx[static_cast<size_t>(d)] < g.out[d]) break;
    oidx[static_cast<size_t>(d)] = 0;
  }
}

// im2col: `geom.in` is the image, `geom.out` the window positions. col is [C*ks, out_size].
template <typename T>
void Im2Col(const SpatialGeom& g, int64_t channels, const T* img, T* col) {
  const int nd = static_cast<int>(g.in.size());
  const int64_t ks = g.kernel_size(), os = g.out_size(), is = g.in_size();
  const int64_t ol = g.out[nd - 1], il = g.in[nd - 1];
  const int64_t sl = g.strides[nd - 1], dl = g.dilations[nd - 1], pl = g.pad_begin[nd - 1];
  ParallelRows(channels * ks, os, [&](int64_t row_begin, int64_t row_end) {
    for (int64_t row = row_begin; row < row_end; ++row) {
      const int64_t c = row / ks;
      Shape kidx(static_cast<size_t>(nd)), oidx(static_cast<size_t>(nd), 0);
      int64_t rem = row % ks;
      for (int d = nd - 1; d >= 0; --d) {
        kidx[static_cast<size_t>(d)] = rem % g.kernel[d];
        rem /= g.kernel[d];
      }
      const T* src = img + c * is;
      T* dst = col + row * os;
      const int64_t kl = kidx[static_cast<size_t>(nd - 1)] * dl - pl;
      for (int64_t base = 0; base < os; base += ol) {
        int64_t off = 0;
        const bool valid = TapLine(g, nd, oidx, kidx, off);
        T* out = dst + base;
        if (!valid) {
          for (int64_t o = 0; o < ol; ++o) out[o] = T(0);
        } else {
          const T* line = src + off * il;
          for (int64_t o = 0; o < ol; ++o) {
            const int64_t ic = o * sl + kl;
            out[o] = (ic >= 0 && ic < il) ? line[ic] : T(0);
          }
        }
        NextOutputLine(g, nd, oidx);
      }
    }
  }, 1 << 18);
}

// col2im: adds col [C*ks, out_size] into the image (`geom.in`), the adjoint of Im2Col.
template <typename T>
void Col2ImAdd(const SpatialGeom& g, int64_t channels, const T* col, T* img) {
  const int nd = static_cast<int>(g.in.size());
  const int64_t ks = g.kernel_size(), os = g.out_size(), is = g.in_size();
  const int64_t ol = g.out[nd - 1], il = g.in[nd - 1];
  const int64_t sl = g.strides[nd - 1], dl = g.dilations[nd - 1], pl = g.pad_begin[nd - 1];
  ParallelRows(channels, ks * os, [&](int64_t c_begin, int64_t c_end) {
    for (int64_t c = c_begin; c < c_end; ++c) {
      Shape kidx(static_cast<size_t>(nd)), oidx(static_cast<size_t>(nd), 0);
      T* dstimg = img + c * is;
      for (int64_t kk = 0; kk < ks; ++kk) {
        int64_t rem = kk;
        for (int d = nd - 1; d >= 0; --d) {
          kidx[static_cast<size_t>(d)] = rem % g.kernel[d];
          rem /= g.kernel[d];
        }
        std::fill(oidx.begin(), oidx.end(), 0);
        const T* src = col + (c * ks + kk) * os;
        const int64_t kl = kidx[static_cast<size_t>(nd - 1)] * dl - pl;
        for (int64_t base = 0; base < os; base += ol) {
          int64_t off = 0;
          if (TapLine(g, nd, oidx, kidx, off)) {
            T* line = dstimg + off * il;
            const T* in = src + base;
            for (int64_t o = 0; o < ol; ++o) {
              const int64_t ic = o * sl + kl;
              if (ic >= 0 && ic < il) line[ic] += in[o];
            }
          }
          NextOutputLine(g, nd, oidx);
        }
      }
    }
  }, 1 << 18);
}

// Shapes of one convolution: X [N, C, in...], W [M, C/G, k...], Y [N, M, out...].
struct ConvShape {
  int64_t N = 0, C = 0, M = 0, G = 1;
  SpatialGeom geom;
  Shape y_shape;
};

Status ComputeConvShape(const SpatialAttrs& a, int64_t group, const Shape& x, const Shape& w, ConvShape& cs) {
  if (x.size() < 3) return InvalidArgument("Conv: X must have rank >= 3, got " + ShapeToString(x));
  if (w.size() != x.size()) return InvalidArgument("Conv: W rank differs from X rank");
  const size_t nsp = x.size() - 2;
  cs.N = x[0];
  cs.C = x[1];
  cs.M = w[0];
  cs.G = group;
  if (cs.C != w[1] * group || cs.M % group != 0)
    return InvalidArgument("Conv: channels do not match: X " + ShapeToString(x) + ", W " + ShapeToString(w) +
                           ", group " + std::to_string(group));
  SpatialGeom& g = cs.geom;
  g.in.assign(x.begin() + 2, x.end());
  g.kernel.assign(w.begin() + 2, w.end());
  if (!a.kernel_shape.empty() && a.kernel_shape != g.kernel)
    return InvalidArgument("Conv: kernel_shape attribute does not match W");
  g.strides = a.strides.empty() ? Shape(nsp, 1) : Shape(a.strides);
  g.dilations = a.dilations.empty() ? Shape(nsp, 1) : Shape(a.dilations);
  RETURN_IF_ERROR(nn::ComputeForwardGeom(a, g, false));
  cs.y_shape = {cs.N, cs.M};
  cs.y_shape.insert(cs.y_shape.end(), g.out.begin(), g.out.end());
  return Status::Ok();
}

// Reference convolution on already-widened data: y[N, M, out] = conv(x, w) (+ bias).
template <typename T>
void ConvRef(const ConvShape& cs, const T* x, const T* w, const T* bias, T* y) {
  const SpatialGeom& g = cs.geom;
  const int64_t cg = cs.C / cs.G, mg = cs.M / cs.G, ks = g.kernel_size(), os = g.out_size(), is = g.in_size();
  std::vector<T> col(static_cast<size_t>(cg * ks * os));
  for (int64_t n = 0; n < cs.N; ++n) {
    for (int64_t gi = 0; gi < cs.G; ++gi) {
      Im2Col(g, cg, x + (n * cs.C + gi * cg) * is, col.data());
      nn::GemmRef<T>(mg, os, cg * ks, w + gi * mg * cg * ks, col.data(), y + (n * cs.M + gi * mg) * os, false);
    }
    if (bias)
      for (int64_t m = 0; m < cs.M; ++m) {
        T* yy = y + (n * cs.M + m) * os;
        for (int64_t i = 0; i < os; ++i) yy[i] += bias[m];
      }
  }
}

memory::dims ToDims(const Shape& v) { return memory::dims(v.begin(), v.end()); }

// Channels-last view of logical NC<spatial> dims.
memory::desc ChannelsLastDesc(const std::vector<int64_t>& dims) {
  std::vector<int64_t> strides(dims.size());
  int64_t s = dims.size() > 1 ? dims[1] : 1;
  for (size_t i = dims.size(); i-- > 2;) {
    strides[i] = s;
    s *= dims[i];
  }
  strides[1] = 1;
  strides[0] = s;
  return memory::desc(ToDims(dims), memory::data_type::f32, ToDims(strides));
}

// Activations between the user's layout and the one a primitive wants, copied by Strata
// (ukernels/layout_copy.h) rather than by oneDNN 2.6's reorder primitives, which allocate on their
// worker threads on every run (that would put heap allocations on the hot path at more than one
// thread). The layouts Strata's convolutions meet: channels-first and channels-last graph tensors,
// and the channel-blocked layouts oneDNN's kernels want (nChw8c on AVX2, nChw16c for AVX-512 Winograd).
struct LayoutCopy {
  uk::LayoutCopy copy;
  bool active = false;

  bool on() const { return active; }

  // The copy from `user` to `prim` (and back), when both are layouts uk::LayoutCopy knows.
  static LayoutCopy Between(const memory::desc& user, const memory::desc& prim) {
    LayoutCopy l;
    const memory::dims d = user.dims();
    if (d.size() < 3 || d.size() > 5 || user.data_type() != memory::data_type::f32 || prim.dims() != d) return l;
    const std::vector<int64_t> dims(d.begin(), d.end());
    const auto layout_of = [&](const memory::desc& md) -> std::optional<uk::ActivationLayout> {
      static constexpr memory::format_tag k8[] = {memory::format_tag::nCw8c, memory::format_tag::nChw8c,
                                                  memory::format_tag::nCdhw8c};
      static constexpr memory::format_tag k16[] = {memory::format_tag::nCw16c, memory::format_tag::nChw16c,
                                                   memory::format_tag::nCdhw16c};
      if (md == nn::PlainDesc(dims)) return uk::ActivationLayout::kChannelsFirst;
      if (md == ChannelsLastDesc(dims)) return uk::ActivationLayout::kChannelsLast;
      if (md == memory::desc(d, memory::data_type::f32, k8[d.size() - 3])) return uk::ActivationLayout::kBlocked8;
      if (md == memory::desc(d, memory::data_type::f32, k16[d.size() - 3])) return uk::ActivationLayout::kBlocked16;
      return std::nullopt;
    };
    const auto from = layout_of(user), to = layout_of(prim);
    if (!from || !to || !uk::LayoutCopy::Supported(*from, *to)) return l;
    int64_t hw = 1;
    for (size_t i = 2; i < d.size(); ++i) hw *= d[i];
    l.copy = uk::LayoutCopy{*from, *to, d[0], d[1], hw};
    l.active = true;
    return l;
  }

  void ToPrimitive(const float* x, float* y) const { copy.Run(x, y); }
  void FromPrimitive(const float* y, float* x) const {
    uk::LayoutCopy back = copy;
    std::swap(back.from, back.to);
    back.Run(y, x);
  }
};

// Activations in a primitive's own layout (Winograd's blocked nChw16c) live only for one call, so they
// go in the thread's kernel scratch (slots 0 and 1) rather than a buffer per layer: per-layer buffers
// held 74 MiB across ResNet-50's Winograd layers at batch 8.
void* ActivationScratch(int slot, const memory::desc& md) {
  return ThreadScratch(slot, (md.get_size() + sizeof(float) - 1) / sizeof(float));
}

// A oneDNN forward (de)convolution with plain user layouts on both sides.
struct DnnlConv {
  bool ok = false;
  dnnl::primitive prim;
  memory::desc user_src, user_wei, user_dst, bias_md;
  memory::desc user_res;  // layout of the residual (FusedConv with one), which may differ from the output's
  memory::desc src_md, wei_md, dst_md;  // what the primitive wants
  // Weights in the primitive's layout (when it differs), made on first need and shared with the
  // primitives of other batch sizes that want the same layout. Huge-page backed (core/large_buffer.h).
  std::shared_ptr<void> wei_buffer;
  const void* wei_cached = nullptr;  // constant weights already in wei_buffer
  dnnl::reorder src_reorder, dst_reorder, wei_reorder, res_reorder;
  LayoutCopy src_copy, dst_copy, res_copy;  // used instead of those reorders when on
  nn::DnnlCall src_call, dst_call, wei_call, res_call, conv_call;

  // `residual` (FusedConv) is what a sum post-op adds: it is placed in the destination first.
  // Reorder primitives are built once (Finish) and every call goes through DnnlCall, so a run
  // allocates nothing here.
  // False only when there is no memory for the activations in the primitive's layout.
  bool Run(const float* x, const float* w, const float* b, float* y, bool weights_constant,
           const float* residual = nullptr) {
    const void* src = x;
    if (src_md != user_src) {
      src = ActivationScratch(0, src_md);
      if (!src) return false;
      if (src_copy.on()) src_copy.ToPrimitive(x, static_cast<float*>(const_cast<void*>(src)));
      else src_call.Arg(DNNL_ARG_FROM, user_src, x).Arg(DNNL_ARG_TO, src_md, src).Execute(src_reorder);
    }
    void* dst = dst_md != user_dst ? ActivationScratch(1, dst_md) : y;
    if (!dst) return false;
    if (residual) {
      if (res_copy.on()) {
        res_copy.ToPrimitive(residual, static_cast<float*>(dst));
      } else if (dst_md != user_res) {
        res_call.Arg(DNNL_ARG_FROM, user_res, residual).Arg(DNNL_ARG_TO, dst_md, dst).Execute(res_reorder);
      } else {
        // A binary-add post-op that reads the residual in place would save the copy, but oneDNN 2.6
        // then leaves brgconv for its im2col gemm kernel: 30x slower.
        ParallelCopy(residual, static_cast<float*>(dst), static_cast<int64_t>(user_res.get_size() / sizeof(float)));
      }
    }
    const void* wei = w;
    if (wei_md != user_wei) {
      if ((!weights_constant || wei_cached != w) && !ReorderWeights(w, weights_constant)) return false;
      wei = wei_buffer.get();
    }
    conv_call.Arg(DNNL_ARG_SRC, src_md, src).Arg(DNNL_ARG_WEIGHTS, wei_md, wei).Arg(DNNL_ARG_DST, dst_md, dst);
    if (b) conv_call.Arg(DNNL_ARG_BIAS, bias_md, b);
    conv_call.Execute(prim);
    if (dst_copy.on()) dst_copy.FromPrimitive(static_cast<const float*>(dst), y);
    else if (dst_md != user_dst) dst_call.Arg(DNNL_ARG_FROM, dst_md, dst).Arg(DNNL_ARG_TO, user_dst, y).Execute(dst_reorder);
    return true;
  }

  // Takes `other`'s packed constant weights when both primitives want the same weight layout (the
  // same convolution built for another batch size). Returns whether it did.
  bool ShareWeights(const DnnlConv& other) {
    if (!ok || !other.ok || !other.wei_cached || wei_md == user_wei || other.wei_md != wei_md) return false;
    wei_buffer = other.wei_buffer;
    wei_cached = other.wei_cached;
    return true;
  }

  // Fills this primitive's weights from another primitive's packing of the same constant weights
  // (`from`, a blocked layout `from_md`), once the original weights are gone: directly when oneDNN
  // can reorder between the two layouts, else through the plain layout (Winograd's weights are made
  // from plain ones only). `id` (the released weights' address, never read) becomes wei_cached.
  // False when out of memory or when oneDNN has no reorder for it.
  bool PackFrom(const void* from, const memory::desc& from_md, const void* id) {
    if (!ok || wei_md == user_wei) return false;
    if (!wei_buffer) {
      wei_buffer = std::shared_ptr<void>(AllocateLargeBuffer(wei_md.get_size()).release(), LargeBufferFree());
      if (!wei_buffer) return false;
    }
    try {
      memory src(from_md, Engine(), const_cast<void*>(from)), dst(wei_md, Engine(), wei_buffer.get());
      try {
        dnnl::reorder(src, dst).execute(Stream(), src, dst);
      } catch (const dnnl::error&) {
        std::vector<float> plain(user_wei.get_size() / sizeof(float));
        memory mid(user_wei, Engine(), plain.data());
        dnnl::reorder(src, mid).execute(Stream(), src, mid);
        wei_reorder.execute(Stream(), mid, dst);
      }
      Stream().wait();
    } catch (const dnnl::error&) {
      return false;
    }
    wei_cached = id;
    return true;
  }

  // Reorders constant weights into the primitive's layout now (at load time) rather than on the first
  // run (which retries, and reports running out of memory, if this could not).
  void PackWeights(const float* w) {
    if (ok && wei_md != user_wei && wei_cached != w) ReorderWeights(w, true);
  }

  // False when there is no memory for the reordered weights.
  bool ReorderWeights(const float* w, bool constant) {
    if (!wei_buffer) {
      wei_buffer = std::shared_ptr<void>(AllocateLargeBuffer(wei_md.get_size()).release(), LargeBufferFree());
      if (!wei_buffer) return false;
    }
    wei_call.Arg(DNNL_ARG_FROM, user_wei, w).Arg(DNNL_ARG_TO, wei_md, wei_buffer.get()).Execute(wei_reorder);
    wei_cached = constant ? w : nullptr;
    return true;
  }

  template <typename PD>
  void Finish(const PD& pd) {
    src_md = pd.src_desc();
    wei_md = pd.weights_desc();
    dst_md = pd.dst_desc();
    auto reorder = [](const memory::desc& from, const memory::desc& to) {
      return dnnl::reorder(dnnl::reorder::primitive_desc(Engine(), from, Engine(), to));
    };
    if (src_md != user_src) src_reorder = reorder(user_src, src_md);
    if (dst_md != user_dst) dst_reorder = reorder(dst_md, user_dst);
    if (wei_md != user_wei) wei_reorder = reorder(user_wei, wei_md);
    if (!user_res.is_zero() && user_res != dst_md) res_reorder = reorder(user_res, dst_md);
    src_copy = LayoutCopy::Between(user_src, src_md);
    dst_copy = LayoutCopy::Between(user_dst, dst_md);
    if (!user_res.is_zero()) res_copy = LayoutCopy::Between(user_res, dst_md);
    ok = true;
  }
};

Shape Concat(std::initializer_list<int64_t> head, const Shape& tail) {
  Shape v(head);
  v.insert(v.end(), tail.begin(), tail.end());
  return v;
}

// Physical layouts of a FusedConv's activations (the logical shapes are always NCHW).
struct ConvLayouts {
  bool x_nhwc = false, y_nhwc = false, residual_nhwc = false;
  bool any() const { return x_nhwc || y_nhwc || residual_nhwc; }
};

memory::desc ActivationDesc(const std::vector<int64_t>& dims, bool nhwc) {
  return nhwc ? ChannelsLastDesc(dims) : nn::PlainDesc(dims);
}

// Copies n images of c channels by hw positions between channels-last [n, hw, c] and channels-first
// [n, c, hw] (`to_last` picks the direction).
void CopyChannels(const float* src, float* dst, int64_t n, int64_t c, int64_t hw, bool to_last) {
  if (to_last) tensor::StridedCopy(src, 0, Shape{n, hw, c}, {c * hw, 1, hw}, dst);
  else tensor::StridedCopy(src, 0, Shape{n, c, hw}, {hw * c, 1, c}, dst);
}

// Winograd convolution for 3x3 stride-1 undilated ungrouped layers with at least 28x28 output
// positions over the whole batch (N*H*W): oneDNN's F(4x4, 3x3) kernel does 4x fewer multiplications than the direct
// ones and takes about half the time on ResNet-50's 56x56 and 28x28 layers (docs/passes.md). Its
// transformed weights are 4x larger, though: with fewer positions to spread them over (ResNet's
// 256-channel 14x14 layers at batch 1) streaming them from memory costs more than it saves. It
// only reads and writes blocked (nChw16c) activations, so the NCHW/NHWC tensors around it are
// reordered in and out, which costs a few percent of what it saves. The error stays at the direct
// kernels' level (ResNet-50 against torch: max |error| 1.3e-4 for |y| up to 112).
// On more than one thread only between channels-last activations, which LayoutCopy converts:
// oneDNN 2.6's own reorders (which the NCHW case needs) allocate on their worker threads on every
// run, breaking the allocation-free hot path; the steady-state allocation test catches it.
// STRATA_CONV_WINOGRAD=0 turns it off.
bool WinogradEligible(const ConvShape& cs, const ConvLayouts& layouts, bool residual) {
  static const bool enabled = [] {
    const char* v = std::getenv("STRATA_CONV_WINOGRAD");
    return !(v && std::string(v) == "0");
  }();
  const SpatialGeom& g = cs.geom;
  const bool channels_last = layouts.x_nhwc && layouts.y_nhwc && (!residual || layouts.residual_nhwc);
  return enabled && cs.G == 1 && g.kernel.size() == 2 && g.kernel[0] == 3 && g.kernel[1] == 3 &&
         g.strides[0] == 1 && g.strides[1] == 1 && g.dilations[0] == 1 && g.dilations[1] == 1 &&
         cs.N * g.out[0] * g.out[1] >= 28 * 28 && (omp_get_max_threads() == 1 || channels_last);
}

std::unique_ptr<DnnlConv> MakeDnnlConv(const ConvShape& cs, bool has_bias, const Epilogue* ep,
                                       const ConvLayouts& layouts = {}) {
  auto d = std::make_unique<DnnlConv>();
  const SpatialGeom& g = cs.geom;
  if (NumElements(cs.y_shape) == 0 || cs.C == 0 || nn::ConvReferenceForced()) return d;
  try {
    d->user_src = ActivationDesc(Concat({cs.N, cs.C}, g.in), layouts.x_nhwc);
    d->user_dst = ActivationDesc(cs.y_shape, layouts.y_nhwc);
    if (ep && ep->has_residual()) d->user_res = ActivationDesc(cs.y_shape, layouts.residual_nhwc);
    d->user_wei = cs.G == 1 ? nn::PlainDesc(Concat({cs.M, cs.C}, g.kernel))
                            : nn::PlainDesc(Concat({cs.G, cs.M / cs.G, cs.C / cs.G}, g.kernel));
    if (has_bias) d->bias_md = nn::PlainDesc({cs.M});
    std::vector<int64_t> dil;
    for (int64_t v : g.dilations) dil.push_back(v - 1);
    const auto any = memory::format_tag::any;
    const auto f32 = memory::data_type::f32;
    memory::desc src_any(ToDims(Concat({cs.N, cs.C}, g.in)), f32, any);
    memory::desc dst_any(ToDims(cs.y_shape), f32, any);
    memory::desc wei_any(d->user_wei.dims(), f32, any);
    const dnnl::primitive_attr attr = ep ? ep->Attr() : dnnl::primitive_attr();
    // The descriptors outlive the primitive descriptor: its implementation iterator reads them.
    auto make_desc = [&](dnnl::algorithm alg) {
      return dnnl::convolution_forward::desc(dnnl::prop_kind::forward_inference, alg, src_any, wei_any, d->bias_md,
                                             dst_any, ToDims(g.strides), ToDims(dil), ToDims(g.pad_begin),
                                             ToDims(g.pad_end));
    };
    const dnnl::convolution_forward::desc direct = make_desc(dnnl::algorithm::convolution_direct);
    const dnnl::convolution_forward::desc winograd = make_desc(dnnl::algorithm::convolution_winograd);
    dnnl::convolution_forward::primitive_desc pd;
    if (WinogradEligible(cs, layouts, ep && ep->has_residual())) {
      try {
        // Only F(4x4, 3x3): oneDNN's F(2x2, 3x3) kernel is slower on 56x56 and has 2x fewer savings.
        pd = dnnl::convolution_forward::primitive_desc(winograd, attr, Engine());
        while (std::string(pd.impl_info_str()).find("wino_4x3") == std::string::npos) {
          if (!pd.next_impl()) {
            pd = {};
            break;
          }
        }
      } catch (const dnnl::error&) {  // oneDNN has no Winograd kernel for this shape or post-op chain
        pd = {};
      }
    }
    if (!pd) pd = dnnl::convolution_forward::primitive_desc(direct, attr, Engine());
    d->prim = dnnl::convolution_forward(pd);
    d->Finish(pd);
  } catch (const dnnl::error&) {
    d->ok = false;
  }
  return d;
}

// Shape of input i as far as the loader knows it: a constant's own shape (initializers carry no
// declared type), else the declared/inferred type. An unknown leading dim (a symbolic batch) is
// taken as `batch_guess` when that is positive.
bool LoadTimeShape(const KernelInfo& info, int i, Shape& s, int64_t batch_guess = 0) {
  if (const Tensor* c = info.constant_input(i)) {
    s = c->shape();
    return true;
  }
  const ir::TypeInfo* t = info.input_type(i);
  if (!t || t->kind != ir::TypeInfo::Kind::kTensor || !t->shape) return false;
  s.clear();
  for (const auto& d : *t->shape) {
    if (d.known()) s.push_back(d.value);
    else if (s.empty() && batch_guess > 0) s.push_back(batch_guess);
    else return false;
  }
  return true;
}

using ConvTypes = TypeList<float, double, Float16>;

// ---- ConvTranspose ----

struct ConvTShape {
  int64_t N = 0, C = 0, M = 0, G = 1;
  // Adjoint forward geometry: in = output image, out = input positions.
  SpatialGeom geom;
  Shape output_padding;
  Shape y_shape;
};

struct ConvTAttrs {
  SpatialAttrs sp;
  std::vector<int64_t> output_padding, output_shape;
  int64_t group = 1;
};

Status ComputeConvTShape(const ConvTAttrs& a, const Shape& x, const Shape& w, ConvTShape& cs) {
  if (x.size() < 3) return InvalidArgument("ConvTranspose: X must have rank >= 3, got " + ShapeToString(x));
  if (w.size() != x.size()) return InvalidArgument("ConvTranspose: W rank differs from X rank");
  const size_t nsp = x.size() - 2;
  cs.N = x[0];
  cs.C = x[1];
  cs.G = a.group;
  cs.M = w[1] * a.group;
  if (w[0] != cs.C || cs.C % a.group != 0)
    return InvalidArgument("ConvTranspose: channels do not match: X " + ShapeToString(x) + ", W " + ShapeToString(w));
  SpatialGeom& g = cs.geom;
  g.out.assign(x.begin() + 2, x.end());
  g.kernel.assign(w.begin() + 2, w.end());
  if (!a.sp.kernel_shape.empty() && a.sp.kernel_shape != g.kernel)
    return InvalidArgument("ConvTranspose: kernel_shape attribute does not match W");
  g.strides = a.sp.strides.empty() ? Shape(nsp, 1) : Shape(a.sp.strides);
  g.dilations = a.sp.dilations.empty() ? Shape(nsp, 1) : Shape(a.sp.dilations);
  cs.output_padding = a.output_padding.empty() ? Shape(nsp, 0) : Shape(a.output_padding);
  if (g.strides.size() != nsp || g.dilations.size() != nsp || cs.output_padding.size() != nsp)
    return InvalidArgument("ConvTranspose: strides/dilations/output_padding do not match the spatial rank");
  if (!a.sp.pads.empty() && a.sp.pads.size() != 2 * nsp) return InvalidArgument("ConvTranspose: bad pads length");
  g.in.assign(nsp, 0);
  g.pad_begin.assign(nsp, 0);
  g.pad_end.assign(nsp, 0);
  std::vector<int64_t> oshape;
  if (!a.output_shape.empty()) {
    if (a.output_shape.size() == nsp) oshape = a.output_shape;
    else if (a.output_shape.size() == nsp + 2) oshape.assign(a.output_shape.begin() + 2, a.output_shape.end());
    else return InvalidArgument("ConvTranspose: output_shape has the wrong length");
  }
  for (size_t i = 0; i < nsp; ++i) {
    const int64_t ek = (g.kernel[i] - 1) * g.dilations[i] + 1;
    const int64_t full = g.strides[i] * (g.out[i] - 1) + cs.output_padding[i] + ek;
    if (!oshape.empty() || a.sp.auto_pad == "SAME_UPPER" || a.sp.auto_pad == "SAME_LOWER") {
      const int64_t target = !oshape.empty() ? oshape[i] : g.out[i] * g.strides[i];
      const int64_t total = full - target;
      const int64_t half = total >= 0 ? total / 2 : -((-total + 1) / 2);  // floor(total / 2)
      if (a.sp.auto_pad == "SAME_UPPER") {
        g.pad_begin[i] = half;
        g.pad_end[i] = total - half;
      } else {
        g.pad_begin[i] = total - half;
        g.pad_end[i] = half;
      }
      g.in[i] = target;
    } else {
      if (a.sp.auto_pad == "NOTSET" && !a.sp.pads.empty()) {
        g.pad_begin[i] = a.sp.pads[i];
        g.pad_end[i] = a.sp.pads[i + nsp];
      }
      g.in[i] = full - g.pad_begin[i] - g.pad_end[i];
    }
    if (g.in[i] < 0) return InvalidArgument("ConvTranspose: negative output size");
  }
  cs.y_shape = {cs.N, cs.M};
  cs.y_shape.insert(cs.y_shape.end(), g.in.begin(), g.in.end());
  return Status::Ok();
}

template <typename T>
void ConvTransposeRef(const ConvTShape& cs, const T* x, const T* w, const T* bias, T* y) {
  const SpatialGeom& g = cs.geom;
  const int64_t cg = cs.C / cs.G, mg = cs.M / cs.G, ks = g.kernel_size();
  const int64_t xs = g.out_size(), ys = g.in_size();
  std::vector<T> col(static_cast<size_t>(mg * ks * xs)), wt(static_cast<size_t>(mg * ks * cg));
  std::fill(y, y + cs.N * cs.M * ys, T(0));
  for (int64_t gi = 0; gi < cs.G; ++gi) {
    // wt = W_g^T: [mg*ks, cg]
    const T* wg = w + gi * cg * mg * ks;
    for (int64_t c = 0; c < cg; ++c)
      for (int64_t r = 0; r < mg * ks; ++r) wt[static_cast<size_t>(r * cg + c)] = wg[c * mg * ks + r];
    for (int64_t n = 0; n < cs.N; ++n) {
      nn::GemmRef<T>(mg * ks, xs, cg, wt.data(), x + (n * cs.C + gi * cg) * xs, col.data(), false);
      Col2ImAdd(g, mg, col.data(), y + (n * cs.M + gi * mg) * ys);
    }
  }
  if (bias)
    for (int64_t n = 0; n < cs.N; ++n)
      for (int64_t m = 0; m < cs.M; ++m) {
        T* yy = y + (n * cs.M + m) * ys;
        for (int64_t i = 0; i < ys; ++i) yy[i] += bias[m];
      }
}

std::unique_ptr<DnnlConv> MakeDnnlConvT(const ConvTShape& cs, bool has_bias) {
  auto d = std::make_unique<DnnlConv>();
  const SpatialGeom& g = cs.geom;
  if (NumElements(cs.y_shape) == 0 || cs.C == 0 || nn::ConvReferenceForced()) return d;
  const size_t nsp = g.in.size();
  std::vector<int64_t> pad_r(nsp);
  for (size_t i = 0; i < nsp; ++i) {
    pad_r[i] = g.pad_end[i] - cs.output_padding[i];
    if (pad_r[i] < 0 || g.pad_begin[i] < 0) return d;  // leave it to the reference
  }
  try {
    const auto f32 = memory::data_type::f32;
    const int64_t ks = g.kernel_size(), cg = cs.C / cs.G, mg = cs.M / cs.G;
    d->user_src = nn::PlainDesc(Concat({cs.N, cs.C}, g.out));
    d->user_dst = nn::PlainDesc(cs.y_shape);
    const auto ksr = nn::RowMajorStrides(g.kernel);
    // ONNX W is [G, C/G, M/G, k...]; oneDNN wants dims [G, M/G, C/G, k...] (or [M, C, k...]).
    if (cs.G == 1) {
      d->user_wei = memory::desc(ToDims(Concat({cs.M, cs.C}, g.kernel)), f32, ToDims(Concat({ks, cs.M * ks}, ksr)));
    } else {
      d->user_wei = memory::desc(ToDims(Concat({cs.G, mg, cg}, g.kernel)), f32,
                                 ToDims(Concat({cg * mg * ks, ks, mg * ks}, ksr)));
    }
    if (has_bias) d->bias_md = nn::PlainDesc({cs.M});
    std::vector<int64_t> dil;
    for (int64_t v : g.dilations) dil.push_back(v - 1);
    const auto any = memory::format_tag::any;
    memory::desc src_any(d->user_src.dims(), f32, any);
    memory::desc dst_any(d->user_dst.dims(), f32, any);
    memory::desc wei_any(d->user_wei.dims(), f32, any);
    dnnl::deconvolution_forward::desc desc(dnnl::prop_kind::forward_inference, dnnl::algorithm::deconvolution_direct,
                                           src_any, wei_any, d->bias_md, dst_any, ToDims(g.strides), ToDims(dil),
                                           ToDims(g.pad_begin), ToDims(pad_r));
    dnnl::deconvolution_forward::primitive_desc pd(desc, Engine());
    d->prim = dnnl::deconvolution_forward(pd);
    d->Finish(pd);
  } catch (const dnnl::error&) {
    d->ok = false;
  }
  return d;
}

// ---- Shared driver of Conv and ConvTranspose ----

// Conv and ConvTranspose differ only in shape inference, the oneDNN primitive and the reference; everything
// around them is shared: input checks, output allocation, the dtype dispatch (float32 on oneDNN, float16
// widened to float32, double on the reference), and the oneDNN primitive cached per kernel and rebuilt only
// when the shapes change. CS is ConvShape (Conv) or ConvTShape (ConvTranspose); ShapeFn is
// Status(const Shape& x, const Shape& w, CS&), the op's shape inference with its attributes bound.
template <typename CS>
class DnnlConvDriver {
 public:
  // Builds the primitive and packs constant weights at load time when X is float32 and the shapes are
  // known, so that the first run does not pay for them. A symbolic batch is guessed as 1 (the
  // primitive for another batch is built on first use, and reuses the packed weights).
  // FusedConv: `ep` must outlive the driver; call before Init.
  void SetEpilogue(const Epilogue* ep) { ep_ = ep; }
  void SetLayouts(const ConvLayouts& layouts) { layouts_ = layouts; }

  template <typename ShapeFn>
  void Init(const KernelInfo& info, const ShapeFn& compute_shape) {
    weights_constant_ = info.constant_input(1) != nullptr;
    Shape x, w;
    const ir::TypeInfo* t = info.input_type(0);
    if (t && t->elem_type == DType::kFloat && LoadTimeShape(info, 0, x, 1) && LoadTimeShape(info, 1, w)) {
      CS cs;
      if (compute_shape(x, w, cs).ok()) Prepare(cs, x, w, info.input_present(2));
      const Tensor* wt = info.constant_input(1);
      if (!cache_.empty() && wt && wt->dtype() == DType::kFloat) {  // w is wt's shape
        DnnlConv& conv = *cache_.front().conv;
        conv.PackWeights(wt->data<float>());
        // The packed copy is then the only one kept: other batch sizes' layouts are made from it.
        // Not a Winograd packing: oneDNN converts into that layout only, never out of it.
        if constexpr (std::is_same_v<CS, ConvShape>) {
          if (conv.ok && conv.wei_md != conv.user_wei && conv.wei_cached == wt->data<float>() &&
              conv.wei_md.data.format_kind == dnnl_blocked) {
            source_ = conv.wei_buffer;
            source_md_ = conv.wei_md;
            plain_md_ = conv.user_wei;
            w_shape_ = w;
            released_id_ = wt->data<float>();
            info.ReleaseConstantInput(1);
          }
        }
      }
    }
  }

  template <typename ShapeFn>
  Status Compute(KernelContext& ctx, const char* op, const ShapeFn& compute_shape) {
    const Tensor& X = ctx.input_tensor(0);
    const Tensor* W = ctx.has_input(1) ? &ctx.input_tensor(1) : nullptr;  // absent: released at load
    if (!W && !source_) return InvalidArgument(std::string(op) + ": W is missing");
    const Tensor* B = ctx.has_input(2) ? &ctx.input_tensor(2) : nullptr;
    const DType w_dtype = W ? W->dtype() : DType::kFloat;
    if (w_dtype != X.dtype() || (B && B->dtype() != X.dtype()))
      return InvalidArgument(std::string(op) + ": input dtypes differ");
    const Shape& w_shape = W ? W->shape() : w_shape_;
    CS cs;
    RETURN_IF_ERROR(compute_shape(X.shape(), w_shape, cs));
    if (B && (B->rank() != 1 || B->dim(0) != cs.M))
      return InvalidArgument(std::string(op) + ": B must have shape [" + std::to_string(cs.M) + "], got " +
                             ShapeToString(B->shape()));
    const float* residual = nullptr;
    if (ep_) {
      if (X.dtype() != DType::kFloat) return InvalidArgument(std::string(op) + ": X must be float32");
      if (ep_->has_residual()) {
        const Tensor& r = ctx.input_tensor(3);
        if (r.dtype() != DType::kFloat || r.shape() != cs.y_shape)
          return InvalidArgument(std::string(op) + ": residual must be float32 " + ShapeToString(cs.y_shape) +
                                 ", got " + ShapeToString(r.shape()));
        residual = r.data<float>();
      }
    }
    ASSIGN_OR_RETURN(Tensor * Y, ctx.AllocateOutput(0, X.dtype(), cs.y_shape));
    if (Y->numel() == 0) return Status::Ok();
    std::lock_guard<std::mutex> lock(mu_);  // the cached primitive and scratch are per-kernel state
    return Dispatch(ConvTypes{}, X.dtype(), [&](auto* tag) -> Status {
      using T = std::remove_pointer_t<decltype(tag)>;
      if constexpr (std::is_same_v<T, float>) {
        RETURN_IF_ERROR(RunFloat(cs, X.shape(), w_shape, X.data<float>(), W ? W->data<float>() : nullptr,
                                 B ? B->data<float>() : nullptr, Y->data<float>(), weights_constant_, residual));
      } else if constexpr (std::is_same_v<T, Float16>) {
        std::vector<float> x(static_cast<size_t>(X.numel())), w(static_cast<size_t>(W->numel())),
            y(static_cast<size_t>(Y->numel())), b;
        nn::ConvertBuffer(X.data<T>(), x.data(), X.numel());
        nn::ConvertBuffer(W->data<T>(), w.data(), W->numel());
        if (B) {
          b.resize(static_cast<size_t>(B->numel()));
          nn::ConvertBuffer(B->data<T>(), b.data(), B->numel());
        }
        RETURN_IF_ERROR(RunFloat(cs, X.shape(), W->shape(), x.data(), w.data(), B ? b.data() : nullptr, y.data(), false));
        nn::ConvertBufferToHalf(y.data(), Y->data<T>(), Y->numel());
      } else {
        Reference<T>(cs, X.data<T>(), W->data<T>(), B ? B->data<T>() : nullptr, Y->data<T>());
      }
      return Status::Ok();
    });
  }

 private:
  template <typename T>
  static void Reference(const CS& cs, const T* x, const T* w, const T* b, T* y) {
    if constexpr (std::is_same_v<CS, ConvShape>) ConvRef<T>(cs, x, w, b, y);
    else ConvTransposeRef<T>(cs, x, w, b, y);
  }
  void Prepare(const CS& cs, const Shape& x, const Shape& w, bool has_bias) {
    // Most recent first: a server alternating between batch sizes finds both.
    for (size_t i = 0; i < cache_.size(); ++i) {
      Entry& e = cache_[i];
      if (e.x == x && e.w == w && e.has_bias == has_bias) {
        if (i) std::rotate(cache_.begin(), cache_.begin() + static_cast<std::ptrdiff_t>(i),
                           cache_.begin() + static_cast<std::ptrdiff_t>(i) + 1);
        dnnl_ = cache_.front().conv.get();
        return;
      }
    }
    Entry e{x, w, has_bias, nullptr};
    if constexpr (std::is_same_v<CS, ConvShape>) e.conv = MakeDnnlConv(cs, has_bias, ep_, layouts_);
    else e.conv = MakeDnnlConvT(cs, has_bias);
    bool shared = false;
    for (const Entry& old : cache_)
      if ((shared = e.conv->ShareWeights(*old.conv))) break;
    if (!shared && source_ && e.conv->ok && e.conv->wei_md != e.conv->user_wei &&
        !e.conv->PackFrom(source_.get(), source_md_, released_id_))
      e.conv->ok = false;  // no memory for this layout's weights: the reference path runs, on plain weights
    if (cache_.size() == kCacheSize) cache_.pop_back();
    cache_.insert(cache_.begin(), std::move(e));
    dnnl_ = cache_.front().conv.get();
  }
  Status RunFloat(const CS& cs, const Shape& xs, const Shape& ws, const float* x, const float* w, const float* b,
                  float* y, bool wconst, const float* residual = nullptr) {
    Prepare(cs, xs, ws, b != nullptr);
    if (!w) {  // released: the primitive holds them packed (identified by their old address), or plain ones are needed
      w = dnnl_->ok && dnnl_->wei_md != dnnl_->user_wei ? static_cast<const float*>(released_id_) : PlainWeights();
      if (!w) return Internal("no memory for the convolution's weights in plain layout");
    }
    if (dnnl_->ok) {
      if (dnnl_->Run(x, w, b, y, wconst, residual)) return Status::Ok();
      return Internal("out of memory for the convolution's activations or weights in the layout its kernel wants");
    }
    if (layouts_.any()) {  // the reference works on NCHW: convert at the edges
      const int64_t n = cs.N, c = cs.C, m = cs.M, y_count = NumElements(cs.y_shape);
      const int64_t in_hw = n * c == 0 ? 0 : NumElements(xs) / (n * c), out_hw = n * m == 0 ? 0 : y_count / (n * m);
      std::vector<float> xn, yn(static_cast<size_t>(y_count)), rn;
      if (layouts_.x_nhwc) {
        xn.resize(static_cast<size_t>(NumElements(xs)));
        CopyChannels(x, xn.data(), n, c, in_hw, false);
        x = xn.data();
      }
      if (residual && layouts_.residual_nhwc) {
        rn.resize(static_cast<size_t>(y_count));
        CopyChannels(residual, rn.data(), n, m, out_hw, false);
        residual = rn.data();
      }
      Reference<float>(cs, x, w, b, yn.data());
      if (ep_) ep_->Apply(yn.data(), y_count, residual);
      if (layouts_.y_nhwc) CopyChannels(yn.data(), y, n, m, out_hw, true);
      else std::copy(yn.begin(), yn.end(), y);
      return Status::Ok();
    }
    std::vector<float> kept;  // the residual, when the output took over its buffer (in place)
    if (residual == y) {
      kept.assign(residual, residual + NumElements(cs.y_shape));
      residual = kept.data();
    }
    Reference<float>(cs, x, w, b, y);
    if (ep_) ep_->Apply(y, NumElements(cs.y_shape), residual);
    return Status::Ok();
  }

  // The constant weights in plain layout, unpacked from source_ on first need (a primitive that
  // reads plain weights, or the reference path). Null when out of memory.
  const float* PlainWeights() {
    if (plain_w_.empty()) {
      try {
        plain_w_.resize(plain_md_.get_size() / sizeof(float));
        memory src(source_md_, Engine(), source_.get()), dst(plain_md_, Engine(), plain_w_.data());
        dnnl::reorder(src, dst).execute(Stream(), src, dst);
        Stream().wait();
      } catch (const std::bad_alloc&) {
        plain_w_.clear();
        return nullptr;
      } catch (const dnnl::error&) {
        plain_w_.clear();
        return nullptr;
      }
    }
    return plain_w_.data();
  }

  const Epilogue* ep_ = nullptr;
  ConvLayouts layouts_;
  bool weights_constant_ = false;
  // Constant float32 weights packed at load, once the original was released (Conv only): other
  // layouts are made from this copy, and plain weights unpacked from it when needed.
  std::shared_ptr<void> source_;
  const void* released_id_ = nullptr;  // the released weights' address: their identity in wei_cached
  memory::desc source_md_, plain_md_;
  Shape w_shape_;
  std::vector<float> plain_w_;
  std::mutex mu_;
  // Primitives for the most recent shapes, and the one in use.
  struct Entry {
    Shape x, w;
    bool has_bias = false;
    std::unique_ptr<DnnlConv> conv;
  };
  static constexpr size_t kCacheSize = 4;
  std::vector<Entry> cache_;
  DnnlConv* dnnl_ = nullptr;
};

class ConvKernel final : public OpKernel {
  // The op's shape inference with this kernel's attributes bound, for DnnlConvDriver. Declared first
  // because its deduced return type is needed by the members below.
  auto ShapeFn() const {
    return [this](const Shape& x, const Shape& w, ConvShape& cs) { return ComputeConvShape(attrs_, group_, x, w, cs); };
  }

 public:
  Status Init(const KernelInfo& info) {
    RETURN_IF_ERROR(CheckInputDType(info, 0, DTypesOf(ConvTypes{})));
    RETURN_IF_ERROR(attrs_.Load(info, true, false));
    group_ = info.attr_int("group", 1);
    if (group_ <= 0) return info.Error("group must be positive");
    if (info.node().domain == "com.strata") {  // FusedConv: float32 only
      RETURN_IF_ERROR(CheckInputDType(info, 0, {DType::kFloat}));
      RETURN_IF_ERROR(ep_.Load(info));
      driver_.SetEpilogue(&ep_);
      node_op_ = "FusedConv";
      ConvLayouts layouts;
      for (auto [attr, flag] : {std::pair{"x_layout", &layouts.x_nhwc}, std::pair{"y_layout", &layouts.y_nhwc},
                                std::pair{"residual_layout", &layouts.residual_nhwc}}) {
        const std::string v = info.attr_string(attr, "NCHW");
        if (v != "NCHW" && v != "NHWC") return info.Error(std::string(attr) + " must be NCHW or NHWC, got '" + v + "'");
        *flag = v == "NHWC";
      }
      if (layouts.any()) {
        const ir::TypeInfo* t = info.input_type(0);
        if (t && t->shape && t->shape->size() != 4) return info.Error("channels-last layouts need a 4-D input");
        layouts_nhwc_ = true;
      }
      driver_.SetLayouts(layouts);
      residual_in_place_ = ep_.has_residual() && layouts.residual_nhwc == layouts.y_nhwc;
    }
    driver_.Init(info, ShapeFn());
    return Status::Ok();
  }
  // The residual's buffer can become the output's: the sum post-op reads each element before the
  // convolution writes it, a primitive with its own layout takes the residual in first, and the
  // reference paths keep a copy. Not across layouts, which would need a reorder in place.
  int InPlaceInput() const override { return residual_in_place_ ? 3 : -1; }
  Status Compute(KernelContext& ctx) override {
    if (layouts_nhwc_ && ctx.input_tensor(0).rank() != 4)
      return InvalidArgument(std::string(node_op_) + ": channels-last layouts need a 4-D input, got " +
                             ShapeToString(ctx.input_tensor(0).shape()));
    return driver_.Compute(ctx, node_op_, ShapeFn());
  }

 private:
  const char* node_op_ = "Conv";
  bool layouts_nhwc_ = false;
  bool residual_in_place_ = false;
  Epilogue ep_;
  SpatialAttrs attrs_;
  int64_t group_ = 1;
  DnnlConvDriver<ConvShape> driver_;
};

class ConvTransposeKernel final : public OpKernel {
  // The op's shape inference with this kernel's attributes bound, for DnnlConvDriver. Declared first
  // because its deduced return type is needed by the members below.
  auto ShapeFn() const {
    return [this](const Shape& x, const Shape& w, ConvTShape& cs) { return ComputeConvTShape(a_, x, w, cs); };
  }

 public:
  Status Init(const KernelInfo& info) {
    RETURN_IF_ERROR(CheckInputDType(info, 0, DTypesOf(ConvTypes{})));
    RETURN_IF_ERROR(a_.sp.Load(info, true, false));
    a_.group = info.attr_int("group", 1);
    if (a_.group <= 0) return info.Error("group must be positive");
    a_.output_padding = info.attr_ints("output_padding");
    a_.output_shape = info.attr_ints("output_shape");
    driver_.Init(info, ShapeFn());
    return Status::Ok();
  }
  Status Compute(KernelContext& ctx) override { return driver_.Compute(ctx, "ConvTranspose", ShapeFn()); }

 private:
  ConvTAttrs a_;
  DnnlConvDriver<ConvTShape> driver_;
};

// ---- ConvInteger / QLinearConv ----

using QTypes = TypeList<uint8_t, int8_t>;

// Widens a quantized tensor to int32 minus its zero point (scalar or one per leading-dim slice).
template <typename T>
Status WidenQuant(const Tensor& t, const Tensor* zp, std::vector<int32_t>& out, const char* what) {
  if (zp && zp->dtype() != t.dtype()) return InvalidArgument(std::string(what) + ": zero point dtype mismatch");
  const int64_t n = t.numel();
  out.resize(static_cast<size_t>(n));
  const T* p = t.data<T>();
  if (!zp || zp->numel() == 1) {
    const int32_t z = zp ? static_cast<int32_t>(zp->data<T>()[0]) : 0;
    for (int64_t i = 0; i < n; ++i) out[static_cast<size_t>(i)] = static_cast<int32_t>(p[i]) - z;
    return Status::Ok();
  }
  if (t.rank() == 0 || zp->numel() != t.dim(0))
    return InvalidArgument(std::string(what) + ": zero point must be a scalar or have one value per channel");
  const int64_t inner = n / std::max<int64_t>(t.dim(0), 1);
  for (int64_t i = 0; i < n; ++i)
    out[static_cast<size_t>(i)] = static_cast<int32_t>(p[i]) - static_cast<int32_t>(zp->data<T>()[i / inner]);
  return Status::Ok();
}

Status QuantConvAccumulate(const SpatialAttrs& a, int64_t group, const Tensor& X, const Tensor* xzp, const Tensor& W,
                           const Tensor* wzp, ConvShape& cs, std::vector<int32_t>& acc) {
  RETURN_IF_ERROR(ComputeConvShape(a, group, X.shape(), W.shape(), cs));
  if (xzp && xzp->numel() != 1) return InvalidArgument("x_zero_point must be a scalar");
  std::vector<int32_t> x, w;
  RETURN_IF_ERROR(Dispatch(QTypes{}, X.dtype(), [&](auto* tag) {
    using T = std::remove_pointer_t<decltype(tag)>;
    return WidenQuant<T>(X, xzp, x, "x");
  }));
  RETURN_IF_ERROR(Dispatch(QTypes{}, W.dtype(), [&](auto* tag) {
    using T = std::remove_pointer_t<decltype(tag)>;
    return WidenQuant<T>(W, wzp, w, "w");
  }));
  acc.assign(static_cast<size_t>(NumElements(cs.y_shape)), 0);
  if (!acc.empty()) ConvRef<int32_t>(cs, x.data(), w.data(), nullptr, acc.data());
  return Status::Ok();
}

// ConvInteger and QLinearConv share their attributes and load-time checks.
class QuantConvKernelBase : public OpKernel {
 public:
  Status Init(const KernelInfo& info) {
    RETURN_IF_ERROR(CheckInputDType(info, 0, DTypesOf(QTypes{})));
    RETURN_IF_ERROR(attrs_.Load(info, true, false));
    group_ = info.attr_int("group", 1);
    if (group_ <= 0) return info.Error("group must be positive");
    return Status::Ok();
  }
 protected:
  SpatialAttrs attrs_;
  int64_t group_ = 1;
};

class ConvIntegerKernel final : public QuantConvKernelBase {
 public:
  Status Compute(KernelContext& ctx) override {
    ConvShape cs;
    std::vector<int32_t> acc;
    RETURN_IF_ERROR(QuantConvAccumulate(attrs_, group_, ctx.input_tensor(0),
                                        ctx.has_input(2) ? &ctx.input_tensor(2) : nullptr, ctx.input_tensor(1),
                                        ctx.has_input(3) ? &ctx.input_tensor(3) : nullptr, cs, acc));
    ASSIGN_OR_RETURN(Tensor * Y, ctx.AllocateOutput(0, DType::kInt32, cs.y_shape));
    std::copy(acc.begin(), acc.end(), Y->data<int32_t>());
    return Status::Ok();
  }
};

class QLinearConvKernel final : public QuantConvKernelBase {
 public:
  Status Compute(KernelContext& ctx) override {
    for (int i = 0; i < 8; ++i)
      if (!ctx.has_input(i)) return InvalidArgument("QLinearConv needs at least 8 inputs");
    const Tensor& xs = ctx.input_tensor(1);
    const Tensor& ws = ctx.input_tensor(4);
    const Tensor& ys = ctx.input_tensor(6);
    const Tensor& yzp = ctx.input_tensor(7);
    if (xs.dtype() != DType::kFloat || ws.dtype() != DType::kFloat || ys.dtype() != DType::kFloat)
      return InvalidArgument("QLinearConv: scales must be float");
    if (xs.numel() != 1 || ys.numel() != 1 || yzp.numel() != 1)
      return InvalidArgument("QLinearConv: x_scale, y_scale and y_zero_point must be scalars");
    ConvShape cs;
    std::vector<int32_t> acc;
    RETURN_IF_ERROR(QuantConvAccumulate(attrs_, group_, ctx.input_tensor(0), &ctx.input_tensor(2),
                                        ctx.input_tensor(3), &ctx.input_tensor(5), cs, acc));
    if (ws.numel() != 1 && ws.numel() != cs.M) return InvalidArgument("QLinearConv: w_scale must be scalar or [M]");
    const int32_t* bias = nullptr;
    if (ctx.has_input(8)) {
      const Tensor& B = ctx.input_tensor(8);
      if (B.dtype() != DType::kInt32 || B.numel() != cs.M) return InvalidArgument("QLinearConv: B must be int32 [M]");
      bias = B.data<int32_t>();
    }
    ASSIGN_OR_RETURN(Tensor * Y, ctx.AllocateOutput(0, yzp.dtype(), cs.y_shape));
    const int64_t os = cs.geom.out_size();
    return Dispatch(QTypes{}, yzp.dtype(), [&](auto* tag) -> Status {
      using TY = std::remove_pointer_t<decltype(tag)>;
      TY* y = Y->data<TY>();
      const float zp = static_cast<float>(yzp.data<TY>()[0]);
      for (int64_t n = 0; n < cs.N; ++n)
        for (int64_t m = 0; m < cs.M; ++m) {
          const float scale = xs.data<float>()[0] * ws.data<float>()[ws.numel() == 1 ? 0 : m] / ys.data<float>()[0];
          const int32_t b = bias ? bias[m] : 0;
          const int64_t base = (n * cs.M + m) * os;
          for (int64_t i = 0; i < os; ++i)
            y[base + i] = nn::SaturateRound<TY>(
                static_cast<double>(static_cast<float>(acc[static_cast<size_t>(base + i)] + b) * scale) + zp);
        }
      return Status::Ok();
    });
  }

};

// ---- Col2Im (opset 18) ----

using Col2ImTypes = TypeList<float, double, Float16, BFloat16, int8_t, int16_t, int32_t, int64_t, uint8_t, uint16_t,
                             uint32_t, uint64_t>;

class Col2ImKernel final : public OpKernel {
 public:
  Status Init(const KernelInfo& info) {
    dilations_ = info.attr_ints("dilations");
    strides_ = info.attr_ints("strides");
    pads_ = info.attr_ints("pads");
    return Status::Ok();
  }
  Status Compute(KernelContext& ctx) override {
    const Tensor& X = ctx.input_tensor(0);
    ASSIGN_OR_RETURN(std::vector<int64_t> image, ReadInt64s(ctx.input_tensor(1)));
    ASSIGN_OR_RETURN(std::vector<int64_t> block, ReadInt64s(ctx.input_tensor(2)));
    const size_t nsp = image.size();
    if (nsp == 0 || block.size() != nsp) return InvalidArgument("Col2Im: image_shape and block_shape must match");
    if (X.rank() != 3) return InvalidArgument("Col2Im: input must be 3-D [N, C*prod(block), L]");
    SpatialGeom g;
    g.in = image;
    g.kernel = block;
    g.strides = strides_.empty() ? Shape(nsp, 1) : Shape(strides_);
    g.dilations = dilations_.empty() ? Shape(nsp, 1) : Shape(dilations_);
    if (g.strides.size() != nsp || g.dilations.size() != nsp || (!pads_.empty() && pads_.size() != 2 * nsp))
      return InvalidArgument("Col2Im: attribute lengths do not match image_shape");
    for (size_t i = 0; i < nsp; ++i)
      if (image[i] < 0 || block[i] <= 0 || g.strides[i] <= 0 || g.dilations[i] <= 0)
        return InvalidArgument("Col2Im: bad image/block/stride/dilation values");
    SpatialAttrs a;
    a.pads = pads_;
    RETURN_IF_ERROR(nn::ComputeForwardGeom(a, g, false));
    const int64_t ks = g.kernel_size();
    if (X.dim(1) % ks != 0) return InvalidArgument("Col2Im: input dim 1 is not a multiple of prod(block_shape)");
    if (X.dim(2) != g.out_size())
      return InvalidArgument("Col2Im: input has " + std::to_string(X.dim(2)) + " blocks, expected " +
                             std::to_string(g.out_size()));
    const int64_t C = X.dim(1) / ks, N = X.dim(0);
    Shape ys{N, C};
    ys.insert(ys.end(), image.begin(), image.end());
    ASSIGN_OR_RETURN(Tensor * Y, ctx.AllocateOutput(0, X.dtype(), ys));
    const int64_t is = g.in_size();
    return Dispatch(Col2ImTypes{}, X.dtype(), [&](auto* tag) -> Status {
      using T = std::remove_pointer_t<decltype(tag)>;
      using A = ComputeType<T>;
      if constexpr (std::is_same_v<A, T>) {
        for (int64_t n = 0; n < N; ++n) Col2ImAdd(g, C, X.data<T>() + n * X.dim(1) * X.dim(2), Y->data<T>() + n * C * is);
      } else {
        std::vector<float> x(static_cast<size_t>(X.numel())), y(static_cast<size_t>(Y->numel()), 0.f);
        nn::ConvertBuffer(X.data<T>(), x.data(), X.numel());
        for (int64_t n = 0; n < N; ++n) Col2ImAdd(g, C, x.data() + n * X.dim(1) * X.dim(2), y.data() + n * C * is);
        nn::ConvertBufferToHalf(y.data(), Y->data<T>(), Y->numel());
      }
      return Status::Ok();
    });
  }

 private:
  std::vector<int64_t> dilations_, strides_, pads_;
};

const KernelRegistrar kConv{{.op_type = "Conv", .since = 1, .until = 18, .dtypes = DTypesOf(ConvTypes{}),
                             .factory = MakeKernel<ConvKernel>}};
const KernelRegistrar kFusedConv{{.op_type = "FusedConv", .domain = "com.strata", .since = 1, .until = 1,
                                  .dtypes = {DType::kFloat}, .factory = MakeKernel<ConvKernel>}};
const KernelRegistrar kConvTranspose{{.op_type = "ConvTranspose", .since = 1, .until = 18,
                                      .dtypes = DTypesOf(ConvTypes{}), .factory = MakeKernel<ConvTransposeKernel>}};
const KernelRegistrar kConvInteger{{.op_type = "ConvInteger", .since = 10, .until = 18, .dtypes = DTypesOf(QTypes{}),
                                    .factory = MakeKernel<ConvIntegerKernel>}};
const KernelRegistrar kQLinearConv{{.op_type = "QLinearConv", .since = 10, .until = 18, .dtypes = DTypesOf(QTypes{}),
                                    .factory = MakeKernel<QLinearConvKernel>}};
const KernelRegistrar kCol2Im{{.op_type = "Col2Im", .since = 18, .until = 18, .dtypes = DTypesOf(Col2ImTypes{}),
                               .factory = MakeKernel<Col2ImKernel>}};

}  // namespace
}  // namespace strata::cpu
