// com.strata:Attention: scaled dot-product attention in one kernel, written by the attention-recognition
// pass (src/passes/attention_recognition.cc; semantics in docs/passes.md):
//   Y = softmax(scale * Q K^T [+ mask | where(mask, ., mask_fill)] [causal]) V
//
// Two layouts. num_heads = h > 0: Q [b, sq, h*d], K [b, sk, h*d], V [b, sk, h*dv] and Y [b, sq, h*dv],
// each head a column block (the layout of the projections, so the head transposes disappear); with
// packed_qkv = 1 one input [b, s, 3*h*d] holds Q, K and V side by side (K and V inputs left empty).
// num_heads = 0: Q [..., sq, d], K already transposed [..., d, sk] (the MatMul operand), V [..., sk, dv],
// Y [..., sq, dv], up to two equal leading dims. The scores are [b, h, sq, sk] (or [..., sq, sk]);
// an optional float32 mask is added to them, a bool mask keeps a score where true and puts
// `mask_fill` elsewhere (both broadcast to the scores without enlarging them). `causal` = 1 hides key
// j from query i when j > i (score `mask_fill`); the pass sets it only with a bool mask it proved
// lower-triangular, and the mask is then read only when its shape is not exactly [.., sq, sk]
// (with a float mask it is an error).
//
// Each task is one (batch, head) and a range of its query rows (a head is split into ranges when
// there are fewer heads than twice the threads). A task packs K^T [d][sk] into per-thread scratch
// (copied, or transposed from the heads layout): once per range, so a split head packs it once
// per part. Then blocks of 4 query rows get their scores, the mask, a softmax per row (vec_math),
// and P V; the tiles are ukernels/attention_tiles.h (AVX-512, AVX2 + FMA, scalar). With `causal`, a
// block only computes keys up to its last row; the keys it skips would have weight
// exp(fill - max) = 0, which is checked per row (otherwise the block is redone over all keys).
// Rows whose scores are all -inf (or contain NaN) give NaN, as the unfused Softmax -> MatMul does.
#include <cmath>
#include <cstring>
#include <limits>
#include <new>
#include <vector>

#include "kernels/cpu/common.h"
#include "kernels/cpu/ukernels/attention_tiles.h"
#include "kernels/cpu/ukernels/vec_math.h"

