// Runs the official ONNX backend test cases (libonnx-testdata) through Strata, one forked child per
// case so that a crash or hang is a failure, not the end of the run. Prints a pass count per suite
// and fails when any case on the expected-pass list no longer passes.
//
//   strata_conformance --data DIR --suite node --expected FILE [--tolerances FILE] [--jobs N]
//                      [--lenient-shapes FILE] [--filter SUBSTR] [--write-expected] [--verbose]
//                      [--opt-level N]   (graph optimisation level, SessionOptions::opt_level; default 3)
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "onnx/tensor_proto.h"
#include "runtime/session.h"

namespace fs = std::filesystem;
using namespace strata;

namespace {

struct Tolerance { double rtol, atol; };

// Per-dtype defaults (docs/conformance.md).
Tolerance DefaultTolerance(DType dt) {
  switch (dt) {
    case DType::kFloat16: return {1e-3, 1e-3};
    case DType::kBFloat16: return {1e-2, 1e-2};
    default: return {1e-3, 1e-5};
  }
}

std::string CompareTensor(const Tensor& got, const Tensor& want, const Tolerance* override_tol) {
  if (got.dtype() != want.dtype())
    return "dtype " + std::string(DTypeName(got.dtype())) + " != expected " + std::string(DTypeName(want.dtype()));
  if (got.shape() != want.shape()) return "shape " + ShapeToString(got.shape()) + " != expected " + ShapeToString(want.shape());
  const int64_t n = want.numel();
  if (want.dtype() == DType::kString) {
    for (int64_t i = 0; i < n; ++i)
      if (got.data<std::string>()[i] != want.data<std::string>()[i])
        return "string element " + std::to_string(i) + " '" + got.data<std::string>()[i] + "' != '" +
               want.data<std::string>()[i] + "'";
    return "";
  }
  if (IsFloatingPoint(want.dtype())) {
    const Tolerance tol = override_tol ? *override_tol : DefaultTolerance(want.dtype());
    int bad = 0;
    std::string first;
    for (int64_t i = 0; i < n; ++i) {
      const double g = got.GetAsDouble(i), w = want.GetAsDouble(i);
      if (std::isnan(w) && std::isnan(g)) continue;
      if (std::isinf(w) && g == w) continue;
      if (std::fabs(g - w) <= tol.atol + tol.rtol * std::fabs(w)) continue;
      if (bad++ == 0) {
        std::ostringstream os;
        os << "element " << i << ": got " << g << ", expected " << w;
        first = os.str();
      }
    }
    if (bad) return std::to_string(bad) + "/" + std::to_string(n) + " elements differ; first " + first;
    return "";
  }
  if (want.dtype() == DType::kComplex64 || want.dtype() == DType::kComplex128) {
    if (std::memcmp(got.raw(), want.raw(), want.nbytes()) != 0) return "complex values differ";
    return "";
  }
  for (int64_t i = 0; i < n; ++i)
    if (got.GetAsInt64(i) != want.GetAsInt64(i))
      return "element " + std::to_string(i) + ": got " + std::to_string(got.GetAsInt64(i)) + ", expected " +
             std::to_string(want.GetAsInt64(i));
  return "";
}

std::string CompareValue(const Value& got, const Value& want, const Tolerance* tol) {
  if (got.kind() != want.kind()) {
    auto k = [](const Value& v) { return v.is_none() ? "none" : v.is_tensor() ? "tensor" : "sequence"; };
    return std::string("got a ") + k(got) + ", expected a " + k(want);
  }
  if (want.is_tensor()) return CompareTensor(got.tensor(), want.tensor(), tol);
  if (want.is_sequence()) {
    if (got.sequence().size() != want.sequence().size())
      return "sequence length " + std::to_string(got.sequence().size()) + " != " + std::to_string(want.sequence().size());
    for (size_t i = 0; i < want.sequence().size(); ++i) {
      std::string e = CompareTensor(got.sequence()[i], want.sequence()[i], tol);
      if (!e.empty()) return "sequence item " + std::to_string(i) + ": " + e;
    }
  }
  return "";
}

// Runs one case in the current process; returns "" on success or the reason it failed.
// Each data set runs `runs` times on one session: the first run records the memory plan and later
// runs execute in the planned arena, so both paths are checked.
int g_opt_level = SessionOptions{}.opt_level;

std::string RunCase(const fs::path& dir, const Tolerance* tol, bool check_shapes, int runs) {
  SessionOptions opts;
  opts.check_input_shapes = check_shapes;
  opts.opt_level = g_opt_level;
  auto session = Session::Load((dir / "model.onnx").string(), opts);
  if (!session.ok()) return "load: " + session.status().ToString();
  std::vector<fs::path> sets;
  for (const auto& e : fs::directory_iterator(dir))
    if (e.is_directory() && e.path().filename().string().rfind("test_data_set_", 0) == 0) sets.push_back(e.path());
  std::sort(sets.begin(), sets.end());
  if (sets.empty()) return "no test_data_set_* folders";
  for (const auto& set : sets) {
    const auto& ins = (*session)->inputs();
    std::vector<Value> inputs(ins.size());
    for (size_t k = 0; k < ins.size(); ++k) {
      const fs::path p = set / ("input_" + std::to_string(k) + ".pb");
      if (!fs::exists(p)) continue;  // omitted optional input
      auto v = onnx_io::ReadValueFile(p.string(), ins[k].type);
      if (!v.ok()) return "reading " + p.string() + ": " + v.status().ToString();
      inputs[k] = std::move(v).value();
    }
    for (int run = 1; run <= runs; ++run) {
      const std::string which = runs > 1 ? " (run " + std::to_string(run) + ")" : "";
      std::vector<Value> outputs;
      Status st = (*session)->Run(inputs, outputs);
      if (!st.ok()) return "run" + which + ": " + st.ToString();
      const auto& outs = (*session)->outputs();
      for (size_t k = 0; k < outs.size(); ++k) {
        const fs::path p = set / ("output_" + std::to_string(k) + ".pb");
        if (!fs::exists(p)) continue;
        auto want = onnx_io::ReadValueFile(p.string(), outs[k].type);
        if (!want.ok()) return "reading " + p.string() + ": " + want.status().ToString();
        std::string diff = CompareValue(outputs[k], *want, tol);
        if (!diff.empty())
          return set.filename().string() + which + " output " + std::to_string(k) + " '" + outs[k].name + "': " + diff;
      }
    }
  }
  return "";
}

struct Child { pid_t pid; int fd; std::string name; std::chrono::steady_clock::time_point start; };

std::set<std::string> ReadList(const std::string& path) {
  std::set<std::string> s;
  std::ifstream in(path);
  std::string line;
  while (std::getline(in, line)) {
    if (line.empty() || line[0] == '#') continue;
    s.insert(line.substr(0, line.find_first_of(" \t")));
  }
  return s;
}

std::map<std::string, Tolerance> ReadTolerances(const std::string& path) {
  std::map<std::string, Tolerance> m;
  std::ifstream in(path);
  std::string line;
  while (std::getline(in, line)) {
    if (line.empty() || line[0] == '#') continue;
    std::istringstream is(line);
    std::string name;
    Tolerance t{};
    if (is >> name >> t.rtol >> t.atol) m[name] = t;
  }
  return m;
}

}  // namespace

