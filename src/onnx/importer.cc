#include "onnx/importer.h"

#include <fcntl.h>
#include <google/protobuf/io/coded_stream.h>
#include <google/protobuf/io/zero_copy_stream_impl.h>
#include <google/protobuf/io/zero_copy_stream_impl_lite.h>
#include <onnx/defs/schema.h>
#include <onnx/onnx_pb.h>
#include <onnx/shape_inference/implementation.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <climits>
#include <cstring>
#include <functional>
#include <optional>
#include <queue>
#include <set>
#include <unordered_map>
#include <unordered_set>

#include "core/mapped_file.h"
#include "onnx/payload_memory.h"
#include "onnx/tensor_proto.h"
#include "onnx/wire_scan.h"

namespace strata::onnx_io {
namespace {

constexpr int64_t kMaxIrVersion = 10;
constexpr int64_t kMaxOnnxOpset = 18;
constexpr size_t kBorrowFromProtoBytes = 1 << 16;

std::string NormalizeDomain(const std::string& d) { return d.empty() || d == "ai.onnx" ? std::string(ir::kOnnxDomain) : d; }

struct Converter {
  std::shared_ptr<const void> owner;  // the parsed proto, for tensors that borrow from it
  bool borrow_small = true;           // false: copy payloads under kBorrowFromProtoBytes
  std::string base_dir;
  // Payloads the wire scan lifted out of the top-level graph's initializers (by index), and where.
  const StrippedModel* lifted = nullptr;
  const unsigned char* lifted_base = nullptr;
  std::shared_ptr<const MappedFile> file;  // null: lifted payloads are copied
  PayloadStats stats;

  // Small tensors left in the proto (Constant values, subgraph initializers) are copied so the proto
  // can be freed once the IR is built; large ones borrow from it rather than be resident twice.
  std::shared_ptr<const void> OwnerFor(const onnx::TensorProto& t) const {
    return borrow_small || t.raw_data().size() >= kBorrowFromProtoBytes ? owner : nullptr;
  }

  Result<ir::Attribute> ConvertAttribute(const onnx::AttributeProto& a) {
    ir::Attribute out;
    out.name = a.name();
    using T = onnx::AttributeProto;
    auto type = a.type();
    if (type == T::UNDEFINED) {  // very old models leave the type out; infer from the populated field
      if (a.has_f()) type = T::FLOAT;
      else if (a.has_i()) type = T::INT;
      else if (a.has_s()) type = T::STRING;
      else if (a.has_t()) type = T::TENSOR;
      else if (a.has_g()) type = T::GRAPH;
      else if (a.floats_size()) type = T::FLOATS;
      else if (a.ints_size()) type = T::INTS;
      else if (a.strings_size()) type = T::STRINGS;
      else if (a.tensors_size()) type = T::TENSORS;
      else if (a.graphs_size()) type = T::GRAPHS;
    }
    switch (type) {
      case T::FLOAT: out.type = ir::Attribute::Type::kFloat; out.f = a.f(); break;
      case T::INT: out.type = ir::Attribute::Type::kInt; out.i = a.i(); break;
      case T::STRING: out.type = ir::Attribute::Type::kString; out.s = a.s(); break;
      case T::TENSOR: {
        out.type = ir::Attribute::Type::kTensor;
        ASSIGN_OR_RETURN(out.t, TensorFromProto(a.t(), OwnerFor(a.t()), base_dir));
        break;
      }
      case T::GRAPH: {
        out.type = ir::Attribute::Type::kGraph;
        ASSIGN_OR_RETURN(out.g, ConvertGraph(a.g()));
        break;
      }
      case T::FLOATS: out.type = ir::Attribute::Type::kFloats; out.floats.assign(a.floats().begin(), a.floats().end()); break;
      case T::INTS: out.type = ir::Attribute::Type::kInts; out.ints.assign(a.ints().begin(), a.ints().end()); break;
      case T::STRINGS: out.type = ir::Attribute::Type::kStrings; out.strings.assign(a.strings().begin(), a.strings().end()); break;
      case T::TENSORS:
        out.type = ir::Attribute::Type::kTensors;
        for (const auto& t : a.tensors()) {
          ASSIGN_OR_RETURN(Tensor conv, TensorFromProto(t, OwnerFor(t), base_dir));
          out.tensors.push_back(std::move(conv));
        }
        break;
      case T::GRAPHS:
        out.type = ir::Attribute::Type::kGraphs;
        for (const auto& g : a.graphs()) {
          ASSIGN_OR_RETURN(auto conv, ConvertGraph(g));
          out.graphs.push_back(std::move(conv));
        }
        break;
      case T::TYPE_PROTO:
        out.type = ir::Attribute::Type::kTypeProto;
        out.type_proto = TypeFromProto(a.tp());
        break;
      case T::SPARSE_TENSOR:
        out.type = ir::Attribute::Type::kSparseTensor;
        break;
      default:
        return Unsupported("attribute '" + a.name() + "' has unsupported type " + std::to_string(a.type()));
    }
    return out;
  }

