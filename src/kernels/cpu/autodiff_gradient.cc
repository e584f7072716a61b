// Gradient (ai.onnx.preview.training): reverse-mode differentiation of the part of the graph that
// leads from `xs` (and constant `zs`) to `y`. The forward part is compiled once with Strata's own
// kernels; the backward pass applies per-op rules below. Ops without a rule are refused at load time.
#include <cmath>
#include <functional>
#include <map>
#include <set>

#include "kernels/cpu/common.h"

namespace strata::cpu {
namespace {

struct Grad {
  Shape shape;
  std::vector<double> v;
};

std::vector<double> AsDoubles(const Tensor& t) {
  std::vector<double> v(static_cast<size_t>(t.numel()));
  for (int64_t i = 0; i < t.numel(); ++i) v[static_cast<size_t>(i)] = t.GetAsDouble(i);
  return v;
}

const std::set<std::string>& DifferentiableOps() {
  static const std::set<std::string> ops = {"Identity", "Neg", "Relu", "Sigmoid", "Tanh", "Exp", "Log", "Sqrt", "Abs",
                                            "Add", "Sub", "Mul", "Div", "Pow", "MatMul"};
  return ops;
}

class GradientKernel final : public OpKernel {
 public:
  Status Init(const KernelInfo& info) {
    xs_ = info.attr_strings("xs");
    zs_ = info.attr_strings("zs");
    y_ = info.attr_string("y", "");
    if (xs_.empty() || y_.empty()) return info.Error("Gradient needs the attributes 'xs' and 'y'");
    if (info.num_inputs() != static_cast<int>(xs_.size() + zs_.size()))
      return info.Error("Gradient takes one input per name in xs and zs (" + std::to_string(xs_.size() + zs_.size()) +
                        "), got " + std::to_string(info.num_inputs()));
    if (info.num_outputs() != static_cast<int>(xs_.size()))
      return info.Error("Gradient has one output per name in xs");
    const ir::Graph& g = info.graph();
    std::map<std::string, const ir::Node*> producer;
    for (const auto& n : g.nodes)
      for (const auto& o : n.outputs) producer[o] = &n;
    std::set<std::string> leaves(xs_.begin(), xs_.end());
    leaves.insert(zs_.begin(), zs_.end());

    // Nodes on the paths into y, in graph order.
    std::set<const ir::Node*> needed;
    std::function<Status(const std::string&)> visit = [&](const std::string& name) -> Status {
      if (leaves.count(name)) return Status::Ok();
      auto it = producer.find(name);
      if (it == producer.end()) return Status::Ok();  // graph input or initializer: a constant here
      if (!needed.insert(it->second).second) return Status::Ok();
      if (it->second->domain != ir::kOnnxDomain || !DifferentiableOps().count(it->second->op_type))
        return info.Error("Gradient: Strata has no gradient rule for " + it->second->Describe() +
                          " (supported: Identity Neg Relu Sigmoid Tanh Exp Log Sqrt Abs Add Sub Mul Div Pow MatMul)");
      for (const auto& in : it->second->inputs)
        if (!in.empty()) RETURN_IF_ERROR(visit(in));
      return Status::Ok();
    };
    RETURN_IF_ERROR(visit(y_));

    forward_ = std::make_shared<ir::Graph>();
    forward_->name = "gradient_forward";
    for (const auto& n : xs_) forward_->inputs.push_back({n, {}});
    for (const auto& n : zs_) forward_->inputs.push_back({n, {}});
    std::set<std::string> outputs;
    for (const auto& n : g.nodes) {
      if (!needed.count(&n)) continue;
      forward_->nodes.push_back(n);
      for (const auto& name : n.inputs) outputs.insert(name);
      for (const auto& name : n.outputs) outputs.insert(name);
    }
    outputs.erase("");
    outputs.insert(y_);
    for (const auto& name : outputs) forward_->outputs.push_back({name, {}});
    for (const auto& n : forward_->nodes) nodes_.push_back(&n);  // once forward_->nodes has stopped growing
    ASSIGN_OR_RETURN(compiled_, info.CompileSubgraph(*forward_));
    return Status::Ok();
  }

  Status Compute(KernelContext& ctx) override {
    std::vector<Value> inputs;
    for (int i = 0; i < ctx.num_inputs(); ++i) inputs.push_back(ctx.input(i));
    std::vector<Value> outs;
    RETURN_IF_ERROR(ctx.RunSubgraph(*compiled_, inputs, outs));
    std::map<std::string, const Tensor*> values;
    for (size_t i = 0; i < outs.size(); ++i) {
      if (!outs[i].is_tensor()) return Unsupported("Gradient: value '" + forward_->outputs[i].name + "' is not a tensor");
      values[forward_->outputs[i].name] = &outs[i].tensor();
    }
    std::map<std::string, Grad> grads;
    const Tensor& y = *values.at(y_);
    grads[y_] = {y.shape(), std::vector<double>(static_cast<size_t>(y.numel()), 1.0)};
    for (auto it = nodes_.rbegin(); it != nodes_.rend(); ++it) {
      const ir::Node& n = **it;
      auto g = grads.find(n.outputs[0]);
      if (g == grads.end()) continue;
      RETURN_IF_ERROR(Backward(n, g->second, values, grads));
    }
    for (size_t i = 0; i < xs_.size(); ++i) {
      const Tensor& x = ctx.input_tensor(static_cast<int>(i));
      ASSIGN_OR_RETURN(Tensor * out, ctx.AllocateOutput(static_cast<int>(i), x.dtype(), x.shape()));
      auto g = grads.find(xs_[i]);
      RETURN_IF_ERROR(Dispatch(TypeList<float, double>{}, x.dtype(), [&](auto* tag) -> Status {
        using T = std::remove_pointer_t<decltype(tag)>;
        for (int64_t k = 0; k < x.numel(); ++k)
          out->data<T>()[k] = g == grads.end() ? T(0) : static_cast<T>(g->second.v[static_cast<size_t>(k)]);
        return Status::Ok();
      }));
    }
    return Status::Ok();
  }

