#include "runtime/threading.h"

#include <omp.h>

#include <fstream>
#include <set>
#include <string>
#include <thread>
#include <utility>

namespace strata {

int PhysicalCoreCount() {
  static const int count = [] {
    std::set<std::pair<std::string, std::string>> cores;
    const unsigned logical = std::max(1u, std::thread::hardware_concurrency());
    for (unsigned cpu = 0; cpu < logical; ++cpu) {
      const std::string base = "/sys/devices/system/cpu/cpu" + std::to_string(cpu) + "/topology/";
      std::ifstream pkg(base + "physical_package_id"), core(base + "core_id");
      std::string p, c;
      if (!(pkg >> p) || !(core >> c)) return static_cast<int>(logical);
      cores.emplace(p, c);
    }
    return cores.empty() ? static_cast<int>(logical) : static_cast<int>(cores.size());
  }();
  return count;
}

int ResolveThreadCount(int requested) { return requested > 0 ? requested : PhysicalCoreCount(); }

void SetIntraOpThreads(int n) { omp_set_num_threads(n); }

int IntraOpThreads() { return omp_get_max_threads(); }

}  // namespace strata