namespace strata::cpu {
namespace {

constexpr int64_t kRows = uk::kAttentionTileRows;  // query rows per block

struct Problem {
  int64_t B = 1, H = 1, sq = 0, sk = 0, d = 0, dv = 0;
  const float* q = nullptr;
  const float* k = nullptr;
  const float* v = nullptr;
  float* y = nullptr;
  // Element strides: Q(b, h, i, c) = q[b*q_b + h*q_h + i*q_s + c]; K(b, h, j, c) = k[... + j*k_s + c*k_d].
  int64_t q_b = 0, q_h = 0, q_s = 0;
  int64_t k_b = 0, k_h = 0, k_s = 0, k_d = 0;
  int64_t v_b = 0, v_h = 0, v_s = 0;
  int64_t y_b = 0, y_h = 0, y_s = 0;
  float scale = 1;
  // The mask at batch 0, head 0, and its batch and head strides (0 along broadcast dims).
  uk::AttentionMask mask;
  int64_t m_b = 0, m_h = 0;
};

// The keys a causal block skips (all j >= n) have score `fill`; their softmax weight exp(fill - max)
// is exactly 0 in vec_math's exp when fill - max < kExpZeroBelow (or fill is -inf).
bool SkippedKeysVanish(float fill, float row_max) {
  return fill == -std::numeric_limits<float>::infinity() || fill - row_max < vec::kExpZeroBelow;
}

// Query rows [i0, i1) of head (b, h).
void RunRows(const Problem& p, const uk::AttentionTileKernels& t, const vec::Kernels& vk, int64_t b, int64_t h,
             int64_t i0, int64_t i1) {
  const int64_t ldk = uk::AttentionPackedKeys(p.sk);
  float* kt = ThreadScratch(0, static_cast<size_t>((p.d + kRows) * ldk));
  if (!kt) throw std::bad_alloc();  // as the std::vector this replaced did
  float* s = kt + p.d * ldk;
  t.pack_keys_transposed(p.k + b * p.k_b + h * p.k_h, p.k_s, p.k_d, p.sk, p.d, kt, ldk);
  const float* qb = p.q + b * p.q_b + h * p.q_h;
  const float* vb = p.v + b * p.v_b + h * p.v_h;
  float* yb = p.y + b * p.y_b + h * p.y_h;
  uk::AttentionMask mask = p.mask;
  const int64_t mask_offset = b * p.m_b + h * p.m_h;
  if (mask.add) mask.add += mask_offset;
  if (mask.keep) mask.keep += mask_offset;
  for (int64_t i = i0; i < i1; i += kRows) {
    const int64_t rows = i1 - i < kRows ? i1 - i : kRows;
    if (p.sk == 0) {  // softmax over no keys, times an empty V: zeros
      for (int64_t r = 0; r < rows; ++r)
        std::memset(yb + (i + r) * p.y_s, 0, static_cast<size_t>(p.dv) * sizeof(float));
      continue;
    }
    int64_t n = mask.causal ? (i + rows < p.sk ? i + rows : p.sk) : p.sk;
    for (;;) {
      t.scores(qb + i * p.q_s, p.q_s, kt, ldk, p.d, p.scale, s, ldk, rows, n);
      uk::MaskScores(mask, i, s, ldk, rows, n);
      bool redo = false;
      if (mask.causal && n < p.sk)
        for (int64_t r = 0; r < rows && !redo; ++r) redo = !SkippedKeysVanish(mask.fill, vk.row_max(s + r * ldk, n));
      if (!redo) break;
      n = p.sk;
    }
    for (int64_t r = 0; r < rows; ++r) vk.softmax_row(s + r * ldk, s + r * ldk, n);
    t.weighted_values(s, ldk, n, vb, p.v_s, p.dv, yb + i * p.y_s, p.y_s, rows);
  }
}

void Run(const Problem& p) {
  const vec::Kernels& vk = vec::Active();
  const uk::AttentionTileKernels& t = uk::AttentionTilesFor(vk.isa);
  const int64_t heads = p.B * p.H;
  if (heads == 0 || p.sq == 0 || p.dv == 0) return;
  // Split query rows too when there are fewer heads than threads can share.
  const int64_t threads = omp_get_max_threads();
  int64_t split = (2 * threads + heads - 1) / heads;
  const int64_t max_split = (p.sq + 4 * kRows - 1) / (4 * kRows);
  split = split < max_split ? split : max_split;
  split = split < 1 ? 1 : split;
  const int64_t tasks = heads * split;
  const double flops = 2.0 * static_cast<double>(heads) * static_cast<double>(p.sq) * static_cast<double>(p.sk) *
                       static_cast<double>(p.d + p.dv);
  ParallelFor(
      tasks,
      [&](int64_t begin, int64_t end) {
        for (int64_t task = begin; task < end; ++task) {
          const int64_t head = task / split, part = task % split;
          const int64_t i0 = p.sq * part / split, i1 = p.sq * (part + 1) / split;
          RunRows(p, t, vk, head / p.H, head % p.H, i0, i1);
        }
      },
      flops >= 1e6 ? 1 : tasks + 1);
}

class AttentionKernel final : public OpKernel {
 public:
  Status Init(const KernelInfo& info) {
    if (info.num_inputs() < 1 || info.num_inputs() > 4) return info.Error("expects 3 or 4 inputs (Q, K, V, [mask])");
    if (!info.has_attr("scale")) return info.Error("missing attribute 'scale'");
    scale_ = info.attr_float("scale", 1.f);
    heads_ = info.attr_int("num_heads", 0);
    causal_ = info.attr_int("causal", 0) != 0;
    packed_ = info.attr_int("packed_qkv", 0) != 0;
    fill_ = info.attr_float("mask_fill", -std::numeric_limits<float>::infinity());
    if (heads_ < 0) return info.Error("num_heads must be >= 0, got " + std::to_string(heads_));
    if (packed_ && (heads_ == 0 || info.input_present(1) || info.input_present(2)))
      return info.Error("packed_qkv needs num_heads and one QKV input (K and V left empty)");
    if (!packed_ && (!info.input_present(1) || !info.input_present(2)))
      return info.Error("expects inputs Q, K and V");
    for (int i = 0; i < (packed_ ? 1 : 3); ++i) RETURN_IF_ERROR(CheckInputDType(info, i, {DType::kFloat}));
    if (info.input_present(3)) RETURN_IF_ERROR(CheckInputDType(info, 3, {DType::kFloat, DType::kBool}));
    return Status::Ok();
  }

