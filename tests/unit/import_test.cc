#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "onnx/importer.h"
#include "runtime/session.h"
#include "test_model_builder.h"

namespace strata {
namespace {

using testing::ModelBuilder;

Result<std::unique_ptr<Session>> SessionFrom(const std::string& bytes) {
  auto model = onnx_io::LoadModelFromBytes(bytes.data(), bytes.size());
  if (!model.ok()) return model.status();
  return Session::FromModel(std::move(model).value());
}

TEST(Import, GarbageAndTruncatedFilesGiveClearErrors) {
  const std::string garbage = "\x08\x96\x01this is definitely not a protobuf \xff\xff\xff";
  auto r = onnx_io::LoadModelFromBytes(garbage.data(), garbage.size());
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), StatusCode::kInvalidModel);

  ModelBuilder b;
  b.Input("x", onnx::TensorProto::FLOAT, {2}).Output("x", onnx::TensorProto::FLOAT, {2});
  b.Initializer("w", std::vector<float>(1000, 1.0f), {1000});
  const std::string bytes = b.Bytes();
  for (size_t cut : {bytes.size() / 2, bytes.size() - 1}) {
    auto t = onnx_io::LoadModelFromBytes(bytes.data(), cut);
    EXPECT_FALSE(t.ok()) << "cut at " << cut;
  }
  auto missing = onnx_io::LoadModel("/nonexistent/model.onnx");
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(missing.status().code(), StatusCode::kIoError);
  // A directory opens but cannot be read: an I/O error naming it, not "no graph".
  const std::string dir = std::filesystem::temp_directory_path().string();
  auto directory = onnx_io::LoadModel(dir);
  ASSERT_FALSE(directory.ok());
  EXPECT_EQ(directory.status().code(), StatusCode::kIoError) << directory.status().ToString();
  EXPECT_NE(directory.status().message().find("'" + dir + "'"), std::string::npos) << directory.status().ToString();
}

TEST(Import, UnknownOpIsReportedAtLoadWithNodeAndOpset) {
  ModelBuilder b(13);
  b.Input("x", onnx::TensorProto::FLOAT, {2}).Output("y", onnx::TensorProto::FLOAT, {2});
  b.Node("FrobnicateTensor", {"x"}, {"y"}, "frob1");
  auto s = SessionFrom(b.Bytes());
  ASSERT_FALSE(s.ok());
  const std::string& m = s.status().message();
  EXPECT_EQ(s.status().code(), StatusCode::kUnsupported);
  EXPECT_NE(m.find("frob1"), std::string::npos) << m;
  EXPECT_NE(m.find("FrobnicateTensor"), std::string::npos) << m;
  EXPECT_NE(m.find("opset 13"), std::string::npos) << m;
  EXPECT_NE(m.find("ai.onnx"), std::string::npos) << m;
}

TEST(Import, Opset18ModelsLoadAndOpset19IsRefused) {
  ModelBuilder b(18);
  b.Input("x", onnx::TensorProto::FLOAT, {2}).Output("y", onnx::TensorProto::FLOAT, {2});
  b.Node("Identity", {"x"}, {"y"});
  EXPECT_TRUE(SessionFrom(b.Bytes()).ok());
  ModelBuilder c(19);
  c.Input("x", onnx::TensorProto::FLOAT, {2}).Output("y", onnx::TensorProto::FLOAT, {2});
  c.Node("Identity", {"x"}, {"y"});
  auto s = SessionFrom(c.Bytes());
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.status().message().find("opset 19"), std::string::npos);
}

TEST(Import, UndefinedInputAndDeclaredButUnusedCustomDomain) {
  ModelBuilder b(13);
  auto* imp = b.proto().add_opset_import();
  imp->set_domain("com.example.unused");
  imp->set_version(1);
  b.Input("x", onnx::TensorProto::FLOAT, {2}).Output("y", onnx::TensorProto::FLOAT, {2});
  b.Node("Identity", {"nope"}, {"y"});
  auto s = SessionFrom(b.Bytes());
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.status().message().find("'nope'"), std::string::npos);

  ModelBuilder ok(13);
  auto* imp2 = ok.proto().add_opset_import();
  imp2->set_domain("com.example.unused");
  imp2->set_version(1);
  ok.Input("x", onnx::TensorProto::FLOAT, {2}).Output("y", onnx::TensorProto::FLOAT, {2});
  ok.Node("Identity", {"x"}, {"y"});
  EXPECT_TRUE(SessionFrom(ok.Bytes()).ok());
}

