// Intra-op threading. Strata uses one runtime, OpenMP (libgomp), because Debian's oneDNN is built
// on it; a second pool beside it would oversubscribe the cores.
#pragma once

namespace strata {

// Physical cores (hyper-threads of one core count once); falls back to logical CPUs.
int PhysicalCoreCount();

// Threads to use for a session option value: n > 0 as given, otherwise the physical core count.
int ResolveThreadCount(int requested);

// Makes later parallel regions started from the calling thread use `n` threads.
void SetIntraOpThreads(int n);

}  // namespace strata