int main(int argc, char** argv) {
  std::string data = "/usr/share/libonnx-testdata/data", suite, expected_path, tol_path, lenient_path, filter;
  int jobs = 2, timeout_s = 120, runs = 2;
  // Uninitialised output buffers are filled with 0xFF, so a kernel that relies on zeroed memory fails.
  setenv("STRATA_POISON_UNINITIALIZED", "1", 0);
  bool write_expected = false, verbose = false;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    auto next = [&]() -> std::string { return i + 1 < argc ? argv[++i] : ""; };
    if (a == "--data") data = next();
    else if (a == "--suite") suite = next();
    else if (a == "--expected") expected_path = next();
    else if (a == "--tolerances") tol_path = next();
    else if (a == "--lenient-shapes") lenient_path = next();
    else if (a == "--filter") filter = next();
    else if (a == "--jobs") jobs = std::max(1, std::stoi(next()));
    else if (a == "--timeout") timeout_s = std::stoi(next());
    else if (a == "--runs") runs = std::max(1, std::stoi(next()));
    else if (a == "--write-expected") write_expected = true;
    else if (a == "--verbose") verbose = true;
    else if (a == "--opt-level") g_opt_level = std::clamp(std::stoi(next()), 0, 3);
    else { std::cerr << "unknown argument " << a << "\n"; return 2; }
  }
  const fs::path suite_dir = fs::path(data) / suite;
  if (suite.empty() || !fs::is_directory(suite_dir)) {
    std::cerr << "conformance: no suite folder '" << suite_dir.string() << "' (apt-get install libonnx-testdata)\n";
    return 2;
  }
  const auto tolerances = tol_path.empty() ? std::map<std::string, Tolerance>{} : ReadTolerances(tol_path);
  // Cases whose test data contradicts the model's declared input shapes (see the file for reasons).
  const auto lenient = lenient_path.empty() ? std::set<std::string>{} : ReadList(lenient_path);
  std::vector<std::string> cases;
  for (const auto& e : fs::directory_iterator(suite_dir))
    if (e.is_directory() && e.path().filename().string().find(filter) != std::string::npos)
      cases.push_back(e.path().filename().string());
  std::sort(cases.begin(), cases.end());

  std::map<std::string, std::string> failures;  // name -> reason
  std::set<std::string> passed;
  std::vector<Child> running;
  size_t next_case = 0;
  auto reap = [&](Child& c, bool timed_out) {
    std::string out;
    char buf[4096];
    ssize_t r;
    while ((r = read(c.fd, buf, sizeof buf)) > 0) out.append(buf, static_cast<size_t>(r));
    close(c.fd);
    int status = 0;
    if (timed_out) kill(c.pid, SIGKILL);
    waitpid(c.pid, &status, 0);
    if (timed_out) failures[c.name] = "timed out after " + std::to_string(timeout_s) + " s";
    else if (WIFSIGNALED(status)) failures[c.name] = "crashed with signal " + std::to_string(WTERMSIG(status)) + " " + out;
    else if (WEXITSTATUS(status) != 0 && out.empty()) failures[c.name] = "child exited with " + std::to_string(WEXITSTATUS(status));
    else if (out == "PASS") passed.insert(c.name);
    else failures[c.name] = out;
  };
  while (next_case < cases.size() || !running.empty()) {
    while (running.size() < static_cast<size_t>(jobs) && next_case < cases.size()) {
      const std::string name = cases[next_case++];
      int fds[2];
      if (pipe(fds) != 0) { perror("pipe"); return 2; }
      const pid_t pid = fork();
      if (pid == 0) {
        close(fds[0]);
        auto it = tolerances.find(name);
        std::string r = RunCase(suite_dir / name, it == tolerances.end() ? nullptr : &it->second,
                                !lenient.count(name), runs);
        if (r.empty()) r = "PASS";
        if (write(fds[1], r.data(), r.size()) < 0) _exit(3);
        close(fds[1]);
        _exit(0);
      }
      close(fds[1]);
      running.push_back({pid, fds[0], name, std::chrono::steady_clock::now()});
    }
    bool progressed = false;
    for (size_t i = 0; i < running.size();) {
      int status;
      const pid_t r = waitpid(running[i].pid, &status, WNOHANG);
      const bool late = std::chrono::steady_clock::now() - running[i].start > std::chrono::seconds(timeout_s);
      if (r == 0 && !late) { ++i; continue; }
      Child c = running[i];
      running.erase(running.begin() + static_cast<long>(i));
      if (r == c.pid) {
        // Already reaped: read what it wrote and interpret its status here.
        std::string out;
        char buf[4096];
        ssize_t n;
        while ((n = read(c.fd, buf, sizeof buf)) > 0) out.append(buf, static_cast<size_t>(n));
        close(c.fd);
        if (WIFSIGNALED(status)) failures[c.name] = "crashed with signal " + std::to_string(WTERMSIG(status));
        else if (out == "PASS") passed.insert(c.name);
        else failures[c.name] = out.empty() ? "child exited with " + std::to_string(WEXITSTATUS(status)) : out;
      } else {
        reap(c, true);
      }
      progressed = true;
    }
    if (!progressed) std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }

  const std::set<std::string> expected = expected_path.empty() ? std::set<std::string>{} : ReadList(expected_path);
  std::vector<std::string> regressions, new_passes;
  for (const auto& name : expected)
    if (std::find(cases.begin(), cases.end(), name) != cases.end() && !passed.count(name)) regressions.push_back(name);
  for (const auto& name : passed)
    if (!expected.count(name)) new_passes.push_back(name);

  if (verbose)
    for (const auto& [name, why] : failures) std::cout << "FAIL " << name << ": " << why << "\n";
  for (const auto& name : regressions) std::cout << "REGRESSION " << name << ": " << failures[name] << "\n";
  if (!new_passes.empty() && !write_expected)
    std::cout << new_passes.size() << " case(s) pass that are not on the expected list; run with --write-expected\n";
  std::cout << "conformance " << suite << ": " << passed.size() << "/" << cases.size() << " passed, "
            << regressions.size() << " regressions (expected " << expected.size() << ")\n";
  if (write_expected && !expected_path.empty()) {
    std::ofstream out(expected_path);
    out << "# Cases of suite '" << suite << "' that must pass. Regenerate with --write-expected.\n";
    for (const auto& name : passed) out << name << "\n";
  }
  return regressions.empty() ? 0 : 1;
}
