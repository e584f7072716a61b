#include "core/npy.h"

#include <cstring>
#include <fstream>
#include <sstream>

namespace strata {
namespace {

struct NpyType { const char* descr; DType dtype; };
constexpr NpyType kTypes[] = {
    {"<f4", DType::kFloat},  {"<f8", DType::kDouble}, {"<f2", DType::kFloat16}, {"|i1", DType::kInt8},
    {"<i2", DType::kInt16},  {"<i4", DType::kInt32},  {"<i8", DType::kInt64},   {"|u1", DType::kUInt8},
    {"<u2", DType::kUInt16}, {"<u4", DType::kUInt32}, {"<u8", DType::kUInt64},  {"|b1", DType::kBool},
    {"<c8", DType::kComplex64}, {"<c16", DType::kComplex128},
};

// Returns the value text following 'key': in the header dict.
std::string HeaderField(const std::string& header, const std::string& key) {
  const auto k = header.find("'" + key + "'");
  if (k == std::string::npos) return {};
  auto p = header.find(':', k);
  if (p == std::string::npos) return {};
  ++p;
  while (p < header.size() && header[p] == ' ') ++p;
  if (p >= header.size()) return {};
  if (header[p] == '\'') {
    const auto e = header.find('\'', p + 1);
    return e == std::string::npos ? std::string() : header.substr(p + 1, e - p - 1);
  }
  if (header[p] == '(') {
    const auto e = header.find(')', p);
    return e == std::string::npos ? std::string() : header.substr(p, e - p + 1);
  }
  const auto e = header.find_first_of(",}", p);
  return header.substr(p, e == std::string::npos ? std::string::npos : e - p);
}

}  // namespace

Result<Tensor> ParseNpy(const std::string& bytes, const std::string& what) {
  auto bad = [&](const std::string& why) { return InvalidArgument("'" + what + "' is not a valid .npy file: " + why); };
  if (bytes.size() < 10 || std::memcmp(bytes.data(), "\x93NUMPY", 6) != 0) return bad("missing magic");
  const int major = static_cast<unsigned char>(bytes[6]);
  size_t header_len, header_start;
  if (major == 1) {
    header_len = static_cast<unsigned char>(bytes[8]) | (static_cast<size_t>(static_cast<unsigned char>(bytes[9])) << 8);
    header_start = 10;
  } else if (major == 2 || major == 3) {
    if (bytes.size() < 12) return bad("truncated header");
    header_len = 0;
    for (int i = 0; i < 4; ++i) header_len |= static_cast<size_t>(static_cast<unsigned char>(bytes[8 + i])) << (8 * i);
    header_start = 12;
  } else {
    return bad("unknown format version " + std::to_string(major));
  }
  if (header_start + header_len > bytes.size()) return bad("truncated header");
  const std::string header = bytes.substr(header_start, header_len);
  const std::string descr = HeaderField(header, "descr");
  const std::string order = HeaderField(header, "fortran_order");
  const std::string shape_text = HeaderField(header, "shape");
  if (order.find("True") != std::string::npos) return bad("Fortran-ordered arrays are not supported");
  DType dt = DType::kUndefined;
  for (const auto& t : kTypes)
    if (descr == t.descr) dt = t.dtype;
  if (dt == DType::kUndefined) return bad("unsupported dtype '" + descr + "' (big-endian, object and string arrays are not supported)");
  if (shape_text.size() < 2 || shape_text.front() != '(') return bad("missing shape");
  Shape shape;
  std::stringstream ss(shape_text.substr(1, shape_text.size() - 2));
  std::string item;
  while (std::getline(ss, item, ',')) {
    if (item.find_first_not_of(' ') == std::string::npos) continue;
    try {
      shape.push_back(std::stoll(item));
    } catch (const std::exception&) {
      return bad("bad shape '" + shape_text + "'");
    }
  }
  ASSIGN_OR_RETURN(Tensor t, Tensor::Create(dt, shape));
  const size_t data_start = header_start + header_len;
  if (bytes.size() - data_start != t.nbytes())
    return bad("payload has " + std::to_string(bytes.size() - data_start) + " bytes, shape " + ShapeToString(shape) +
               " needs " + std::to_string(t.nbytes()));
  if (t.nbytes()) std::memcpy(t.raw(), bytes.data() + data_start, t.nbytes());
  return t;
}

Result<Tensor> ReadNpy(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return IoError("cannot open '" + path + "'");
  std::stringstream ss;
  ss << in.rdbuf();
  return ParseNpy(ss.str(), path);
}

Status WriteNpy(const std::string& path, const Tensor& t) {
  const char* descr = nullptr;
  for (const auto& k : kTypes)
    if (k.dtype == t.dtype()) descr = k.descr;
  if (!descr) return Unsupported("cannot write dtype " + std::string(DTypeName(t.dtype())) + " as .npy");
  std::string shape = "(";
  for (int64_t d : t.shape()) shape += std::to_string(d) + ",";
  if (t.rank() > 1) shape.pop_back();
  shape += ")";
  std::string header = "{'descr': '" + std::string(descr) + "', 'fortran_order': False, 'shape': " + shape + ", }";
  while ((10 + header.size() + 1) % 64 != 0) header += ' ';
  header += '\n';
  std::ofstream out(path, std::ios::binary);
  out.write("\x93NUMPY\x01\x00", 8);
  const uint16_t len = static_cast<uint16_t>(header.size());
  const char lenb[2] = {static_cast<char>(len & 0xff), static_cast<char>(len >> 8)};
  out.write(lenb, 2);
  out.write(header.data(), static_cast<std::streamsize>(header.size()));
  out.write(static_cast<const char*>(t.raw()), static_cast<std::streamsize>(t.nbytes()));
  if (!out) return IoError("cannot write '" + path + "'");
  return Status::Ok();
}

}  // namespace strata
