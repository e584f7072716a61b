#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>

#include "core/dtype.h"
#include "core/large_buffer.h"
#include "core/npy.h"
#include "core/tensor.h"

namespace strata {
namespace {

TEST(Float16, EveryBitPatternRoundTripsThroughFloat) {
  for (uint32_t b = 0; b < 65536; ++b) {
    const float f = Float16::ToFloat(static_cast<uint16_t>(b));
    if (std::isnan(f)) {
      EXPECT_TRUE(std::isnan(Float16::ToFloat(Float16::FromFloat(f))));
      continue;
    }
    ASSERT_EQ(Float16::FromFloat(f), b) << "bits " << b << " value " << f;
  }
}

TEST(Float16, RoundsToNearestEvenAndSaturatesToInf) {
  EXPECT_EQ(static_cast<float>(Float16(1.0f + 1.0f / 2048)), 1.0f);               // tie -> even
  EXPECT_EQ(static_cast<float>(Float16(1.0f + 3.0f / 2048)), 1.0f + 2.0f / 1024);  // tie -> even (up)
  EXPECT_TRUE(std::isinf(static_cast<float>(Float16(70000.0f))));
  EXPECT_EQ(static_cast<float>(Float16(65504.0f)), 65504.0f);
  EXPECT_EQ(static_cast<float>(Float16(5.9604645e-8f)), 5.9604645e-8f);  // smallest subnormal
}

TEST(BFloat16, RoundsToNearestEven) {
  EXPECT_EQ(static_cast<float>(BFloat16(1.0f)), 1.0f);
  EXPECT_EQ(static_cast<float>(BFloat16(1.00390625f)), 1.0f);  // exactly half an ulp: to even
  EXPECT_EQ(static_cast<float>(BFloat16(1.01171875f)), 1.015625f);
  EXPECT_TRUE(std::isnan(static_cast<float>(BFloat16(std::nanf("")))));
}

TEST(Shape, BehavesLikeAVectorInlineAndOnTheHeap) {
  Shape s = {1, 2, 3};
  EXPECT_EQ(s.capacity(), Shape::kInline);
  for (int64_t d = 4; d <= 12; ++d) s.push_back(d);  // grows past the inline capacity
  ASSERT_EQ(s.size(), 12u);
  for (size_t i = 0; i < s.size(); ++i) EXPECT_EQ(s[i], static_cast<int64_t>(i + 1));
  s.erase(s.begin() + 1, s.begin() + 3);  // 1 4 5 ... 12
  s.insert(s.begin() + 1, {20, 30});     // 1 20 30 4 ... 12
  const std::vector<int64_t> want = {1, 20, 30, 4, 5, 6, 7, 8, 9, 10, 11, 12};
  EXPECT_EQ(s, Shape(want));
  EXPECT_EQ(std::vector<int64_t>(s), want);
  Shape heap_copy = s, moved = std::move(heap_copy);
  EXPECT_EQ(moved, s);
  Shape small = {7, 8};
  Shape small_moved = std::move(small);
  EXPECT_EQ(small_moved, (Shape{7, 8}));
  moved = small_moved;  // heap-backed shape assigned a short one
  EXPECT_EQ(moved.size(), 2u);
  EXPECT_EQ(moved.back(), 8);
  EXPECT_TRUE(Shape({1, 2}) < Shape({1, 3}));
  EXPECT_NE(Shape({1, 2}), Shape({1, 2, 1}));
  EXPECT_EQ(Shape(3, 5), Shape({5, 5, 5}));
  EXPECT_THROW(s.at(12), std::out_of_range);
  EXPECT_EQ(s.at(11), 12);
}

TEST(Tensor, CreateRejectsNegativeAndHugeShapes) {
  EXPECT_FALSE(Tensor::Create(DType::kFloat, {2, -1}).ok());
  auto huge = Tensor::Create(DType::kFloat, {1 << 20, 1 << 20, 1 << 20});
  ASSERT_FALSE(huge.ok());
  EXPECT_NE(huge.status().message().find("exceeds"), std::string::npos);
  EXPECT_FALSE(Tensor::Create(DType::kFloat, {INT64_MAX, 3}).ok());
}

TEST(Tensor, ZeroSizedAndStringTensors) {
  auto t = Tensor::Create(DType::kFloat, {3, 0});
  ASSERT_TRUE(t.ok());
  EXPECT_EQ(t->numel(), 0);
  Tensor s(DType::kString, {2});
  s.data<std::string>()[1] = "hello";
  Tensor c = s.Clone();
  s.data<std::string>()[1] = "changed";
  EXPECT_EQ(c.data<std::string>()[1], "hello");
}

TEST(Npy, RoundTripAndRejectsGarbage) {
  const auto dir = std::filesystem::temp_directory_path();
  const std::string path = (dir / "strata_npy_test.npy").string();
  Tensor t = Tensor::FromVector<int32_t>({1, 2, 3, 4, 5, 6}, {2, 3});
  ASSERT_TRUE(WriteNpy(path, t).ok());
  auto back = ReadNpy(path);
  ASSERT_TRUE(back.ok()) << back.status().ToString();
  EXPECT_EQ(back->shape(), (Shape{2, 3}));
  EXPECT_EQ(back->data<int32_t>()[5], 6);

  EXPECT_FALSE(ParseNpy("not a numpy file", "x").ok());
  std::string bytes;
  {
    std::ifstream in(path, std::ios::binary);
    bytes.assign(std::istreambuf_iterator<char>(in), {});
  }
  EXPECT_FALSE(ParseNpy(bytes.substr(0, bytes.size() - 3), "truncated").ok());
  std::filesystem::remove(path);
}

TEST(LargeBuffer, AlignedAndWritableAtEverySize) {
  for (size_t bytes : {size_t{0}, size_t{1}, size_t{100}, (size_t{2} << 20) - 1, size_t{2} << 20, (size_t{5} << 20) + 3}) {
    SCOPED_TRACE(bytes);
    LargeBuffer b = AllocateLargeBuffer(bytes);
    ASSERT_NE(b.get(), nullptr);
    const auto at = reinterpret_cast<uintptr_t>(b.get());
    EXPECT_EQ(at % 64, 0u);
    if (bytes >= (size_t{2} << 20)) {
      EXPECT_EQ(at % (size_t{2} << 20), 0u);  // huge-page aligned
    }
    std::memset(b.get(), 0x5A, bytes);
  }
}

}  // namespace
}  // namespace strata