  Result<std::shared_ptr<ir::Graph>> ConvertGraph(const onnx::GraphProto& gp, bool top_level = false) {
    auto g = std::make_shared<ir::Graph>();
    g->name = gp.name();
    const bool use_lifted = top_level && lifted;
    if (use_lifted && lifted->initializer_payloads.size() != static_cast<size_t>(gp.initializer_size()))
      return Internal("wire scan found " + std::to_string(lifted->initializer_payloads.size()) +
                      " initializers but protobuf parsed " + std::to_string(gp.initializer_size()));
    std::shared_ptr<CopyArena> arena;
    if (use_lifted) {
      // Misaligned payloads are copied; put them all in one arena.
      size_t copy_bytes = 0;
      for (int i = 0; i < gp.initializer_size(); ++i)
        if (const auto& span = lifted->initializer_payloads[static_cast<size_t>(i)];
            span && PayloadNeedsCopy(gp.initializer(i), lifted_base + span->offset))
          copy_bytes += ArenaPieceSize(static_cast<size_t>(span->size));
      if (!file) copy_bytes = 0;  // from a caller's buffer every payload is copied: one tensor each
      ASSIGN_OR_RETURN(arena, CopyArena::Create(copy_bytes));
    }
    for (int i = 0; i < gp.initializer_size(); ++i) {
      const onnx::TensorProto& t = gp.initializer(i);
      if (t.name().empty()) return InvalidModel("graph '" + gp.name() + "' has an initializer without a name");
      LiftedPayload payload;
      const LiftedPayload* pp = nullptr;
      if (use_lifted && lifted->initializer_payloads[static_cast<size_t>(i)]) {
        const PayloadSpan& span = *lifted->initializer_payloads[static_cast<size_t>(i)];
        payload = LiftedPayload{lifted_base + span.offset, static_cast<size_t>(span.size), file, arena};
        pp = &payload;
      }
      ASSIGN_OR_RETURN(Tensor conv, TensorFromProto(t, OwnerFor(t), base_dir, pp, &stats));
      g->initializers[t.name()] = std::move(conv);
    }
    if (gp.sparse_initializer_size() > 0)
      return Unsupported("graph '" + gp.name() + "' uses sparse initializers, which Strata does not support");
    auto convert_vi = [](const onnx::ValueInfoProto& vi) { return ir::ValueInfo{vi.name(), TypeFromProto(vi.type())}; };
    for (const auto& vi : gp.input()) g->inputs.push_back(convert_vi(vi));
    for (const auto& vi : gp.output()) g->outputs.push_back(convert_vi(vi));
    for (const auto& vi : gp.value_info()) g->value_info.push_back(convert_vi(vi));
    g->nodes.reserve(static_cast<size_t>(gp.node_size()));
    for (const auto& np : gp.node()) {
      ir::Node n;
      n.name = np.name();
      n.op_type = np.op_type();
      n.domain = NormalizeDomain(np.domain());
      n.inputs.assign(np.input().begin(), np.input().end());
      n.outputs.assign(np.output().begin(), np.output().end());
      for (const auto& a : np.attribute()) {
        auto attr = ConvertAttribute(a);
        if (!attr.ok()) return attr.status().WithContext(n.Describe() + ": ");
        n.attributes.push_back(std::move(attr).value());
      }
      g->nodes.push_back(std::move(n));
    }
    return g;
  }
};

// The values one graph defines, chained to its enclosing graphs' for a subgraph's captures.
struct Scope {
  std::unordered_set<std::string> given;                     // graph inputs and initializers
  std::unordered_map<std::string, size_t> first_producer;    // node output -> index of the first node writing it
  const Scope* enclosing = nullptr;

