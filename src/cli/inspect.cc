// `strata inspect`: what a model takes, returns, imports and holds.
#include <iostream>
#include <map>

#include "cli/commands.h"
#include "onnx/importer.h"

namespace strata::cli {
namespace {

void CountOps(const ir::Graph& g, std::map<std::string, int>& hist, int64_t& params, int64_t& bytes) {
  for (const auto& [name, t] : g.initializers) {
    params += t.numel();
    bytes += static_cast<int64_t>(t.nbytes());
  }
  for (const auto& n : g.nodes) {
    ++hist[(n.domain == ir::kOnnxDomain ? "" : n.domain + ":") + n.op_type];
    for (const auto& a : n.attributes) {
      if (a.g) CountOps(*a.g, hist, params, bytes);
      for (const auto& sg : a.graphs) CountOps(*sg, hist, params, bytes);
      if (n.op_type == "Constant" && a.t.defined()) {
        params += a.t.numel();
        bytes += static_cast<int64_t>(a.t.nbytes());
      }
    }
  }
}

int Inspect(const std::string& path) {
  onnx_io::ImportOptions opts;
  auto model = onnx_io::LoadModel(path, opts);
  if (!model.ok()) {
    std::cerr << "strata: " << model.status().ToString() << "\n";
    return 1;
  }
  const ir::Graph& g = *model->graph;
  std::cout << "model: " << path << "\n";
  std::cout << "ir_version: " << model->ir_version << "  producer: " << model->producer_name << " "
            << model->producer_version << "\n";
  std::cout << "opset imports:";
  for (const auto& [d, v] : model->opset_imports) std::cout << " " << d << "=" << v;
  std::cout << "\ninputs:\n";
  for (const auto& vi : g.inputs)
    if (!g.initializers.count(vi.name)) std::cout << "  " << vi.name << ": " << vi.type.ToString() << "\n";
  std::cout << "outputs:\n";
  for (const auto& vi : g.outputs) std::cout << "  " << vi.name << ": " << vi.type.ToString() << "\n";
  std::map<std::string, int> hist;
  int64_t params = 0, bytes = 0;
  CountOps(g, hist, params, bytes);
  int total = 0;
  for (const auto& [op, c] : hist) total += c;
  std::cout << "nodes: " << total << "\n";
  for (const auto& [op, c] : hist) std::cout << "  " << op << ": " << c << "\n";
  std::cout << "parameters: " << params << " (" << bytes << " bytes, " << (static_cast<double>(bytes) / (1 << 20))
            << " MiB)\n";
  return 0;
}

}  // namespace

void AddInspectCommand(CLI::App& app) {
  auto path = std::make_shared<std::string>();
  auto* cmd = app.add_subcommand("inspect", "Print a model's inputs, outputs, opsets, op histogram and size");
  cmd->add_option("model", *path, "ONNX model file")->required();
  cmd->callback([path]() { throw CLI::RuntimeError(Inspect(*path)); });
}

}  // namespace strata::cli
