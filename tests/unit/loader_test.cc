// The zero-copy loader: initializer payloads lifted out of the protobuf parse, borrowed from the
// file's mapping when element-aligned and copied once otherwise; identical to the whole-file parse.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <random>
#include <sstream>

#include "onnx/importer.h"
#include "onnx/wire_scan.h"
#include "runtime/session.h"
#include "test_model_builder.h"

namespace strata {
namespace {

namespace fs = std::filesystem;
using testing::ModelBuilder;

class TempDir {
 public:
  TempDir() {
    path_ = fs::temp_directory_path() / ("strata_loader_test_" + std::to_string(::getpid()));
    fs::create_directories(path_);
  }
  ~TempDir() { fs::remove_all(path_); }
  std::string Write(const std::string& name, const std::string& bytes) const {
    const std::string p = (path_ / name).string();
    std::ofstream(p, std::ios::binary | std::ios::trunc) << bytes;
    return p;
  }
  const fs::path& path() const { return path_; }

 private:
  fs::path path_;
};

// The address ranges /proc/self/maps shows for `file`: an independent view of where it is mapped.
std::vector<std::pair<uintptr_t, uintptr_t>> MappingsOf(const std::string& file) {
  std::vector<std::pair<uintptr_t, uintptr_t>> out;
  std::ifstream maps("/proc/self/maps");
  const std::string canonical = fs::canonical(file).string();
  for (std::string line; std::getline(maps, line);) {
    if (line.size() < canonical.size() || line.compare(line.size() - canonical.size(), canonical.size(), canonical) != 0)
      continue;
    std::istringstream ss(line);
    std::string range;
    ss >> range;
    const size_t dash = range.find('-');
    out.emplace_back(std::stoull(range.substr(0, dash), nullptr, 16), std::stoull(range.substr(dash + 1), nullptr, 16));
  }
  return out;
}

bool InMapping(const void* p, const std::vector<std::pair<uintptr_t, uintptr_t>>& ranges) {
  const auto a = reinterpret_cast<uintptr_t>(p);
  for (auto [lo, hi] : ranges)
    if (a >= lo && a < hi) return true;
  return false;
}

std::vector<float> Ramp(size_t n, float scale) {
  std::vector<float> v(n);
  for (size_t i = 0; i < n; ++i) v[i] = scale * static_cast<float>(i) - 3.25f;
  return v;
}

onnx::TensorProto& RawInitializer(ModelBuilder& b, const std::string& name, int dtype, const std::vector<int64_t>& dims,
                                  const void* data, size_t bytes) {
  auto* t = b.proto().mutable_graph()->add_initializer();
  t->set_name(name);
  t->set_data_type(dtype);
  for (auto d : dims) t->add_dims(d);
  t->set_raw_data(data, bytes);
  return *t;
}

// A model whose single float initializer `name` (padded until its payload's file offset has
// `want` as remainder mod 4) is the graph's output.
std::string ModelWithPayloadAt(size_t want, const std::vector<float>& w, std::string* name_out) {
  for (int pad = 0; pad < 16; ++pad) {
    std::string name(static_cast<size_t>(pad) + 1, '_');
    name[0] = 'w';
    ModelBuilder b;
    b.Output(name, onnx::TensorProto::FLOAT, {static_cast<int64_t>(w.size())});
    RawInitializer(b, name, onnx::TensorProto::FLOAT, {static_cast<int64_t>(w.size())}, w.data(), w.size() * 4);
    const std::string bytes = b.Bytes();
    const size_t at = bytes.find(std::string(reinterpret_cast<const char*>(w.data()), w.size() * 4));
    if (at != std::string::npos && at % 4 == want) {
      *name_out = name;
      return bytes;
    }
  }
  ADD_FAILURE() << "could not place a payload at offset " << want << " mod 4";
  return {};
}

TEST(Loader, AlignedPayloadIsBorrowedFromTheMapping) {
  TempDir dir;
  const auto w = Ramp(5000, 0.5f);  // > 4 KiB, so whole pages lie inside it
  std::string name;
  const std::string path = dir.Write("aligned.onnx", ModelWithPayloadAt(0, w, &name));
  onnx_io::LoadStats stats;
  onnx_io::ImportOptions opts;
  opts.stats = &stats;
  auto m = onnx_io::LoadModel(path, opts);
  ASSERT_TRUE(m.ok()) << m.status().ToString();
  EXPECT_TRUE(stats.lifted);
  EXPECT_EQ(stats.borrowed, 1);
  EXPECT_EQ(stats.copied, 0);
  EXPECT_LT(stats.parsed_bytes, 200u);  // protobuf never saw the 20 KB payload
  const Tensor& t = m->graph->initializers.at(name);
  EXPECT_TRUE(InMapping(t.raw(), MappingsOf(path))) << "an aligned payload should be a view of the file";
  ASSERT_EQ(t.numel(), 5000);
  EXPECT_EQ(std::memcmp(t.raw(), w.data(), w.size() * 4), 0);
}

TEST(Loader, MisalignedPayloadIsCopiedToAnAlignedBuffer) {
  TempDir dir;
  const auto w = Ramp(5000, -0.25f);
  for (size_t rem : {1, 2, 3}) {
    std::string name;
    const std::string path = dir.Write("misaligned" + std::to_string(rem) + ".onnx", ModelWithPayloadAt(rem, w, &name));
    onnx_io::LoadStats stats;
    onnx_io::ImportOptions opts;
    opts.stats = &stats;
    auto m = onnx_io::LoadModel(path, opts);
    ASSERT_TRUE(m.ok()) << m.status().ToString();
    EXPECT_EQ(stats.borrowed, 0);
    EXPECT_EQ(stats.copied, 1);
    const Tensor& t = m->graph->initializers.at(name);
    EXPECT_FALSE(InMapping(t.raw(), MappingsOf(path)));
    EXPECT_EQ(reinterpret_cast<uintptr_t>(t.raw()) % 64, 0u) << "copies are 64-byte aligned like Tensor's own";
    EXPECT_EQ(std::memcmp(t.raw(), w.data(), w.size() * 4), 0) << "remainder " << rem;

    // Runs through a session too (the weight is the output, so the executor reads it).
    auto s = Session::Load(path);
    ASSERT_TRUE(s.ok()) << s.status().ToString();
    std::vector<Value> outs;
    ASSERT_TRUE((*s)->Run({}, outs).ok());
    EXPECT_EQ(std::memcmp(outs[0].tensor().raw(), w.data(), w.size() * 4), 0);
  }
}

// A Constant node whose float value is `values`, stored as raw_data.
void FloatConstant(ModelBuilder& b, const std::string& out, const std::vector<float>& values) {
  auto* a = b.Node("Constant", {}, {out}).add_attribute();
  a->set_name("value");
  a->set_type(onnx::AttributeProto::TENSOR);
  a->mutable_t()->set_data_type(onnx::TensorProto::FLOAT);
  a->mutable_t()->add_dims(static_cast<int64_t>(values.size()));
  a->mutable_t()->set_raw_data(values.data(), values.size() * 4);
  b.Output(out, onnx::TensorProto::FLOAT, {static_cast<int64_t>(values.size())});
}

// Many dtypes and layouts: raw payloads at every alignment, typed fields, strings, empty and
// scalar tensors, a subgraph initializer (old path), Constant nodes. `small` keeps every payload
// short, so the model is mostly structure (for corrupting what the wire scan reads).
ModelBuilder MixedModel(bool small = false) {
  ModelBuilder b;
  std::mt19937 rng(7);
  std::uniform_int_distribution<int> byte(0, 255);
  auto random_bytes = [&](size_t n) {
    std::string s(n, '\0');
    for (auto& c : s) c = static_cast<char>(byte(rng));
    return s;
  };
  struct Kind {
    int dtype;
    size_t elem;
  };
  const Kind kinds[] = {{onnx::TensorProto::FLOAT, 4},  {onnx::TensorProto::DOUBLE, 8}, {onnx::TensorProto::INT64, 8},
                        {onnx::TensorProto::INT32, 4},  {onnx::TensorProto::INT8, 1},   {onnx::TensorProto::UINT8, 1},
                        {onnx::TensorProto::FLOAT16, 2}, {onnx::TensorProto::BFLOAT16, 2}, {onnx::TensorProto::UINT16, 2}};
  int k = 0;
  for (const Kind& kind : kinds) {
    for (int64_t n : {int64_t{1}, int64_t{3}, small ? int64_t{5} : int64_t{1029}, small ? int64_t{9} : int64_t{3000}}) {
      std::string name = std::to_string(k++);
      name.insert(name.begin(), 't');
      name += std::string(static_cast<size_t>(k % 5), 'x');  // shifts later payloads' alignment
      std::string bytes = random_bytes(static_cast<size_t>(n) * kind.elem);
      if (kind.dtype == onnx::TensorProto::FLOAT || kind.dtype == onnx::TensorProto::DOUBLE)
        for (size_t i = 0; i < bytes.size(); i += kind.elem) bytes[i + kind.elem - 1] = 0x3f;  // finite values
      RawInitializer(b, name, kind.dtype, {n}, bytes.data(), bytes.size());
    }
  }
  RawInitializer(b, "empty", onnx::TensorProto::FLOAT, {0, 4}, nullptr, 0);
  const float pi = 3.14159f;
  RawInitializer(b, "scalar", onnx::TensorProto::FLOAT, {}, &pi, 4);
  b.Initializer("typed", Ramp(77, 1.5f), {7, 11});
  auto* bools = b.proto().mutable_graph()->add_initializer();
  bools->set_name("bools");
  bools->set_data_type(onnx::TensorProto::BOOL);
  bools->add_dims(3);
  bools->set_raw_data(std::string("\x01\x00\x01", 3));
  auto* strs = b.proto().mutable_graph()->add_initializer();
  strs->set_name("strings");
  strs->set_data_type(onnx::TensorProto::STRING);
  strs->add_dims(2);
  strs->add_string_data("hello");
  strs->add_string_data("");
  // Constant nodes (a large one stays in the proto and is borrowed from it, keeping the proto
  // alive) and an If whose branches have their own initializers.
  FloatConstant(b, "c", Ramp(small ? 20 : 2000, 2.0f));
  FloatConstant(b, "big", Ramp(small ? 30 : 30000, 0.75f));
  b.Input("cond", onnx::TensorProto::BOOL, {});
  auto& iff = b.Node("If", {"cond"}, {"y"});
  for (const char* branch : {"then_branch", "else_branch"}) {
    auto* g = iff.add_attribute();
    g->set_name(branch);
    g->set_type(onnx::AttributeProto::GRAPH);
    auto* sub = g->mutable_g();
    sub->set_name(branch);
    auto* init = sub->add_initializer();
    init->set_name(std::string("sub_") + branch);
    init->set_data_type(onnx::TensorProto::FLOAT);
    const auto sv = Ramp(small ? 15 : 1500, branch[0] == 't' ? 1.0f : -1.0f);
    init->add_dims(static_cast<int64_t>(sv.size()));
    init->set_raw_data(sv.data(), sv.size() * 4);
    auto* out = sub->add_output();
    out->set_name(init->name());
    out->mutable_type()->mutable_tensor_type()->set_elem_type(onnx::TensorProto::FLOAT);
  }
  b.Output("y", onnx::TensorProto::FLOAT, {small ? 15 : 1500});
  return b;
}

void ExpectSameTensor(const Tensor& a, const Tensor& b, const std::string& what) {
  ASSERT_EQ(a.dtype(), b.dtype()) << what;
  ASSERT_EQ(a.shape(), b.shape()) << what;
  if (a.dtype() == DType::kString) {
    for (int64_t i = 0; i < a.numel(); ++i) EXPECT_EQ(a.data<std::string>()[i], b.data<std::string>()[i]) << what;
    return;
  }
  EXPECT_EQ(std::memcmp(a.raw(), b.raw(), a.nbytes()), 0) << what;
  if (a.numel() > 0) {
    EXPECT_EQ(reinterpret_cast<uintptr_t>(a.raw()) % DTypeSize(a.dtype()), 0u) << what;
  }
}

void ExpectSameGraph(const ir::Graph& a, const ir::Graph& b) {
  ASSERT_EQ(a.initializers.size(), b.initializers.size());
  for (const auto& [name, t] : a.initializers) ExpectSameTensor(t, b.initializers.at(name), name);
  ASSERT_EQ(a.nodes.size(), b.nodes.size());
  for (size_t i = 0; i < a.nodes.size(); ++i) {
    ASSERT_EQ(a.nodes[i].attributes.size(), b.nodes[i].attributes.size());
    for (size_t j = 0; j < a.nodes[i].attributes.size(); ++j) {
      const auto& x = a.nodes[i].attributes[j];
      const auto& y = b.nodes[i].attributes[j];
      if (x.type == ir::Attribute::Type::kTensor) ExpectSameTensor(x.t, y.t, "attribute " + x.name);
      if (x.type == ir::Attribute::Type::kGraph) ExpectSameGraph(*x.g, *y.g);
    }
  }
}

TEST(Loader, LiftedPayloadsMatchTheWholeFileParse) {
  TempDir dir;
  const std::string bytes = MixedModel().Bytes();
  const std::string path = dir.Write("mixed.onnx", bytes);
  onnx_io::ImportOptions old_path;
  old_path.lift_payloads = false;
  auto reference = onnx_io::LoadModel(path, old_path);
  ASSERT_TRUE(reference.ok()) << reference.status().ToString();

  onnx_io::LoadStats stats;
  onnx_io::ImportOptions opts;
  opts.stats = &stats;
  auto lifted = onnx_io::LoadModel(path, opts);
  ASSERT_TRUE(lifted.ok()) << lifted.status().ToString();
  EXPECT_TRUE(stats.lifted);
  EXPECT_GT(stats.borrowed, 0);
  EXPECT_GT(stats.copied, 0);
  ExpectSameGraph(*reference->graph, *lifted->graph);

  auto from_bytes = onnx_io::LoadModelFromBytes(bytes.data(), bytes.size());
  ASSERT_TRUE(from_bytes.ok()) << from_bytes.status().ToString();
  ExpectSameGraph(*reference->graph, *from_bytes->graph);

  // Views outlive the model: the mapping and the copy arena stay alive while a tensor uses them.
  std::vector<std::pair<Tensor, Tensor>> kept;
  for (const auto& [name, t] : reference->graph->initializers) kept.emplace_back(t, lifted->graph->initializers.at(name));
  for (size_t i = 0; i < reference->graph->nodes.size(); ++i)
    for (size_t j = 0; j < reference->graph->nodes[i].attributes.size(); ++j)
      if (reference->graph->nodes[i].attributes[j].type == ir::Attribute::Type::kTensor)
        kept.emplace_back(reference->graph->nodes[i].attributes[j].t, lifted->graph->nodes[i].attributes[j].t);
  lifted = ir::Model{};
  for (const auto& [want, got] : kept) ExpectSameTensor(want, got, "after the model was released");
}

TEST(Loader, UnusualLayoutsFallBackToProtobuf) {
  TempDir dir;
  const auto w = Ramp(300, 1.0f);
  // A graph split in two fields: protobuf merges them (the second adds an initializer).
  ModelBuilder first;
  first.Output("a", onnx::TensorProto::FLOAT, {300});
  RawInitializer(first, "a", onnx::TensorProto::FLOAT, {300}, w.data(), w.size() * 4);
  onnx::ModelProto second;
  auto* t = second.mutable_graph()->add_initializer();
  t->set_name("b");
  t->set_data_type(onnx::TensorProto::FLOAT);
  t->add_dims(2);
  t->set_raw_data(w.data(), 8);
  const std::string merged = first.Bytes() + second.SerializeAsString();
  onnx_io::LoadStats stats;
  onnx_io::ImportOptions opts;
  opts.stats = &stats;
  auto m = onnx_io::LoadModel(dir.Write("merged.onnx", merged), opts);
  ASSERT_TRUE(m.ok()) << m.status().ToString();
  EXPECT_FALSE(stats.lifted);
  EXPECT_EQ(m->graph->initializers.size(), 2u);
  EXPECT_EQ(std::memcmp(m->graph->initializers.at("a").raw(), w.data(), 1200), 0);

  // raw_data twice in one tensor: the last one wins, as in protobuf.
  ModelBuilder b;
  b.Output("a", onnx::TensorProto::FLOAT, {2});
  RawInitializer(b, "a", onnx::TensorProto::FLOAT, {2}, w.data(), 8);
  std::string bytes = b.Bytes();
  std::string extra_raw = "\x4a\x08";  // field 9, length-delimited, 8 bytes
  extra_raw.append(reinterpret_cast<const char*>(w.data() + 10), 8);
  // Append it inside the initializer: rebuild with an unknown-layout tensor message by hand.
  onnx::TensorProto tp;
  tp.set_name("a");
  tp.set_data_type(onnx::TensorProto::FLOAT);
  tp.add_dims(2);
  tp.set_raw_data(w.data(), 8);
  const std::string tensor_bytes = tp.SerializeAsString() + extra_raw;
  onnx::ModelProto shell = b.proto();
  shell.mutable_graph()->clear_initializer();
  std::string graph_bytes = shell.graph().SerializeAsString();
  graph_bytes += '\x2a';  // field 5, length-delimited
  graph_bytes += static_cast<char>(tensor_bytes.size());
  graph_bytes += tensor_bytes;
  shell.clear_graph();
  std::string model_bytes = shell.SerializeAsString();
  model_bytes += '\x3a';  // field 7, length-delimited
  for (uint64_t v = graph_bytes.size(); ; v >>= 7) {
    if (v < 0x80) {
      model_bytes += static_cast<char>(v);
      break;
    }
    model_bytes += static_cast<char>((v & 0x7f) | 0x80);
  }
  model_bytes += graph_bytes;
  EXPECT_FALSE(onnx_io::StripInitializerPayloads(reinterpret_cast<const unsigned char*>(model_bytes.data()),
                                                 model_bytes.size()));
  auto twice = onnx_io::LoadModel(dir.Write("twice.onnx", model_bytes), opts);
  ASSERT_TRUE(twice.ok()) << twice.status().ToString();
  EXPECT_FALSE(stats.lifted);
  EXPECT_EQ(twice->graph->initializers.at("a").data<float>()[0], w[10]);
}

TEST(Loader, TruncatedAndCorruptFilesGiveErrorsNotCrashes) {
  TempDir dir;
  const std::string bytes = MixedModel().Bytes();
  ASSERT_GT(bytes.size(), 40000u);
  int accepted = 0;
  // Every cut in the first and last 600 bytes, and every 97th byte in between.
  for (size_t cut = 0; cut < bytes.size(); cut += (cut < 600 || cut + 600 > bytes.size()) ? 1 : 97) {
    auto from_bytes = onnx_io::LoadModelFromBytes(bytes.data(), cut);
    if (from_bytes.ok()) ++accepted;  // a cut between top-level fields is a valid, smaller model
    else EXPECT_EQ(from_bytes.status().code(), StatusCode::kInvalidModel) << "cut " << cut << ": " << from_bytes.status().ToString();
    if (cut % 7 == 0 || cut < 64) {
      auto from_file = onnx_io::LoadModel(dir.Write("cut.onnx", bytes.substr(0, cut)));
      EXPECT_EQ(from_file.ok(), from_bytes.ok()) << "cut " << cut;
    }
  }
  EXPECT_LT(accepted, 50);
  // Flipped bytes: any answer but a crash. Each corrupt model that loads goes through a session.
  std::mt19937 rng(11);
  for (int i = 0; i < 400; ++i) {
    std::string bad = bytes;
    for (int j = 0; j < 3; ++j) bad[rng() % bad.size()] = static_cast<char>(rng());
    auto m = onnx_io::LoadModelFromBytes(bad.data(), bad.size());
    if (m.ok()) (void)Session::FromModel(std::move(m).value());
  }
}

// The scan lifts payloads or declines; it never changes what the bytes mean. On corrupted
// structure (tags, lengths, names, dims) it must give what protobuf's whole parse gives: the same
// error kind, or the same model.
TEST(Loader, CorruptStructureLoadsAsTheWholeFileParseDoes) {
  const std::string bytes = MixedModel(/*small=*/true).Bytes();
  ASSERT_LT(bytes.size(), 4000u);  // mostly structure, so most flips hit what the scan reads
  onnx_io::ImportOptions whole;
  whole.lift_payloads = false;
  std::mt19937 rng(13);
  int loaded = 0, failed = 0;
  for (int i = 0; i < 3000; ++i) {
    std::string bad = bytes;
    for (int j = 0, n = 1 + i % 3; j < n; ++j) bad[rng() % bad.size()] = static_cast<char>(rng());
    auto lifted = onnx_io::LoadModelFromBytes(bad.data(), bad.size());
    auto reference = onnx_io::LoadModelFromBytes(bad.data(), bad.size(), whole);
    ASSERT_EQ(lifted.ok(), reference.ok()) << "corruption " << i << ": " << lifted.status().ToString() << " vs "
                                           << reference.status().ToString();
    if (!lifted.ok()) {
      ++failed;
      EXPECT_EQ(lifted.status().code(), reference.status().code()) << "corruption " << i;
      continue;
    }
    ++loaded;
    ExpectSameGraph(*reference->graph, *lifted->graph);
  }
  EXPECT_GT(loaded, 100);
  EXPECT_GT(failed, 100);
}

TEST(Loader, ExternalDataStillMapsBesideLiftedPayloads) {
  TempDir dir;
  const auto ext = Ramp(2048, 0.125f);
  std::ofstream(dir.path() / "weights.bin", std::ios::binary)
      .write(reinterpret_cast<const char*>(ext.data()), static_cast<std::streamsize>(ext.size() * 4));
  ModelBuilder b;
  b.Output("e", onnx::TensorProto::FLOAT, {2048});
  auto* t = b.proto().mutable_graph()->add_initializer();
  t->set_name("e");
  t->set_data_type(onnx::TensorProto::FLOAT);
  t->add_dims(2048);
  t->set_data_location(onnx::TensorProto::EXTERNAL);
  auto* kv = t->add_external_data();
  kv->set_key("location");
  kv->set_value("weights.bin");
  const auto w = Ramp(1000, 2.0f);
  RawInitializer(b, "inline", onnx::TensorProto::FLOAT, {1000}, w.data(), w.size() * 4);
  const std::string path = dir.Write("ext.onnx", b.Bytes());
  onnx_io::LoadStats stats;
  onnx_io::ImportOptions opts;
  opts.stats = &stats;
  auto m = onnx_io::LoadModel(path, opts);
  ASSERT_TRUE(m.ok()) << m.status().ToString();
  EXPECT_TRUE(stats.lifted);
  EXPECT_EQ(stats.borrowed + stats.copied, 1);  // only the inline one is lifted
  const Tensor& e = m->graph->initializers.at("e");
  EXPECT_TRUE(InMapping(e.raw(), MappingsOf((dir.path() / "weights.bin").string())));
  EXPECT_EQ(std::memcmp(e.raw(), ext.data(), ext.size() * 4), 0);
  EXPECT_EQ(std::memcmp(m->graph->initializers.at("inline").raw(), w.data(), w.size() * 4), 0);
}

TEST(Loader, FuzzRegressionInputsStillLoadOrFailCleanly) {
  // __FILE__ is this source's path as the compiler saw it, relative to the build directory (the
  // test binary lives in <build>/tests/unit) unless it is absolute.
  fs::path source = __FILE__;
  if (source.is_relative()) source = fs::canonical("/proc/self/exe").parent_path().parent_path().parent_path() / source;
  const fs::path dir = source.parent_path().parent_path().parent_path() / "fuzz" / "regressions";
  ASSERT_TRUE(fs::is_directory(dir)) << dir;
  int n = 0;
  for (const auto& entry : fs::directory_iterator(dir)) {
    ++n;
    auto m = onnx_io::LoadModel(entry.path().string());
    if (m.ok()) (void)Session::FromModel(std::move(m).value());
  }
  EXPECT_GT(n, 0);
}

}  // namespace
}  // namespace strata