TEST(Import, InitializerPayloadMustMatchDims) {
  ModelBuilder b;
  b.Output("w", onnx::TensorProto::FLOAT, {4});
  b.Initializer("w", {1, 2, 3}, {4});
  auto m = onnx_io::LoadModelFromBytes(b.Bytes().data(), b.Bytes().size());
  ASSERT_FALSE(m.ok());
  EXPECT_NE(m.status().message().find("'w'"), std::string::npos);
}

TEST(Import, ExternalDataIsMappedAndBoundsChecked) {
  namespace fs = std::filesystem;
  const fs::path dir = fs::temp_directory_path() / "strata_extdata_test";
  fs::create_directories(dir);
  {
    std::ofstream out(dir / "weights.bin", std::ios::binary);
    const float vals[4] = {1.5f, 2.5f, 3.5f, 4.5f};
    out.write(reinterpret_cast<const char*>(vals), sizeof vals);
  }
  auto write_model = [&](int64_t length) {
    ModelBuilder b;
    b.Output("w", onnx::TensorProto::FLOAT, {4});
    auto* t = b.proto().mutable_graph()->add_initializer();
    t->set_name("w");
    t->set_data_type(onnx::TensorProto::FLOAT);
    t->add_dims(4);
    t->set_data_location(onnx::TensorProto::EXTERNAL);
    auto* kv = t->add_external_data();
    kv->set_key("location");
    kv->set_value("weights.bin");
    kv = t->add_external_data();
    kv->set_key("length");
    kv->set_value(std::to_string(length));
    std::ofstream out(dir / "model.onnx", std::ios::binary);
    out << b.Bytes();
  };
  write_model(16);
  auto s = Session::Load((dir / "model.onnx").string());
  ASSERT_TRUE(s.ok()) << s.status().ToString();
  std::vector<Value> outs;
  ASSERT_TRUE((*s)->Run({}, outs).ok());
  EXPECT_EQ(outs[0].tensor().data<float>()[3], 4.5f);

  write_model(32);  // claims more than the file holds
  auto bad = Session::Load((dir / "model.onnx").string());
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("does not fit"), std::string::npos) << bad.status().ToString();
  fs::remove_all(dir);
}

TEST(Session, WrongInputDtypeShapeAndCountAreRejected) {
  ModelBuilder b;
  b.Input("x", onnx::TensorProto::FLOAT, {-1, 3}).Input("z", onnx::TensorProto::FLOAT, {-1, 3});
  b.Output("y", onnx::TensorProto::FLOAT, {-1, 3});
  b.Node("Identity", {"x"}, {"y"});
  auto s = SessionFrom(b.Bytes());
  ASSERT_TRUE(s.ok()) << s.status().ToString();
  std::vector<Value> outs;
  std::vector<Value> wrong_dtype = {Tensor(DType::kInt32, {2, 3}), Tensor(DType::kFloat, {2, 3})};
  Status st = (*s)->Run(wrong_dtype, outs);
  EXPECT_EQ(st.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(st.message().find("expected dtype float32, got int32"), std::string::npos) << st.message();

  std::vector<Value> wrong_shape = {Tensor(DType::kFloat, {2, 4}), Tensor(DType::kFloat, {2, 3})};
  st = (*s)->Run(wrong_shape, outs);
  EXPECT_NE(st.message().find("dimension 1 differs"), std::string::npos) << st.message();

  std::vector<Value> inconsistent = {Tensor(DType::kFloat, {2, 3}), Tensor(DType::kFloat, {5, 3})};
  st = (*s)->Run(inconsistent, outs);
  EXPECT_NE(st.message().find("dimension 'N'"), std::string::npos) << st.message();

  std::vector<Value> too_few = {Tensor(DType::kFloat, {2, 3})};
  EXPECT_FALSE((*s)->Run(too_few, outs).ok());

  std::vector<Value> good = {Tensor(DType::kFloat, {2, 3}), Tensor(DType::kFloat, {2, 3})};
  EXPECT_TRUE((*s)->Run(good, outs).ok());
}

}  // namespace
}  // namespace strata

namespace strata {
namespace {

TEST(Import, UnsupportedDtypeIsReportedAtLoadNotAtRun) {
  // Sqrt on int32 is not in the spec's type constraints; the shape pass gives the input's dtype
  // at load time, so the error comes from Session creation and names node, op and dtype.
  testing::ModelBuilder b(13);
  b.Input("x", onnx::TensorProto::INT32, {2}).Output("y", onnx::TensorProto::INT32, {2});
  b.Node("Neg", {"x"}, {"n"}, "neg1");
  b.Node("Sqrt", {"n"}, {"y"}, "sqrt1");
  const std::string bytes = b.Bytes();
  auto model = onnx_io::LoadModelFromBytes(bytes.data(), bytes.size());
  ASSERT_TRUE(model.ok());
  auto s = Session::FromModel(std::move(model).value());
  ASSERT_FALSE(s.ok());
  const std::string& m = s.status().message();
  EXPECT_NE(m.find("sqrt1"), std::string::npos) << m;
  EXPECT_NE(m.find("int32"), std::string::npos) << m;
}

}  // namespace
}  // namespace strata

