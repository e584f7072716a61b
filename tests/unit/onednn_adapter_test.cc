// onednn::Call turns what oneDNN throws into a Status with the right code and the operation's name.
#include <gtest/gtest.h>

#include <new>
#include <string>

#include "kernels/cpu/ukernels/onednn.h"

namespace strata::testing {
namespace {

namespace onednn = cpu::onednn;

Status Throwing(dnnl_status_t status) {
  return onednn::Call("packing", [&] { throw dnnl::error(status, "refused"); });
}

TEST(OneDnnAdapter, MapsErrorCodes) {
  EXPECT_EQ(Throwing(dnnl_unimplemented).code(), StatusCode::kUnsupported);
  EXPECT_EQ(Throwing(dnnl_invalid_arguments).code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(Throwing(dnnl_runtime_error).code(), StatusCode::kInternal);
  const Status oom = Throwing(dnnl_out_of_memory);
  EXPECT_EQ(oom.code(), StatusCode::kInternal);
  EXPECT_EQ(oom.message(), "packing: out of memory");
  EXPECT_EQ(Throwing(dnnl_unimplemented).message(), "packing: oneDNN: refused");
}

TEST(OneDnnAdapter, CatchesBadAllocAndPassesResultsThrough) {
  const Status oom = onednn::Call("unpacking", [] { throw std::bad_alloc(); });
  EXPECT_EQ(oom.message(), "unpacking: out of memory");
  EXPECT_TRUE(onednn::Call("nothing", [] {}).ok());
  EXPECT_EQ(onednn::Call("checking", [] { return InvalidArgument("bad"); }).message(), "bad");
}

TEST(OneDnnAdapter, ReportsWhatOneDnnRejects) {
  const Status st = onednn::Call("building a reorder", [] {
    // Reorders need equal dims.
    const dnnl::memory::desc from = onednn::PlainDesc({2, 3}), to = onednn::PlainDesc({3, 2});
    dnnl::reorder::primitive_desc(onednn::Engine(), from, onednn::Engine(), to);
  });
  EXPECT_FALSE(st.ok());
  EXPECT_EQ(st.message().rfind("building a reorder: oneDNN: ", 0), 0u) << st.ToString();
}

}  // namespace
}  // namespace strata::testing
