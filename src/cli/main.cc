#include <CLI/CLI.hpp>

#include "cli/commands.h"

int main(int argc, char** argv) {
  CLI::App app{"strata: compile ONNX models once, run them fast"};
  app.require_subcommand(1);
  strata::cli::AddRunCommand(app);
  strata::cli::AddInspectCommand(app);
  strata::cli::AddBenchCommand(app);
  strata::cli::AddOpsCommand(app);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  }
  return 0;
}
