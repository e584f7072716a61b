// Subcommands of the `strata` binary.
#pragma once

#include <CLI/CLI.hpp>

namespace strata::cli {

void AddRunCommand(CLI::App& app);
void AddInspectCommand(CLI::App& app);
void AddBenchCommand(CLI::App& app);
void AddOpsCommand(CLI::App& app);

}  // namespace strata::cli
