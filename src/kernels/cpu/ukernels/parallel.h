// Parallel loops and per-thread scratch for kernels and micro-kernels. Graph-free: the LLM engine and
// the operator kernels share them.
#pragma once

#include <omp.h>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <exception>

namespace strata::cpu {

// Loops go through these rather than `#pragma omp parallel for if (...)`: a parallel region
// whose `if` is false still builds a one-thread team (and allocates) on every call.
inline constexpr int64_t kParallelThreshold = 1 << 15;

// Calls f(begin, end) over [0, n), split across threads when n >= threshold. An exception f throws
// on a worker thread (std::bad_alloc from scratch memory) is rethrown on the caller's, since one
// escaping an OpenMP region ends the process; the executor turns bad_alloc into an error Status.
template <typename F>
void ParallelFor(int64_t n, F&& f, int64_t threshold = kParallelThreshold) {
  if (n <= 0) return;
  const int threads = omp_get_max_threads();
  if (n < threshold || threads <= 1 || omp_in_parallel()) {
    f(int64_t{0}, n);
    return;
  }
  const int64_t grain = std::max<int64_t>(1, threshold / 2);
  const int64_t chunks = std::min<int64_t>(threads, (n + grain - 1) / grain);
  std::exception_ptr error;
#pragma omp parallel for num_threads(static_cast<int>(chunks)) schedule(static)
  for (int64_t c = 0; c < chunks; ++c) {
    const int64_t b = n * c / chunks, e = n * (c + 1) / chunks;
    try {
      if (b < e) f(b, e);
    } catch (...) {
#pragma omp critical(strata_parallel_for_error)
      if (!error) error = std::current_exception();
    }
  }
  if (error) std::rethrow_exception(error);
}

// dst[0, n) = src[0, n) on all threads when n is large: a residual placed in a destination before a
// oneDNN sum post-op, on one thread, costs more than a convolution at 2 threads (ResNet-50's 56x56
// layers). No-op when src == dst.
inline void ParallelCopy(const float* src, float* dst, int64_t n) {
  if (src == dst) return;
  ParallelFor(n, [&](int64_t b, int64_t e) { std::copy(src + b, src + e, dst + b); }, int64_t{1} << 16);
}

// Calls f(begin, end) over rows [0, rows) of row_elems elements each, split across threads when
// there are at least two rows and more than min_elems elements in all.
template <typename F>
void ParallelRows(int64_t rows, int64_t row_elems, F&& f, int64_t min_elems = 1 << 16) {
  ParallelFor(rows, f, std::max<int64_t>(2, min_elems / std::max<int64_t>(row_elems, 1) + 1));
}

// Per-thread scratch for kernels: grows to the largest request and is then reused, so steady-state
// runs do not allocate. `slot` (0..kThreadScratchSlots-1) separates buffers one caller holds at the same time; nothing
// may keep a pointer past its Compute (the next kernel on the thread reuses the slots). 64-byte
// aligned, uninitialised; null when out of memory.
inline constexpr int kThreadScratchSlots = 4;
float* ThreadScratch(int slot, size_t floats);

}  // namespace strata::cpu
