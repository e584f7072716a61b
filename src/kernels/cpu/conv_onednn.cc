#include "kernels/cpu/conv_onednn.h"

#include <cstdlib>
#include <optional>
#include <string>
#include <vector>

#include "core/large_buffer.h"

namespace strata::cpu::conv {
namespace {

using dnnl::memory;
using onednn::Engine;
using onednn::Stream;

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

// Activations in a primitive's own layout (Winograd's blocked nChw16c) live only for one call, so they
// go in the thread's kernel scratch (slots 0 and 1) rather than a buffer per layer: per-layer buffers
// held 74 MiB across ResNet-50's Winograd layers at batch 8.
void* ActivationScratch(int slot, const memory::desc& md) {
  return ThreadScratch(slot, (md.get_size() + sizeof(float) - 1) / sizeof(float));
}

Shape Concat(std::initializer_list<int64_t> head, const Shape& tail) {
  Shape v(head);
  v.insert(v.end(), tail.begin(), tail.end());
  return v;
}

memory::desc ActivationDesc(const std::vector<int64_t>& dims, bool nhwc) {
  return nhwc ? ChannelsLastDesc(dims) : nn::PlainDesc(dims);
}

Status NoMemoryForLayout() {
  return Internal("out of memory for the convolution's activations or weights in the layout its kernel wants");
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

}  // namespace

LayoutCopy LayoutCopy::Between(const memory::desc& user, const memory::desc& prim) {
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
  return l;
}

Status DnnlConv::Run(const float* x, const float* w, const float* b, float* y, bool weights_constant,
                     const float* residual) {
  return onednn::Call("convolution", [&]() -> Status {
    const void* src = x;
    if (src_md != user_src) {
      src = ActivationScratch(0, src_md);
      if (!src) return NoMemoryForLayout();
      if (src_copy.on()) src_copy.ToPrimitive(x, static_cast<float*>(const_cast<void*>(src)));
      else src_call.Arg(DNNL_ARG_FROM, user_src, x).Arg(DNNL_ARG_TO, src_md, src).Execute(src_reorder);
    }
    void* dst = dst_md != user_dst ? ActivationScratch(1, dst_md) : y;
    if (!dst) return NoMemoryForLayout();
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
      if ((!weights_constant || wei_cached != w) && !ReorderWeights(w, weights_constant)) return NoMemoryForLayout();
      wei = wei_buffer.get();
    }
    conv_call.Arg(DNNL_ARG_SRC, src_md, src).Arg(DNNL_ARG_WEIGHTS, wei_md, wei).Arg(DNNL_ARG_DST, dst_md, dst);
    if (b) conv_call.Arg(DNNL_ARG_BIAS, bias_md, b);
    conv_call.Execute(prim);
    if (dst_copy.on()) dst_copy.FromPrimitive(static_cast<const float*>(dst), y);
    else if (dst_md != user_dst) dst_call.Arg(DNNL_ARG_FROM, dst_md, dst).Arg(DNNL_ARG_TO, user_dst, y).Execute(dst_reorder);
    return Status::Ok();
  });
}

bool DnnlConv::ShareWeights(const DnnlConv& other) {
  if (!ok || !other.ok || !other.wei_cached || wei_md == user_wei || other.wei_md != wei_md) return false;
  wei_buffer = other.wei_buffer;
  wei_cached = other.wei_cached;
  return true;
}

bool DnnlConv::PackFrom(const void* from, const memory::desc& from_md, const void* id) {
  if (!ok || wei_md == user_wei) return false;
  if (!wei_buffer) {
    wei_buffer = std::shared_ptr<void>(AllocateLargeBuffer(wei_md.get_size()).release(), LargeBufferFree());
    if (!wei_buffer) return false;
  }
  // Failures pick a fallback rather than an error: the route through the plain layout, else (false)
  // the reference path.
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

void DnnlConv::PackWeights(const float* w) {
  if (!ok || wei_md == user_wei || wei_cached == w) return;
  try {
    ReorderWeights(w, true);
  } catch (const dnnl::error&) {  // not an error yet: Run reorders them again and reports the failure
  }
}

bool DnnlConv::ReorderWeights(const float* w, bool constant) {
  if (!wei_buffer) {
    wei_buffer = std::shared_ptr<void>(AllocateLargeBuffer(wei_md.get_size()).release(), LargeBufferFree());
    if (!wei_buffer) return false;
  }
  wei_call.Arg(DNNL_ARG_FROM, user_wei, w).Arg(DNNL_ARG_TO, wei_md, wei_buffer.get()).Execute(wei_reorder);
  wei_cached = constant ? w : nullptr;
  return true;
}

template <typename PD>
void DnnlConv::Finish(const PD& pd) {
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

std::unique_ptr<DnnlConv> MakeDnnlConv(const ConvShape& cs, bool has_bias, const Epilogue* ep,
                                       const ConvLayouts& layouts) {
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
    const bool winograd_chosen = static_cast<bool>(pd);
    if (!pd) pd = dnnl::convolution_forward::primitive_desc(direct, attr, Engine());
    // Between channels-last activations, a kernel that wants blocked ones (oneDNN 2.6's AVX2 kernels
    // pick nChw8c) costs a layout copy on each side; its channels-last variant is faster: ResNet-50
    // 93 -> 84 ms and MobileNetV2 11.0 -> 7.0 ms at 1 thread with the AVX2 paths. AVX-512's brgconv
    // already picks channels-last.
    const dnnl::convolution_forward::desc direct_channels_last(
        dnnl::prop_kind::forward_inference, dnnl::algorithm::convolution_direct, d->user_src, wei_any, d->bias_md,
        d->user_dst, ToDims(g.strides), ToDims(dil), ToDims(g.pad_begin), ToDims(g.pad_end));
    if (!winograd_chosen && layouts.x_nhwc && layouts.y_nhwc && (pd.src_desc() != d->user_src || pd.dst_desc() != d->user_dst)) {
      try {  // only a jit or brgemm kernel: gemm (im2col) and reference ones are far slower than a blocked jit
        dnnl::convolution_forward::primitive_desc channels_last(direct_channels_last, attr, Engine());
        const std::string impl = channels_last.impl_info_str();
        if (impl.rfind("jit", 0) == 0 || impl.rfind("brg", 0) == 0) pd = channels_last;
      } catch (const dnnl::error&) {
      }
    }
    d->prim = dnnl::convolution_forward(pd);
    d->Finish(pd);
  } catch (const dnnl::error&) {  // no primitive for it: not an error, the reference path runs
    d->ok = false;
  }
  return d;
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
  } catch (const dnnl::error&) {  // no primitive for it: not an error, the reference path runs
    d->ok = false;
  }
  return d;
}

}  // namespace strata::cpu::conv
