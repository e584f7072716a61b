// Cast (opsets 1..18) and CastLike (15..18): numeric, bool, float16, bfloat16 and string conversions.
// Numbers print like numpy's str() (shortest round-trip digits, positional for 1e-4 <= |x| < 1e16);
// strings parse like numpy/Python float()/int() ("INF", "-inf", "NaN", "1e3", ...).
#include <cctype>
#include <cerrno>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <string>

#include "kernels/cpu/elementwise_common.h"

namespace strata::cpu {
namespace {

using namespace ew;

// ---- number -> string ----

// Turns a scientific-notation string "-d.dddde+XX" into numpy/Python repr style.
std::string ReprFromScientific(const std::string& sci) {
  size_t pos = 0;
  std::string out;
  if (sci[pos] == '-') {
    out += '-';
    ++pos;
  }
  const size_t epos = sci.find_first_of("eE", pos);
  std::string digits;
  for (size_t i = pos; i < epos; ++i)
    if (std::isdigit(static_cast<unsigned char>(sci[i]))) digits += sci[i];
  int exp = std::atoi(sci.c_str() + epos + 1);
  while (digits.size() > 1 && digits.back() == '0') digits.pop_back();
  if (digits == "0") return out + "0.0";
  const int n = static_cast<int>(digits.size());
  if (exp >= -4 && exp < 16) {
    if (exp >= 0) {
      if (n <= exp + 1) {
        out += digits + std::string(static_cast<size_t>(exp + 1 - n), '0') + ".0";
      } else {
        out += digits.substr(0, static_cast<size_t>(exp + 1)) + "." + digits.substr(static_cast<size_t>(exp + 1));
      }
    } else {
      out += "0." + std::string(static_cast<size_t>(-exp - 1), '0') + digits;
    }
    return out;
  }
  out += digits.substr(0, 1);
  if (n > 1) out += "." + digits.substr(1);
  char buf[16];
  std::snprintf(buf, sizeof(buf), "e%c%02d", exp < 0 ? '-' : '+', exp < 0 ? -exp : exp);
  return out + buf;
}

template <typename T>
std::string FloatToString(T value) {
  const double d = static_cast<double>(static_cast<ComputeType<T>>(value));
  if (std::isnan(d)) return "nan";
  if (std::isinf(d)) return d < 0 ? "-inf" : "inf";
  if constexpr (std::is_same_v<T, float> || std::is_same_v<T, double>) {
    char buf[64];
    auto r = std::to_chars(buf, buf + sizeof(buf), value, std::chars_format::scientific);
    return ReprFromScientific(std::string(buf, r.ptr));
  } else {
    // Shortest digits that round-trip through the 16-bit format.
    char buf[64];
    char* end = buf;
    for (int p = 1; p <= 9; ++p) {
      end = std::to_chars(buf, buf + sizeof(buf), d, std::chars_format::scientific, p - 1).ptr;
      float f = 0;
      std::from_chars(buf, end, f);
      if (T(f).bits == value.bits) break;
    }
    return ReprFromScientific(std::string(buf, end));
  }
}

template <typename T>
std::string ToStringValue(const T& v) {
  if constexpr (std::is_same_v<T, std::string>) return v;
  else if constexpr (std::is_same_v<T, bool>) return v ? "True" : "False";
  else if constexpr (kIsFloat<T>) return FloatToString(v);
  else return std::to_string(v);
}

// ---- string -> number ----
std::string_view Trim(std::string_view s) {
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.front()))) s.remove_prefix(1);
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back()))) s.remove_suffix(1);
  return s;
}

// Locale-independent parse of a whole (trimmed) string; accepts a leading '+', "inf", "nan".
// Out-of-range values fall back to strtod, which gives +-inf / 0 as Python's float() does.
template <typename F>
bool ParseFloat(const std::string& str, F* out) {
  std::string_view v = str;
  if (!v.empty() && v[0] == '+') v.remove_prefix(1);
  if (v.empty() || v[0] == '+') return false;
  const auto r = std::from_chars(v.data(), v.data() + v.size(), *out);
  if (r.ptr != v.data() + v.size() || r.ptr == v.data()) return false;
  if (r.ec == std::errc::result_out_of_range) {
    char* e = nullptr;
    *out = static_cast<F>(std::strtod(str.c_str(), &e));
  } else if (r.ec != std::errc()) {
    return false;
  }
  return true;
}
bool ParseDouble(const std::string& str, double* out) { return ParseFloat<double>(str, out); }

template <typename To>
Status ParseStringValue(const std::string& raw, To* out) {
  const std::string s(Trim(raw));
  auto fail = [&]() {
    return InvalidArgument("Cast: cannot parse string '" + raw + "' as " + std::string(DTypeName(DTypeOf<To>::value)));
  };
  if constexpr (std::is_same_v<To, std::string>) {
    *out = raw;
  } else if constexpr (std::is_same_v<To, float> || kIs16BitFloat<To>) {
    float f = 0;
    if (!ParseFloat<float>(s, &f)) return fail();
    *out = Store<To>(f);
  } else if constexpr (std::is_same_v<To, double>) {
    double d;
    if (s.empty() || !ParseDouble(s, &d)) return fail();
    *out = d;
  } else {
    if constexpr (std::is_same_v<To, bool>) {
      std::string l;
      for (char c : s) l += static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
      if (l == "true") { *out = true; return Status::Ok(); }
      if (l == "false") { *out = false; return Status::Ok(); }
    }
    if (s.empty()) return fail();
    const char* b = s.c_str();
    char* e = nullptr;
    errno = 0;
    if constexpr (std::is_unsigned_v<To> && !std::is_same_v<To, bool>) {
      if (s[0] != '-') {
        const unsigned long long v = std::strtoull(b, &e, 10);
        if (*e == '\0' && errno == 0) { *out = static_cast<To>(v); return Status::Ok(); }
      }
    } else {
      const long long v = std::strtoll(b, &e, 10);
      if (*e == '\0' && errno == 0) {
        if constexpr (std::is_same_v<To, bool>) *out = v != 0;
        else *out = static_cast<To>(v);
        return Status::Ok();
      }
    }
    double d;
    if (!ParseDouble(s, &d)) return fail();
    *out = CastValue<To, double>(d);
  }
  return Status::Ok();
}

