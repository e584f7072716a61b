// Signal processing (opset 17): DFT, STFT, HannWindow, HammingWindow, BlackmanWindow, MelWeightMatrix.
// Transforms run in double: radix-2 FFT for power-of-two lengths, Bluestein's algorithm otherwise.
#include <cmath>
#include <complex>
#include <string>
#include <vector>

#include "kernels/cpu/common.h"

namespace strata::cpu {
namespace {

using cd = std::complex<double>;
using RealTypes = TypeList<float, double, Float16, BFloat16>;
constexpr double kPi = 3.14159265358979323846;

bool IsPow2(int64_t n) { return n > 0 && (n & (n - 1)) == 0; }

// In-place iterative radix-2 FFT of a fixed power-of-two size (forward: exp(-i...)).
class Radix2 {
 public:
  Radix2() = default;
  explicit Radix2(int64_t n) : n_(n), tw_(static_cast<size_t>(n / 2)) {
    for (int64_t k = 0; k < n / 2; ++k) {
      const double ang = -2 * kPi * static_cast<double>(k) / static_cast<double>(n);
      tw_[static_cast<size_t>(k)] = cd(std::cos(ang), std::sin(ang));
    }
  }
  void Run(cd* a, bool inverse) const {
    const int64_t n = n_;
    for (int64_t i = 1, j = 0; i < n; ++i) {
      int64_t bit = n >> 1;
      for (; j & bit; bit >>= 1) j ^= bit;
      j ^= bit;
      if (i < j) std::swap(a[i], a[j]);
    }
    for (int64_t len = 2; len <= n; len <<= 1) {
      const int64_t half = len >> 1, stride = n / len;
      for (int64_t i = 0; i < n; i += len) {
        for (int64_t k = 0; k < half; ++k) {
          const cd w = inverse ? std::conj(tw_[static_cast<size_t>(k * stride)]) : tw_[static_cast<size_t>(k * stride)];
          const cd u = a[i + k], v = a[i + k + half] * w;
          a[i + k] = u + v;
          a[i + k + half] = u - v;
        }
      }
    }
  }

 private:
  int64_t n_ = 0;
  std::vector<cd> tw_;
};

// A DFT of one length, reusable across many lines.
class DftPlan {
 public:
  explicit DftPlan(int64_t n) : n_(n) {
    if (IsPow2(n)) { fft_ = Radix2(n); return; }
    m_ = 1;
    while (m_ < 2 * n - 1) m_ <<= 1;
    fft_ = Radix2(m_);
    chirp_.resize(static_cast<size_t>(n));
    for (int64_t k = 0; k < n; ++k) {
      const int64_t k2 = (k * k) % (2 * n);
      const double ang = -kPi * static_cast<double>(k2) / static_cast<double>(n);
      chirp_[static_cast<size_t>(k)] = cd(std::cos(ang), std::sin(ang));
    }
    fb_.assign(static_cast<size_t>(m_), cd(0, 0));
    fb_[0] = std::conj(chirp_[0]);
    for (int64_t k = 1; k < n; ++k) fb_[static_cast<size_t>(k)] = fb_[static_cast<size_t>(m_ - k)] = std::conj(chirp_[static_cast<size_t>(k)]);
    fft_.Run(fb_.data(), false);
    work_.resize(static_cast<size_t>(m_));
  }

  // Forward (or unscaled inverse) DFT of x[0..n) in place.
  void Run(cd* x, bool inverse) {
    if (inverse)
      for (int64_t i = 0; i < n_; ++i) x[i] = std::conj(x[i]);
    if (m_ == 0) {
      fft_.Run(x, false);
    } else {
      std::fill(work_.begin(), work_.end(), cd(0, 0));
      for (int64_t k = 0; k < n_; ++k) work_[static_cast<size_t>(k)] = x[k] * chirp_[static_cast<size_t>(k)];
      fft_.Run(work_.data(), false);
      for (int64_t i = 0; i < m_; ++i) work_[static_cast<size_t>(i)] *= fb_[static_cast<size_t>(i)];
      fft_.Run(work_.data(), true);
      const double s = 1.0 / static_cast<double>(m_);
      for (int64_t k = 0; k < n_; ++k) x[k] = work_[static_cast<size_t>(k)] * s * chirp_[static_cast<size_t>(k)];
    }
    if (inverse)
      for (int64_t i = 0; i < n_; ++i) x[i] = std::conj(x[i]);
  }