  Status Compute(KernelContext& ctx) override {
    Problem p;
    p.scale = scale_;
    p.mask.fill = fill_;
    p.mask.causal = causal_;
    Shape out, scores;  // scores: the shape the mask broadcasts to
    if (packed_) {
      const Tensor& X = ctx.input_tensor(0);
      const int64_t h = heads_;
      if (X.dtype() != DType::kFloat || X.rank() != 3 || X.dim(2) % 3 != 0 || (X.dim(2) / 3) % h != 0)
        return InvalidArgument(ctx.Where() + "packed QKV must be float32 [batch, seq, 3*" + std::to_string(h) +
                               "*dim], got " + ShapeToString(X.shape()));
      const int64_t w = X.dim(2) / 3;
      p.B = X.dim(0), p.H = h, p.sq = X.dim(1), p.sk = X.dim(1), p.d = w / h, p.dv = w / h;
      p.q_s = p.k_s = p.v_s = X.dim(2), p.k_d = 1;
      p.q_h = p.k_h = p.v_h = p.d;
      p.q_b = p.k_b = p.v_b = p.sq * X.dim(2);
      p.y_s = w, p.y_h = p.dv, p.y_b = p.sq * w;
      out = {p.B, p.sq, w};
      scores = {p.B, h, p.sq, p.sk};
      if (ctx.has_input(3)) RETURN_IF_ERROR(BindMask(ctx, ctx.input_tensor(3), scores, p));
      ASSIGN_OR_RETURN(Tensor * Y, ctx.AllocateOutput(0, DType::kFloat, out));
      p.q = X.data<float>(), p.k = p.q + w, p.v = p.q + 2 * w, p.y = Y->data<float>();
      Run(p);
      return Status::Ok();
    }
    const Tensor& Q = ctx.input_tensor(0);
    const Tensor& K = ctx.input_tensor(1);
    const Tensor& V = ctx.input_tensor(2);
    for (const Tensor* t : {&Q, &K, &V})
      if (t->dtype() != DType::kFloat) return InvalidArgument(ctx.Where() + "Q, K and V must be float32");
    if (heads_ > 0) {
      if (Q.rank() != 3 || K.rank() != 3 || V.rank() != 3)
        return InvalidArgument(ctx.Where() + "with num_heads, Q, K and V must be rank 3 [batch, seq, heads*dim], got " +
                               ShapeToString(Q.shape()) + ", " + ShapeToString(K.shape()) + ", " +
                               ShapeToString(V.shape()));
      const int64_t h = heads_;
      if (Q.dim(0) != K.dim(0) || Q.dim(0) != V.dim(0) || K.dim(1) != V.dim(1) || Q.dim(2) != K.dim(2) ||
          Q.dim(2) % h != 0 || V.dim(2) % h != 0)
        return InvalidArgument(ctx.Where() + "Q " + ShapeToString(Q.shape()) + ", K " + ShapeToString(K.shape()) +
                               ", V " + ShapeToString(V.shape()) + " do not fit " + std::to_string(h) + " heads");
      p.B = Q.dim(0), p.H = h, p.sq = Q.dim(1), p.sk = K.dim(1), p.d = Q.dim(2) / h, p.dv = V.dim(2) / h;
      p.q_s = Q.dim(2), p.q_h = p.d, p.q_b = p.sq * p.q_s;
      p.k_s = K.dim(2), p.k_d = 1, p.k_h = p.d, p.k_b = p.sk * p.k_s;
      p.v_s = V.dim(2), p.v_h = p.dv, p.v_b = p.sk * p.v_s;
      p.y_s = h * p.dv, p.y_h = p.dv, p.y_b = p.sq * p.y_s;
      out = {p.B, p.sq, h * p.dv};
      scores = {p.B, h, p.sq, p.sk};
    } else {
      const int r = Q.rank();
      bool ok = r >= 2 && r <= 4 && K.rank() == r && V.rank() == r;
      for (int i = 0; ok && i < r - 2; ++i) ok = Q.dim(i) == K.dim(i) && Q.dim(i) == V.dim(i);
      if (ok) ok = Q.dim(r - 1) == K.dim(r - 2) && K.dim(r - 1) == V.dim(r - 2);
      if (!ok)
        return InvalidArgument(ctx.Where() + "expects Q [..., sq, d], K^T [..., d, sk], V [..., sk, dv] of rank 2..4 "
                               "with equal leading dims, got " + ShapeToString(Q.shape()) + ", " +
                               ShapeToString(K.shape()) + ", " + ShapeToString(V.shape()));
      p.B = r == 4 ? Q.dim(0) : 1;
      p.H = r >= 3 ? Q.dim(r - 3) : 1;
      p.sq = Q.dim(r - 2), p.d = Q.dim(r - 1), p.sk = K.dim(r - 1), p.dv = V.dim(r - 1);
      p.q_s = p.d, p.q_h = p.sq * p.d, p.q_b = p.H * p.q_h;
      p.k_s = 1, p.k_d = p.sk, p.k_h = p.d * p.sk, p.k_b = p.H * p.k_h;
      p.v_s = p.dv, p.v_h = p.sk * p.dv, p.v_b = p.H * p.v_h;
      p.y_s = p.dv, p.y_h = p.sq * p.dv, p.y_b = p.H * p.y_h;
      out = Q.shape();
      out.back() = p.dv;
      scores = Q.shape();
      scores.back() = p.sk;
    }
    if (ctx.has_input(3)) RETURN_IF_ERROR(BindMask(ctx, ctx.input_tensor(3), scores, p));
    ASSIGN_OR_RETURN(Tensor * Y, ctx.AllocateOutput(0, DType::kFloat, out));
    p.q = Q.data<float>(), p.k = K.data<float>(), p.v = V.data<float>(), p.y = Y->data<float>();
    Run(p);
    return Status::Ok();
  }

