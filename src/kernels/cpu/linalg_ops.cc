// Einsum (opset 12+) and Det (opset 11+).
//
// Einsum: the equation is parsed once per distinct input-rank signature into labels; ellipsis dims
// become extra labels (numpy-style right-aligned broadcasting), repeated labels in one term read a
// diagonal (their strides add up), and size-1 dims broadcast. Two-operand equations are packed into
// a batched [batch, M, K] x [batch, K, N] product; everything else uses a strided index walk.
#include <oneapi/dnnl/dnnl.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <string>
#include <vector>

#include "kernels/cpu/common.h"

namespace strata::cpu {
namespace {

constexpr int kLetters = 52;

int LabelOf(char c) {
  if (c >= 'a' && c <= 'z') return c - 'a';
  if (c >= 'A' && c <= 'Z') return 26 + (c - 'A');
  return -1;
}

// A term: label ids in order; -1 marks the ellipsis position.
struct Term {
  std::vector<int> labels;
  bool has_ellipsis = false;
  int num_letters() const { return static_cast<int>(labels.size()) - (has_ellipsis ? 1 : 0); }
};

Result<Term> ParseTerm(const std::string& s) {
  Term t;
  for (size_t i = 0; i < s.size();) {
    if (s.compare(i, 3, "...") == 0) {
      if (t.has_ellipsis) return InvalidArgument("einsum term '" + s + "' has more than one ellipsis");
      t.has_ellipsis = true;
      t.labels.push_back(-1);
      i += 3;
      continue;
    }
    const int l = LabelOf(s[i]);
    if (l < 0) return InvalidArgument("einsum term '" + s + "' has invalid character '" + std::string(1, s[i]) + "'");
    t.labels.push_back(l);
    ++i;
  }
  return t;
}

struct Equation {
  std::vector<Term> inputs;
  bool explicit_output = false;
  Term output;
};

Result<Equation> ParseEquation(const std::string& raw) {
  std::string eq;
  for (char c : raw)
    if (c != ' ') eq += c;
  Equation e;
  std::string lhs = eq;
  const size_t arrow = eq.find("->");
  if (arrow != std::string::npos) {
    lhs = eq.substr(0, arrow);
    e.explicit_output = true;
    ASSIGN_OR_RETURN(e.output, ParseTerm(eq.substr(arrow + 2)));
    std::array<int, kLetters> seen{};
    for (int l : e.output.labels)
      if (l >= 0 && seen[static_cast<size_t>(l)]++)
        return InvalidArgument("einsum output '" + eq.substr(arrow + 2) + "' repeats a label");
  }
  size_t start = 0;
  while (true) {
    const size_t comma = lhs.find(',', start);
    ASSIGN_OR_RETURN(Term t, ParseTerm(lhs.substr(start, comma == std::string::npos ? std::string::npos : comma - start)));
    e.inputs.push_back(std::move(t));
    if (comma == std::string::npos) break;
    start = comma + 1;
  }
  return e;
}

// The equation bound to concrete input shapes: every label (letters, then ellipsis dims as
// ids kLetters + k) with its size, the output label order, per-input strides per label.
struct Bound {
  std::vector<int64_t> size;                 // per label id
  std::vector<int> out_labels;               // output order
  std::vector<int> sum_labels;               // contracted labels
  std::vector<std::vector<int64_t>> stride;  // [input][label id]
  std::vector<std::vector<char>> present;    // [input][label id]
  Shape out_shape;
};

Result<Bound> Bind(const Equation& e, const std::vector<const Tensor*>& ins) {
  if (e.inputs.size() != ins.size())
    return InvalidArgument("einsum equation has " + std::to_string(e.inputs.size()) + " operands but " +
                           std::to_string(ins.size()) + " inputs were given");
  int E = 0;
  std::vector<int> ell(ins.size(), 0);
  for (size_t i = 0; i < ins.size(); ++i) {
    const Term& t = e.inputs[i];
    const int extra = ins[i]->rank() - t.num_letters();
    if (extra < 0 || (!t.has_ellipsis && extra != 0))
      return InvalidArgument("einsum operand " + std::to_string(i) + " has rank " + std::to_string(ins[i]->rank()) +
                             ", which does not match its subscripts");
    ell[i] = extra;
    E = std::max(E, extra);
  }
  const int nl = kLetters + E;
  Bound b;
  b.size.assign(static_cast<size_t>(nl), 1);
  std::vector<char> used(static_cast<size_t>(nl), 0);
  std::vector<int> count(static_cast<size_t>(nl), 0);
  b.stride.assign(ins.size(), std::vector<int64_t>(static_cast<size_t>(nl), 0));
  b.present.assign(ins.size(), std::vector<char>(static_cast<size_t>(nl), 0));
  // First pass: sizes (size-1 dims broadcast).
  std::vector<std::vector<int>> dim_labels(ins.size());
  for (size_t i = 0; i < ins.size(); ++i) {
    for (int l : e.inputs[i].labels) {
      if (l >= 0) {
        dim_labels[i].push_back(l);
        ++count[static_cast<size_t>(l)];
      } else {
        for (int k = 0; k < ell[i]; ++k) dim_labels[i].push_back(kLetters + E - ell[i] + k);
      }
    }
    for (int d = 0; d < ins[i]->rank(); ++d) {
      const size_t l = static_cast<size_t>(dim_labels[i][static_cast<size_t>(d)]);
      const int64_t sz = ins[i]->dim(d);
      if (!used[l] || b.size[l] == 1) {
        b.size[l] = used[l] && sz == 1 ? b.size[l] : sz;
        used[l] = 1;
      } else if (sz != b.size[l] && sz != 1) {
        return InvalidArgument("einsum: dimension sizes " + std::to_string(sz) + " and " + std::to_string(b.size[l]) +
                               " disagree for one label");
      }
    }
  }
  for (size_t i = 0; i < ins.size(); ++i) {
    const std::vector<int64_t> cs = ContiguousStrides(ins[i]->shape());
    for (int d = 0; d < ins[i]->rank(); ++d) {
      const size_t l = static_cast<size_t>(dim_labels[i][static_cast<size_t>(d)]);
      b.present[i][l] = 1;
      if (ins[i]->dim(d) != 1) b.stride[i][l] += cs[static_cast<size_t>(d)];
    }
  }
  // Output labels.
  std::vector<char> in_out(static_cast<size_t>(nl), 0);
  if (e.explicit_output) {
    for (int l : e.output.labels) {
      if (l < 0) {
        for (int k = 0; k < E; ++k) b.out_labels.push_back(kLetters + k);
      } else {
        if (!used[static_cast<size_t>(l)])
          return InvalidArgument("einsum output label does not appear in any input");
        b.out_labels.push_back(l);
      }
    }
  } else {
    for (int k = 0; k < E; ++k) b.out_labels.push_back(kLetters + k);
    // ASCII order: uppercase (ids 26..51) before lowercase (0..25).
    for (int l = 26; l < kLetters; ++l)
      if (count[static_cast<size_t>(l)] == 1) b.out_labels.push_back(l);
    for (int l = 0; l < 26; ++l)
      if (count[static_cast<size_t>(l)] == 1) b.out_labels.push_back(l);
  }
  for (int l : b.out_labels) {
    in_out[static_cast<size_t>(l)] = 1;
    b.out_shape.push_back(b.size[static_cast<size_t>(l)]);
  }
  for (int l = 0; l < nl; ++l)
    if (used[static_cast<size_t>(l)] && !in_out[static_cast<size_t>(l)]) b.sum_labels.push_back(l);
  return b;
}

// Copies the strided view (sizes[i], strides[i]) of src into contiguous dst, converting to C.
template <typename T, typename C>
void PackStrided(const T* src, const std::vector<int64_t>& sizes, const std::vector<int64_t>& strides, C* dst) {
  const size_t n = sizes.size();
  int64_t total = 1;
  for (int64_t s : sizes) total *= s;
  if (total == 0) return;
  if (n == 0) {
    dst[0] = static_cast<C>(src[0]);
    return;
  }
  const int64_t L = sizes[n - 1], ls = strides[n - 1];
  std::vector<int64_t> idx(n, 0);
  int64_t off = 0;
  for (int64_t p = 0; p < total; p += L) {
    for (int64_t k = 0; k < L; ++k) dst[p + k] = static_cast<C>(src[off + k * ls]);
    for (size_t d = n - 1; d-- > 0;) {
      off += strides[d];
      if (++idx[d] < sizes[d]) break;
      off -= strides[d] * sizes[d];
      idx[d] = 0;
    }
  }
}

template <typename T>
Status EinsumGeneral(const Bound& b, const std::vector<const Tensor*>& ins, Tensor* out) {
  using C = ComputeType<T>;
  const size_t ni = ins.size();
  std::vector<int> loop = b.out_labels;
  loop.insert(loop.end(), b.sum_labels.begin(), b.sum_labels.end());
  std::vector<int64_t> sizes;
  for (int l : loop) sizes.push_back(b.size[static_cast<size_t>(l)]);
  int64_t out_n = NumElements(b.out_shape), red_n = 1;
  for (int l : b.sum_labels) red_n *= b.size[static_cast<size_t>(l)];
  T* od = out->data<T>();
  if (out_n == 0) return Status::Ok();
  if (red_n == 0) {
    for (int64_t i = 0; i < out_n; ++i) od[i] = T(static_cast<C>(0));
    return Status::Ok();
  }
  std::vector<const T*> data(ni);
  for (size_t i = 0; i < ni; ++i) data[i] = ins[i]->data<T>();
  const size_t nloop = loop.size();
  // Per loop-dimension strides for each input.
  std::vector<std::vector<int64_t>> st(ni, std::vector<int64_t>(nloop));
  for (size_t i = 0; i < ni; ++i)
    for (size_t d = 0; d < nloop; ++d) st[i][d] = b.stride[i][static_cast<size_t>(loop[d])];
  std::vector<int64_t> idx(nloop, 0), off(ni, 0);
  const int64_t inner = nloop ? sizes[nloop - 1] : 1;
  const bool inner_is_sum = !b.sum_labels.empty();
  std::vector<int64_t> ist(ni);
  for (size_t i = 0; i < ni; ++i) ist[i] = nloop ? st[i][nloop - 1] : 0;
  const int64_t total = out_n * red_n;
  int64_t o = 0;  // output element of the current position
  C acc = 0;
  int64_t red_pos = 0;
  for (int64_t p = 0; p < total; p += inner) {
    if (inner_is_sum) {
      C s = 0;
      for (int64_t k = 0; k < inner; ++k) {
        C prod = static_cast<C>(data[0][off[0] + k * ist[0]]);
        for (size_t i = 1; i < ni; ++i) prod *= static_cast<C>(data[i][off[i] + k * ist[i]]);
        s += prod;
      }
      acc += s;
      red_pos += inner;
      if (red_pos == red_n) {
        od[o++] = T(acc);
        acc = 0;
        red_pos = 0;
      }
    } else {
      for (int64_t k = 0; k < inner; ++k) {
        C prod = static_cast<C>(data[0][off[0] + k * ist[0]]);
        for (size_t i = 1; i < ni; ++i) prod *= static_cast<C>(data[i][off[i] + k * ist[i]]);
        od[o++] = T(prod);
      }
    }
    for (size_t d = nloop == 0 ? 0 : nloop - 1; d-- > 0;) {
      for (size_t i = 0; i < ni; ++i) off[i] += st[i][d];
      if (++idx[d] < sizes[d]) break;
      for (size_t i = 0; i < ni; ++i) off[i] -= st[i][d] * sizes[d];
      idx[d] = 0;
    }
  }
  return Status::Ok();
}

// Batched C[b] = A[b] (MxK) * B[b] (KxN), all contiguous.
template <typename C>
void BatchedGemm(const C* a, const C* bm, C* c, int64_t batch, int64_t M, int64_t N, int64_t K) {
  if constexpr (std::is_same_v<C, float>) {
    if (M * N * K >= 32 * 32 * 32) {
      for (int64_t b = 0; b < batch; ++b)
        dnnl_sgemm('N', 'N', M, N, K, 1.0f, a + b * M * K, K, bm + b * K * N, N, 0.0f, c + b * M * N, N);
      return;
    }
  }
  ParallelRows(batch * M, N * K, [&](int64_t bi_begin, int64_t bi_end) {
    for (int64_t bi = bi_begin; bi < bi_end; ++bi) {
      const int64_t b = bi / M;
      C* cr = c + bi * N;
      for (int64_t j = 0; j < N; ++j) cr[j] = 0;
      const C* ar = a + bi * K;
      const C* bb = bm + b * K * N;
      for (int64_t k = 0; k < K; ++k) {
        const C av = ar[k];
        const C* br = bb + k * N;
        for (int64_t j = 0; j < N; ++j) cr[j] += av * br[j];
      }
    }
  }, 1 << 18);
}

template <typename T>
Status EinsumPair(const Bound& bd, const Tensor& ta, const Tensor& tb, Tensor* out) {
  using C = ComputeType<T>;
  std::vector<int> bl, ml, nl, kl;
  for (int l : bd.out_labels) {
    const bool ia = bd.present[0][static_cast<size_t>(l)], ib = bd.present[1][static_cast<size_t>(l)];
    (ia && ib ? bl : ia ? ml : nl).push_back(l);
  }
  kl = bd.sum_labels;
  auto prod = [&](const std::vector<int>& ls) {
    int64_t p = 1;
    for (int l : ls) p *= bd.size[static_cast<size_t>(l)];
    return p;
  };
  const int64_t B = prod(bl), M = prod(ml), N = prod(nl), K = prod(kl);
  auto pack = [&](const Tensor& t, int which, const std::vector<std::vector<int>*>& order, std::vector<C>& buf) {
    std::vector<int64_t> sizes, strides;
    for (const auto* ls : order)
      for (int l : *ls) {
        sizes.push_back(bd.size[static_cast<size_t>(l)]);
        strides.push_back(bd.stride[static_cast<size_t>(which)][static_cast<size_t>(l)]);
      }
    buf.resize(static_cast<size_t>(NumElements(sizes)));
    PackStrided<T, C>(t.data<T>(), sizes, strides, buf.data());
  };
  std::vector<C> a, b, c(static_cast<size_t>(B * M * N));
  pack(ta, 0, {&bl, &ml, &kl}, a);
  pack(tb, 1, {&bl, &kl, &nl}, b);
  if (K == 0) std::fill(c.begin(), c.end(), C(0));
  else BatchedGemm<C>(a.data(), b.data(), c.data(), B, M, N, K);
  // Scatter c (ordered bl, ml, nl) into the output (ordered out_labels).
  std::vector<int64_t> ostride_by_label(bd.size.size(), 0);
  const std::vector<int64_t> os = ContiguousStrides(bd.out_shape);
  for (size_t i = 0; i < bd.out_labels.size(); ++i) ostride_by_label[static_cast<size_t>(bd.out_labels[i])] = os[i];
  // Gather from c into out order: view c as strided with c-strides per output label.
  std::vector<int> corder = bl;
  corder.insert(corder.end(), ml.begin(), ml.end());
  corder.insert(corder.end(), nl.begin(), nl.end());
  std::vector<int64_t> cstride_by_label(bd.size.size(), 0);
  int64_t s = 1;
  for (size_t i = corder.size(); i-- > 0;) {
    cstride_by_label[static_cast<size_t>(corder[i])] = s;
    s *= bd.size[static_cast<size_t>(corder[i])];
  }
  std::vector<int64_t> sizes, strides;
  for (int l : bd.out_labels) {
    sizes.push_back(bd.size[static_cast<size_t>(l)]);
    strides.push_back(cstride_by_label[static_cast<size_t>(l)]);
  }
  std::vector<C> tmp(static_cast<size_t>(NumElements(bd.out_shape)));
  PackStrided<C, C>(c.data(), sizes, strides, tmp.data());
  T* od = out->data<T>();
  for (size_t i = 0; i < tmp.size(); ++i) od[i] = T(tmp[i]);
  return Status::Ok();
}

class EinsumKernel final : public OpKernel {
 public:
  Status Init(const KernelInfo& info) {
    if (!info.has_attr("equation")) return info.Error("Einsum needs the equation attribute");
    auto eq = ParseEquation(info.attr_string("equation", ""));
    if (!eq.ok()) return info.Error(eq.status().message());
    eq_ = std::move(eq).value();
    if (static_cast<int>(eq_.inputs.size()) != info.num_inputs())
      return info.Error("equation has " + std::to_string(eq_.inputs.size()) + " operands but the node has " +
                        std::to_string(info.num_inputs()) + " inputs");
    return CheckInputDType(info, 0, DTypesOf(NumericTypes{}));
  }

