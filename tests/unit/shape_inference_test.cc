#include "passes/shape_inference.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <cstdlib>
#include <map>

#include "onnx/importer.h"
#include "runtime/session.h"
#include "test_model_builder.h"

namespace strata {
namespace {

using testing::ModelBuilder;
using TP = onnx::TensorProto;

// Dims as strings: "12" is a size, "batch" a symbol, "?" unknown.
void SetDims(onnx::ValueInfoProto* vi, const std::string& name, int elem, const std::vector<std::string>& dims) {
  vi->set_name(name);
  auto* tt = vi->mutable_type()->mutable_tensor_type();
  tt->set_elem_type(elem);
  auto* shape = tt->mutable_shape();
  for (const auto& d : dims) {
    auto* dim = shape->add_dim();
    if (d == "?") continue;
    if (!d.empty() && std::isdigit(static_cast<unsigned char>(d[0]))) dim->set_dim_value(std::stoll(d));
    else dim->set_dim_param(d);
  }
}

class Builder {
 public:
  explicit Builder(int opset = 13) : b_(opset) {}
  Builder& In(const std::string& name, const std::vector<std::string>& dims, int elem = TP::FLOAT) {
    SetDims(b_.proto().mutable_graph()->add_input(), name, elem, dims);
    return *this;
  }
  Builder& Out(const std::string& name) {
    b_.proto().mutable_graph()->add_output()->set_name(name);
    return *this;
  }
  Builder& Ints(const std::string& name, const std::vector<int64_t>& v, bool scalar = false) {
    auto* t = b_.proto().mutable_graph()->add_initializer();
    t->set_name(name);
    t->set_data_type(TP::INT64);
    if (!scalar) t->add_dims(static_cast<int64_t>(v.size()));
    for (auto x : v) t->add_int64_data(x);
    return *this;
  }
  Builder& Floats(const std::string& name, const std::vector<int64_t>& dims) {
    int64_t n = 1;
    for (auto d : dims) n *= d;
    b_.Initializer(name, std::vector<float>(static_cast<size_t>(n), 0.5f), dims);
    return *this;
  }
  onnx::NodeProto& Node(const std::string& op, const std::vector<std::string>& in, const std::vector<std::string>& out,
                        const std::string& name = "") {
    return b_.Node(op, in, out, name);
  }
  // Loads without ONNX's reference inference, so only Strata's pass fills in types.
  Result<ir::Model> Infer(bool onnx_reference = false) {
    const std::string bytes = b_.Bytes();
    onnx_io::ImportOptions opts;
    opts.run_onnx_shape_inference = onnx_reference;
    auto m = onnx_io::LoadModelFromBytes(bytes.data(), bytes.size(), opts);
    if (!m.ok()) return m.status();
    Status st = passes::InferShapes(*m);
    if (!st.ok()) return st;
    return std::move(m).value();
  }
  onnx::ModelProto& proto() { return b_.proto(); }