 private:
  int64_t n_;
  int64_t m_ = 0;  // Bluestein size, 0 for radix-2
  Radix2 fft_;
  std::vector<cd> chirp_, fb_, work_;
};

Result<std::vector<double>> ToDoubles(const Tensor& t) {
  std::vector<double> v(static_cast<size_t>(t.numel()));
  RETURN_IF_ERROR(Dispatch(RealTypes{}, t.dtype(), [&](auto* tag) {
    using T = std::remove_pointer_t<decltype(tag)>;
    const T* p = t.data<T>();
    for (size_t i = 0; i < v.size(); ++i) v[i] = static_cast<double>(static_cast<ComputeType<T>>(p[i]));
    return Status::Ok();
  }));
  return v;
}

Status FromDoubles(const std::vector<double>& v, Tensor* out) {
  return Dispatch(NumericTypes{}, out->dtype(), [&](auto* tag) {
    using T = std::remove_pointer_t<decltype(tag)>;
    T* p = out->data<T>();
    for (size_t i = 0; i < v.size(); ++i) p[i] = CastValue<T, double>(v[i]);
    return Status::Ok();
  });
}

Result<int64_t> ScalarInt(const Tensor& t, const char* what) {
  if (t.numel() != 1 || (t.dtype() != DType::kInt32 && t.dtype() != DType::kInt64))
    return InvalidArgument(std::string(what) + " must be a scalar int32/int64 tensor");
  return t.GetAsInt64(0);
}

// ---------------------------------------------------------------------------------------------
class DftKernel final : public OpKernel {
 public:
  Status Init(const KernelInfo& info) {
    onesided_ = info.attr_int("onesided", 0) != 0;
    inverse_ = info.attr_int("inverse", 0) != 0;
    axis_ = info.attr_int("axis", 1);
    if (onesided_ && inverse_) return info.Error("onesided and inverse cannot both be set");
    return CheckInputDType(info, 0, DTypesOf(RealTypes{}));
  }
  Status Compute(KernelContext& ctx) override {
    if (!ctx.has_input(0) || !ctx.input(0).is_tensor()) return InvalidArgument("DFT: input must be a tensor");
    const Tensor& x = ctx.input_tensor(0);
    const int r = x.rank();
    if (r < 3) return InvalidArgument("DFT: input must have rank >= 3 ([batch, signal..., 1|2])");
    const int64_t c = x.dim(r - 1);
    if (c != 1 && c != 2) return InvalidArgument("DFT: the last dimension must be 1 (real) or 2 (complex)");
    if (axis_ < -r || axis_ >= r) return InvalidArgument("DFT: axis out of range");
    const int axis = static_cast<int>(axis_ < 0 ? axis_ + r : axis_);
    if (axis == r - 1) return InvalidArgument("DFT: axis cannot be the last (real/imaginary) dimension");
    const int64_t n_in = x.dim(axis);
    int64_t n = n_in;
    if (ctx.has_input(1) && ctx.input(1).is_tensor()) {
      ASSIGN_OR_RETURN(n, ScalarInt(ctx.input_tensor(1), "DFT dft_length"));
      if (n <= 0) return InvalidArgument("DFT: dft_length must be positive");
    }
    if (n == 0) return InvalidArgument("DFT: the signal is empty");
    const int64_t n_out = onesided_ ? n / 2 + 1 : n;
    const auto ua = static_cast<size_t>(axis);
    int64_t outer = 1, inner = 1;
    for (size_t i = 0; i < ua; ++i) outer *= x.shape()[i];
    for (size_t i = ua + 1; i + 1 < x.shape().size(); ++i) inner *= x.shape()[i];
    Shape os = x.shape();
    os[ua] = n_out;
    os.back() = 2;
    ASSIGN_OR_RETURN(std::vector<double> in, ToDoubles(x));
    std::vector<double> out(static_cast<size_t>(NumElements(os)));
    DftPlan plan(n);
    std::vector<cd> line(static_cast<size_t>(n));
    const int64_t copy = std::min(n, n_in);
    const double scale = inverse_ ? 1.0 / static_cast<double>(n) : 1.0;
    for (int64_t o = 0; o < outer; ++o) {
      for (int64_t i = 0; i < inner; ++i) {
        std::fill(line.begin(), line.end(), cd(0, 0));
        for (int64_t k = 0; k < copy; ++k) {
          const size_t off = static_cast<size_t>(((o * n_in + k) * inner + i) * c);
          line[static_cast<size_t>(k)] = cd(in[off], c == 2 ? in[off + 1] : 0.0);
        }
        plan.Run(line.data(), inverse_);
        for (int64_t k = 0; k < n_out; ++k) {
          const size_t off = static_cast<size_t>(((o * n_out + k) * inner + i) * 2);
          out[off] = line[static_cast<size_t>(k)].real() * scale;
          out[off + 1] = line[static_cast<size_t>(k)].imag() * scale;
        }
      }
    }
    ASSIGN_OR_RETURN(Tensor* t, ctx.AllocateOutput(0, x.dtype(), os));
    return FromDoubles(out, t);
  }

