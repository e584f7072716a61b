#include "onnx/tensor_proto.h"

#include <onnx/onnx_pb.h>
// onnx_pb.h must come first: it defines ONNX_API for the generated headers.
#include <onnx/onnx-data.pb.h>

#include <cstring>
#include <fstream>
#include <sstream>

#include "core/mapped_file.h"
#include "onnx/payload_memory.h"

namespace strata::onnx_io {
namespace {

Status CheckCount(const onnx::TensorProto& p, int64_t have, int64_t want, const char* field) {
  if (have != want)
    return InvalidModel("tensor '" + p.name() + "': " + field + " holds " + std::to_string(have) +
                        " values but its dims need " + std::to_string(want));
  return Status::Ok();
}

Result<Tensor> FromExternal(const onnx::TensorProto& p, DType dt, Shape shape, const std::string& base_dir) {
  std::string location;
  int64_t offset = 0, length = -1;
  for (const auto& kv : p.external_data()) {
    try {
      if (kv.key() == "location") location = kv.value();
      else if (kv.key() == "offset") offset = std::stoll(kv.value());
      else if (kv.key() == "length") length = std::stoll(kv.value());
    } catch (const std::exception&) {
      return InvalidModel("tensor '" + p.name() + "': bad external_data value for '" + kv.key() + "'");
    }
  }
  if (location.empty()) return InvalidModel("tensor '" + p.name() + "': external data has no location");
  if (location.find("..") != std::string::npos || location[0] == '/')
    return InvalidModel("tensor '" + p.name() + "': external data location '" + location +
                        "' must be a relative path inside the model's folder");
  if (dt == DType::kString) return Unsupported("tensor '" + p.name() + "': external data for string tensors");
  const std::string path = base_dir.empty() ? location : base_dir + "/" + location;
  ASSIGN_OR_RETURN(auto file, MappedFile::Open(path));
  const int64_t need = NumElements(shape) * static_cast<int64_t>(DTypeSize(dt));
  if (length < 0) length = need;
  if (offset < 0 || length != need || static_cast<uint64_t>(offset + length) > file->size())
    return InvalidModel("tensor '" + p.name() + "': external data (offset " + std::to_string(offset) + ", length " +
                        std::to_string(length) + ") does not fit file '" + path + "' of " +
                        std::to_string(file->size()) + " bytes holding " + std::to_string(need) + " bytes");
  const unsigned char* ptr = file->data() + offset;
  if (reinterpret_cast<uintptr_t>(ptr) % DTypeSize(dt) != 0) {
    ASSIGN_OR_RETURN(Tensor t, Tensor::Create(dt, std::move(shape)));
    std::memcpy(t.raw(), ptr, static_cast<size_t>(need));
    return t;
  }
  return Tensor::Borrow(dt, std::move(shape), ptr, std::move(file));
}

template <typename Dst, typename Src>
void CopyConvert(Tensor& t, const Src& field) {
  Dst* d = t.data<Dst>();
  for (int i = 0; i < field.size(); ++i) d[i] = static_cast<Dst>(field.Get(i));
}

}  // namespace

ir::TypeInfo TypeFromProto(const onnx::TypeProto& tp) {
  ir::TypeInfo t;
  auto shape_of = [](const onnx::TensorShapeProto& sp) {
    std::vector<ir::Dim> dims;
    for (const auto& d : sp.dim()) {
      if (d.has_dim_value()) dims.push_back(ir::Dim::Known(d.dim_value()));
      else if (d.has_dim_param()) dims.push_back(ir::Dim::Symbol(d.dim_param()));
      else dims.push_back(ir::Dim{});
    }
    return dims;
  };
  switch (tp.value_case()) {
    case onnx::TypeProto::kTensorType:
      t.kind = ir::TypeInfo::Kind::kTensor;
      t.elem_type = static_cast<DType>(tp.tensor_type().elem_type());
      if (tp.tensor_type().has_shape()) t.shape = shape_of(tp.tensor_type().shape());
      break;
    case onnx::TypeProto::kSparseTensorType:
      t.kind = ir::TypeInfo::Kind::kSparseTensor;
      t.elem_type = static_cast<DType>(tp.sparse_tensor_type().elem_type());
      break;
    case onnx::TypeProto::kSequenceType:
      t.kind = ir::TypeInfo::Kind::kSequence;
      t.inner = std::make_shared<ir::TypeInfo>(TypeFromProto(tp.sequence_type().elem_type()));
      break;
    case onnx::TypeProto::kOptionalType:
      t.kind = ir::TypeInfo::Kind::kOptional;
      t.inner = std::make_shared<ir::TypeInfo>(TypeFromProto(tp.optional_type().elem_type()));
      break;
    case onnx::TypeProto::kMapType:
      t.kind = ir::TypeInfo::Kind::kMap;
      break;
    default:
      break;
  }
  return t;
}

bool PayloadNeedsCopy(const onnx::TensorProto& p, const void* data) {
  const int dt = p.data_type();
  if (dt <= 0 || dt > 16 || dt == onnx::TensorProto::STRING || p.data_location() == onnx::TensorProto::EXTERNAL)
    return false;
  return reinterpret_cast<uintptr_t>(data) % DTypeSize(static_cast<DType>(dt)) != 0;
}

Result<Tensor> TensorFromProto(const onnx::TensorProto& p, const std::shared_ptr<const void>& owner,
                               const std::string& base_dir, const LiftedPayload* payload, PayloadStats* stats) {
  const int dt_raw = p.data_type();
  if (dt_raw <= 0 || dt_raw > 16)
    return Unsupported("tensor '" + p.name() + "': element type " + std::to_string(dt_raw) + " is not supported");
  const DType dt = static_cast<DType>(dt_raw);
  if (p.has_segment()) return Unsupported("tensor '" + p.name() + "': segmented tensors");
  Shape shape(p.dims().begin(), p.dims().end());
  for (int64_t d : shape)
    if (d < 0) return InvalidModel("tensor '" + p.name() + "' has a negative dimension " + ShapeToString(shape));
  if (p.data_location() == onnx::TensorProto::EXTERNAL) return FromExternal(p, dt, std::move(shape), base_dir);

  // Validates the shape (overflow, size limits) without caring for dtype or allocating.
  ASSIGN_OR_RETURN(const size_t n_bytes, Tensor::CheckedByteSize(DType::kUInt8, shape));
  const auto n = static_cast<int64_t>(n_bytes);

  if (dt == DType::kString) {
    RETURN_IF_ERROR(CheckCount(p, p.string_data_size(), n, "string_data"));
    ASSIGN_OR_RETURN(Tensor t, Tensor::Create(dt, shape));
    for (int64_t i = 0; i < n; ++i) t.data<std::string>()[i] = p.string_data(static_cast<int>(i));
    return t;
  }

  const size_t elem = DTypeSize(dt);
  if (payload || p.has_raw_data()) {
    const void* raw = payload ? static_cast<const void*>(payload->data) : p.raw_data().data();
    const size_t raw_size = payload ? payload->size : p.raw_data().size();
    if (raw_size != static_cast<size_t>(n) * elem)
      return InvalidModel("tensor '" + p.name() + "': raw_data has " + std::to_string(raw_size) +
                          " bytes but dims " + ShapeToString(shape) + " of " + std::string(DTypeName(dt)) + " need " +
                          std::to_string(static_cast<size_t>(n) * elem));
    const bool aligned = reinterpret_cast<uintptr_t>(raw) % elem == 0;
    if (payload && payload->file && aligned && n > 0) {
      if (stats) {
        ++stats->borrowed;
        stats->borrowed_bytes += raw_size;
      }
      return Tensor::Borrow(dt, std::move(shape), raw, PageRangeOwner(payload->file, raw, raw_size));
    }
    if (!payload && owner && aligned && n > 0) return Tensor::Borrow(dt, std::move(shape), raw, owner);
    if (payload) {
      if (stats) {
        ++stats->copied;
        stats->copied_bytes += raw_size;
      }
      unsigned char* dst = payload->arena && n > 0 ? payload->arena->Take(raw_size) : nullptr;
      if (dst) {
        if (payload->file) CopyDroppingSource(dst, payload->data, raw_size);  // resident once: in the arena
        else std::memcpy(dst, raw, raw_size);
        return Tensor::Borrow(dt, std::move(shape), dst, PageRangeOwner(payload->arena, dst, raw_size));
      }
    }
    ASSIGN_OR_RETURN(Tensor t, Tensor::CreateUninitialized(dt, shape));
    if (payload && payload->file) CopyDroppingSource(t.raw(), payload->data, raw_size);
    else if (n > 0) std::memcpy(t.raw(), raw, raw_size);
    return t;
  }

  ASSIGN_OR_RETURN(Tensor t, Tensor::Create(dt, shape));
  switch (dt) {
    case DType::kFloat:
      RETURN_IF_ERROR(CheckCount(p, p.float_data_size(), n, "float_data"));
      if (n) std::memcpy(t.raw(), p.float_data().data(), t.nbytes());
      break;
    case DType::kComplex64:
      RETURN_IF_ERROR(CheckCount(p, p.float_data_size(), 2 * n, "float_data"));
      if (n) std::memcpy(t.raw(), p.float_data().data(), t.nbytes());
      break;
    case DType::kDouble:
      RETURN_IF_ERROR(CheckCount(p, p.double_data_size(), n, "double_data"));
      if (n) std::memcpy(t.raw(), p.double_data().data(), t.nbytes());
      break;
    case DType::kComplex128:
      RETURN_IF_ERROR(CheckCount(p, p.double_data_size(), 2 * n, "double_data"));
      if (n) std::memcpy(t.raw(), p.double_data().data(), t.nbytes());
      break;
    case DType::kInt64:
      RETURN_IF_ERROR(CheckCount(p, p.int64_data_size(), n, "int64_data"));
      if (n) std::memcpy(t.raw(), p.int64_data().data(), t.nbytes());
      break;
    case DType::kUInt32: RETURN_IF_ERROR(CheckCount(p, p.uint64_data_size(), n, "uint64_data")); CopyConvert<uint32_t>(t, p.uint64_data()); break;
    case DType::kUInt64: RETURN_IF_ERROR(CheckCount(p, p.uint64_data_size(), n, "uint64_data")); CopyConvert<uint64_t>(t, p.uint64_data()); break;
    case DType::kInt32: RETURN_IF_ERROR(CheckCount(p, p.int32_data_size(), n, "int32_data")); CopyConvert<int32_t>(t, p.int32_data()); break;
    case DType::kInt16: RETURN_IF_ERROR(CheckCount(p, p.int32_data_size(), n, "int32_data")); CopyConvert<int16_t>(t, p.int32_data()); break;
    case DType::kInt8: RETURN_IF_ERROR(CheckCount(p, p.int32_data_size(), n, "int32_data")); CopyConvert<int8_t>(t, p.int32_data()); break;
    case DType::kUInt16: RETURN_IF_ERROR(CheckCount(p, p.int32_data_size(), n, "int32_data")); CopyConvert<uint16_t>(t, p.int32_data()); break;
    case DType::kUInt8: RETURN_IF_ERROR(CheckCount(p, p.int32_data_size(), n, "int32_data")); CopyConvert<uint8_t>(t, p.int32_data()); break;
    case DType::kBool: {
      RETURN_IF_ERROR(CheckCount(p, p.int32_data_size(), n, "int32_data"));
      for (int64_t i = 0; i < n; ++i) t.data<bool>()[i] = p.int32_data(static_cast<int>(i)) != 0;
      break;
    }
    case DType::kFloat16:
    case DType::kBFloat16:
      RETURN_IF_ERROR(CheckCount(p, p.int32_data_size(), n, "int32_data"));
      CopyConvert<uint16_t>(t, p.int32_data());
      break;
    default:
      return Unsupported("tensor '" + p.name() + "': dtype " + std::string(DTypeName(dt)));
  }
  return t;
}

void TensorToProto(const Tensor& t, const std::string& name, onnx::TensorProto* proto) {
  proto->Clear();
  proto->set_name(name);
  proto->set_data_type(static_cast<int>(t.dtype()));
  for (int64_t d : t.shape()) proto->add_dims(d);
  if (t.dtype() == DType::kString) {
    for (int64_t i = 0; i < t.numel(); ++i) proto->add_string_data(t.data<std::string>()[i]);
  } else {
    proto->set_raw_data(t.raw(), t.nbytes());
  }
}

namespace {

Result<Value> ValueFromSequenceProto(const onnx::SequenceProto& sp, const std::string& path) {
  std::vector<Tensor> items;
  DType elem = DType::kUndefined;
  if (sp.elem_type() != onnx::SequenceProto::TENSOR && sp.elem_type() != onnx::SequenceProto::UNDEFINED)
    return Unsupported("'" + path + "': sequences of non-tensor elements");
  for (const auto& tp : sp.tensor_values()) {
    ASSIGN_OR_RETURN(Tensor t, TensorFromProto(tp, nullptr, ""));
    elem = t.dtype();
    items.push_back(std::move(t));
  }
  return Value::Sequence(std::move(items), elem);
}

Result<Value> ValueFromOptionalProto(const onnx::OptionalProto& op, const std::string& path) {
  switch (op.elem_type()) {
    case onnx::OptionalProto::TENSOR:
      if (!op.has_tensor_value()) return Value::None();
      {
        ASSIGN_OR_RETURN(Tensor t, TensorFromProto(op.tensor_value(), nullptr, ""));
        return Value(std::move(t));
      }
    case onnx::OptionalProto::SEQUENCE:
      if (!op.has_sequence_value()) return Value::None();
      return ValueFromSequenceProto(op.sequence_value(), path);
    case onnx::OptionalProto::UNDEFINED:
      return Value::None();
    default:
      return Unsupported("'" + path + "': optional of this element type");
  }
}

}  // namespace

Result<Value> ParseValue(const std::string& bytes, const ir::TypeInfo& expected, const std::string& what) {
  auto bad = [&](const char* type) {
    return InvalidArgument("'" + what + "' is not a valid serialized " + std::string(type));
  };
  switch (expected.kind) {
    case ir::TypeInfo::Kind::kSequence: {
      onnx::SequenceProto sp;
      if (!sp.ParseFromString(bytes)) return bad("onnx.SequenceProto");
      return ValueFromSequenceProto(sp, what);
    }
    case ir::TypeInfo::Kind::kOptional: {
      onnx::OptionalProto op;
      if (!op.ParseFromString(bytes)) return bad("onnx.OptionalProto");
      return ValueFromOptionalProto(op, what);
    }
    default: {
      onnx::TensorProto tp;
      if (!tp.ParseFromString(bytes)) return bad("onnx.TensorProto");
      ASSIGN_OR_RETURN(Tensor t, TensorFromProto(tp, nullptr, ""));
      // ONNX <= 1.13 test data stores bfloat16 tensors as uint16 (same bits): reinterpret them.
      if (expected.kind == ir::TypeInfo::Kind::kTensor && expected.elem_type == DType::kBFloat16 &&
          t.dtype() == DType::kUInt16) {
        auto holder = std::make_shared<Tensor>(t);
        return Value(Tensor::Borrow(DType::kBFloat16, t.shape(), holder->raw(), holder));
      }
      return Value(std::move(t));
    }
  }
}

Result<Value> ReadValueFile(const std::string& path, const ir::TypeInfo& expected) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return IoError("cannot open input file '" + path + "'");
  std::stringstream ss;
  ss << in.rdbuf();
  return ParseValue(ss.str(), expected, path);
}