  Status Compute(KernelContext& ctx) override {
    std::vector<const Tensor*> ins;
    for (int i = 0; i < ctx.num_inputs(); ++i) {
      CHECK_ARG(ctx.has_input(i), "Einsum inputs cannot be omitted");
      ins.push_back(&ctx.input_tensor(i));
      CHECK_ARG(ins.back()->dtype() == ins[0]->dtype(), "Einsum inputs must all have the same dtype");
    }
    CHECK_ARG(!ins.empty(), "Einsum needs at least one input");
    ASSIGN_OR_RETURN(Bound b, Bind(eq_, ins));
    ASSIGN_OR_RETURN(Tensor * y, ctx.AllocateOutput(0, ins[0]->dtype(), b.out_shape));
    return Dispatch(NumericTypes{}, ins[0]->dtype(), [&](auto* tag) -> Status {
      using T = std::remove_pointer_t<decltype(tag)>;
      if (ins.size() == 2 && NumElements(b.out_shape) > 0) return EinsumPair<T>(b, *ins[0], *ins[1], y);
      return EinsumGeneral<T>(b, ins, y);
    });
  }

 private:
  Equation eq_;
};

// ---------------------------------------------------------------------------------------------
// Det: determinant of each trailing [n, n] matrix via LU with partial pivoting.

class DetKernel final : public OpKernel {
 public:
  Status Init(const KernelInfo& info) { return CheckInputDType(info, 0, DTypesOf(FloatTypes{})); }