 private:
  bool onesided_ = false, inverse_ = false;
  int64_t axis_ = 1;
};

// ---------------------------------------------------------------------------------------------
class StftKernel final : public OpKernel {
 public:
  Status Init(const KernelInfo& info) {
    onesided_ = info.attr_int("onesided", 1) != 0;
    return CheckInputDType(info, 0, DTypesOf(RealTypes{}));
  }
  Status Compute(KernelContext& ctx) override {
    if (!ctx.has_input(0) || !ctx.input(0).is_tensor()) return InvalidArgument("STFT: signal must be a tensor");
    if (!ctx.has_input(1) || !ctx.input(1).is_tensor()) return InvalidArgument("STFT: frame_step is required");
    const Tensor& x = ctx.input_tensor(0);
    if (x.rank() != 3 || (x.dim(2) != 1 && x.dim(2) != 2))
      return InvalidArgument("STFT: signal must be [batch, signal_length, 1|2], got " + ShapeToString(x.shape()));
    const int64_t B = x.dim(0), L = x.dim(1), c = x.dim(2);
    ASSIGN_OR_RETURN(int64_t step, ScalarInt(ctx.input_tensor(1), "STFT frame_step"));
    if (step <= 0) return InvalidArgument("STFT: frame_step must be positive");
    std::vector<double> window;
    int64_t flen = -1;
    if (ctx.has_input(2) && ctx.input(2).is_tensor()) {
      const Tensor& w = ctx.input_tensor(2);
      if (w.rank() != 1) return InvalidArgument("STFT: window must be 1-D");
      ASSIGN_OR_RETURN(window, ToDoubles(w));
      flen = w.dim(0);
    }
    if (ctx.has_input(3) && ctx.input(3).is_tensor()) {
      ASSIGN_OR_RETURN(int64_t fl, ScalarInt(ctx.input_tensor(3), "STFT frame_length"));
      if (flen >= 0 && fl != flen)
        return InvalidArgument("STFT: frame_length " + std::to_string(fl) + " differs from the window length " +
                               std::to_string(flen));
      flen = fl;
    }
    if (flen < 0) return InvalidArgument("STFT: either window or frame_length must be given");
    if (flen == 0 || flen > L) return InvalidArgument("STFT: frame length must be in [1, signal_length]");
    const bool onesided = onesided_ && c == 1;
    const int64_t bins = onesided ? flen / 2 + 1 : flen;
    const int64_t frames = (L - flen) / step + 1;
    ASSIGN_OR_RETURN(std::vector<double> in, ToDoubles(x));
    std::vector<double> out(static_cast<size_t>(B * frames * bins * 2));
    DftPlan plan(flen);
    std::vector<cd> line(static_cast<size_t>(flen));
    for (int64_t b = 0; b < B; ++b) {
      for (int64_t f = 0; f < frames; ++f) {
        const int64_t start = f * step;
        for (int64_t k = 0; k < flen; ++k) {
          const size_t off = static_cast<size_t>((b * L + start + k) * c);
          const double wv = window.empty() ? 1.0 : window[static_cast<size_t>(k)];
          line[static_cast<size_t>(k)] = cd(in[off] * wv, c == 2 ? in[off + 1] * wv : 0.0);
        }
        plan.Run(line.data(), false);
        for (int64_t k = 0; k < bins; ++k) {
          const size_t off = static_cast<size_t>(((b * frames + f) * bins + k) * 2);
          out[off] = line[static_cast<size_t>(k)].real();
          out[off + 1] = line[static_cast<size_t>(k)].imag();
        }
      }
    }
    ASSIGN_OR_RETURN(Tensor* t, ctx.AllocateOutput(0, x.dtype(), {B, frames, bins, 2}));
    return FromDoubles(out, t);
  }

