// `strata inspect`: what a model takes, returns, imports and holds.
#include <iostream>
#include <map>

#include "cli/commands.h"
#include "onnx/importer.h"
#include "passes/shape_inference.h"

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

void PrintValueTypes(const ir::Graph& g, const std::string& indent) {
  std::map<std::string, const ir::ValueInfo*> index;
  for (const auto* list : {&g.value_info, &g.outputs})
    for (const auto& vi : *list) index[vi.name] = &vi;
  for (const auto& n : g.nodes) {
    for (const auto& o : n.outputs) {
      if (o.empty()) continue;
      auto it = index.find(o);
      std::cout << indent << o << ": " << (it == index.end() ? std::string("?") : it->second->type.ToString()) << "  ("
                << n.op_type << ")\n";
    }
    for (const auto& a : n.attributes) {
      std::vector<const ir::Graph*> bodies;
      if (a.g) bodies.push_back(a.g.get());
      for (const auto& sg : a.graphs) bodies.push_back(sg.get());
      for (const auto* b : bodies) {
        std::cout << indent << "[" << n.Describe() << " " << a.name << "]\n";
        PrintValueTypes(*b, indent + "  ");
      }
    }
  }
}

// --shapes: runs Strata's shape inference and prints every value's type.
int PrintShapes(ir::Model& model) {
  const auto before = passes::CountShapeCoverage(*model.graph);
  passes::ShapeInferenceReport report;
  Status st = passes::InferShapes(model, &report);
  if (!st.ok()) {
    std::cerr << "strata: " << st.ToString() << "\n";
    return 1;
  }
  const auto after = passes::CountShapeCoverage(*model.graph);
  std::cout << "values (node outputs of the main graph):\n";
  PrintValueTypes(*model.graph, "  ");
  std::cout << "shape coverage: " << after.shaped << "/" << after.values
            << " values with every dim known or symbolic (before Strata's inference: " << before.shaped << "/"
            << before.values << "); dtype known: " << after.typed << "/" << after.values << " (before: " << before.typed
            << ")\n";
  for (const auto& c : report.conflicts) std::cout << "  kept declared type: " << c << "\n";
  return 0;
}

int Inspect(const std::string& path, bool shapes) {
  auto model = onnx_io::LoadModel(path);
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
  if (shapes) return PrintShapes(*model);
  return 0;
}

}  // namespace

void AddInspectCommand(CLI::App& app) {
  auto path = std::make_shared<std::string>();
  auto* cmd = app.add_subcommand("inspect", "Print a model's inputs, outputs, opsets, op histogram and size");
  auto shapes = std::make_shared<bool>(false);
  cmd->add_option("model", *path, "ONNX model file")->required();
  cmd->add_flag("--shapes", *shapes, "Run Strata's shape inference and print every value's dtype and (symbolic) shape");
  cmd->callback([path, shapes]() { throw CLI::RuntimeError(Inspect(*path, *shapes)); });
}

}  // namespace strata::cli
