// Recurrent layers: RNN, GRU, LSTM (all opsets, float/double/float16; 16-bit floats compute in float).
// Directions forward/reverse/bidirectional, sequence_lens, initial states, peepholes, clip,
// activations with alpha/beta, GRU linear_before_reset, LSTM input_forget, layout (opset 14).
#include <algorithm>
#include <cctype>
#include <cmath>
#include <string>
#include <vector>

#include "kernels/cpu/common.h"

namespace strata::cpu {
namespace {

enum class CellKind { kRNN, kGRU, kLSTM };

struct Activation {
  enum Kind { kRelu, kTanh, kSigmoid, kAffine, kLeakyRelu, kThresholdedRelu, kScaledTanh, kHardSigmoid, kElu,
              kSoftsign, kSoftplus };
  Kind kind = kTanh;
  float alpha = 0, beta = 0;
};

std::string Lower(std::string s) {
  for (char& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

// Applies an activation in place over n values.
template <typename W>
void Apply(const Activation& a, W* x, int64_t n) {
  const W al = static_cast<W>(a.alpha), be = static_cast<W>(a.beta);
  switch (a.kind) {
    case Activation::kRelu: for (int64_t i = 0; i < n; ++i) x[i] = x[i] > W(0) ? x[i] : W(0); break;
    case Activation::kTanh: for (int64_t i = 0; i < n; ++i) x[i] = std::tanh(x[i]); break;
    case Activation::kSigmoid:
      for (int64_t i = 0; i < n; ++i) {
        // Stable for large |x|.
        const W v = x[i];
        if (v >= W(0)) { x[i] = W(1) / (W(1) + std::exp(-v)); }
        else { const W e = std::exp(v); x[i] = e / (W(1) + e); }
      }
      break;
    case Activation::kAffine: for (int64_t i = 0; i < n; ++i) x[i] = al * x[i] + be; break;
    case Activation::kLeakyRelu: for (int64_t i = 0; i < n; ++i) x[i] = x[i] >= W(0) ? x[i] : al * x[i]; break;
    case Activation::kThresholdedRelu: for (int64_t i = 0; i < n; ++i) x[i] = x[i] > al ? x[i] : W(0); break;
    case Activation::kScaledTanh: for (int64_t i = 0; i < n; ++i) x[i] = al * std::tanh(be * x[i]); break;
    case Activation::kHardSigmoid:
      for (int64_t i = 0; i < n; ++i) x[i] = std::max(W(0), std::min(W(1), al * x[i] + be));
      break;
    case Activation::kElu: for (int64_t i = 0; i < n; ++i) x[i] = x[i] >= W(0) ? x[i] : al * (std::exp(x[i]) - W(1)); break;
    case Activation::kSoftsign: for (int64_t i = 0; i < n; ++i) x[i] = x[i] / (W(1) + std::abs(x[i])); break;
    case Activation::kSoftplus:
      for (int64_t i = 0; i < n; ++i) {
        const W v = x[i];
        x[i] = v > W(0) ? v + std::log1p(std::exp(-v)) : std::log1p(std::exp(v));
      }
      break;
  }
}

template <typename W>
void ClipValues(W* x, int64_t n, float clip) {
  if (clip <= 0) return;
  const W c = static_cast<W>(clip);
  for (int64_t i = 0; i < n; ++i) x[i] = std::min(c, std::max(-c, x[i]));
}

template <typename T, typename W>
std::vector<W> ToWork(const Tensor& t) {
  std::vector<W> v(static_cast<size_t>(t.numel()));
  const T* p = t.data<T>();
  for (size_t i = 0; i < v.size(); ++i) v[i] = static_cast<W>(static_cast<ComputeType<T>>(p[i]));
  return v;
}

// c[m][n] += sum_k a[m*lda+k] * b[k*ldb+n]. The inner loop runs over contiguous n, so it
// vectorises without reassociating sums.
template <typename W>
void GemmNN(const W* a, int64_t lda, const W* b, int64_t ldb, W* c, int64_t ldc, int64_t M, int64_t N, int64_t K) {
  ParallelRows(M, N * K, [&](int64_t m_begin, int64_t m_end) {
    for (int64_t m = m_begin; m < m_end; ++m) {
      const W* ar = a + m * lda;
      W* cr = c + m * ldc;
      for (int64_t k = 0; k < K; ++k) {
        const W av = ar[k];
        const W* br = b + k * ldb;
        for (int64_t n = 0; n < N; ++n) cr[n] += av * br[n];
      }
    }
  }, 1 << 20);
}

// [rows, cols] -> [cols, rows]
template <typename W>
std::vector<W> Transposed(const W* src, int64_t rows, int64_t cols) {
  std::vector<W> t(static_cast<size_t>(rows * cols));
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t c = 0; c < cols; ++c) t[static_cast<size_t>(c * rows + r)] = src[r * cols + c];
  return t;
}

class RnnKernel final : public OpKernel {
 public:
  explicit RnnKernel(CellKind kind) : kind_(kind) {}

  Status Init(const KernelInfo& info) {
    gates_ = kind_ == CellKind::kRNN ? 1 : kind_ == CellKind::kGRU ? 3 : 4;
    const std::string dir = info.attr_string("direction", "forward");
    if (dir == "forward") dirs_ = 1;
    else if (dir == "reverse") { dirs_ = 1; reverse_only_ = true; }
    else if (dir == "bidirectional") dirs_ = 2;
    else return info.Error("unknown direction '" + dir + "'");
    hidden_ = info.attr_int("hidden_size", -1);
    clip_ = info.has_attr("clip") ? info.attr_float("clip", 0) : -1.0f;
    if (info.has_attr("clip") && clip_ <= 0) return info.Error("clip must be positive");
    layout_ = info.attr_int("layout", 0);
    if (layout_ != 0 && layout_ != 1) return info.Error("layout must be 0 or 1");
    linear_before_reset_ = info.attr_int("linear_before_reset", 0) != 0;
    input_forget_ = info.attr_int("input_forget", 0) != 0;

    const int per_dir = kind_ == CellKind::kRNN ? 1 : kind_ == CellKind::kGRU ? 2 : 3;
    std::vector<std::string> names = info.attr_strings("activations");
    if (names.empty()) {
      if (kind_ == CellKind::kRNN) names = {"Tanh"};
      else if (kind_ == CellKind::kGRU) names = {"Sigmoid", "Tanh"};
      else names = {"Sigmoid", "Tanh", "Tanh"};
    }
    if (static_cast<int>(names.size()) == per_dir && dirs_ == 2) {
      std::vector<std::string> twice = names;
      twice.insert(twice.end(), names.begin(), names.end());
      names = std::move(twice);
    }
    if (static_cast<int>(names.size()) != per_dir * dirs_)
      return info.Error("expected " + std::to_string(per_dir * dirs_) + " activations, got " + std::to_string(names.size()));
    const std::vector<float> alphas = info.attr_floats("activation_alpha");
    const std::vector<float> betas = info.attr_floats("activation_beta");
    size_t ai = 0, bi = 0;
    for (const std::string& nm : names) {
      Activation a;
      const std::string l = Lower(nm);
      bool uses_alpha = false, uses_beta = false;
      if (l == "relu") a.kind = Activation::kRelu;
      else if (l == "tanh") a.kind = Activation::kTanh;
      else if (l == "sigmoid") a.kind = Activation::kSigmoid;
      else if (l == "affine") { a.kind = Activation::kAffine; a.alpha = 1; a.beta = 0; uses_alpha = uses_beta = true; }
      else if (l == "leakyrelu") { a.kind = Activation::kLeakyRelu; a.alpha = 0.01f; uses_alpha = true; }
      else if (l == "thresholdedrelu") { a.kind = Activation::kThresholdedRelu; a.alpha = 1.0f; uses_alpha = true; }
      else if (l == "scaledtanh") { a.kind = Activation::kScaledTanh; a.alpha = 1; a.beta = 1; uses_alpha = uses_beta = true; }
      else if (l == "hardsigmoid") { a.kind = Activation::kHardSigmoid; a.alpha = 0.2f; a.beta = 0.5f; uses_alpha = uses_beta = true; }
      else if (l == "elu") { a.kind = Activation::kElu; a.alpha = 1.0f; uses_alpha = true; }
      else if (l == "softsign") a.kind = Activation::kSoftsign;
      else if (l == "softplus") a.kind = Activation::kSoftplus;
      else return info.Error("unsupported activation '" + nm + "'");
      if (uses_alpha && ai < alphas.size()) a.alpha = alphas[ai++];
      if (uses_beta && bi < betas.size()) a.beta = betas[bi++];
      acts_.push_back(a);
    }
    if (!info.input_present(0) || !info.input_present(1) || !info.input_present(2))
      return info.Error("X, W and R are required");
    return CheckInputDType(info, 0, {DType::kFloat, DType::kDouble, DType::kFloat16});
  }

  Status Compute(KernelContext& ctx) override {
    for (int i = 0; i < 3; ++i)
      if (!ctx.has_input(i) || !ctx.input(i).is_tensor()) return InvalidArgument("X, W and R must be tensors");
    const DType dt = ctx.input_tensor(0).dtype();
    for (int i = 1; i < ctx.num_inputs(); ++i) {
      if (i == 4 || !ctx.has_input(i)) continue;
      if (!ctx.input(i).is_tensor() || ctx.input_tensor(i).dtype() != dt)
        return InvalidArgument("input " + std::to_string(i) + " must be a tensor of the same dtype as X");
    }
    if (dt == DType::kFloat) return Run<float, float>(ctx);
    if (dt == DType::kDouble) return Run<double, double>(ctx);
    if (dt == DType::kFloat16) return Run<Float16, float>(ctx);
    return Unsupported("dtype " + std::string(DTypeName(dt)) + " is not supported for recurrent layers");
  }

 private:
  template <typename T, typename W>
  Status Run(KernelContext& ctx) {
    const Tensor& X = ctx.input_tensor(0);
    const Tensor& Wt = ctx.input_tensor(1);
    const Tensor& Rt = ctx.input_tensor(2);
    if (X.rank() != 3) return InvalidArgument("X must have rank 3, got " + ShapeToString(X.shape()));
    const int64_t S = layout_ ? X.dim(1) : X.dim(0);
    const int64_t B = layout_ ? X.dim(0) : X.dim(1);
    const int64_t I = X.dim(2);
    const int64_t G = gates_;
    const int64_t D = dirs_;
    if (Rt.rank() != 3) return InvalidArgument("R must have rank 3");
    const int64_t H = hidden_ > 0 ? hidden_ : Rt.dim(2);
    if (Wt.shape() != Shape{D, G * H, I})
      return InvalidArgument("W has shape " + ShapeToString(Wt.shape()) + ", expected " + ShapeToString({D, G * H, I}));
    if (Rt.shape() != Shape{D, G * H, H})
      return InvalidArgument("R has shape " + ShapeToString(Rt.shape()) + ", expected " + ShapeToString({D, G * H, H}));

    // Working copies: X as [S, B, I].
    std::vector<W> x = ToWork<T, W>(X);
    if (layout_) {
      std::vector<W> xt(x.size());
      for (int64_t b = 0; b < B; ++b)
        for (int64_t s = 0; s < S; ++s)
          std::copy_n(&x[static_cast<size_t>((b * S + s) * I)], I, &xt[static_cast<size_t>((s * B + b) * I)]);
      x.swap(xt);
    }
    const std::vector<W> w = ToWork<T, W>(Wt), r = ToWork<T, W>(Rt);
    std::vector<W> bias(static_cast<size_t>(D * 2 * G * H), W(0));
    if (ctx.has_input(3)) {
      const Tensor& Bt = ctx.input_tensor(3);
      if (Bt.shape() != Shape{D, 2 * G * H})
        return InvalidArgument("B has shape " + ShapeToString(Bt.shape()) + ", expected " + ShapeToString({D, 2 * G * H}));
      bias = ToWork<T, W>(Bt);
    }
    std::vector<int64_t> lens(static_cast<size_t>(B), S);
    if (ctx.has_input(4) && ctx.input(4).is_tensor()) {
      ASSIGN_OR_RETURN(lens, ReadInt64s(ctx.input_tensor(4)));
      if (static_cast<int64_t>(lens.size()) != B) return InvalidArgument("sequence_lens must have batch_size entries");
      for (int64_t l : lens)
        if (l < 0 || l > S) return InvalidArgument("sequence_lens value " + std::to_string(l) + " is out of range");
    }
    // States as [D, B, H].
    auto read_state = [&](int idx, std::vector<W>& out) -> Status {
      out.assign(static_cast<size_t>(D * B * H), W(0));
      if (!ctx.has_input(idx)) return Status::Ok();
      const Tensor& t = ctx.input_tensor(idx);
      const Shape want = layout_ ? Shape{B, D, H} : Shape{D, B, H};
      if (t.shape() != want)
        return InvalidArgument("initial state has shape " + ShapeToString(t.shape()) + ", expected " + ShapeToString(want));
      std::vector<W> v = ToWork<T, W>(t);
      if (!layout_) { out = std::move(v); return Status::Ok(); }
      for (int64_t b = 0; b < B; ++b)
        for (int64_t d = 0; d < D; ++d)
          std::copy_n(&v[static_cast<size_t>((b * D + d) * H)], H, &out[static_cast<size_t>((d * B + b) * H)]);
      return Status::Ok();
    };
    std::vector<W> h0, c0;
    RETURN_IF_ERROR(read_state(5, h0));
    if (kind_ == CellKind::kLSTM) RETURN_IF_ERROR(read_state(6, c0));
    std::vector<W> peep(static_cast<size_t>(D * 3 * H), W(0));
    bool has_peep = false;
    if (kind_ == CellKind::kLSTM && ctx.has_input(7)) {
      const Tensor& P = ctx.input_tensor(7);
      if (P.shape() != Shape{D, 3 * H})
        return InvalidArgument("P has shape " + ShapeToString(P.shape()) + ", expected " + ShapeToString({D, 3 * H}));
      peep = ToWork<T, W>(P);
      has_peep = true;
    }

    std::vector<W> y(static_cast<size_t>(S * D * B * H), W(0));  // [S, D, B, H]
    std::vector<W> yh = h0, yc = c0;                              // [D, B, H]
    const int per_dir = kind_ == CellKind::kRNN ? 1 : kind_ == CellKind::kGRU ? 2 : 3;
    const int64_t GH = G * H;
    std::vector<W> xw(static_cast<size_t>(S * B * GH));
    std::vector<W> gates(static_cast<size_t>(B * GH)), tmp(static_cast<size_t>(B * H)), hr(static_cast<size_t>(B * H));
    std::vector<int64_t> active;  // batch rows still running at this step
    active.reserve(static_cast<size_t>(B));

    for (int64_t d = 0; d < D; ++d) {
      const bool rev = reverse_only_ || d == 1;
      const std::vector<W> wt = Transposed(w.data() + d * GH * I, GH, I);  // [I, GH]
      const std::vector<W> rt = Transposed(r.data() + d * GH * H, GH, H);  // [H, GH]
      const W* wb = bias.data() + d * 2 * GH;
      const W* rb = wb + GH;
      const W* pd = peep.data() + d * 3 * H;
      const Activation* act = &acts_[static_cast<size_t>(d * per_dir)];
      // xw = X W^T + Wb (+ Rb where it is purely additive)
      for (int64_t m = 0; m < S * B; ++m) {
        W* row = &xw[static_cast<size_t>(m * GH)];
        for (int64_t n = 0; n < GH; ++n) {
          const bool rb_separate = kind_ == CellKind::kGRU && linear_before_reset_ && n >= 2 * H;
          row[n] = wb[n] + (rb_separate ? W(0) : rb[n]);
        }
      }
      if (S * B > 0 && I > 0) GemmNN(x.data(), I, wt.data(), GH, xw.data(), GH, S * B, GH, I);

      W* hs = yh.data() + d * B * H;  // [B, H]
      W* cs = kind_ == CellKind::kLSTM ? yc.data() + d * B * H : nullptr;
      for (int64_t s = 0; s < S; ++s) {
        active.clear();
        for (int64_t b = 0; b < B; ++b)
          if (s < lens[static_cast<size_t>(b)]) active.push_back(b);
        if (active.empty()) break;
        auto time_of = [&](int64_t b) { return rev ? lens[static_cast<size_t>(b)] - 1 - s : s; };
        for (int64_t b : active)
          std::copy_n(&xw[static_cast<size_t>((time_of(b) * B + b) * GH)], GH, &gates[static_cast<size_t>(b * GH)]);
        // Recurrent projection for all rows at once (inactive rows are computed but ignored).
        if (kind_ == CellKind::kGRU) {
          GemmNN(hs, H, rt.data(), GH, gates.data(), GH, B, 2 * H, H);
        } else {
          GemmNN(hs, H, rt.data(), GH, gates.data(), GH, B, GH, H);
        }
        if (kind_ == CellKind::kGRU) {
          for (int64_t b : active) {
            W* zg = &gates[static_cast<size_t>(b * GH)];
            ClipValues(zg, 2 * H, clip_);
            Apply(act[0], zg, 2 * H);
          }
          if (linear_before_reset_) {
            for (int64_t b = 0; b < B; ++b) std::copy_n(rb + 2 * H, H, &tmp[static_cast<size_t>(b * H)]);
            GemmNN(hs, H, rt.data() + 2 * H, GH, tmp.data(), H, B, H, H);
            for (int64_t b : active) {
              W* g = &gates[static_cast<size_t>(b * GH)];
              const W* t = &tmp[static_cast<size_t>(b * H)];
              for (int64_t j = 0; j < H; ++j) g[2 * H + j] += g[H + j] * t[j];
            }
          } else {
            for (int64_t b = 0; b < B; ++b) {
              const W* g = &gates[static_cast<size_t>(b * GH)];
              const W* h = hs + b * H;
              W* o = &hr[static_cast<size_t>(b * H)];
              for (int64_t j = 0; j < H; ++j) o[j] = g[H + j] * h[j];
            }
            GemmNN(hr.data(), H, rt.data() + 2 * H, GH, gates.data() + 2 * H, GH, B, H, H);
          }
        }
        for (int64_t b : active) {
          const int64_t t = time_of(b);
          W* g = &gates[static_cast<size_t>(b * GH)];
          W* h = hs + b * H;
          if (kind_ == CellKind::kRNN) {
            ClipValues(g, H, clip_);
            Apply(act[0], g, H);
            std::copy_n(g, H, h);
          } else if (kind_ == CellKind::kGRU) {
            W* zg = g;
            W* hg = g + 2 * H;
            ClipValues(hg, H, clip_);
            Apply(act[1], hg, H);
            for (int64_t j = 0; j < H; ++j) h[j] = (W(1) - zg[j]) * hg[j] + zg[j] * h[j];
          } else {
            W* c = cs + b * H;
            W* ig = g;
            W* og = g + H;
            W* fg = g + 2 * H;
            W* cg = g + 3 * H;
            if (has_peep) {
              for (int64_t j = 0; j < H; ++j) {
                ig[j] += pd[j] * c[j];
                fg[j] += pd[2 * H + j] * c[j];
              }
            }
            ClipValues(ig, H, clip_);
            Apply(act[0], ig, H);
            if (input_forget_) {
              for (int64_t j = 0; j < H; ++j) fg[j] = W(1) - ig[j];
            } else {
              ClipValues(fg, H, clip_);
              Apply(act[0], fg, H);
            }
            ClipValues(cg, H, clip_);
            Apply(act[1], cg, H);
            for (int64_t j = 0; j < H; ++j) c[j] = fg[j] * c[j] + ig[j] * cg[j];
            if (has_peep)
              for (int64_t j = 0; j < H; ++j) og[j] += pd[H + j] * c[j];
            ClipValues(og, H, clip_);
            Apply(act[0], og, H);
            W* tc = &tmp[static_cast<size_t>(b * H)];
            std::copy_n(c, H, tc);
            Apply(act[2], tc, H);
            for (int64_t j = 0; j < H; ++j) h[j] = og[j] * tc[j];
          }
          std::copy_n(h, H, &y[static_cast<size_t>(((t * D + d) * B + b) * H)]);
        }
      }
    }

    // Outputs.
    auto to_t = [](W v) { return static_cast<T>(static_cast<ComputeType<T>>(v)); };
    if (ctx.output_requested(0)) {
      const Shape ys = layout_ ? Shape{B, S, D, H} : Shape{S, D, B, H};
      ASSIGN_OR_RETURN(Tensor* out, ctx.AllocateOutput(0, DTypeOf<T>::value, ys));
      T* o = out->data<T>();
      for (int64_t s = 0; s < S; ++s)
        for (int64_t d = 0; d < D; ++d)
          for (int64_t b = 0; b < B; ++b) {
            const W* src = &y[static_cast<size_t>(((s * D + d) * B + b) * H)];
            T* dst = layout_ ? o + ((b * S + s) * D + d) * H : o + ((s * D + d) * B + b) * H;
            for (int64_t j = 0; j < H; ++j) dst[j] = to_t(src[j]);
          }
    }
    auto write_state = [&](int idx, const std::vector<W>& st) -> Status {
      if (!ctx.output_requested(idx)) return Status::Ok();
      const Shape sh = layout_ ? Shape{B, D, H} : Shape{D, B, H};
      ASSIGN_OR_RETURN(Tensor* out, ctx.AllocateOutput(idx, DTypeOf<T>::value, sh));
      T* o = out->data<T>();
      for (int64_t d = 0; d < D; ++d)
        for (int64_t b = 0; b < B; ++b) {
          const W* src = &st[static_cast<size_t>((d * B + b) * H)];
          T* dst = layout_ ? o + (b * D + d) * H : o + (d * B + b) * H;
          for (int64_t j = 0; j < H; ++j) dst[j] = to_t(src[j]);
        }
      return Status::Ok();
    };
    RETURN_IF_ERROR(write_state(1, yh));
    if (kind_ == CellKind::kLSTM) RETURN_IF_ERROR(write_state(2, yc));
    return Status::Ok();
  }

  CellKind kind_;
  int gates_ = 1;
  int64_t dirs_ = 1;
  bool reverse_only_ = false;
  int64_t hidden_ = -1;
  float clip_ = -1;
  int64_t layout_ = 0;
  bool linear_before_reset_ = false;
  bool input_forget_ = false;
  std::vector<Activation> acts_;
};

template <CellKind K>
Result<std::unique_ptr<OpKernel>> MakeRnn(const KernelInfo& info) {
  auto k = std::make_unique<RnnKernel>(K);
  RETURN_IF_ERROR(k->Init(info));
  return std::unique_ptr<OpKernel>(std::move(k));
}

const std::vector<DType> kRnnTypes = {DType::kFloat, DType::kDouble, DType::kFloat16};
const KernelRegistrar kRNN{{.op_type = "RNN", .since = 1, .until = 18, .dtypes = kRnnTypes, .factory = MakeRnn<CellKind::kRNN>}};
const KernelRegistrar kGRU{{.op_type = "GRU", .since = 1, .until = 18, .dtypes = kRnnTypes, .factory = MakeRnn<CellKind::kGRU>}};
const KernelRegistrar kLSTM{{.op_type = "LSTM", .since = 1, .until = 18, .dtypes = kRnnTypes, .factory = MakeRnn<CellKind::kLSTM>}};

}  // namespace
}  // namespace strata::cpu
