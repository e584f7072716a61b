#include "cli/inputs.h"

#include <filesystem>

#include "core/npy.h"
#include "onnx/tensor_proto.h"

namespace strata::cli {

static Result<Value> LoadValueFile(const std::string& path, const ir::TypeInfo& type) {
  if (path.size() > 4 && path.substr(path.size() - 4) == ".npy") {
    ASSIGN_OR_RETURN(Tensor t, ReadNpy(path));
    return Value(std::move(t));
  }
  return onnx_io::ReadValueFile(path, type);
}

Result<std::vector<Value>> LoadInputs(const Session& session, const std::vector<std::string>& pairs,
                                      const std::string& dir, std::vector<size_t>* missing) {
  const auto& inputs = session.inputs();
  std::vector<Value> values(inputs.size());
  std::vector<bool> given(inputs.size(), false);
  if (!dir.empty()) {
    if (!std::filesystem::is_directory(dir)) return IoError("--inputs: '" + dir + "' is not a directory");
    for (size_t k = 0; k < inputs.size(); ++k) {
      const std::string path = dir + "/input_" + std::to_string(k) + ".pb";
      if (!std::filesystem::exists(path)) continue;
      auto v = LoadValueFile(path, inputs[k].type);
      if (!v.ok()) return v.status().WithContext("input '" + inputs[k].name + "': ");
      values[k] = std::move(v).value();
      given[k] = true;
    }
  }
  for (const auto& pair : pairs) {
    const auto eq = pair.find('=');
    if (eq == std::string::npos) return InvalidArgument("--input expects NAME=FILE, got '" + pair + "'");
    const std::string name = pair.substr(0, eq), path = pair.substr(eq + 1);
    size_t k = 0;
    while (k < inputs.size() && inputs[k].name != name) ++k;
    if (k == inputs.size()) {
      std::string names;
      for (const auto& vi : inputs) names += (names.empty() ? "" : ", ") + vi.name;
      return InvalidArgument("the model has no input named '" + name + "' (inputs: " + names + ")");
    }
    auto v = LoadValueFile(path, inputs[k].type);
    if (!v.ok()) return v.status().WithContext("input '" + name + "': ");
    values[k] = std::move(v).value();
    given[k] = true;
  }
  for (size_t k = 0; k < inputs.size(); ++k)
    if (!given[k] && missing) missing->push_back(k);
  return values;
}

}  // namespace strata::cli