 private:
  bool onesided_ = true;
};

// ---------------------------------------------------------------------------------------------
enum class WindowKind { kHann, kHamming, kBlackman };

DType CheckOutputDType(int64_t v) {
  const auto d = static_cast<DType>(v);
  for (DType t : DTypesOf(NumericTypes{}))
    if (t == d) return d;
  return DType::kUndefined;
}

class WindowKernel final : public OpKernel {
 public:
  explicit WindowKernel(WindowKind k) : kind_(k) {}
  Status Init(const KernelInfo& info) {
    periodic_ = info.attr_int("periodic", 1) != 0;
    out_ = CheckOutputDType(info.attr_int("output_datatype", 1));
    if (out_ == DType::kUndefined) return info.Error("unsupported output_datatype");
    return Status::Ok();
  }
  Status Compute(KernelContext& ctx) override {
    if (!ctx.has_input(0) || !ctx.input(0).is_tensor()) return InvalidArgument("size must be a tensor");
    ASSIGN_OR_RETURN(int64_t n, ScalarInt(ctx.input_tensor(0), "size"));
    if (n < 0) return InvalidArgument("window size must be non-negative");
    std::vector<double> v(static_cast<size_t>(n));
    const double den = periodic_ ? static_cast<double>(n) : static_cast<double>(n - 1);
    for (int64_t i = 0; i < n; ++i) {
      const double a = den > 0 ? 2 * kPi * static_cast<double>(i) / den : 0.0;
      double w;
      switch (kind_) {
        case WindowKind::kHann: w = 0.5 - 0.5 * std::cos(a); break;
        case WindowKind::kHamming: w = 25.0 / 46.0 - (21.0 / 46.0) * std::cos(a); break;
        default: w = 0.42 - 0.5 * std::cos(a) + 0.08 * std::cos(2 * a); break;
      }
      v[static_cast<size_t>(i)] = w;
    }
    ASSIGN_OR_RETURN(Tensor* t, ctx.AllocateOutput(0, out_, {n}));
    return FromDoubles(v, t);
  }

