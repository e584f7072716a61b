// The data-movement helpers of kernels/cpu/tensor_util.h, and the Gather/Slice/Unsqueeze paths that
// read their parameters without heap allocation (indices in place, small values in a Shape).
#include <gtest/gtest.h>

#include <numeric>

#include "kernels/cpu/tensor_util.h"
#include "onnx/importer.h"
#include "runtime/session.h"
#include "test_model_builder.h"

namespace strata {
namespace {

using testing::ModelBuilder;

TEST(TensorUtil, CoalesceDimsDropsOnesAndMergesContiguousDims) {
  // [2, 1, 3, 4] read contiguously: one run of 24.
  Shape shape{2, 1, 3, 4};
  Strides strides{12, 12, 4, 1};
  cpu::tensor::CoalesceDims(shape, strides);
  EXPECT_EQ(shape, (Shape{24}));
  EXPECT_EQ(strides, (Strides{1}));

  // Transposed [3, 2] view of a [2, 3] tensor with a broadcast leading dim: nothing merges but the 1 goes.
  shape = {1, 3, 2};
  strides = {0, 1, 3};
  cpu::tensor::CoalesceDims(shape, strides);
  EXPECT_EQ(shape, (Shape{3, 2}));
  EXPECT_EQ(strides, (Strides{1, 3}));

  // Merging after a kept dim: [4, 2, 3] with the last two contiguous -> [4, 6].
  shape = {4, 2, 3};
  strides = {1, 12, 4};  // dim 0 strided by 1 (transposed), dims 1-2 contiguous with each other
  cpu::tensor::CoalesceDims(shape, strides);
  EXPECT_EQ(shape, (Shape{4, 6}));
  EXPECT_EQ(strides, (Strides{1, 4}));
}

// out[i, j, k] = in[k, i, j] for in of shape [a, b, c], through StridedCopy (row path and tiled path).
void CheckPermute(int64_t a, int64_t b, int64_t c) {
  std::vector<float> in(static_cast<size_t>(a * b * c));
  std::iota(in.begin(), in.end(), 0.0f);
  const Shape out_shape{b, c, a};
  const Strides in_strides{c, 1, b * c};
  std::vector<float> out(in.size(), -1.0f);
  cpu::tensor::StridedCopy(in.data(), 0, out_shape, in_strides, out.data());
  for (int64_t i = 0; i < b; ++i)
    for (int64_t j = 0; j < c; ++j)
      for (int64_t k = 0; k < a; ++k)
        ASSERT_EQ(out[static_cast<size_t>((i * c + j) * a + k)], in[static_cast<size_t>((k * b + i) * c + j)])
            << "shape " << a << "x" << b << "x" << c << " at " << i << "," << j << "," << k;
}

TEST(TensorUtil, StridedCopyPermutes) {
  CheckPermute(2, 3, 4);     // small: row by row
  CheckPermute(37, 5, 41);   // >= 4096 elements with a unit-stride dim: tiled
  CheckPermute(1, 70, 2000); // > 1 << 17 elements: parallel rows
}

onnx::TensorProto& IntInit(ModelBuilder& b, const std::string& name, int data_type, const std::vector<int64_t>& v,
                           const std::vector<int64_t>& dims) {
  auto* t = b.proto().mutable_graph()->add_initializer();
  t->set_name(name);
  t->set_data_type(data_type);
  for (auto d : dims) t->add_dims(d);
  for (auto x : v) {
    if (data_type == onnx::TensorProto::INT32) t->add_int32_data(static_cast<int32_t>(x));
    else t->add_int64_data(x);
  }
  return *t;
}

Result<std::vector<Value>> RunModel(const ModelBuilder& b, std::vector<Value> inputs) {
  const std::string bytes = b.Bytes();
  auto model = onnx_io::LoadModelFromBytes(bytes.data(), bytes.size());
  if (!model.ok()) return model.status();
  auto session = Session::FromModel(std::move(model).value());
  if (!session.ok()) return session.status();
  std::vector<Value> outputs;
  RETURN_IF_ERROR((*session)->Run(inputs, outputs));
  return outputs;
}

Tensor Iota(const Shape& shape) {
  Tensor t(DType::kFloat, shape);
  for (int64_t i = 0; i < t.numel(); ++i) t.data<float>()[i] = static_cast<float>(i);
  return t;
}

TEST(TensorKernels, GatherReadsInt32AndNegativeIndicesInPlace) {
  for (int data_type : {onnx::TensorProto::INT32, onnx::TensorProto::INT64}) {
    ModelBuilder b;
    b.Input("x", onnx::TensorProto::FLOAT, {4, 3}).Output("y", onnx::TensorProto::FLOAT, {2, 2, 3});
    b.Output("z", onnx::TensorProto::FLOAT, {4, 2});
    IntInit(b, "i", data_type, {-1, 0, 2, -4}, {2, 2});
    IntInit(b, "j", data_type, {2, -3}, {2});
    b.Node("Gather", {"x", "i"}, {"y"});
    b.Node("Gather", {"x", "j"}, {"z"}).add_attribute()->CopyFrom([] {
      onnx::AttributeProto a;
      a.set_name("axis");
      a.set_type(onnx::AttributeProto::INT);
      a.set_i(1);
      return a;
    }());
    auto out = RunModel(b, {Value(Iota({4, 3}))});
    ASSERT_TRUE(out.ok()) << out.status().ToString();
    const Tensor& y = (*out)[0].tensor();
    ASSERT_EQ(y.shape(), (Shape{2, 2, 3}));
    const float want_y[] = {9, 10, 11, 0, 1, 2, 6, 7, 8, 0, 1, 2};
    for (int k = 0; k < 12; ++k) EXPECT_EQ(y.data<float>()[k], want_y[k]) << k;
    const Tensor& z = (*out)[1].tensor();
    ASSERT_EQ(z.shape(), (Shape{4, 2}));
    const float want_z[] = {2, 0, 5, 3, 8, 6, 11, 9};
    for (int k = 0; k < 8; ++k) EXPECT_EQ(z.data<float>()[k], want_z[k]) << k;
  }
}

TEST(TensorKernels, RunTimeAxisAndIndexErrorsNameTheNode) {
  {
    // The index is an input, so only Compute can see it is out of range.
    ModelBuilder b;
    b.Input("x", onnx::TensorProto::FLOAT, {4, 3}).Input("i", onnx::TensorProto::INT64, {1});
    b.Output("y", onnx::TensorProto::FLOAT, {1, 3});
    b.Node("Gather", {"x", "i"}, {"y"}, "gather_rows");
    Tensor i(DType::kInt64, {1});
    i.data<int64_t>()[0] = 4;
    auto out = RunModel(b, {Value(Iota({4, 3})), Value(i)});
    ASSERT_FALSE(out.ok());
    const std::string& m = out.status().message();
    EXPECT_NE(m.find("gather_rows"), std::string::npos) << m;
    EXPECT_NE(m.find("index 4 is out of range [-4, 4)"), std::string::npos) << m;
  }
  {
    // Unsqueeze axes given at run time: out of range for the output rank.
    ModelBuilder b;
    b.Input("x", onnx::TensorProto::FLOAT, {4, 3}).Input("axes", onnx::TensorProto::INT64, {1});
    b.Output("y", onnx::TensorProto::FLOAT, {-1, -1, -1});
    b.Node("Unsqueeze", {"x", "axes"}, {"y"}, "unsq");
    Tensor axes(DType::kInt64, {1});
    axes.data<int64_t>()[0] = 5;
    auto out = RunModel(b, {Value(Iota({4, 3})), Value(axes)});
    ASSERT_FALSE(out.ok());
    const std::string& m = out.status().message();
    EXPECT_NE(m.find("unsq"), std::string::npos) << m;
    EXPECT_NE(m.find("axis 5 is out of range for rank 3"), std::string::npos) << m;
  }
  {
    // Slice parameters as int32 inputs, read into a Shape; a bad dtype is named.
    ModelBuilder b;
    b.Input("x", onnx::TensorProto::FLOAT, {4, 3}).Input("starts", onnx::TensorProto::FLOAT, {1});
    b.Output("y", onnx::TensorProto::FLOAT, {-1, -1});
    IntInit(b, "ends", onnx::TensorProto::INT32, {3}, {1});
    b.Node("Slice", {"x", "starts", "ends"}, {"y"}, "slc");
    Tensor starts(DType::kFloat, {1});
    auto out = RunModel(b, {Value(Iota({4, 3})), Value(starts)});
    ASSERT_FALSE(out.ok());
    const std::string& m = out.status().message();
    EXPECT_NE(m.find("slc"), std::string::npos) << m;
    EXPECT_NE(m.find("input 'starts': expected an int32/int64 tensor, got float"), std::string::npos) << m;
  }
}

}  // namespace
}  // namespace strata