namespace strata {
namespace {

using testing::ModelBuilder;

constexpr int kFloat = onnx::TensorProto::FLOAT;

// y = (|x| + x) * x and, independent of it, r = Relu(x), with the nodes written in `order`.
std::string ChainModel(const std::vector<int>& order) {
  ModelBuilder b(13);
  b.Input("x", kFloat, {3}).Output("y", kFloat, {3}).Output("r", kFloat, {3});
  for (int k : order) {
    if (k == 0) b.Node("Abs", {"x"}, {"a"}, "abs");
    if (k == 1) b.Node("Add", {"a", "x"}, {"b"}, "add");
    if (k == 2) b.Node("Mul", {"b", "x"}, {"y"}, "mul");
    if (k == 3) b.Node("Relu", {"x"}, {"r"}, "relu");
  }
  return b.Bytes();
}

std::vector<std::string> NodeNames(const std::string& bytes) {
  auto model = onnx_io::LoadModelFromBytes(bytes.data(), bytes.size());
  EXPECT_TRUE(model.ok()) << model.status().ToString();
  std::vector<std::string> names;
  if (model.ok())
    for (const auto& n : model->graph->nodes) names.push_back(n.name);
  return names;
}

std::vector<std::vector<float>> RunOnFloats(const std::string& bytes, std::vector<Value> inputs) {
  auto s = SessionFrom(bytes);
  EXPECT_TRUE(s.ok()) << s.status().ToString();
  if (!s.ok()) return {};
  std::vector<Value> outs;
  Status st = (*s)->Run(inputs, outs);
  EXPECT_TRUE(st.ok()) << st.ToString();
  std::vector<std::vector<float>> result;
  for (const auto& v : outs) {
    const Tensor& t = v.tensor();
    result.emplace_back(t.data<float>(), t.data<float>() + t.numel());
  }
  return result;
}

TEST(Import, NodesOutOfTopologicalOrderAreSortedAndRun) {
  const std::string ordered = ChainModel({0, 1, 2, 3});
  const std::string shuffled = ChainModel({2, 1, 0, 3});
  // Ready nodes go in their original order, so an order that is already valid is kept as written.
  EXPECT_EQ(NodeNames(ordered), (std::vector<std::string>{"abs", "add", "mul", "relu"}));
  EXPECT_EQ(NodeNames(ChainModel({3, 0, 1, 2})), (std::vector<std::string>{"relu", "abs", "add", "mul"}));
  EXPECT_EQ(NodeNames(shuffled), (std::vector<std::string>{"abs", "add", "mul", "relu"}));

  const Value x(Tensor::FromVector<float>({-1, 2, 3}, {3}));
  const auto want = RunOnFloats(ordered, {x});
  EXPECT_EQ(want, (std::vector<std::vector<float>>{{0, 8, 18}, {0, 2, 3}}));
  EXPECT_EQ(RunOnFloats(shuffled, {x}), want);
}

TEST(Import, CycleIsReportedWithTheNodesOnIt) {
  ModelBuilder b(13);
  b.Input("x", kFloat, {3}).Output("y", kFloat, {3});
  b.Node("Add", {"x", "c"}, {"a"}, "first");
  b.Node("Relu", {"a"}, {"b"}, "second");
  b.Node("Neg", {"b"}, {"c"}, "third");
  b.Node("Identity", {"b"}, {"y"}, "tail");
  const std::string bytes = b.Bytes();
  auto m = onnx_io::LoadModelFromBytes(bytes.data(), bytes.size());
  ASSERT_FALSE(m.ok());
  EXPECT_EQ(m.status().code(), StatusCode::kInvalidModel);
  const std::string& msg = m.status().message();
  EXPECT_NE(msg.find("cycle"), std::string::npos) << msg;
  for (const char* on_cycle : {"'first' (Add)", "'second' (Relu)", "'third' (Neg)"})
    EXPECT_NE(msg.find(on_cycle), std::string::npos) << msg;
  EXPECT_EQ(msg.find("'tail'"), std::string::npos) << msg;

  ModelBuilder self(13);
  self.Input("x", kFloat, {3}).Output("s", kFloat, {3});
  self.Node("Add", {"x", "s"}, {"s"}, "feeds_itself");
  const std::string self_bytes = self.Bytes();
  auto s = onnx_io::LoadModelFromBytes(self_bytes.data(), self_bytes.size());
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.status().message().find("'feeds_itself' (Add)"), std::string::npos) << s.status().message();
}

TEST(Import, InputWithNoProducerIsNamedAtImport) {
  ModelBuilder b(13);
  b.Input("x", kFloat, {3}).Output("y", kFloat, {3});
  b.Node("Mul", {"b", "ghost"}, {"y"}, "mul");  // out of order as well, so the missing input is not mistaken for that
  b.Node("Abs", {"x"}, {"b"}, "abs");
  const std::string bytes = b.Bytes();
  auto m = onnx_io::LoadModelFromBytes(bytes.data(), bytes.size());
  ASSERT_FALSE(m.ok());
  EXPECT_EQ(m.status().code(), StatusCode::kInvalidModel);
  const std::string& msg = m.status().message();
  EXPECT_NE(msg.find("'mul' (Mul)"), std::string::npos) << msg;
  EXPECT_NE(msg.find("input 'ghost'"), std::string::npos) << msg;
}

// then: (-x) + sq, with its nodes in reverse order and both x and sq read from the main graph;
// else: x. The main graph computes sq = x * x only after the If that captures it.
std::string IfModelWithShuffledBranch(const std::string& then_reads) {
  ModelBuilder then_branch(13);
  then_branch.proto().mutable_graph()->set_name("then");
  then_branch.Output("then_y", kFloat, {3});
  then_branch.Node("Add", {"t", then_reads}, {"then_y"}, "then_add");
  then_branch.Node("Neg", {"x"}, {"t"}, "then_neg");
  ModelBuilder else_branch(13);
  else_branch.proto().mutable_graph()->set_name("else");
  else_branch.Output("else_y", kFloat, {3});
  else_branch.Node("Identity", {"x"}, {"else_y"}, "else_identity");

  ModelBuilder b(13);
  b.Input("cond", onnx::TensorProto::BOOL, {}).Input("x", kFloat, {3}).Output("y", kFloat, {3});
  auto& if_node = b.Node("If", {"cond"}, {"y"}, "if");
  for (auto [attr_name, branch] : {std::pair{"then_branch", &then_branch}, std::pair{"else_branch", &else_branch}}) {
    auto* attr = if_node.add_attribute();
    attr->set_name(attr_name);
    attr->set_type(onnx::AttributeProto::GRAPH);
    *attr->mutable_g() = branch->proto().graph();
  }
  b.Node("Mul", {"x", "x"}, {"sq"}, "square");
  return b.Bytes();
}

TEST(Import, SubgraphNodesAndTheirCapturesAreSorted) {
  const std::string bytes = IfModelWithShuffledBranch("sq");
  EXPECT_EQ(NodeNames(bytes), (std::vector<std::string>{"square", "if"}));
  auto model = onnx_io::LoadModelFromBytes(bytes.data(), bytes.size());
  ASSERT_TRUE(model.ok()) << model.status().ToString();
  const ir::Attribute* then_attr = model->graph->nodes[1].attr("then_branch");
  ASSERT_TRUE(then_attr && then_attr->g);
  ASSERT_EQ(then_attr->g->nodes.size(), 2u);
  EXPECT_EQ(then_attr->g->nodes[0].name, "then_neg");
  EXPECT_EQ(then_attr->g->nodes[1].name, "then_add");

  const Value x(Tensor::FromVector<float>({-1, 2, 3}, {3}));
  EXPECT_EQ(RunOnFloats(bytes, {Value(Tensor::Scalar(true)), x}), (std::vector<std::vector<float>>{{2, 2, 6}}));
  EXPECT_EQ(RunOnFloats(bytes, {Value(Tensor::Scalar(false)), x}), (std::vector<std::vector<float>>{{-1, 2, 3}}));

  const std::string missing = IfModelWithShuffledBranch("nowhere");
  auto m = onnx_io::LoadModelFromBytes(missing.data(), missing.size());
  ASSERT_FALSE(m.ok());
  const std::string& msg = m.status().message();
  EXPECT_NE(msg.find("'if' (If)"), std::string::npos) << msg;
  EXPECT_NE(msg.find("'then_add' (Add)"), std::string::npos) << msg;
  EXPECT_NE(msg.find("input 'nowhere'"), std::string::npos) << msg;
}

}  // namespace
}  // namespace strata
