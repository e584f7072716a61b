// Subcommands of the `strata` binary.
#pragma once

#include <CLI/CLI.hpp>

namespace strata::cli {

void AddRunCommand(CLI::App& app);
void AddInspectCommand(CLI::App& app);
void AddBenchCommand(CLI::App& app);
void AddOpsCommand(CLI::App& app);

// -O0..-O3 / --opt-level N: the graph optimisation level (SessionOptions::opt_level).
inline void AddOptLevelOption(CLI::App* cmd, int& level) {
  cmd->add_option("-O,--opt-level", level, "graph optimisation level 0-3 (docs/passes.md)")
      ->check(CLI::Range(0, 3))
      ->capture_default_str();
}

}  // namespace strata::cli
