#include "onnx/wire_scan.h"

namespace strata::onnx_io {
namespace {

// Field numbers from onnx.proto (libonnx-dev).
constexpr uint64_t kModelGraph = 7;         // ModelProto.graph
constexpr uint64_t kGraphInitializer = 5;   // GraphProto.initializer
constexpr uint64_t kTensorRawData = 9;      // TensorProto.raw_data

enum WireType : uint64_t { kVarint = 0, kFixed64 = 1, kLengthDelimited = 2, kFixed32 = 5 };

// Bounds-checked reader over [p, end); every method returns false instead of reading past end.
struct Reader {
  const unsigned char* p;
  const unsigned char* end;

  bool Varint(uint64_t* v) {
    uint64_t out = 0;
    for (int shift = 0; shift < 64; shift += 7) {
      if (p == end) return false;
      const unsigned char b = *p++;
      out |= static_cast<uint64_t>(b & 0x7f) << shift;
      if (!(b & 0x80)) {
        *v = out;
        return true;
      }
    }
    return false;  // more than 10 bytes
  }
  // Reads one field's key and skips its value; `body`/`body_size` is the payload of a
  // length-delimited field.
  bool Field(uint64_t* number, uint64_t* wire, const unsigned char** body, uint64_t* body_size) {
    uint64_t key;
    if (!Varint(&key)) return false;
    *number = key >> 3;
    *wire = key & 7;
    if (*number == 0) return false;
    switch (*wire) {
      case kVarint: {
        uint64_t ignored;
        return Varint(&ignored);
      }
      case kFixed64: return Skip(8);
      case kFixed32: return Skip(4);
      case kLengthDelimited:
        if (!Varint(body_size)) return false;
        *body = p;
        return Skip(*body_size);
      default:
        return false;  // groups (deprecated) and invalid wire types: leave them to protobuf
    }
  }
  bool Skip(uint64_t n) {
    if (n > static_cast<uint64_t>(end - p)) return false;
    p += n;
    return true;
  }
};

void PutVarint(std::string& out, uint64_t v) {
  while (v >= 0x80) {
    out.push_back(static_cast<char>((v & 0x7f) | 0x80));
    v >>= 7;
  }
  out.push_back(static_cast<char>(v));
}

void PutLengthDelimited(std::string& out, uint64_t number, const std::string& body) {
  PutVarint(out, (number << 3) | kLengthDelimited);
  PutVarint(out, body.size());
  out += body;
}

struct Stripper {
  const unsigned char* base;
  StrippedModel result;

  // Copies a TensorProto without its raw_data and records where the payload is.
  bool Tensor(Reader r, std::string& out) {
    std::optional<PayloadSpan> span;
    while (r.p != r.end) {
      const unsigned char* start = r.p;
      uint64_t number, wire, size = 0;
      const unsigned char* body = nullptr;
      if (!r.Field(&number, &wire, &body, &size)) return false;
      if (number == kTensorRawData && wire == kLengthDelimited) {
        if (span) return false;  // protobuf keeps the last one; too unusual to mirror here
        span = PayloadSpan{static_cast<uint64_t>(body - base), size};
        continue;
      }
      out.append(reinterpret_cast<const char*>(start), static_cast<size_t>(r.p - start));
    }
    result.initializer_payloads.push_back(span);
    return true;
  }

  bool Graph(Reader r, std::string& out) {
    std::string tensor;
    while (r.p != r.end) {
      const unsigned char* start = r.p;
      uint64_t number, wire, size = 0;
      const unsigned char* body = nullptr;
      if (!r.Field(&number, &wire, &body, &size)) return false;
      if (number == kGraphInitializer && wire == kLengthDelimited) {
        tensor.clear();
        if (!Tensor(Reader{body, body + size}, tensor)) return false;
        PutLengthDelimited(out, number, tensor);
        continue;
      }
      out.append(reinterpret_cast<const char*>(start), static_cast<size_t>(r.p - start));
    }
    return true;
  }

  bool Model(Reader r) {
    bool seen_graph = false;
    std::string& out = result.skeleton;
    while (r.p != r.end) {
      const unsigned char* start = r.p;
      uint64_t number, wire, size = 0;
      const unsigned char* body = nullptr;
      if (!r.Field(&number, &wire, &body, &size)) return false;
      if (number == kModelGraph && wire == kLengthDelimited) {
        if (seen_graph) return false;  // protobuf would merge the two graphs
        seen_graph = true;
        std::string graph;
        if (!Graph(Reader{body, body + size}, graph)) return false;
        PutLengthDelimited(out, number, graph);
        continue;
      }
      out.append(reinterpret_cast<const char*>(start), static_cast<size_t>(r.p - start));
    }
    return true;
  }
};

}  // namespace

std::optional<StrippedModel> StripInitializerPayloads(const unsigned char* data, size_t size) {
  if (size > 0 && data == nullptr) return std::nullopt;
  Stripper s{data, {}};
  if (!s.Model(Reader{data, data + size})) return std::nullopt;
  return std::move(s.result);
}

}  // namespace strata::onnx_io