 private:
  ModelBuilder b_;
};

void IntsAttr(onnx::NodeProto& n, const std::string& name, const std::vector<int64_t>& v) {
  auto* a = n.add_attribute();
  a->set_name(name);
  a->set_type(onnx::AttributeProto::INTS);
  for (auto x : v) a->add_ints(x);
}
void IntAttr(onnx::NodeProto& n, const std::string& name, int64_t v) {
  auto* a = n.add_attribute();
  a->set_name(name);
  a->set_type(onnx::AttributeProto::INT);
  a->set_i(v);
}
void StrAttr(onnx::NodeProto& n, const std::string& name, const std::string& v) {
  auto* a = n.add_attribute();
  a->set_name(name);
  a->set_type(onnx::AttributeProto::STRING);
  a->set_s(v);
}

std::string TypeOf(const ir::Model& m, const std::string& name) {
  const ir::ValueInfo* vi = m.graph->FindValueInfo(name);
  return vi ? vi->type.ToString() : "<none>";
}

TEST(ShapeInference, BroadcastWithSymbols) {
  Builder b;
  b.In("x", {"batch", "1", "seq"}).In("y", {"seq"}).In("z", {"1", "4", "1"}).In("u", {"batch"}).In("v", {"seq"});
  b.In("c", {"batch", "1", "seq"}, TP::BOOL);
  b.Node("Add", {"x", "y"}, {"a"});
  b.Node("Mul", {"a", "z"}, {"m"});
  b.Node("Sub", {"u", "v"}, {"s"});  // batch vs seq: either may be 1, so unknown (not an error)
  b.Node("Equal", {"x", "x"}, {"e"});
  b.Node("Where", {"c", "m", "y"}, {"w"});
  b.Node("Max", {"x", "z", "y"}, {"mx"});
  b.Node("Sum", {"x"}, {"sum1"});
  auto m = b.Infer();
  ASSERT_TRUE(m.ok()) << m.status().ToString();
  EXPECT_EQ(TypeOf(*m, "a"), "float32[batch,1,seq]");
  EXPECT_EQ(TypeOf(*m, "m"), "float32[batch,4,seq]");
  EXPECT_EQ(TypeOf(*m, "s"), "float32[?]");
  EXPECT_EQ(TypeOf(*m, "e"), "bool[batch,1,seq]");
  EXPECT_EQ(TypeOf(*m, "w"), "float32[batch,4,seq]");
  EXPECT_EQ(TypeOf(*m, "mx"), "float32[batch,4,seq]");
  EXPECT_EQ(TypeOf(*m, "sum1"), "float32[batch,1,seq]");
}

TEST(ShapeInference, InconsistentBroadcastNamesTheNode) {
  Builder b;
  b.In("x", {"batch", "3"}).In("y", {"4"}).Out("z");
  b.Node("Relu", {"x"}, {"r"});
  b.Node("Add", {"r", "y"}, {"z"}, "bad_add");
  auto m = b.Infer();
  ASSERT_FALSE(m.ok());
  EXPECT_EQ(m.status().code(), StatusCode::kInvalidModel);
  EXPECT_NE(m.status().message().find("bad_add"), std::string::npos) << m.status().message();
  EXPECT_NE(m.status().message().find("Add"), std::string::npos) << m.status().message();
  EXPECT_NE(m.status().message().find("3 vs 4"), std::string::npos) << m.status().message();

  // The session reports it at load time too.
  const std::string bytes = b.proto().SerializeAsString();
  auto model = onnx_io::LoadModelFromBytes(bytes.data(), bytes.size());
  ASSERT_TRUE(model.ok());
  auto s = Session::FromModel(std::move(model).value());
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.status().message().find("bad_add"), std::string::npos) << s.status().message();
}

TEST(ShapeInference, MatMulAndGemm) {
  Builder b;
  b.In("x", {"batch", "seq", "768"}).Floats("w", {768, 3072});
  b.In("q", {"batch", "12", "seq", "64"}).In("k", {"batch", "12", "64", "seq"});
  b.In("v3", {"3"}).Floats("m34", {3, 4}).In("t234", {"2", "3", "4"}).Floats("v4", {4});
  b.In("a", {"batch", "5"}).Floats("g", {7, 5}).Floats("bias", {7});
  b.Node("MatMul", {"x", "w"}, {"y"});
  b.Node("MatMul", {"q", "k"}, {"att"});
  b.Node("MatMul", {"v3", "m34"}, {"vec_mat"});
  b.Node("MatMul", {"t234", "v4"}, {"mat_vec"});
  auto& gemm = b.Node("Gemm", {"a", "g", "bias"}, {"gemm"});
  IntAttr(gemm, "transB", 1);
  auto m = b.Infer();
  ASSERT_TRUE(m.ok()) << m.status().ToString();
  EXPECT_EQ(TypeOf(*m, "y"), "float32[batch,seq,3072]");
  EXPECT_EQ(TypeOf(*m, "att"), "float32[batch,12,seq,seq]");
  EXPECT_EQ(TypeOf(*m, "vec_mat"), "float32[4]");
  EXPECT_EQ(TypeOf(*m, "mat_vec"), "float32[2,3]");
  EXPECT_EQ(TypeOf(*m, "gemm"), "float32[batch,7]");

  Builder bad;
  bad.In("x", {"batch", "seq", "768"}).Floats("w", {512, 10});
  bad.Node("MatMul", {"x", "w"}, {"y"}, "proj");
  auto e = bad.Infer();
  ASSERT_FALSE(e.ok());
  EXPECT_NE(e.status().message().find("proj"), std::string::npos) << e.status().message();
}

TEST(ShapeInference, ConvAndPoolsWithPadsStridesDilations) {
  Builder b(13);
  b.In("x", {"batch", "3", "224", "224"}).Floats("w", {64, 3, 7, 7});
  auto& conv = b.Node("Conv", {"x", "w"}, {"c1"});
  IntsAttr(conv, "strides", {2, 2});
  IntsAttr(conv, "pads", {3, 3, 3, 3});
  auto& pool = b.Node("MaxPool", {"c1"}, {"p1"});
  IntsAttr(pool, "kernel_shape", {3, 3});
  IntsAttr(pool, "strides", {2, 2});
  IntsAttr(pool, "pads", {1, 1, 1, 1});
  // Depthwise 3x3, dilation 2, no padding: 56 - 4 = 52.
  b.Floats("dw", {64, 1, 3, 3});
  auto& dconv = b.Node("Conv", {"p1", "dw"}, {"c2"});
  IntAttr(dconv, "group", 64);
  IntsAttr(dconv, "dilations", {2, 2});
  // SAME_UPPER, stride 2 on 52 -> 26.
  b.Floats("w3", {8, 64, 3, 3});
  auto& same = b.Node("Conv", {"c2", "w3"}, {"c3"});
  StrAttr(same, "auto_pad", "SAME_UPPER");
  IntsAttr(same, "strides", {2, 2});
  // ceil_mode: 26 with k3 s2 -> ceil(23/2)+1 = 13 (floor would give 12).
  auto& avg = b.Node("AveragePool", {"c3"}, {"p2"});
  IntsAttr(avg, "kernel_shape", {3, 3});
  IntsAttr(avg, "strides", {2, 2});
  IntAttr(avg, "ceil_mode", 1);
  b.Node("GlobalAveragePool", {"p2"}, {"gap"});
  b.Node("Flatten", {"gap"}, {"flat"});
  // Symbolic spatial dims survive a stride-1 "same" convolution.
  b.In("img", {"batch", "3", "h", "w"});
  auto& keep = b.Node("Conv", {"img", "w"}, {"keep"});
  IntsAttr(keep, "pads", {3, 3, 3, 3});
  auto& shrink = b.Node("Conv", {"img", "w"}, {"shrink"});
  IntsAttr(shrink, "strides", {2, 2});
  // ConvTranspose: 13 -> 2*(13-1) + 1 + 3 - (1+1) = 26, channels W[1]*group.
  b.Floats("wt", {8, 4, 3, 3});
  auto& ct = b.Node("ConvTranspose", {"p2", "wt"}, {"up"});
  IntsAttr(ct, "strides", {2, 2});
  IntsAttr(ct, "pads", {1, 1, 1, 1});
  IntsAttr(ct, "output_padding", {1, 1});
  auto m = b.Infer();
  ASSERT_TRUE(m.ok()) << m.status().ToString();
  EXPECT_EQ(TypeOf(*m, "c1"), "float32[batch,64,112,112]");
  EXPECT_EQ(TypeOf(*m, "p1"), "float32[batch,64,56,56]");
  EXPECT_EQ(TypeOf(*m, "c2"), "float32[batch,64,52,52]");
  EXPECT_EQ(TypeOf(*m, "c3"), "float32[batch,8,26,26]");
  EXPECT_EQ(TypeOf(*m, "p2"), "float32[batch,8,13,13]");
  EXPECT_EQ(TypeOf(*m, "gap"), "float32[batch,8,1,1]");
  EXPECT_EQ(TypeOf(*m, "flat"), "float32[batch,8]");
  EXPECT_EQ(TypeOf(*m, "keep"), "float32[batch,64,h,w]");
  EXPECT_EQ(TypeOf(*m, "shrink"), "float32[batch,64,?,?]");
  EXPECT_EQ(TypeOf(*m, "up"), "float32[batch,4,26,26]");

  Builder bad;
  bad.In("x", {"1", "4", "8", "8"}).Floats("w", {2, 3, 3, 3});
  bad.Node("Conv", {"x", "w"}, {"y"}, "conv_bad");
  auto e = bad.Infer();
  ASSERT_FALSE(e.ok());
  EXPECT_NE(e.status().message().find("conv_bad"), std::string::npos) << e.status().message();
}

// The BERT export's head split: Reshape(x, Concat(Unsqueeze(Gather(Shape(x),0)), Unsqueeze(Gather(Shape(x),1)), [12], [64])).
TEST(ShapeInference, ShapeGatherConcatReshapeChainIsSymbolic) {
  Builder b(13);
  b.In("x", {"batch", "seq", "768"}).Ints("i0", {0}, true).Ints("i1", {1}, true).Ints("ax0", {0});
  b.Ints("heads", {12}).Ints("dh", {64}).Ints("flat", {-1, 768});
  b.Node("Shape", {"x"}, {"shp"});
  b.Node("Gather", {"shp", "i0"}, {"b"});
  b.Node("Gather", {"shp", "i1"}, {"s"});
  b.Node("Unsqueeze", {"b", "ax0"}, {"bu"});
  b.Node("Unsqueeze", {"s", "ax0"}, {"su"});
  IntAttr(b.Node("Concat", {"bu", "su", "heads", "dh"}, {"target"}), "axis", 0);
  b.Node("Reshape", {"x", "target"}, {"heads_out"});
  auto& tr = b.Node("Transpose", {"heads_out"}, {"bhsd"});
  IntsAttr(tr, "perm", {0, 2, 1, 3});
  // [-1, 768] gives batch*seq rows; reshaping back with the computed shape restores the symbols.
  b.Node("Reshape", {"x", "flat"}, {"rows"});
  b.Ints("d768", {768});
  IntAttr(b.Node("Concat", {"bu", "su", "d768"}, {"back_shape"}), "axis", 0);
  b.Node("Reshape", {"rows", "back_shape"}, {"back"});
  // Arithmetic on shape values: seq * 2, then ConstantOfShape / Range / Expand consume them.
  b.Ints("two", {2}, true);
  b.Node("Mul", {"s", "two"}, {"s2"});
  b.Node("Unsqueeze", {"s2", "ax0"}, {"s2u"});
  b.Node("ConstantOfShape", {"s2u"}, {"zeros"});
  b.Ints("zero", {0}, true).Ints("one", {1}, true);
  b.Node("Range", {"zero", "s", "one"}, {"pos"});
  b.Ints("ones", {1});
  IntAttr(b.Node("Concat", {"bu", "ones"}, {"exp_shape"}), "axis", 0);
  b.Node("Unsqueeze", {"pos", "ax0"}, {"pos2"});
  b.Node("Expand", {"pos2", "exp_shape"}, {"pos_b"});
  // Slice of a shape and Cast keep the values.
  b.Ints("st", {1}).Ints("en", {3});
  b.Node("Slice", {"shp", "st", "en"}, {"tail"});
  IntAttr(b.Node("Cast", {"tail"}, {"tail32"}), "to", TP::INT32);
  b.Ints("bs", {-1});
  IntAttr(b.Node("Concat", {"bs", "tail32"}, {"t2"}), "axis", 0);
  b.Node("Reshape", {"x", "t2"}, {"same"});
  auto m = b.Infer();
  ASSERT_TRUE(m.ok()) << m.status().ToString();
  EXPECT_EQ(TypeOf(*m, "shp"), "int64[3]");
  EXPECT_EQ(TypeOf(*m, "b"), "int64[]");
  EXPECT_EQ(TypeOf(*m, "target"), "int64[4]");
  EXPECT_EQ(TypeOf(*m, "heads_out"), "float32[batch,seq,12,64]");
  EXPECT_EQ(TypeOf(*m, "bhsd"), "float32[batch,12,seq,64]");
  EXPECT_EQ(TypeOf(*m, "rows"), "float32[batch*seq,768]");
  EXPECT_EQ(TypeOf(*m, "back"), "float32[batch,seq,768]");
  EXPECT_EQ(TypeOf(*m, "zeros"), "float32[2*seq]");
  EXPECT_EQ(TypeOf(*m, "pos"), "int64[seq]");
  EXPECT_EQ(TypeOf(*m, "pos_b"), "int64[batch,seq]");
  EXPECT_EQ(TypeOf(*m, "tail32"), "int32[2]");
  EXPECT_EQ(TypeOf(*m, "same"), "float32[batch,seq,768]");
}

// GPT-2's causal mask: mask[:, :, :seq, :seq] of a [1,1,1024,1024] buffer is min(seq,1024), and where it
// is broadcast against [batch,12,seq,seq] the result is seq (a valid model needs min(seq,1024) == seq or 1).
TEST(ShapeInference, CausalMaskSliceBroadcastsBackToSeq) {
  Builder b(13);
  b.In("att", {"batch", "12", "seq", "seq"});
  auto* mask = b.proto().mutable_graph()->add_initializer();
  mask->set_name("causal");
  mask->set_data_type(TP::BOOL);
  for (int d : {1, 1, 4, 4}) mask->add_dims(d);
  for (int i = 0; i < 16; ++i) mask->add_int32_data(1);
  b.Ints("i2", {2}, true).Ints("ax0", {0}).Ints("zero", {0}).Ints("axis2", {2}).Ints("axis3", {3}).Ints("one", {1});
  b.Node("Shape", {"att"}, {"shp"});
  b.Node("Gather", {"shp", "i2"}, {"s"});
  b.Node("Unsqueeze", {"s", "ax0"}, {"su"});
  b.Node("Slice", {"causal", "zero", "su", "axis2", "one"}, {"m1"});
  b.Node("Slice", {"m1", "zero", "su", "axis3", "one"}, {"m2"});
  b.Floats("ninf", {1});
  b.Node("Where", {"m2", "att", "ninf"}, {"masked"});
  // Expanding the sliced mask to the attention's shape resolves it the same way.
  b.Node("Shape", {"att"}, {"att_shape"});
  b.Node("Expand", {"m2", "att_shape"}, {"mask_b"});
  auto m = b.Infer();
  ASSERT_TRUE(m.ok()) << m.status().ToString();
  EXPECT_EQ(TypeOf(*m, "m2"), "bool[1,1,min(seq,4),min(seq,4)]");
  EXPECT_EQ(TypeOf(*m, "masked"), "float32[batch,12,seq,seq]");
  EXPECT_EQ(TypeOf(*m, "mask_b"), "bool[batch,12,seq,seq]");
}

TEST(ShapeInference, ImpossibleExpandNamesTheNodeAndDims) {
  Builder b(13);
  b.In("x", {"batch", "3"}).Ints("to", {2, 4}).Out("y");
  b.Node("Expand", {"x", "to"}, {"y"}, "bad_expand");
  auto m = b.Infer();
  ASSERT_FALSE(m.ok());
  EXPECT_EQ(m.status().code(), StatusCode::kInvalidModel);
  EXPECT_NE(m.status().message().find("bad_expand"), std::string::npos) << m.status().message();
  EXPECT_NE(m.status().message().find("3 vs 4"), std::string::npos) << m.status().message();
}

TEST(ShapeInference, ShapeStartEndAtOpset15AndSize) {
  Builder b(15);
  b.In("x", {"batch", "seq", "12", "64"});
  auto& tail = b.Node("Shape", {"x"}, {"tail"});
  IntAttr(tail, "start", -2);
  auto& mid = b.Node("Shape", {"x"}, {"mid"});
  IntAttr(mid, "start", 1);
  IntAttr(mid, "end", -1);
  b.Node("Size", {"x"}, {"n"});
  b.Node("Unsqueeze", {"n", "ax"}, {"n1"});
  b.Ints("ax", {0});
  b.Node("Reshape", {"x", "n1"}, {"flat"});
  b.Ints("minus1", {-1});
  IntAttr(b.Node("Concat", {"minus1", "tail"}, {"t"}), "axis", 0);
  b.Node("Reshape", {"x", "t"}, {"rows"});
  b.Node("Reshape", {"x", "mid"}, {"mid_shape"});
  auto m = b.Infer();
  ASSERT_TRUE(m.ok()) << m.status().ToString();
  EXPECT_EQ(TypeOf(*m, "tail"), "int64[2]");
  EXPECT_EQ(TypeOf(*m, "mid"), "int64[2]");
  EXPECT_EQ(TypeOf(*m, "n"), "int64[]");
  EXPECT_EQ(TypeOf(*m, "flat"), "float32[768*batch*seq]");
  EXPECT_EQ(TypeOf(*m, "rows"), "float32[batch*seq,12,64]");
  // [seq,12] for a [batch,seq,12,64] input: a model error only when batch*64 != 1, which is not known here.
  EXPECT_EQ(TypeOf(*m, "mid_shape"), "float32[seq,12]");

  Builder old(13);  // before 15, Shape has no start/end: the attributes are not read
  old.In("x", {"batch", "seq"});
  IntAttr(old.Node("Shape", {"x"}, {"s"}), "start", 1);
  auto mo = old.Infer();
  ASSERT_TRUE(mo.ok());
  EXPECT_EQ(TypeOf(*mo, "s"), "int64[2]");
}

TEST(ShapeInference, SqueezeUnsqueezeAxesAttributeBefore13InputFrom13) {
  Builder b11(11);
  b11.In("x", {"batch", "1", "seq", "1"});
  IntsAttr(b11.Node("Squeeze", {"x"}, {"y"}), "axes", {1, -1});
  IntsAttr(b11.Node("Unsqueeze", {"y"}, {"z"}), "axes", {0, -1});
  b11.Node("Squeeze", {"x"}, {"all"});  // no axes: batch or seq might be 1, so the rank is unknown
  auto m11 = b11.Infer();
  ASSERT_TRUE(m11.ok()) << m11.status().ToString();
  EXPECT_EQ(TypeOf(*m11, "y"), "float32[batch,seq]");
  EXPECT_EQ(TypeOf(*m11, "z"), "float32[1,batch,seq,1]");
  EXPECT_EQ(TypeOf(*m11, "all"), "float32[?]");

  Builder b13(13);
  b13.In("x", {"batch", "1", "seq", "1"}).Ints("axes", {1, -1}).Ints("ax", {0, -1});
  b13.Node("Squeeze", {"x", "axes"}, {"y"});
  b13.Node("Unsqueeze", {"y", "ax"}, {"z"});
  b13.In("fixed", {"2", "1", "3"});
  b13.Node("Squeeze", {"fixed"}, {"f"});
  auto m13 = b13.Infer();
  ASSERT_TRUE(m13.ok()) << m13.status().ToString();
  EXPECT_EQ(TypeOf(*m13, "y"), "float32[batch,seq]");
  EXPECT_EQ(TypeOf(*m13, "z"), "float32[1,batch,seq,1]");
  EXPECT_EQ(TypeOf(*m13, "f"), "float32[2,3]");

  // At opset 13 an `axes` attribute is not how Squeeze works: no axes input means "all 1-dims".
  Builder b13attr(13);
  b13attr.In("x", {"2", "1", "3", "1"});
  IntsAttr(b13attr.Node("Squeeze", {"x"}, {"y"}), "axes", {1});
  auto m = b13attr.Infer();
  ASSERT_TRUE(m.ok());
  EXPECT_EQ(TypeOf(*m, "y"), "float32[2,3]");

  Builder bad(13);
  bad.In("x", {"2", "3"}).Ints("axes", {1});
  bad.Node("Squeeze", {"x", "axes"}, {"y"}, "sq");
  EXPECT_FALSE(bad.Infer().ok());
}

TEST(ShapeInference, ReduceAndSplitFollowTheirOpsetVersions) {
  Builder b13(13);
  b13.In("x", {"batch", "seq", "768"}).Ints("axes", {-1});
  IntsAttr(b13.Node("ReduceMean", {"x"}, {"mean"}), "axes", {-1});
  b13.Node("ReduceSum", {"x", "axes"}, {"sum"});
  auto& rs = b13.Node("ReduceMax", {"x"}, {"all"});
  IntAttr(rs, "keepdims", 0);
  b13.Ints("split", {256, 512});
  auto& sp = b13.Node("Split", {"x", "split"}, {"p0", "p1"});
  IntAttr(sp, "axis", 2);
  IntAttr(b13.Node("ArgMax", {"x"}, {"am"}), "axis", 1);
  auto m13 = b13.Infer();
  ASSERT_TRUE(m13.ok()) << m13.status().ToString();
  EXPECT_EQ(TypeOf(*m13, "mean"), "float32[batch,seq,1]");
  EXPECT_EQ(TypeOf(*m13, "sum"), "float32[batch,seq,1]");
  EXPECT_EQ(TypeOf(*m13, "all"), "float32[]");
  EXPECT_EQ(TypeOf(*m13, "p0"), "float32[batch,seq,256]");
  EXPECT_EQ(TypeOf(*m13, "p1"), "float32[batch,seq,512]");
  EXPECT_EQ(TypeOf(*m13, "am"), "int64[batch,1,768]");

  Builder b18(18);
  b18.In("x", {"batch", "seq", "10"}).Ints("axes", {1});
  b18.Node("ReduceMean", {"x", "axes"}, {"mean"});
  auto& sp18 = b18.Node("Split", {"x"}, {"a", "b", "c"});
  IntAttr(sp18, "axis", 2);
  IntAttr(sp18, "num_outputs", 3);
  auto m18 = b18.Infer();
  ASSERT_TRUE(m18.ok()) << m18.status().ToString();
  EXPECT_EQ(TypeOf(*m18, "mean"), "float32[batch,1,10]");
  EXPECT_EQ(TypeOf(*m18, "a"), "float32[batch,seq,4]");
  EXPECT_EQ(TypeOf(*m18, "c"), "float32[batch,seq,2]");

  Builder b11(11);
  b11.In("x", {"batch", "6"});
  auto& sp11 = b11.Node("Split", {"x"}, {"a", "b"});
  IntAttr(sp11, "axis", 1);
  IntsAttr(sp11, "split", {2, 4});
  auto m11 = b11.Infer();
  ASSERT_TRUE(m11.ok()) << m11.status().ToString();
  EXPECT_EQ(TypeOf(*m11, "b"), "float32[batch,4]");
}

TEST(ShapeInference, SliceGatherTransposeConcatPadTile) {
  Builder b(13);
  b.In("x", {"batch", "seq", "64"}).Ints("s", {0, 8}).Ints("e", {INT64_MAX, -8}).Ints("ax", {1, 2});
  b.Ints("idx", {3, 1});
  b.Node("Slice", {"x", "s", "e", "ax"}, {"sl"});
  IntAttr(b.Node("Gather", {"x", "idx"}, {"ga"}), "axis", 2);
  b.Node("Transpose", {"x"}, {"tr"});
  b.In("y", {"batch", "5", "64"});
  IntAttr(b.Node("Concat", {"x", "y"}, {"cat"}), "axis", 1);
  IntAttr(b.Node("Concat", {"y", "y"}, {"cat2"}), "axis", -1);
  b.Ints("pads", {0, 1, 2, 0, 3, 4});
  b.Node("Pad", {"x", "pads"}, {"pad"});
  b.Ints("rep", {2, 1, 3});
  b.Node("Tile", {"x", "rep"}, {"tile"});
  b.In("w", {"batch", "seq"}, TP::INT64).Floats("emb", {100, 32});
  b.Node("Gather", {"emb", "w"}, {"emb_out"});
  auto m = b.Infer();
  ASSERT_TRUE(m.ok()) << m.status().ToString();
  EXPECT_EQ(TypeOf(*m, "sl"), "float32[batch,seq,48]");
  EXPECT_EQ(TypeOf(*m, "ga"), "float32[batch,seq,2]");
  EXPECT_EQ(TypeOf(*m, "tr"), "float32[64,seq,batch]");
  EXPECT_EQ(TypeOf(*m, "cat"), "float32[batch,?,64]");
  EXPECT_EQ(TypeOf(*m, "cat2"), "float32[batch,5,128]");
  EXPECT_EQ(TypeOf(*m, "pad"), "float32[batch,?,70]");
  EXPECT_EQ(TypeOf(*m, "tile"), "float32[2*batch,seq,192]");
  EXPECT_EQ(TypeOf(*m, "emb_out"), "float32[batch,seq,32]");
}

TEST(ShapeInference, NeverLessPreciseAndUnknownOpsKeepDeclaredTypes) {
  Builder b(13);
  b.In("x", {"batch", "8"});
  b.Node("Relu", {"x"}, {"r"});
  b.Node("NoSuchOpAnywhere", {"r"}, {"custom"});
  b.Node("Relu", {"custom"}, {"after"});
  // Declared: a known size for the custom op's output, and a symbol that Strata cannot derive.
  SetDims(b.proto().mutable_graph()->add_value_info(), "custom", TP::FLOAT, {"3", "8"});
  SetDims(b.proto().mutable_graph()->add_value_info(), "r", TP::FLOAT, {"?", "8"});
  auto m = b.Infer();
  ASSERT_TRUE(m.ok()) << m.status().ToString();
  EXPECT_EQ(TypeOf(*m, "r"), "float32[batch,8]");      // refined: ? -> batch
  EXPECT_EQ(TypeOf(*m, "custom"), "float32[3,8]");     // no rule: kept
  EXPECT_EQ(TypeOf(*m, "after"), "float32[3,8]");      // and used downstream

  // Declared graph outputs keep their own symbol names, but gain known dims.
  Builder o(13);
  o.In("x", {"batch", "8"});
  SetDims(o.proto().mutable_graph()->add_output(), "y", TP::FLOAT, {"N", "?"});
  o.Node("Relu", {"x"}, {"y"});
  auto mo = o.Infer();
  ASSERT_TRUE(mo.ok());
  EXPECT_EQ(TypeOf(*mo, "y"), "float32[N,8]");
}

TEST(ShapeInference, IfBranchesAndLoopBodies) {
  Builder b(13);
  b.In("x", {"batch", "4"}).In("cond", {}, TP::BOOL);
  auto& n = b.Node("If", {"cond"}, {"out"});
  auto mk_branch = [&](const std::string& name, const std::string& op, const std::string& out) {
    auto* a = n.add_attribute();
    a->set_name(name);
    a->set_type(onnx::AttributeProto::GRAPH);
    auto* g = a->mutable_g();
    g->set_name(name);
    auto* node = g->add_node();
    node->set_op_type(op);
    node->add_input(std::string("x"));
    node->add_output(out);
    g->add_output()->set_name(out);
  };
  mk_branch("then_branch", "Relu", "then_y");
  mk_branch("else_branch", "Neg", "else_y");
  // Loop: 3 iterations carrying acc [batch,4] and stacking relu(acc) per iteration.
  b.Ints("trips", {3}, true);
  auto& loop = b.Node("Loop", {"trips", "", "x"}, {"acc_final", "stacked"});
  auto* la = loop.add_attribute();
  la->set_name("body");
  la->set_type(onnx::AttributeProto::GRAPH);
  auto* body = la->mutable_g();
  body->set_name("loop_body");
  SetDims(body->add_input(), "iter", TP::INT64, {});
  SetDims(body->add_input(), "cond_in", TP::BOOL, {});
  body->add_input()->set_name("acc");  // no declared type: seeded from the Loop's input
  auto add_node = [&](const std::string& op, const std::vector<std::string>& in, const std::string& out) {
    auto* nd = body->add_node();
    nd->set_op_type(op);
    for (const auto& i : in) nd->add_input(i);
    nd->add_output(out);
  };
  add_node("Identity", {"cond_in"}, "cond_out");
  add_node("Add", {"acc", "x"}, "acc_next");
  add_node("Relu", {"acc_next"}, "scan_y");
  for (const char* o : {"cond_out", "acc_next", "scan_y"}) body->add_output()->set_name(o);
  auto m = b.Infer();
  ASSERT_TRUE(m.ok()) << m.status().ToString();
  EXPECT_EQ(TypeOf(*m, "out"), "float32[batch,4]");
  const auto& then_g = *m->graph->nodes[0].attributes[0].g;
  ASSERT_NE(then_g.FindValueInfo("then_y"), nullptr);
  EXPECT_EQ(then_g.FindValueInfo("then_y")->type.ToString(), "float32[batch,4]");
  EXPECT_EQ(TypeOf(*m, "acc_final"), "float32[batch,4]");
  EXPECT_EQ(TypeOf(*m, "stacked"), "float32[3,batch,4]");
  const auto& body_g = *m->graph->nodes[1].attributes[0].g;
  ASSERT_NE(body_g.FindValueInfo("acc_next"), nullptr);
  EXPECT_EQ(body_g.FindValueInfo("acc_next")->type.ToString(), "float32[batch,4]");
}

TEST(ShapeInference, SessionRunsInferenceBeforeCompiling) {
  Builder b(13);
  b.In("x", {"batch", "seq"}).Out("y");
  b.Node("Identity", {"x"}, {"y"});
  const std::string bytes = b.proto().SerializeAsString();
  onnx_io::ImportOptions opts;
  opts.run_onnx_shape_inference = false;
  auto model = onnx_io::LoadModelFromBytes(bytes.data(), bytes.size(), opts);
  ASSERT_TRUE(model.ok());
  auto s = Session::FromModel(std::move(model).value());
  ASSERT_TRUE(s.ok()) << s.status().ToString();
  EXPECT_EQ((*s)->model().graph->FindValueInfo("y")->type.ToString(), "float32[batch,seq]");
}

// Every official backend test model: Strata's inference must load it without error and, starting from
// nothing but the graph inputs, reproduce the declared output types (dtype, rank and every known dim).
// Intermediate values are compared with ONNX's reference inference the same way.
TEST(ShapeInference, AgreesWithOnnxOnConformanceModels) {
  const std::filesystem::path root = "/usr/share/libonnx-testdata/data";
  if (!std::filesystem::exists(root)) GTEST_SKIP() << "libonnx-testdata is not installed";
  const bool verbose = std::getenv("STRATA_SHAPES_VERBOSE") != nullptr;
  int models = 0, outputs = 0, outputs_shaped = 0, outputs_typed = 0, compared = 0;
  std::vector<std::string> problems;
  auto compare = [&](const std::string& what, const ir::TypeInfo& mine, const ir::TypeInfo& want) {
    if (mine.kind != ir::TypeInfo::Kind::kTensor || want.kind != ir::TypeInfo::Kind::kTensor) return;
    bool bad = mine.elem_type != DType::kUndefined && want.elem_type != DType::kUndefined && mine.elem_type != want.elem_type;
    if (mine.shape && want.shape) {
      if (mine.shape->size() != want.shape->size()) bad = true;
      else
        for (size_t i = 0; i < mine.shape->size(); ++i) {
          const auto& x = (*mine.shape)[i];
          const auto& y = (*want.shape)[i];
          if (x.known() && y.known() && x.value != y.value) bad = true;
        }
    }
    if (bad) problems.push_back(what + ": Strata " + mine.ToString() + ", expected " + want.ToString());
  };
  for (const char* suite : {"node", "pytorch-converted", "pytorch-operator", "simple"}) {
    for (const auto& dir : std::filesystem::directory_iterator(root / suite)) {
      const std::string path = (dir.path() / "model.onnx").string();
      if (!std::filesystem::exists(path)) continue;
      onnx_io::ImportOptions with, without;
      without.run_onnx_shape_inference = false;
      auto ref = onnx_io::LoadModel(path, with);
      auto own = onnx_io::LoadModel(path, without);
      if (!ref.ok() || !own.ok()) continue;
      ++models;
      const std::string name = std::string(suite) + "/" + dir.path().filename().string();
      std::vector<ir::TypeInfo> declared;
      for (auto& vi : own->graph->outputs) {
        declared.push_back(vi.type);
        vi.type = ir::TypeInfo{};
      }
      // With ONNX's reference types already in place, the pass must not fail either.
      if (Status rs = passes::InferShapes(*ref); !rs.ok()) problems.push_back(name + " (after ONNX's inference): " + rs.ToString());
      passes::ShapeInferenceReport report;
      Status st = passes::InferShapes(*own, &report);
      if (!st.ok()) {
        problems.push_back(name + ": " + st.ToString());
        continue;
      }
      for (const auto& c : report.conflicts) problems.push_back(name + ": " + c);
      for (size_t i = 0; i < declared.size(); ++i) {
        const auto& mine = own->graph->outputs[i].type;
        ++outputs;
        if (mine.TensorElemType() != DType::kUndefined) ++outputs_typed;
        if (passes::IsFullyShaped(mine)) ++outputs_shaped;
        else if (verbose && passes::IsFullyShaped(declared[i])) {
          std::string producer = "?";
          for (const auto& n : own->graph->nodes)
            for (const auto& o : n.outputs)
              if (o == own->graph->outputs[i].name) producer = n.op_type;
          std::cout << "not inferred: " << name << " " << producer << " " << mine.ToString() << " want " << declared[i].ToString() << "\n";
        }
        compare(name + " output '" + own->graph->outputs[i].name + "'", mine, declared[i]);
      }
      for (const auto& node : own->graph->nodes)
        for (const auto& o : node.outputs) {
          const ir::ValueInfo* a = o.empty() ? nullptr : own->graph->FindValueInfo(o);
          const ir::ValueInfo* r = o.empty() ? nullptr : ref->graph->FindValueInfo(o);
          if (!a || !r) continue;
          ++compared;
          compare(name + " " + node.Describe() + " '" + o + "'", a->type, r->type);
        }
    }
  }
  std::string all;
  for (size_t i = 0; i < problems.size() && i < 80; ++i) all += problems[i] + "\n";
  EXPECT_TRUE(problems.empty()) << problems.size() << " problems:\n" << all;
  EXPECT_GT(models, 900);
  std::cout << "[          ] " << models << " models; graph outputs inferred from the inputs alone: " << outputs_shaped
            << "/" << outputs << " fully shaped, " << outputs_typed << "/" << outputs << " typed; " << compared
            << " values compared with ONNX's reference\n";
}

}  // namespace
}  // namespace strata
