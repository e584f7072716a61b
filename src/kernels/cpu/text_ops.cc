// Text: StringNormalizer, TfIdfVectorizer.
#include <clocale>
#include <cwctype>
#include <locale.h>
#include <map>
#include <set>
#include <string>
#include <unordered_map>
#include <vector>

#include "kernels/cpu/common.h"

namespace strata::cpu {
namespace {

// ---------------------------------------------------------------------------------------------
// UTF-8 aware case mapping (falls back to ASCII when no UTF-8 locale is available).
locale_t Utf8Locale() {
  static locale_t loc = [] {
    locale_t l = newlocale(LC_CTYPE_MASK, "C.UTF-8", static_cast<locale_t>(nullptr));
    if (!l) l = newlocale(LC_CTYPE_MASK, "en_US.UTF-8", static_cast<locale_t>(nullptr));
    return l;
  }();
  return loc;
}

void AppendUtf8(std::string& out, uint32_t cp) {
  if (cp < 0x80) {
    out.push_back(static_cast<char>(cp));
  } else if (cp < 0x800) {
    out.push_back(static_cast<char>(0xC0 | (cp >> 6)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else if (cp < 0x10000) {
    out.push_back(static_cast<char>(0xE0 | (cp >> 12)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else {
    out.push_back(static_cast<char>(0xF0 | (cp >> 18)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 12) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  }
}

// Maps the case of a UTF-8 string; invalid bytes pass through unchanged.
std::string MapCase(const std::string& s, bool upper) {
  std::string out;
  out.reserve(s.size());
  locale_t loc = Utf8Locale();
  const auto* p = reinterpret_cast<const unsigned char*>(s.data());
  const size_t n = s.size();
  size_t i = 0;
  while (i < n) {
    const unsigned char c = p[i];
    if (c < 0x80) {
      out.push_back(static_cast<char>(upper ? (c >= 'a' && c <= 'z' ? c - 32 : c) : (c >= 'A' && c <= 'Z' ? c + 32 : c)));
      ++i;
      continue;
    }
    int len = (c & 0xE0) == 0xC0 ? 2 : (c & 0xF0) == 0xE0 ? 3 : (c & 0xF8) == 0xF0 ? 4 : 0;
    bool ok = len > 0 && i + static_cast<size_t>(len) <= n;
    uint32_t cp = len == 2 ? c & 0x1F : len == 3 ? c & 0x0F : c & 0x07;
    for (int k = 1; ok && k < len; ++k) {
      if ((p[i + static_cast<size_t>(k)] & 0xC0) != 0x80) ok = false;
      else cp = (cp << 6) | (p[i + static_cast<size_t>(k)] & 0x3F);
    }
    if (!ok) {
      out.push_back(static_cast<char>(c));
      ++i;
      continue;
    }
    if (loc) cp = static_cast<uint32_t>(upper ? towupper_l(static_cast<wint_t>(cp), loc) : towlower_l(static_cast<wint_t>(cp), loc));
    AppendUtf8(out, cp);
    i += static_cast<size_t>(len);
  }
  return out;
}

class StringNormalizerKernel final : public OpKernel {
 public:
  Status Init(const KernelInfo& info) {
    const std::string a = info.attr_string("case_change_action", "NONE");
    if (a == "NONE") action_ = 0;
    else if (a == "LOWER") action_ = 1;
    else if (a == "UPPER") action_ = 2;
    else return info.Error("case_change_action must be NONE, LOWER or UPPER, got '" + a + "'");
    case_sensitive_ = info.attr_int("is_case_sensitive", 0) != 0;
    const std::string locale = info.attr_string("locale", "en_US");
    if (!locale.empty() && locale.rfind("en", 0) != 0 && locale != "C" && locale != "POSIX")
      return info.Error("locale '" + locale + "' is not supported (only en_* locales)");
    for (const std::string& w : info.attr_strings("stopwords")) stop_.insert(case_sensitive_ ? w : MapCase(w, false));
    return CheckInputDType(info, 0, {DType::kString});
  }
  Status Compute(KernelContext& ctx) override {
    if (!ctx.has_input(0) || !ctx.input(0).is_tensor()) return InvalidArgument("StringNormalizer: input must be a tensor");
    const Tensor& x = ctx.input_tensor(0);
    if (x.dtype() != DType::kString) return InvalidArgument("StringNormalizer: input must be a string tensor");
    if (!(x.rank() == 1 || (x.rank() == 2 && x.dim(0) == 1)))
      return InvalidArgument("StringNormalizer: input must be [C] or [1, C], got " + ShapeToString(x.shape()));
    const std::string* in = x.data<std::string>();
    std::vector<std::string> kept;
    for (int64_t i = 0; i < x.numel(); ++i) {
      const std::string& s = in[i];
      if (!stop_.empty()) {
        if (stop_.count(case_sensitive_ ? s : MapCase(s, false))) continue;
      }
      kept.push_back(action_ == 0 ? s : MapCase(s, action_ == 2));
    }
    if (kept.empty()) kept.emplace_back();
    const auto c = static_cast<int64_t>(kept.size());
    ASSIGN_OR_RETURN(Tensor* out, ctx.AllocateOutput(0, DType::kString, x.rank() == 1 ? Shape{c} : Shape{1, c}));
    std::string* o = out->data<std::string>();
    for (int64_t i = 0; i < c; ++i) o[i] = std::move(kept[static_cast<size_t>(i)]);
    return Status::Ok();
  }

 private:
  int action_ = 0;
  bool case_sensitive_ = false;
  std::set<std::string> stop_;
};

// ---------------------------------------------------------------------------------------------
// N-grams are interned as vectors of token ids (strings map to ids through a dictionary;
// integers map directly), looked up in a hash map keyed by the id sequence.
struct VecHash {
  size_t operator()(const std::vector<int64_t>& v) const {
    uint64_t h = 1469598103934665603ull;
    for (int64_t x : v) h = (h ^ static_cast<uint64_t>(x)) * 1099511628211ull;
    return static_cast<size_t>(h);
  }
};

class TfIdfVectorizerKernel final : public OpKernel {
 public:
  Status Init(const KernelInfo& info) {
    min_n_ = info.attr_int("min_gram_length", -1);
    max_n_ = info.attr_int("max_gram_length", -1);
    max_skip_ = info.attr_int("max_skip_count", -1);
    if (min_n_ < 1 || max_n_ < min_n_) return info.Error("need 1 <= min_gram_length <= max_gram_length");
    if (max_skip_ < 0) return info.Error("max_skip_count must be >= 0");
    const std::string mode = info.attr_string("mode", "");
    if (mode == "TF") mode_ = 0;
    else if (mode == "IDF") mode_ = 1;
    else if (mode == "TFIDF") mode_ = 2;
    else return info.Error("mode must be TF, IDF or TFIDF, got '" + mode + "'");
    const std::vector<int64_t> counts = info.attr_ints("ngram_counts");
    const std::vector<int64_t> indexes = info.attr_ints("ngram_indexes");
    weights_ = info.attr_floats("weights");
    std::vector<int64_t> pool_ids;
    if (info.has_attr("pool_strings")) {
      strings_ = true;
      for (const std::string& s : info.attr_strings("pool_strings")) {
        auto it = dict_.find(s);
        if (it == dict_.end()) it = dict_.emplace(s, static_cast<int64_t>(dict_.size())).first;
        pool_ids.push_back(it->second);
      }
    } else if (info.has_attr("pool_int64s")) {
      pool_ids = info.attr_ints("pool_int64s");
    } else {
      return info.Error("one of pool_strings / pool_int64s is required");
    }
    const auto pool_size = static_cast<int64_t>(pool_ids.size());
    size_t ngram_no = 0;
    for (size_t level = 0; level < counts.size(); ++level) {
      const int64_t n = static_cast<int64_t>(level) + 1;
      const int64_t start = counts[level];
      const int64_t end = level + 1 < counts.size() ? counts[level + 1] : pool_size;
      if (start < 0 || end < start || end > pool_size || (end - start) % n != 0)
        return info.Error("ngram_counts is inconsistent with the pool");
      for (int64_t p = start; p < end; p += n) {
        if (ngram_no >= indexes.size()) return info.Error("ngram_indexes has fewer entries than the pool has n-grams");
        const int64_t idx = indexes[ngram_no++];
        if (idx < 0) return info.Error("ngram_indexes must be non-negative");
        out_size_ = std::max(out_size_, idx + 1);
        std::vector<int64_t> key(pool_ids.begin() + p, pool_ids.begin() + p + n);
        pool_.emplace(std::move(key), idx);
      }
    }
    if (!weights_.empty() && static_cast<int64_t>(weights_.size()) < out_size_)
      return info.Error("weights has fewer entries than the output size");
    return Status::Ok();
  }

  Status Compute(KernelContext& ctx) override {
    if (!ctx.has_input(0) || !ctx.input(0).is_tensor()) return InvalidArgument("TfIdfVectorizer: input must be a tensor");
    const Tensor& x = ctx.input_tensor(0);
    const DType dt = x.dtype();
    if (strings_ != (dt == DType::kString) || (!strings_ && dt != DType::kInt32 && dt != DType::kInt64))
      return InvalidArgument("TfIdfVectorizer: input dtype " + std::string(DTypeName(dt)) + " does not match the pool");
    if (x.rank() != 1 && x.rank() != 2) return InvalidArgument("TfIdfVectorizer: input must be [C] or [N, C]");
    const int64_t rows = x.rank() == 2 ? x.dim(0) : 1;
    const int64_t C = x.rank() == 2 ? x.dim(1) : x.dim(0);
    // Token ids (unknown strings get -1, which never matches).
    std::vector<int64_t> tok(static_cast<size_t>(x.numel()));
    for (int64_t i = 0; i < x.numel(); ++i) {
      if (dt == DType::kString) {
        auto it = dict_.find(x.data<std::string>()[i]);
        tok[static_cast<size_t>(i)] = it == dict_.end() ? -1 : it->second;
      } else {
        tok[static_cast<size_t>(i)] = x.GetAsInt64(i);
      }
    }
    ASSIGN_OR_RETURN(Tensor* out, ctx.AllocateZeroedOutput(0, DType::kFloat, x.rank() == 2 ? Shape{rows, out_size_} : Shape{out_size_}));
    float* o = out->data<float>();
    std::vector<int64_t> key;
    key.reserve(static_cast<size_t>(max_n_));
    for (int64_t r = 0; r < rows; ++r) {
      const int64_t* t = tok.data() + r * C;
      float* orow = o + r * out_size_;
      for (int64_t i = 0; i < C; ++i) {
        for (int64_t n = min_n_; n <= max_n_; ++n) {
          const int64_t skips = n == 1 ? 0 : max_skip_;
          for (int64_t s = 0; s <= skips; ++s) {
            const int64_t last = i + (n - 1) * (s + 1);
            if (last >= C) break;
            key.clear();
            for (int64_t j = 0; j < n; ++j) key.push_back(t[i + j * (s + 1)]);
            auto it = pool_.find(key);
            if (it != pool_.end()) orow[it->second] += 1.0f;
          }
        }
      }
      for (int64_t k = 0; k < out_size_; ++k) {
        const float w = weights_.empty() ? 1.0f : weights_[static_cast<size_t>(k)];
        if (mode_ == 1) orow[k] = orow[k] > 0 ? w : 0.0f;
        else if (mode_ == 2) orow[k] *= w;
      }
    }
    return Status::Ok();
  }

 private:
  int64_t min_n_ = 1, max_n_ = 1, max_skip_ = 0;
  int mode_ = 0;
  bool strings_ = false;
  std::vector<float> weights_;
  std::unordered_map<std::string, int64_t> dict_;
  std::unordered_map<std::vector<int64_t>, int64_t, VecHash> pool_;
  int64_t out_size_ = 0;
};

const KernelRegistrar kStrNorm{{.op_type = "StringNormalizer", .since = 10, .until = 18, .factory = MakeKernel<StringNormalizerKernel>}};
const KernelRegistrar kTfIdf{{.op_type = "TfIdfVectorizer", .since = 9, .until = 18, .factory = MakeKernel<TfIdfVectorizerKernel>}};

}  // namespace
}  // namespace strata::cpu
