// `strata bench`: load time, first-run time, latency percentiles and peak RSS.
#include <sys/resource.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <iostream>
#include <map>
#include <random>

#include "cli/commands.h"
#include "cli/inputs.h"
#include "runtime/session.h"

namespace strata::cli {
namespace {

struct BenchArgs {
  std::string model;
  std::vector<std::string> inputs;
  std::vector<std::string> shapes;
  int threads = 0;
  bool no_memory_plan = false;
  int runs = 20;
  int warmup = 3;
  bool json = false;
  bool load_only = false;
  int opt_level = 3;
  bool profile = false;
  int profile_steps = 15;
};

double Ms(std::chrono::steady_clock::duration d) { return std::chrono::duration<double, std::milli>(d).count(); }

// Peak resident set of this process image. Not getrusage's ru_maxrss: that survives exec, so a
// child of a large parent (a benchmark driver) would report the parent's peak.
double PeakRssMb() {
  std::FILE* f = std::fopen("/proc/self/status", "r");
  if (!f) return 0;
  char line[256];
  double kb = 0;
  while (std::fgets(line, sizeof line, f))
    if (std::sscanf(line, "VmHWM: %lf kB", &kb) == 1) break;
  std::fclose(f);
  return kb / 1024.0;
}

// Random values that are safe for any role an input may play: small non-negative integers keep
// token ids and indices in range; floats are standard normal.
Result<Value> RandomInput(const ir::ValueInfo& vi, const std::map<std::string, Shape>& shapes, std::mt19937& rng) {
  const ir::TypeInfo& t = vi.type;
  if (t.kind != ir::TypeInfo::Kind::kTensor)
    return Unsupported("input '" + vi.name + "' is not a tensor; give it with --input");
  Shape shape;
  if (auto it = shapes.find(vi.name); it != shapes.end()) {
    shape = it->second;
  } else {
    if (!t.shape) return InvalidArgument("input '" + vi.name + "' has unknown rank; give --shape " + vi.name + "=d0,d1,...");
    for (const auto& d : *t.shape) shape.push_back(d.known() ? d.value : 1);
  }
  ASSIGN_OR_RETURN(Tensor x, Tensor::Create(t.elem_type, shape));
  std::normal_distribution<float> normal;
  std::uniform_int_distribution<int> small(0, 3);
  for (int64_t i = 0; i < x.numel(); ++i) {
    switch (x.dtype()) {
      case DType::kFloat: x.data<float>()[i] = normal(rng); break;
      case DType::kDouble: x.data<double>()[i] = normal(rng); break;
      case DType::kFloat16: x.data<Float16>()[i] = Float16(normal(rng)); break;
      case DType::kBFloat16: x.data<BFloat16>()[i] = BFloat16(normal(rng)); break;
      case DType::kInt64: x.data<int64_t>()[i] = small(rng); break;
      case DType::kInt32: x.data<int32_t>()[i] = small(rng); break;
      case DType::kInt8: x.data<int8_t>()[i] = static_cast<int8_t>(small(rng)); break;
      case DType::kUInt8: x.data<uint8_t>()[i] = static_cast<uint8_t>(small(rng)); break;
      case DType::kBool: x.data<bool>()[i] = small(rng) & 1; break;
      default: return Unsupported("random inputs of dtype " + std::string(DTypeName(x.dtype())) + "; give --input");
    }
  }
  return Value(std::move(x));
}

// Where the timed runs spent their time: per op type, then the slowest steps.
void PrintProfile(const std::vector<StepTiming>& steps, size_t slowest) {
  if (steps.empty()) return;
  const double runs = static_cast<double>(std::max<int64_t>(1, steps.front().calls));
  double total = 0;
  std::map<std::string, std::pair<double, int>> by_op;
  for (const StepTiming& s : steps) {
    total += s.seconds;
    auto& e = by_op[s.op];
    e.first += s.seconds;
    ++e.second;
  }
  std::vector<std::pair<double, std::string>> ops;
  for (const auto& [op, e] : by_op) ops.emplace_back(e.first, op);
  std::sort(ops.rbegin(), ops.rend());
  std::printf("profile:   %.3f ms per run in %zu steps (mean over %.0f runs)\n", total / runs * 1e3, steps.size(), runs);
  std::printf("  %-32s %6s %10s %6s\n", "op", "steps", "ms/run", "share");
  for (const auto& [sec, op] : ops)
    std::printf("  %-32s %6d %10.4f %5.1f%%\n", op.c_str(), by_op[op].second, sec / runs * 1e3, 100 * sec / total);
  std::vector<size_t> order(steps.size());
  for (size_t i = 0; i < order.size(); ++i) order[i] = i;
  std::sort(order.begin(), order.end(), [&](size_t x, size_t y) { return steps[x].seconds > steps[y].seconds; });
  std::printf("  slowest steps:\n");
  for (size_t i = 0; i < (slowest == 0 ? order.size() : std::min(slowest, order.size())); ++i) {
    const StepTiming& s = steps[order[i]];
    std::printf("  %5zu %-26s %10.4f ms  %s\n", order[i], s.op.c_str(), s.seconds / runs * 1e3, s.node.c_str());
  }
}

int Fail(const Status& st) {
  std::cerr << "strata: " << st.ToString() << "\n";
  return 1;
}

int Bench(const BenchArgs& a) {
  std::map<std::string, Shape> shapes;
  for (const auto& s : a.shapes) {
    const auto eq = s.find('=');
    if (eq == std::string::npos) return Fail(InvalidArgument("--shape expects NAME=d0,d1,..., got '" + s + "'"));
    Shape shape;
    std::string rest = s.substr(eq + 1);
    size_t pos = 0;
    while (pos <= rest.size() && !rest.empty()) {
      const size_t comma = rest.find(',', pos);
      try {
        shape.push_back(std::stoll(rest.substr(pos, comma - pos)));
      } catch (const std::exception&) {
        return Fail(InvalidArgument("--shape: bad dimension in '" + s + "'"));
      }
      if (comma == std::string::npos) break;
      pos = comma + 1;
    }
    shapes[s.substr(0, eq)] = shape;
  }
  SessionOptions opts;
  opts.num_threads = a.threads;
  opts.plan_memory = !a.no_memory_plan;
  opts.opt_level = a.opt_level;
  opts.profile = a.profile;
  const auto t0 = std::chrono::steady_clock::now();
  auto session = Session::Load(a.model, opts);
  if (!session.ok()) return Fail(session.status());
  const double load_ms = Ms(std::chrono::steady_clock::now() - t0);
  if (a.load_only) {
    if (a.json) std::printf("{\"load_ms\": %.3f, \"peak_rss_mb\": %.1f}\n", load_ms, PeakRssMb());
    else std::printf("model:     %s\nload:      %.2f ms\npeak RSS:  %.1f MiB\n", a.model.c_str(), load_ms, PeakRssMb());
    return 0;
  }

  std::vector<size_t> missing;
  auto inputs = LoadInputs(**session, a.inputs, "", &missing);
  if (!inputs.ok()) return Fail(inputs.status());
  std::mt19937 rng(42);
  for (size_t k : missing) {
    auto v = RandomInput((*session)->inputs()[k], shapes, rng);
    if (!v.ok()) return Fail(v.status());
    (*inputs)[k] = std::move(v).value();
  }
  std::vector<Value> outputs;
  auto t1 = std::chrono::steady_clock::now();
  Status st = (*session)->Run(*inputs, outputs);
  if (!st.ok()) return Fail(st);
  const double first_ms = Ms(std::chrono::steady_clock::now() - t1);
  for (int i = 0; i < a.warmup; ++i) {
    st = (*session)->Run(*inputs, outputs);
    if (!st.ok()) return Fail(st);
  }
  (*session)->TakeProfile();  // only the timed runs count
  std::vector<double> times;
  for (int i = 0; i < std::max(1, a.runs); ++i) {
    t1 = std::chrono::steady_clock::now();
    st = (*session)->Run(*inputs, outputs);
    times.push_back(Ms(std::chrono::steady_clock::now() - t1));
    if (!st.ok()) return Fail(st);
  }
  std::sort(times.begin(), times.end());
  auto pct = [&](double p) {
    const size_t idx = std::min(times.size() - 1, static_cast<size_t>(p * static_cast<double>(times.size() - 1) + 0.5));
    return times[idx];
  };
  const double rss = PeakRssMb();
  const PlanStats plan = (*session)->last_plan_stats();
  const double gflop = plan.matmul_flops * 1e-9;
  const double mib = 1.0 / (1 << 20);
  if (a.json) {
    std::printf(
        "{\"load_ms\": %.3f, \"first_run_ms\": %.3f, \"p50_ms\": %.4f, \"p90_ms\": %.4f, \"p99_ms\": %.4f, "
        "\"min_ms\": %.4f, \"runs\": %zu, \"threads\": %d, \"peak_rss_mb\": %.1f, \"gflop\": %.4f, "
        "\"arena_mb\": %.2f, \"intermediates_mb\": %.2f}\n",
        load_ms, first_ms, pct(0.5), pct(0.9), pct(0.99), times.front(), times.size(), (*session)->num_threads(), rss,
        gflop, static_cast<double>(plan.arena_bytes) * mib, static_cast<double>(plan.planned_bytes) * mib);
  } else {
    std::printf("model:     %s\nload:      %.2f ms\nfirst run: %.3f ms\n", a.model.c_str(), load_ms, first_ms);
    std::printf("latency over %zu runs: p50 %.4f ms, p90 %.4f ms, p99 %.4f ms, min %.4f ms\n", times.size(), pct(0.5),
                pct(0.9), pct(0.99), times.front());
    std::printf("threads:   %d\npeak RSS:  %.1f MiB\n", (*session)->num_threads(), rss);
    if (gflop > 0)
      std::printf("work:      %.3f GFLOP in Conv/MatMul/Gemm/Attention, %.1f GFLOP/s at p50\n", gflop, gflop / (pct(0.5) * 1e-3));
    std::printf("memory:    arena %.2f MiB for %.2f MiB of intermediates (%d buffers, %d in place; %d on the heap)\n",
                static_cast<double>(plan.arena_bytes) * mib, static_cast<double>(plan.planned_bytes) * mib,
                plan.planned_buffers, plan.in_place_buffers, plan.heap_buffers);
  }
  if (a.profile && !a.json) PrintProfile((*session)->TakeProfile(), static_cast<size_t>(a.profile_steps));
  return 0;
}

}  // namespace

void AddBenchCommand(CLI::App& app) {
  auto args = std::make_shared<BenchArgs>();
  auto* cmd = app.add_subcommand("bench", "Measure load time, latency and memory");
  cmd->add_option("model", args->model, "ONNX model file")->required();
  cmd->add_option("--input", args->inputs, "NAME=FILE; inputs not given are random");
  cmd->add_option("--shape", args->shapes, "NAME=d0,d1,... for random inputs with symbolic dims");
  cmd->add_option("--threads", args->threads, "intra-op threads (0: physical cores)");
  cmd->add_option("--runs", args->runs, "timed runs")->capture_default_str();
  cmd->add_option("--warmup", args->warmup, "untimed runs after the first")->capture_default_str();
  cmd->add_flag("--json", args->json, "print one JSON object");
  cmd->add_flag("--no-memory-plan", args->no_memory_plan, "allocate every tensor on the heap (for comparison)");
  cmd->add_flag("--load-only", args->load_only, "only load and compile the model; report load time and peak RSS");
  cmd->add_flag("--profile", args->profile, "time every step; print time per op type and the slowest steps");
  cmd->add_option("--profile-steps", args->profile_steps, "with --profile: how many of the slowest steps to list (0: all)")
      ->check(CLI::NonNegativeNumber)
      ->capture_default_str();
  AddOptLevelOption(cmd, args->opt_level);
  cmd->callback([args]() { throw CLI::RuntimeError(Bench(*args)); });
}

}  // namespace strata::cli