  bool Defines(const std::string& name) const { return given.count(name) || first_producer.count(name); }
  bool Visible(const std::string& name) const {
    for (const Scope* s = this; s; s = s->enclosing)
      if (s->Defines(name)) return true;
    return false;
  }
};

// Walks back from a node Kahn's algorithm could not place, through producers that were not placed
// either: every such node has one, so the walk must come round to a node it has already seen.
std::string DescribeCycle(const std::vector<ir::Node>& nodes, const std::vector<std::vector<size_t>>& producers,
                          const std::vector<bool>& placed) {
  constexpr size_t kMaxNodesShown = 12;
  size_t start = 0;
  while (placed[start]) ++start;
  std::vector<size_t> path;
  std::vector<int64_t> position(nodes.size(), -1);
  size_t current = start;
  while (position[current] < 0) {
    position[current] = static_cast<int64_t>(path.size());
    path.push_back(current);
    for (size_t p : producers[current])
      if (!placed[p]) { current = p; break; }
  }
  std::vector<size_t> cycle(path.begin() + position[current], path.end());
  std::reverse(cycle.begin(), cycle.end());  // the walk went against the data flow
  std::rotate(cycle.begin(), std::min_element(cycle.begin(), cycle.end()), cycle.end());  // read in file order
  std::string text;
  for (size_t k = 0; k < cycle.size() && k < kMaxNodesShown; ++k) text += nodes[cycle[k]].Describe() + " -> ";
  if (cycle.size() > kMaxNodesShown) text += "... (" + std::to_string(cycle.size()) + " nodes in all) -> ";
  return text + nodes[cycle.front()].Describe();
}

// ONNX asks for nodes in topological order, but some exporters and hand-edited models break it and
// ONNX Runtime loads them anyway; the passes and the compiler rely on the order, so it is restored
// here. Taking the lowest original index among the ready nodes keeps a graph already in order exactly
// as it was. A subgraph's reads from enclosing scopes count as inputs of the node owning it, since the
// compiler builds the subgraph at that node and captures the values then. Returns the names `g` (with
// its own subgraphs) reads from enclosing scopes.
Result<std::set<std::string>> SortNodesTopologically(ir::Graph& g, const Scope* enclosing) {
  Scope here;
  here.enclosing = enclosing;
  for (const auto& vi : g.inputs) here.given.insert(vi.name);
  for (const auto& [name, tensor] : g.initializers) here.given.insert(name);
  const size_t n = g.nodes.size();
  for (size_t i = 0; i < n; ++i)
    for (const auto& out : g.nodes[i].outputs)
      if (!out.empty()) here.first_producer.emplace(out, i);

  std::vector<std::vector<size_t>> producers(n), consumers(n);
  std::set<std::string> read_from_enclosing;
  // Inputs and initializers win over a node output of the same name, so that the compiler, not a
  // spurious cycle, reports the value written twice; a local node output shadows an enclosing value.
  auto depend = [&](size_t consumer, const std::string& name) {
    if (name.empty() || here.given.count(name)) return true;
    if (auto it = here.first_producer.find(name); it != here.first_producer.end()) {
      producers[consumer].push_back(it->second);
      consumers[it->second].push_back(consumer);
      return true;
    }
    if (enclosing && enclosing->Visible(name)) {
      read_from_enclosing.insert(name);
      return true;
    }
    return false;
  };
  for (size_t i = 0; i < n; ++i) {
    const ir::Node& node = g.nodes[i];
    for (const auto& name : node.inputs)
      if (!depend(i, name))
        return InvalidModel("graph '" + g.name + "': " + node.Describe() + ": input '" + name +
                            "' is not produced by any node and is not a graph input or initializer" +
                            (enclosing ? " here or in an enclosing graph" : ""));
    for (const auto& attr : node.attributes) {
      std::vector<ir::Graph*> subgraphs;
      if (attr.type == ir::Attribute::Type::kGraph && attr.g) subgraphs.push_back(attr.g.get());
      if (attr.type == ir::Attribute::Type::kGraphs)
        for (const auto& sub : attr.graphs)
          if (sub) subgraphs.push_back(sub.get());
      for (ir::Graph* sub : subgraphs) {
        auto captured = SortNodesTopologically(*sub, &here);
        if (!captured.ok()) return captured.status().WithContext(node.Describe() + " attribute '" + attr.name + "': ");
        // A subgraph output that nothing defines is left for the compiler to report.
        for (const auto& name : *captured) depend(i, name);
      }
    }
  }
  for (const auto& vi : g.outputs)
    if (!here.Defines(vi.name) && enclosing && enclosing->Visible(vi.name)) read_from_enclosing.insert(vi.name);

  std::vector<size_t> unplaced_producers(n);
  std::priority_queue<size_t, std::vector<size_t>, std::greater<>> ready;
  for (size_t i = 0; i < n; ++i)
    if ((unplaced_producers[i] = producers[i].size()) == 0) ready.push(i);
  std::vector<size_t> order;
  order.reserve(n);
  std::vector<bool> placed(n, false);
  while (!ready.empty()) {
    const size_t i = ready.top();
    ready.pop();
    order.push_back(i);
    placed[i] = true;
    for (size_t c : consumers[i])
      if (--unplaced_producers[c] == 0) ready.push(c);
  }
  if (order.size() < n)
    return InvalidModel("graph '" + g.name + "' has a cycle, so its nodes have no valid order: " +
                        DescribeCycle(g.nodes, producers, placed));
  bool already_in_order = true;
  for (size_t k = 0; k < n; ++k) already_in_order &= order[k] == k;
  if (!already_in_order) {
    std::vector<ir::Node> sorted;
    sorted.reserve(n);
    for (size_t i : order) sorted.push_back(std::move(g.nodes[i]));
    g.nodes = std::move(sorted);
  }
  return read_from_enclosing;
}

// ONNX's inference is a reference for value types. It must never make a loadable model fail,
// and it only knows the opsets of the ONNX release Debian ships.
void RunOnnxShapeInference(onnx::ModelProto& mp) {
  const auto& map = onnx::OpSchemaRegistry::DomainToVersionRange::Instance().Map();
  for (const auto& imp : mp.opset_import()) {
    auto it = map.find(imp.domain());
    if (it == map.end() || imp.version() > it->second.second) return;
  }
  try {
    onnx::ShapeInferenceOptions opts(/*check_type=*/false, /*strict_mode=*/0, /*data_prop=*/true);
    onnx::shape_inference::InferShapes(mp, onnx::OpSchemaRegistry::Instance(), opts);
  } catch (const std::exception&) {
    // Leave types as the file declared them.
  }
}

// Where the parsed proto's weights are: inside it (`lifted` null) or lifted out of `base`.
struct Source {
  const StrippedModel* lifted = nullptr;
  const unsigned char* base = nullptr;
  std::shared_ptr<const MappedFile> file;
};

Result<ir::Model> Convert(std::shared_ptr<onnx::ModelProto> mp, const std::string& path, const ImportOptions& options,
                          const Source& src) {
  if (!mp->has_graph()) return InvalidModel("'" + path + "' has no graph: not an ONNX model");
  if (mp->ir_version() > kMaxIrVersion)
    return Unsupported("'" + path + "' uses ONNX IR version " + std::to_string(mp->ir_version()) +
                       "; Strata supports up to " + std::to_string(kMaxIrVersion));
  ir::Model m;
  m.ir_version = mp->ir_version();
  m.producer_name = mp->producer_name();
  m.producer_version = mp->producer_version();
  m.source_path = path;
  for (const auto& imp : mp->opset_import()) m.opset_imports[NormalizeDomain(imp.domain())] = imp.version();
  if (m.opset_imports.empty()) m.opset_imports[std::string(ir::kOnnxDomain)] = 1;  // IR v1-2 had no imports
  const int64_t onnx_opset = m.OpsetFor(ir::kOnnxDomain);
  if (onnx_opset > kMaxOnnxOpset)
    return Unsupported("'" + path + "' imports ai.onnx opset " + std::to_string(onnx_opset) + "; Strata supports 1 to " +
                       std::to_string(kMaxOnnxOpset));
  if (mp->functions_size() > 0) {
    std::set<std::string> used;
    for (const auto& n : mp->graph().node()) used.insert(n.domain() + ":" + n.op_type());
    for (const auto& f : mp->functions())
      if (used.count(f.domain() + ":" + f.name()))
        return Unsupported("'" + path + "' calls model-local function " + f.domain() + ":" + f.name() +
                           ", which Strata does not support yet");
  }
  if (options.run_onnx_shape_inference) RunOnnxShapeInference(*mp);

  Converter conv;
  // With the weights lifted out, what is left in the proto is small: copy it, so the proto can be
  // freed as soon as the IR is built instead of living as long as the model.
  conv.owner = mp;
  conv.borrow_small = !src.lifted;
  conv.lifted = src.lifted;
  conv.lifted_base = src.base;
  conv.file = src.file;
  const auto slash = path.find_last_of('/');
  conv.base_dir = slash == std::string::npos ? "." : path.substr(0, slash);
  ASSIGN_OR_RETURN(m.graph, conv.ConvertGraph(mp->graph(), /*top_level=*/true));
  RETURN_IF_ERROR(SortNodesTopologically(*m.graph, /*enclosing=*/nullptr).status());
  // With the weights lifted, the proto lives on only while a large tensor borrows from it.
  if (!src.lifted) m.backing.push_back(std::move(mp));
  if (options.stats) {
    options.stats->borrowed = conv.stats.borrowed;
    options.stats->copied = conv.stats.copied;
    options.stats->borrowed_bytes = conv.stats.borrowed_bytes;
    options.stats->copied_bytes = conv.stats.copied_bytes;
  }
  return m;
}

Result<std::shared_ptr<onnx::ModelProto>> Parse(const void* data, size_t size, const std::string& what) {
  if (size > static_cast<size_t>(INT_MAX))
    return Unsupported(what + " needs " + std::to_string(size) +
                       " bytes parsed by protobuf, which is limited to 2 GiB (store the weights as external data)");
  auto mp = std::make_shared<onnx::ModelProto>();
  google::protobuf::io::ArrayInputStream raw(data, static_cast<int>(size));
  google::protobuf::io::CodedInputStream coded(&raw);
  coded.SetTotalBytesLimit(INT_MAX);
  if (!mp->ParseFromCodedStream(&coded) || !coded.ConsumedEntireMessage())
    return InvalidModel(what + " is not a valid ONNX model (protobuf parse failed: truncated or corrupt)");
  return mp;
}

// Streams a file through protobuf, so it is never resident twice (mapped and parsed) while parsing.
Result<std::shared_ptr<onnx::ModelProto>> ParseFile(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return IoError("cannot open model '" + path + "': " + std::strerror(errno));
  auto mp = std::make_shared<onnx::ModelProto>();
  bool parsed;
  int read_errno;
  {
    google::protobuf::io::FileInputStream raw(fd);
    google::protobuf::io::CodedInputStream coded(&raw);
    coded.SetTotalBytesLimit(INT_MAX);
    parsed = mp->ParseFromCodedStream(&coded) && coded.ConsumedEntireMessage();
    read_errno = raw.GetErrno();  // a failed read looks like the end of the input to the parser
  }
  ::close(fd);
  if (read_errno != 0) return IoError("cannot read model '" + path + "': " + std::strerror(read_errno));
  if (!parsed) return InvalidModel("'" + path + "' is not a valid ONNX model (protobuf parse failed: truncated or corrupt)");
  return mp;
}

std::optional<StrippedModel> MaybeStrip(const unsigned char* data, size_t size, const ImportOptions& options) {
  if (!options.lift_payloads || options.run_onnx_shape_inference) return std::nullopt;
  return StripInitializerPayloads(data, size);
}

// Parses what the wire scan left and converts it, taking the payloads from `data`.
Result<ir::Model> ImportStripped(StrippedModel stripped, const unsigned char* data, std::shared_ptr<const MappedFile> file,
                                 const std::string& path, const std::string& what, const ImportOptions& options) {
  std::shared_ptr<onnx::ModelProto> mp;
  {
    std::string skeleton = std::move(stripped.skeleton);
    if (options.stats) *options.stats = LoadStats{true, skeleton.size(), 0, 0, 0, 0};
    ASSIGN_OR_RETURN(mp, Parse(skeleton.data(), skeleton.size(), what));
  }
  return Convert(std::move(mp), path, options, Source{&stripped, data, std::move(file)});
}

}  // namespace

Result<ir::Model> LoadModel(const std::string& path, const ImportOptions& options) {
  auto mapped = MappedFile::Open(path);
  if (!mapped.ok()) {  // a pipe, say: stream it (and report a missing file as before)
    ASSIGN_OR_RETURN(auto mp, ParseFile(path));
    if (options.stats) *options.stats = LoadStats{};
    return Convert(std::move(mp), path, options, Source{});
  }
  std::shared_ptr<MappedFile> file = std::move(mapped).value();
  if (auto stripped = MaybeStrip(file->data(), file->size(), options)) {
    const unsigned char* data = file->data();
    return ImportStripped(std::move(*stripped), data, std::move(file), path, "'" + path + "'", options);
  }
  // The scan declined (or was turned off): protobuf parses the file whole, as it always did.
  const uint64_t size = file->size();
  file.reset();
  ASSIGN_OR_RETURN(auto mp, ParseFile(path));
  if (options.stats) *options.stats = LoadStats{false, size, 0, 0, 0, 0};
  return Convert(std::move(mp), path, options, Source{});
}

Result<ir::Model> LoadModelFromBytes(const void* data, size_t size, const ImportOptions& options) {
  const auto* bytes = static_cast<const unsigned char*>(data);
  if (auto stripped = MaybeStrip(bytes, size, options))
    return ImportStripped(std::move(*stripped), bytes, nullptr, "<memory>", "buffer", options);
  ASSIGN_OR_RETURN(auto mp, Parse(data, size, "buffer"));
  if (options.stats) *options.stats = LoadStats{false, size, 0, 0, 0, 0};
  return Convert(std::move(mp), "<memory>", options, Source{});
}

}  // namespace strata::onnx_io
