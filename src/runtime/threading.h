// Intra-op threading. Strata uses one runtime, OpenMP (libgomp), because Debian's oneDNN is built
// on it; a second pool beside it would oversubscribe the cores.
#pragma once

#include <cstdint>

namespace strata {

// Physical cores (hyper-threads of one core count once); falls back to logical CPUs.
int PhysicalCoreCount();

// Threads to use for a session option value: n > 0 as given, otherwise the physical core count.
int ResolveThreadCount(int requested);

// Makes later parallel regions started from the calling thread use `n` threads.
void SetIntraOpThreads(int n);
int IntraOpThreads();

// Ops that touch fewer elements than this run on one thread: waking the other threads costs more
// than the work (a 3-layer MLP at batch 1 took 3x longer on 2 threads), and a thread that is
// descheduled by other load stalls the whole parallel region.
constexpr int64_t kSerialWorkElements = int64_t{1} << 15;

}  // namespace strata