 private:
  WindowKind kind_;
  bool periodic_ = true;
  DType out_ = DType::kFloat;
};

template <WindowKind K>
Result<std::unique_ptr<OpKernel>> MakeWindow(const KernelInfo& info) {
  auto k = std::make_unique<WindowKernel>(K);
  RETURN_IF_ERROR(k->Init(info));
  return std::unique_ptr<OpKernel>(std::move(k));
}

// ---------------------------------------------------------------------------------------------
class MelWeightMatrixKernel final : public OpKernel {
 public:
  Status Init(const KernelInfo& info) {
    out_ = CheckOutputDType(info.attr_int("output_datatype", 1));
    if (out_ == DType::kUndefined) return info.Error("unsupported output_datatype");
    return Status::Ok();
  }
  Status Compute(KernelContext& ctx) override {
    for (int i = 0; i < 5; ++i)
      if (!ctx.has_input(i) || !ctx.input(i).is_tensor() || ctx.input_tensor(i).numel() != 1)
        return InvalidArgument("MelWeightMatrix: input " + std::to_string(i) + " must be a scalar tensor");
    ASSIGN_OR_RETURN(int64_t mel_bins, ScalarInt(ctx.input_tensor(0), "num_mel_bins"));
    ASSIGN_OR_RETURN(int64_t dft_len, ScalarInt(ctx.input_tensor(1), "dft_length"));
    ASSIGN_OR_RETURN(int64_t rate, ScalarInt(ctx.input_tensor(2), "sample_rate"));
    if (!IsFloatingPoint(ctx.input_tensor(3).dtype()) || !IsFloatingPoint(ctx.input_tensor(4).dtype()))
      return InvalidArgument("MelWeightMatrix: the edge frequencies must be floating-point");
    const double lo = ctx.input_tensor(3).GetAsDouble(0), hi = ctx.input_tensor(4).GetAsDouble(0);
    if (mel_bins <= 0 || dft_len <= 0 || rate <= 0) return InvalidArgument("MelWeightMatrix: sizes must be positive");
    if (!(lo >= 0 && hi > lo)) return InvalidArgument("MelWeightMatrix: need 0 <= lower_edge_hertz < upper_edge_hertz");
    const int64_t spec_bins = dft_len / 2 + 1;
    auto to_mel = [](double hz) { return 2595.0 * std::log10(1.0 + hz / 700.0); };
    const double lm = to_mel(lo), hm = to_mel(hi);
    const double step = (hm - lm) / static_cast<double>(mel_bins + 2);
    std::vector<int64_t> fb(static_cast<size_t>(mel_bins + 2));
    for (int64_t i = 0; i < mel_bins + 2; ++i) {
      const double mel = static_cast<double>(i) * step + lm;
      const double hz = 700.0 * (std::pow(10.0, mel / 2595.0) - 1.0);
      fb[static_cast<size_t>(i)] = static_cast<int64_t>(std::floor(static_cast<double>(dft_len + 1) * hz / static_cast<double>(rate)));
    }
    std::vector<double> w(static_cast<size_t>(spec_bins * mel_bins), 0.0);
    auto set = [&](int64_t row, int64_t col, double v) -> Status {
      if (row < 0 || row >= spec_bins) return InvalidArgument("MelWeightMatrix: upper_edge_hertz exceeds the Nyquist range");
      w[static_cast<size_t>(row * mel_bins + col)] = v;
      return Status::Ok();
    };
    for (int64_t i = 0; i < mel_bins; ++i) {
      const int64_t l = fb[static_cast<size_t>(i)], c = fb[static_cast<size_t>(i + 1)], h = fb[static_cast<size_t>(i + 2)];
      if (c == l) {
        RETURN_IF_ERROR(set(c, i, 1.0));
      } else {
        for (int64_t j = l; j <= c; ++j) RETURN_IF_ERROR(set(j, i, static_cast<double>(j - l) / static_cast<double>(c - l)));
      }
      if (h > c)
        for (int64_t j = c; j < h; ++j) RETURN_IF_ERROR(set(j, i, static_cast<double>(h - j) / static_cast<double>(h - c)));
    }
    ASSIGN_OR_RETURN(Tensor* t, ctx.AllocateOutput(0, out_, {spec_bins, mel_bins}));
    return FromDoubles(w, t);
  }

 private:
  DType out_ = DType::kFloat;
};

const KernelRegistrar kDft{{.op_type = "DFT", .since = 17, .until = 18, .factory = MakeKernel<DftKernel>}};
const KernelRegistrar kStft{{.op_type = "STFT", .since = 17, .until = 18, .factory = MakeKernel<StftKernel>}};
const KernelRegistrar kHann{{.op_type = "HannWindow", .since = 17, .until = 18, .factory = MakeWindow<WindowKind::kHann>}};
const KernelRegistrar kHamming{{.op_type = "HammingWindow", .since = 17, .until = 18, .factory = MakeWindow<WindowKind::kHamming>}};
const KernelRegistrar kBlackman{{.op_type = "BlackmanWindow", .since = 17, .until = 18, .factory = MakeWindow<WindowKind::kBlackman>}};
const KernelRegistrar kMel{{.op_type = "MelWeightMatrix", .since = 17, .until = 18, .factory = MakeKernel<MelWeightMatrixKernel>}};

}  // namespace
}  // namespace strata::cpu