 private:
  // Checks that the mask broadcasts to `scores` without enlarging it and sets its strides.
  Status BindMask(const KernelContext& ctx, const Tensor& m, const Shape& scores, Problem& p) const {
    const int rs = static_cast<int>(scores.size());
    bool ok = (m.dtype() == DType::kFloat || m.dtype() == DType::kBool) && m.rank() <= rs;
    for (int i = 0; ok && i < m.rank(); ++i) {
      const int64_t md = m.dim(m.rank() - 1 - i), sd = scores[static_cast<size_t>(rs - 1 - i)];
      ok = md == sd || md == 1;
    }
    if (!ok)
      return InvalidArgument(ctx.Where() + "mask must be float32 or bool and broadcast to the scores " +
                             ShapeToString(scores) + ", got " + std::string(DTypeName(m.dtype())) + " " +
                             ShapeToString(m.shape()));
    Shape s4 = scores, m4 = m.shape();
    while (s4.size() < 4) s4.insert(s4.begin(), 1);
    while (m4.size() < 4) m4.insert(m4.begin(), 1);
    const Strides st = BroadcastStrides(m4, s4);
    p.m_b = st[0], p.m_h = st[1], p.mask.query_stride = st[2], p.mask.key_stride = st[3];
    if (m.dtype() == DType::kFloat) {
      // The pass never writes this; a hand-written node must say which rule it means.
      if (causal_) return InvalidArgument(ctx.Where() + "causal=1 needs a bool mask or none; got a float mask");
      p.mask.add = m.data<float>();
    } else {
      p.mask.keep = m.data<bool>();
      // The causal fast path needs the mask to be the full [sq, sk] corner of the proven buffer.
      p.mask.causal = causal_ && m4[2] == p.sq && m4[3] == p.sk;
    }
    return Status::Ok();
  }

  float scale_ = 1, fill_ = 0;
  int64_t heads_ = 0;
  bool causal_ = false;
  bool packed_ = false;  // input 0 is [Q | K | V] along the last axis (a Split the pass removed)
};

const KernelRegistrar kAttention{{.op_type = "Attention", .domain = "com.strata", .since = 1, .until = 1,
                                  .dtypes = {DType::kFloat}, .factory = MakeKernel<AttentionKernel>}};

}  // namespace
}  // namespace strata::cpu
