// `strata inspect`: what a model takes, returns, imports and holds.
#include <iostream>
#include <map>

#include "cli/commands.h"
#include "onnx/importer.h"
#include "passes/graph_pass.h"
#include "passes/shape_inference.h"

namespace strata::cli {
namespace {

// Declared or inferred type of each value that has one (value_info and graph outputs).
std::map<std::string, const ir::ValueInfo*> TypeIndex(const ir::Graph& g) {
  std::map<std::string, const ir::ValueInfo*> index;
  for (const auto* list : {&g.value_info, &g.outputs})
    for (const auto& vi : *list) index[vi.name] = &vi;
  return index;
}

void CountOps(const ir::Graph& g, std::map<std::string, int>& hist, int64_t& params, int64_t& bytes) {
  for (const auto& [name, t] : g.initializers) {
    params += t.numel();
    bytes += static_cast<int64_t>(t.nbytes());
  }
  for (const auto& n : g.nodes) {
    ++hist[n.QualifiedOpType()];
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
  const auto index = TypeIndex(g);
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

std::string Join(const std::vector<std::string>& v) {
  std::string s;
  for (size_t i = 0; i < v.size(); ++i) s += (i ? ", " : "") + (v[i].empty() ? std::string("<none>") : v[i]);
  return s;
}

// --optimized: runs shape inference and the passes of `level`, prints the resulting graph and the op
// histogram before and after.
int PrintOptimized(ir::Model& model, int level) {
  Status st = passes::InferShapes(model);
  if (!st.ok()) {
    std::cerr << "strata: " << st.ToString() << "\n";
    return 1;
  }
  std::map<std::string, int> before, after;
  int64_t params = 0, bytes = 0;
  CountOps(*model.graph, before, params, bytes);
  passes::OptimizeReport report;
  st = passes::Optimize(model, level, &report);
  if (!st.ok()) {
    std::cerr << "strata: " << st.ToString() << "\n";
    return 1;
  }
  params = bytes = 0;
  CountOps(*model.graph, after, params, bytes);
  const auto types = TypeIndex(*model.graph);
  std::cout << "optimised graph (-O" << level << ", " << report.iterations << " iteration(s)):\n";
  for (const auto& n : model.graph->nodes) {
    std::cout << "  " << n.QualifiedOpType();
    if (n.opset) std::cout << "-" << n.opset;
    std::cout << "(" << Join(n.inputs) << ") -> " << Join(n.outputs);
    if (!n.outputs.empty()) {
      auto it = types.find(n.outputs[0]);
      if (it != types.end()) std::cout << " : " << it->second->type.ToString();
    }
    if (const ir::Attribute* a = n.attr("activations"); a && !a->strings.empty()) std::cout << "  [" << Join(a->strings) << "]";
    for (const char* layout : {"x_layout", "residual_layout", "y_layout"})
      if (const ir::Attribute* a = n.attr(layout); a && a->s == "NHWC") std::cout << "  " << layout << "=NHWC";
    std::cout << "\n";
  }
  std::map<std::string, std::pair<int, int>> table;
  int tb = 0, ta = 0;
  for (const auto& [op, c] : before) table[op].first = c, tb += c;
  for (const auto& [op, c] : after) table[op].second = c, ta += c;
  std::cout << "op counts (before -> after -O" << level << "):\n";
  for (const auto& [op, c] : table) std::cout << "  " << op << ": " << c.first << " -> " << c.second << "\n";
  std::cout << "  total: " << tb << " -> " << ta << "\n";
  std::cout << "parameters after: " << params << " (" << (static_cast<double>(bytes) / (1 << 20)) << " MiB)\n";
  return 0;
}

int Inspect(const std::string& path, bool shapes, bool optimized, int level) {
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
  if (shapes) {
    const int rc = PrintShapes(*model);
    if (rc != 0) return rc;
  }
  if (optimized) return PrintOptimized(*model, level);
  return 0;
}

}  // namespace

void AddInspectCommand(CLI::App& app) {
  auto path = std::make_shared<std::string>();
  auto* cmd = app.add_subcommand("inspect", "Print a model's inputs, outputs, opsets, op histogram and size");
  auto shapes = std::make_shared<bool>(false);
  cmd->add_option("model", *path, "ONNX model file")->required();
  cmd->add_flag("--shapes", *shapes, "Run Strata's shape inference and print every value's dtype and (symbolic) shape");
  auto optimized = std::make_shared<bool>(false);
  auto level = std::make_shared<int>(3);
  auto* opt_flag = cmd->add_flag("--optimized", *optimized,
                                 "Run the graph passes of -O (default 3); print the optimised graph and op counts "
                                 "before/after");
  AddOptLevelOption(cmd, *level)->needs(opt_flag);
  cmd->callback([path, shapes, optimized, level]() {
    throw CLI::RuntimeError(Inspect(*path, *shapes, *optimized, *level));
  });
}

}  // namespace strata::cli
