// Subcommands of the `strata` binary.
#pragma once

#include <CLI/CLI.hpp>

namespace strata::cli {

void AddRunCommand(CLI::App& app);
void AddInspectCommand(CLI::App& app);
void AddBenchCommand(CLI::App& app);
void AddOpsCommand(CLI::App& app);

// -O0..-O3 / --opt-level N: the graph optimisation level (SessionOptions::opt_level).
inline CLI::Option* AddOptLevelOption(CLI::App* cmd, int& level) {
  return cmd
      ->add_option("-O,--opt-level", level,
                   "graph passes: 0 none, 1 cleanups and constant folding, 2 also Conv+BN folding and "
                   "Conv/Gemm/MatMul epilogue fusion, 3 also LayerNorm/GELU recognition and channels-last "
                   "convolution chains (docs/passes.md)")
      ->check(CLI::Range(0, 3))
      ->capture_default_str();
}

}  // namespace strata::cli