// ---- the conversion ----
Status CastTensor(const Tensor& in, DType to, Tensor* out) {
  const int64_t n = in.numel();
  return Dispatch(AllTypes{}, in.dtype(), [&](auto* ftag) -> Status {
    using From = std::remove_pointer_t<decltype(ftag)>;
    return Dispatch(AllTypes{}, to, [&](auto* ttag) -> Status {
      using To = std::remove_pointer_t<decltype(ttag)>;
      const From* src = in.data<From>();
      To* dst = out->data<To>();
      if constexpr (std::is_same_v<From, To>) {
        for (int64_t i = 0; i < n; ++i) dst[i] = src[i];
      } else if constexpr (std::is_same_v<To, std::string>) {
        for (int64_t i = 0; i < n; ++i) dst[i] = ToStringValue(src[i]);
      } else if constexpr (std::is_same_v<From, std::string>) {
        for (int64_t i = 0; i < n; ++i) RETURN_IF_ERROR(ParseStringValue<To>(src[i], &dst[i]));
      } else {
        ParallelFor(n, [&](int64_t b, int64_t e) {
          for (int64_t i = b; i < e; ++i) dst[i] = CastValue<To, From>(src[i]);
        });
      }
      return Status::Ok();
    });
  });
}

bool Castable(DType t) {
  for (DType d : DTypesOf(AllTypes{}))
    if (d == t) return true;
  return false;
}

Result<DType> DTypeFromName(std::string name) {
  for (char& c : name) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  for (int i = 1; i <= 16; ++i) {
    const auto d = static_cast<DType>(i);
    std::string n(DTypeName(d));
    for (char& c : n) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
    if (n == name) return d;
  }
  static const std::pair<const char*, DType> kNames[] = {
      {"FLOAT", DType::kFloat},     {"UINT8", DType::kUInt8},     {"INT8", DType::kInt8},
      {"UINT16", DType::kUInt16},   {"INT16", DType::kInt16},     {"INT32", DType::kInt32},
      {"INT64", DType::kInt64},     {"STRING", DType::kString},   {"BOOL", DType::kBool},
      {"FLOAT16", DType::kFloat16}, {"DOUBLE", DType::kDouble},   {"UINT32", DType::kUInt32},
      {"UINT64", DType::kUInt64},   {"BFLOAT16", DType::kBFloat16}, {"FLOAT32", DType::kFloat},
      {"FLOAT64", DType::kDouble},
  };
  for (const auto& [n, d] : kNames)
    if (name == n) return d;
  return InvalidArgument("unknown type name '" + name + "'");
}

class CastKernel final : public OpKernel {
 public:
  Status Init(const KernelInfo& info) {
    const ir::Attribute* a = info.attr("to");
    if (!a) return info.Error("Cast needs a 'to' attribute");
    if (a->type == ir::Attribute::Type::kString) {
      auto d = DTypeFromName(a->s);
      if (!d.ok()) return info.Error(d.status().message());
      to_ = *d;
    } else {
      to_ = static_cast<DType>(a->i);
    }
    if (!Castable(to_)) return info.Error("Cast to type " + std::to_string(static_cast<int>(to_)) + " is not supported");
    return CheckInputDType(info, 0, DTypesOf(AllTypes{}));
  }
  Status Compute(KernelContext& ctx) override {
    const Tensor& x = ctx.input_tensor(0);
    if (x.dtype() == to_) {
      ctx.SetOutput(0, ctx.input(0));
      return Status::Ok();
    }
    ASSIGN_OR_RETURN(Tensor * y, ctx.AllocateOutput(0, to_, x.shape()));
    return CastTensor(x, to_, y);
  }

 private:
  DType to_ = DType::kUndefined;
};

class CastLikeKernel final : public OpKernel {
 public:
  Status Init(const KernelInfo& info) { return CheckInputDType(info, 0, DTypesOf(AllTypes{})); }
  Status Compute(KernelContext& ctx) override {
    const Tensor& x = ctx.input_tensor(0);
    const DType to = ctx.input_tensor(1).dtype();
    if (!Castable(to)) return Unsupported("CastLike to " + std::string(DTypeName(to)) + " is not supported");
    if (x.dtype() == to) {
      ctx.SetOutput(0, ctx.input(0));
      return Status::Ok();
    }
    ASSIGN_OR_RETURN(Tensor * y, ctx.AllocateOutput(0, to, x.shape()));
    return CastTensor(x, to, y);
  }
};

const KernelRegistrar kCast{{.op_type = "Cast", .since = 1, .until = 18, .dtypes = DTypesOf(AllTypes{}),
                             .factory = MakeKernel<CastKernel>}};
const KernelRegistrar kCastLike{{.op_type = "CastLike", .since = 15, .until = 18, .dtypes = DTypesOf(AllTypes{}),
                                 .factory = MakeKernel<CastLikeKernel>}};

}  // namespace
}  // namespace strata::cpu