Status WriteValueFile(const std::string& path, const Value& v, const ir::TypeInfo& declared, const std::string& name) {
  std::string bytes;
  auto fill_sequence = [&](onnx::SequenceProto* sp) {
    sp->set_name(name);
    sp->set_elem_type(onnx::SequenceProto::TENSOR);
    for (const Tensor& t : v.sequence()) TensorToProto(t, "", sp->add_tensor_values());
  };
  if (declared.kind == ir::TypeInfo::Kind::kOptional) {
    onnx::OptionalProto op;
    op.set_name(name);
    const bool inner_seq = declared.inner && declared.inner->kind == ir::TypeInfo::Kind::kSequence;
    op.set_elem_type(inner_seq ? onnx::OptionalProto::SEQUENCE : onnx::OptionalProto::TENSOR);
    if (v.is_tensor()) TensorToProto(v.tensor(), "", op.mutable_tensor_value());
    if (v.is_sequence()) fill_sequence(op.mutable_sequence_value());
    bytes = op.SerializeAsString();
  } else if (v.is_sequence()) {
    onnx::SequenceProto sp;
    fill_sequence(&sp);
    bytes = sp.SerializeAsString();
  } else if (v.is_tensor()) {
    onnx::TensorProto tp;
    TensorToProto(v.tensor(), name, &tp);
    bytes = tp.SerializeAsString();
  } else {
    return InvalidArgument("output '" + name + "' is empty and not declared optional");
  }
  std::ofstream out(path, std::ios::binary);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  if (!out) return IoError("cannot write '" + path + "'");
  return Status::Ok();
}

}  // namespace strata::onnx_io
