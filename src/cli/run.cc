// `strata run`: one inference from input files, outputs written as .pb or .npy.
#include <filesystem>
#include <iostream>

#include "cli/commands.h"
#include "cli/inputs.h"
#include "core/npy.h"
#include "onnx/tensor_proto.h"
#include "runtime/session.h"

namespace strata::cli {
namespace {

struct RunArgs {
  std::string model;
  std::vector<std::string> inputs;
  std::string input_dir;
  std::string output_dir = ".";
  std::string format = "pb";
  bool no_shape_check = false;
  int opt_level = 3;
  int threads = 0;
};

int Fail(const Status& st) {
  std::cerr << "strata: " << st.ToString() << "\n";
  return 1;
}

int Run(const RunArgs& a) {
  SessionOptions opts;
  opts.check_input_shapes = !a.no_shape_check;
  opts.opt_level = a.opt_level;
  opts.num_threads = a.threads;
  auto session = Session::Load(a.model, opts);
  if (!session.ok()) return Fail(session.status());
  std::vector<size_t> missing;
  auto inputs = LoadInputs(**session, a.inputs, a.input_dir, &missing);
  if (!inputs.ok()) return Fail(inputs.status());
  for (size_t k : missing) {
    const auto& vi = (*session)->inputs()[k];
    if (vi.type.kind != ir::TypeInfo::Kind::kOptional)
      return Fail(InvalidArgument("no value given for input '" + vi.name + "' of type " + vi.type.ToString() +
                                  " (use --input " + vi.name + "=FILE or --inputs DIR)"));
  }
  std::vector<Value> outputs;
  Status st = (*session)->Run(*inputs, outputs);
  if (!st.ok()) return Fail(st);
  std::error_code ec;
  std::filesystem::create_directories(a.output_dir, ec);
  for (size_t k = 0; k < outputs.size(); ++k) {
    const auto& vi = (*session)->outputs()[k];
    if (a.format == "npy") {
      if (!outputs[k].is_tensor())
        return Fail(Unsupported("output '" + vi.name + "' is not a tensor; use --format pb"));
      st = WriteNpy(a.output_dir + "/output_" + std::to_string(k) + ".npy", outputs[k].tensor());
    } else {
      st = onnx_io::WriteValueFile(a.output_dir + "/output_" + std::to_string(k) + ".pb", outputs[k], vi.type, vi.name);
    }
    if (!st.ok()) return Fail(st);
  }
  return 0;
}

}  // namespace

void AddRunCommand(CLI::App& app) {
  auto args = std::make_shared<RunArgs>();
  auto* cmd = app.add_subcommand("run", "Run a model once on input files and write its outputs");
  cmd->add_option("model", args->model, "ONNX model file")->required();
  cmd->add_option("--input", args->inputs, "NAME=FILE (.npy or TensorProto/SequenceProto/OptionalProto .pb)");
  cmd->add_option("--inputs", args->input_dir, "directory with input_<k>.pb in graph-input order");
  cmd->add_option("--output-dir", args->output_dir, "where output_<k>.pb/.npy go")->capture_default_str();
  cmd->add_option("--threads", args->threads, "intra-op threads (0: physical cores)");
  cmd->add_option("--format", args->format, "output format")->check(CLI::IsMember({"pb", "npy"}))->capture_default_str();
  cmd->add_flag("--no-shape-check", args->no_shape_check,
                "trust input data over the model's declared input shapes (dtypes are still checked); "
                "also skips the graph passes, which rely on those shapes");
  AddOptLevelOption(cmd, args->opt_level);
  cmd->callback([args]() { throw CLI::RuntimeError(Run(*args)); });
}

}  // namespace strata::cli