 private:
  static void Accumulate(std::map<std::string, Grad>& grads, const std::string& name, const Shape& shape,
                         const std::vector<double>& g) {
    auto [it, fresh] = grads.try_emplace(name, Grad{shape, g});
    if (!fresh)
      for (size_t i = 0; i < g.size(); ++i) it->second.v[i] += g[i];
  }

  Status Backward(const ir::Node& n, const Grad& g, const std::map<std::string, const Tensor*>& values,
                  std::map<std::string, Grad>& grads) {
    const std::string& op = n.op_type;
    const Tensor& a = *values.at(n.inputs[0]);
    const std::vector<double> av = AsDoubles(a);
    const size_t count = av.size();
    if (n.inputs.size() == 1 || op == "Identity") {
      const std::vector<double> yv = AsDoubles(*values.at(n.outputs[0]));
      std::vector<double> ga(count);
      for (size_t i = 0; i < count; ++i) {
        const double x = av[i], y = yv[i], d = g.v[i];
        if (op == "Identity") ga[i] = d;
        else if (op == "Neg") ga[i] = -d;
        else if (op == "Relu") ga[i] = x > 0 ? d : 0;
        else if (op == "Sigmoid") ga[i] = d * y * (1 - y);
        else if (op == "Tanh") ga[i] = d * (1 - y * y);
        else if (op == "Exp") ga[i] = d * y;
        else if (op == "Log") ga[i] = d / x;
        else if (op == "Sqrt") ga[i] = d * 0.5 / y;
        else if (op == "Abs") ga[i] = x > 0 ? d : (x < 0 ? -d : 0);
      }
      Accumulate(grads, n.inputs[0], a.shape(), ga);
      return Status::Ok();
    }
    const Tensor& b = *values.at(n.inputs[1]);
    const std::vector<double> bv = AsDoubles(b);
    std::vector<double> ga(count, 0.0), gb(bv.size(), 0.0);
    if (op == "MatMul") {
      if (a.rank() != 2 || b.rank() != 2) return Unsupported("Gradient of MatMul supports 2-D operands only");
      const int64_t M = a.dim(0), K = a.dim(1), N = b.dim(1);
      for (int64_t i = 0; i < M; ++i)
        for (int64_t k = 0; k < K; ++k)
          for (int64_t j = 0; j < N; ++j) {
            const double d = g.v[static_cast<size_t>(i * N + j)];
            ga[static_cast<size_t>(i * K + k)] += d * bv[static_cast<size_t>(k * N + j)];
            gb[static_cast<size_t>(k * N + j)] += d * av[static_cast<size_t>(i * K + k)];
          }
    } else {
      const std::vector<double> yv = AsDoubles(*values.at(n.outputs[0]));
      ForEachBroadcast2(g.shape, BroadcastStrides(a.shape(), g.shape), BroadcastStrides(b.shape(), g.shape),
                        [&](int64_t o, int64_t oa, int64_t ob) {
                          const double d = g.v[static_cast<size_t>(o)], x = av[static_cast<size_t>(oa)],
                                       z = bv[static_cast<size_t>(ob)];
                          double da = 0, db = 0;
                          if (op == "Add") { da = d; db = d; }
                          else if (op == "Sub") { da = d; db = -d; }
                          else if (op == "Mul") { da = d * z; db = d * x; }
                          else if (op == "Div") { da = d / z; db = -d * x / (z * z); }
                          else if (op == "Pow") { da = d * z * std::pow(x, z - 1); db = x > 0 ? d * yv[static_cast<size_t>(o)] * std::log(x) : 0; }
                          ga[static_cast<size_t>(oa)] += da;
                          gb[static_cast<size_t>(ob)] += db;
                        });
    }
    Accumulate(grads, n.inputs[0], a.shape(), ga);
    Accumulate(grads, n.inputs[1], b.shape(), gb);
    return Status::Ok();
  }

  std::vector<std::string> xs_, zs_;
  std::string y_;
  std::shared_ptr<ir::Graph> forward_;
  std::vector<const ir::Node*> nodes_;
  std::shared_ptr<CompiledGraph> compiled_;
};

const KernelRegistrar kGradient{{.op_type = "Gradient", .domain = "ai.onnx.preview.training", .since = 1, .until = 1,
                                 .factory = MakeKernel<GradientKernel>}};

}  // namespace
}  // namespace strata::cpu
