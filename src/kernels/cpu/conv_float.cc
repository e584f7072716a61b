// Conv, com.strata FusedConv (Conv with a residual and activations as oneDNN post-ops;
// fused_epilogue.h) and ConvTranspose. float32 runs on oneDNN (conv_onednn.h) and float16 is
// widened to float32; double, and shapes oneDNN has no primitive for, run the reference
// (conv_reference.h).
#include <algorithm>
#include <memory>
#include <mutex>
#include <string>
#include <type_traits>
#include <vector>

#include "kernels/cpu/conv_onednn.h"
#include "kernels/cpu/conv_reference.h"
#include "kernels/cpu/ukernels/layout_copy.h"

namespace strata::cpu {
namespace {

using conv::ComputeConvShape;
using conv::ComputeConvTShape;
using conv::ConvLayouts;
using conv::ConvRef;
using conv::ConvShape;
using conv::ConvTAttrs;
using conv::ConvTransposeRef;
using conv::ConvTShape;
using conv::DnnlConv;
using conv::MakeDnnlConv;
using conv::MakeDnnlConvT;
using dnnl::memory;
using nn::SpatialAttrs;
using onednn::Engine;
using onednn::Stream;

// Copies n images of c channels by hw positions between channels-last [n, hw, c] and channels-first
// [n, c, hw] (`to_last` picks the direction).
void CopyChannels(const float* src, float* dst, int64_t n, int64_t c, int64_t hw, bool to_last) {
  using L = uk::ActivationLayout;
  const uk::LayoutCopy copy{to_last ? L::kChannelsFirst : L::kChannelsLast, to_last ? L::kChannelsLast : L::kChannelsFirst,
                            n, c, hw};
  copy.Run(src, dst);
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
      if (dnnl_->ok && dnnl_->wei_md != dnnl_->user_wei) {
        w = static_cast<const float*>(released_id_);
      } else {
        ASSIGN_OR_RETURN(w, PlainWeights());
      }
    }
    if (dnnl_->ok) return dnnl_->Run(x, w, b, y, wconst, residual);
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
  // reads plain weights, or the reference path).
  Result<const float*> PlainWeights() {
    if (plain_w_.empty()) {
      const Status st = onednn::Call("unpacking the convolution's weights", [&] {
        plain_w_.resize(plain_md_.get_size() / sizeof(float));
        memory src(source_md_, Engine(), source_.get()), dst(plain_md_, Engine(), plain_w_.data());
        dnnl::reorder(src, dst).execute(Stream(), src, dst);
        Stream().wait();
      });
      if (!st.ok()) {
        plain_w_.clear();
        return st;
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

const KernelRegistrar kConv{{.op_type = "Conv", .since = 1, .until = 18, .dtypes = DTypesOf(ConvTypes{}),
                             .factory = MakeKernel<ConvKernel>}};
const KernelRegistrar kFusedConv{{.op_type = "FusedConv", .domain = "com.strata", .since = 1, .until = 1,
                                  .dtypes = {DType::kFloat}, .factory = MakeKernel<ConvKernel>}};
const KernelRegistrar kConvTranspose{{.op_type = "ConvTranspose", .since = 1, .until = 18,
                                      .dtypes = DTypesOf(ConvTypes{}), .factory = MakeKernel<ConvTransposeKernel>}};

}  // namespace
}  // namespace strata::cpu
