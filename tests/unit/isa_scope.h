// Kernel tests at every vec_math ISA level this CPU has (vec::ForceIsa).
#pragma once

#include <vector>

#include "kernels/cpu/ukernels/vec_math.h"

namespace strata::testing {

// Lowers the active level for the scope and puts back the level it found.
class IsaScope {
 public:
  explicit IsaScope(cpu::vec::Isa isa) : saved_(cpu::vec::Active().isa) { cpu::vec::ForceIsa(isa); }
  ~IsaScope() { cpu::vec::ForceIsa(saved_); }
  IsaScope(const IsaScope&) = delete;
  IsaScope& operator=(const IsaScope&) = delete;

 private:
  cpu::vec::Isa saved_;
};

// The levels this CPU has, lowest first.
inline std::vector<cpu::vec::Isa> AvailableIsas() {
  std::vector<cpu::vec::Isa> out;
  for (cpu::vec::Isa isa : {cpu::vec::Isa::kScalar, cpu::vec::Isa::kAvx2, cpu::vec::Isa::kAvx512})
    if (cpu::vec::KernelsFor(isa) != nullptr) out.push_back(isa);
  return out;
}

}  // namespace strata::testing