  Status Compute(KernelContext& ctx) override {
    const Tensor& x = ctx.input_tensor(0);
    CHECK_ARG(x.rank() >= 2, "Det input must have rank >= 2");
    const int64_t n = x.dim(x.rank() - 1);
    CHECK_ARG(x.dim(x.rank() - 2) == n, "Det input must be square in its last two dims, got " + ShapeToString(x.shape()));
    const Shape out_shape(x.shape().begin(), x.shape().end() - 2);
    ASSIGN_OR_RETURN(Tensor * y, ctx.AllocateOutput(0, x.dtype(), out_shape));
    const int64_t batch = NumElements(out_shape);
    return Dispatch(FloatTypes{}, x.dtype(), [&](auto* tag) -> Status {
      using T = std::remove_pointer_t<decltype(tag)>;
      const T* xd = x.data<T>();
      T* yd = y->data<T>();
      std::vector<double> a(static_cast<size_t>(n * n));
      for (int64_t bi = 0; bi < batch; ++bi) {
        for (int64_t i = 0; i < n * n; ++i)
          a[static_cast<size_t>(i)] = static_cast<double>(static_cast<ComputeType<T>>(xd[bi * n * n + i]));
        double det = 1.0;
        for (int64_t k = 0; k < n && det != 0.0; ++k) {
          int64_t piv = k;
          double best = std::fabs(a[static_cast<size_t>(k * n + k)]);
          for (int64_t r = k + 1; r < n; ++r) {
            const double v = std::fabs(a[static_cast<size_t>(r * n + k)]);
            if (v > best) {
              best = v;
              piv = r;
            }
          }
          if (best == 0.0) {
            det = 0.0;
            break;
          }
          if (piv != k) {
            for (int64_t j = 0; j < n; ++j) std::swap(a[static_cast<size_t>(k * n + j)], a[static_cast<size_t>(piv * n + j)]);
            det = -det;
          }
          const double d = a[static_cast<size_t>(k * n + k)];
          det *= d;
          for (int64_t r = k + 1; r < n; ++r) {
            const double f = a[static_cast<size_t>(r * n + k)] / d;
            if (f == 0.0) continue;
            for (int64_t j = k + 1; j < n; ++j) a[static_cast<size_t>(r * n + j)] -= f * a[static_cast<size_t>(k * n + j)];
          }
        }
        yd[bi] = T(static_cast<ComputeType<T>>(det));
      }
      return Status::Ok();
    });
  }
};

const KernelRegistrar kEinsum{{.op_type = "Einsum", .since = 12, .until = 18, .dtypes = DTypesOf(NumericTypes{}),
                               .factory = MakeKernel<EinsumKernel>}};
const KernelRegistrar kDet{{.op_type = "Det", .since = 11, .until = 18, .dtypes = DTypesOf(FloatTypes{}),
                            .factory = MakeKernel<DetKernel>}};

}  // namespace
}  // namespace strata::cpu
