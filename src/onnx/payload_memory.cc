#include "onnx/payload_memory.h"

#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <cstring>

namespace strata::onnx_io {
namespace {

constexpr size_t kPieceAlignment = 64;  // what Tensor's own allocations guarantee

size_t PageSize() {
  static const size_t page = static_cast<size_t>(::sysconf(_SC_PAGESIZE));
  return page;
}

class PageRange {
 public:
  PageRange(std::shared_ptr<const void> backing, const void* data, size_t size)
      : backing_(std::move(backing)), data_(data), size_(size) {}
  ~PageRange() { DropWholePages(data_, size_); }
  PageRange(const PageRange&) = delete;  // a copy's destructor would drop pages still in use
  PageRange& operator=(const PageRange&) = delete;

 private:
  std::shared_ptr<const void> backing_;  // declared first: destroyed after the pages are dropped
  const void* data_;
  size_t size_;
};

}  // namespace

void DropWholePages(const void* data, size_t size) {
  const size_t page = PageSize();
  const uintptr_t begin = (reinterpret_cast<uintptr_t>(data) + page - 1) / page * page;
  const uintptr_t end = (reinterpret_cast<uintptr_t>(data) + size) / page * page;
  if (end > begin) ::madvise(reinterpret_cast<void*>(begin), end - begin, MADV_DONTNEED);
}

void CopyDroppingSource(void* dst, const unsigned char* src, size_t size) {
  constexpr size_t kChunk = size_t{4} << 20;
  const size_t page = PageSize();
  auto* out = static_cast<unsigned char*>(dst);
  size_t done = 0;
  while (done < size) {
    // End chunks on page boundaries of the source, so every page is dropped once it is fully read.
    const uintptr_t at = reinterpret_cast<uintptr_t>(src + done);
    size_t n = (at + kChunk) / page * page - at;
    n = std::min(n, size - done);
    std::memcpy(out + done, src + done, n);
    DropWholePages(src + done, n);
    done += n;
  }
}

size_t ArenaPieceSize(size_t bytes) { return (bytes + kPieceAlignment - 1) / kPieceAlignment * kPieceAlignment; }

Result<std::shared_ptr<CopyArena>> CopyArena::Create(size_t bytes) {
  std::shared_ptr<CopyArena> a(new CopyArena());
  if (bytes == 0) return a;
  void* p = ::mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (p == MAP_FAILED)
    return InvalidArgument("out of memory allocating " + std::to_string(bytes) + " bytes for weights: " +
                           std::strerror(errno));
#ifdef MADV_HUGEPAGE
  ::madvise(p, bytes, MADV_HUGEPAGE);  // a hint: without it (THP off) the arena simply uses small pages
#endif
  a->base_ = static_cast<unsigned char*>(p);
  a->size_ = bytes;
  return a;
}

CopyArena::~CopyArena() {
  if (base_) ::munmap(base_, size_);
}

unsigned char* CopyArena::Take(size_t bytes) {
  const size_t piece = ArenaPieceSize(bytes);
  if (!base_ || piece > size_ - used_) return nullptr;
  unsigned char* p = base_ + used_;
  used_ += piece;
  return p;
}

std::shared_ptr<const void> PageRangeOwner(std::shared_ptr<const void> backing, const void* data, size_t size) {
  return std::make_shared<PageRange>(std::move(backing), data, size);
}

}  // namespace strata::onnx_io
