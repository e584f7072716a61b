#!/usr/bin/python3
"""Runs Strata and ONNX Runtime side by side, interleaved, and writes bench/RESULTS.md.

  /usr/bin/python3 bench/compare.py --strata build/strata --ort-dir bench/out/ort --models-dir bench/out/models
      [--models mlp,mobilenet_v2,resnet50,bert,bert_opset17,gpt2] [--batches 1,8] [--threads 1,2]
      [--rounds 3] [--runs 10] [--out bench/RESULTS.md]

Each configuration runs `rounds` times, alternating which engine goes first, and each engine's
figure is the median over rounds of its p50. Ratios are Strata / ORT: below 1 means Strata is better.
"""
import argparse
import json
import os
import platform
import statistics
import subprocess
import sys

import numpy as np
import onnx
from onnx import shape_inference

HERE = os.path.dirname(os.path.abspath(__file__))


def model_dir(models_dir, name):
    # bert_opset17 lives in the opset-17 export; everything else in opset 13.
    if name.endswith("_opset17"):
        return os.path.join(models_dir, "opset17", name[: -len("_opset17")])
    return os.path.join(models_dir, "opset13", name)


def batch_inputs(d, batch):
    """Input .npy files for this batch size: the exported batch-1 inputs tiled along axis 0."""
    m = onnx.load(os.path.join(d, "model.onnx"), load_external_data=False)
    inits = {i.name for i in m.graph.initializer}
    names = [i.name for i in m.graph.input if i.name not in inits]
    pairs = []
    for k, n in enumerate(names):
        src = os.path.join(d, f"input_{k}.npy")
        if batch == 1:
            pairs.append(f"{n}={src}")
            continue
        dst = os.path.join(d, f"input_{k}_b{batch}.npy")
        if not os.path.exists(dst):
            x = np.load(src)
            np.save(dst, np.concatenate([x] * batch, axis=0))
        pairs.append(f"{n}={dst}")
    return pairs


def count_gflop(d, batch_pairs):
    """Multiply-add work of MatMul/Gemm/Conv at the given input shapes, in GFLOP (2 per MAC).

    Only a fallback and a run-length hint: the table uses the figure Strata's bench reports."""
    m = onnx.load(os.path.join(d, "model.onnx"))
    shapes = {p.split("=")[0]: np.load(p.split("=", 1)[1], mmap_mode="r").shape for p in batch_pairs}
    for i in m.graph.input:
        if i.name in shapes:
            dims = i.type.tensor_type.shape.dim
            for dim, v in zip(dims, shapes[i.name]):
                dim.Clear()
                dim.dim_value = v
    m = shape_inference.infer_shapes(m, data_prop=True)
    known = {}
    for vi in list(m.graph.value_info) + list(m.graph.input) + list(m.graph.output):
        dims = vi.type.tensor_type.shape.dim
        if all(x.HasField("dim_value") for x in dims):
            known[vi.name] = [x.dim_value for x in dims]
    for t in m.graph.initializer:
        known[t.name] = list(t.dims)
    flop = 0
    for n in m.graph.node:
        if n.op_type in ("MatMul", "Gemm") and n.output[0] in known and n.input[0] in known:
            a = known[n.input[0]]
            if not a:
                continue
            trans_a = any(x.name == "transA" and x.i for x in n.attribute)
            k = a[-2] if (n.op_type == "Gemm" and trans_a) else a[-1]
            flop += 2 * int(np.prod(known[n.output[0]])) * k
        elif n.op_type == "Conv" and n.output[0] in known and n.input[1] in known:
            w = known[n.input[1]]
            flop += 2 * int(np.prod(known[n.output[0]])) * int(np.prod(w[1:]))
    return flop / 1e9


def run_json(cmd):
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd[:3])}... failed: {r.stderr.strip()[-500:]}")
    return json.loads(r.stdout.strip().splitlines()[-1])


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--strata", default="build/strata")
    ap.add_argument("--peak", default="build/strata_peak_flops")
    ap.add_argument("--ort-dir", default="bench/out/ort")
    ap.add_argument("--models-dir", default="bench/out/models")
    ap.add_argument("--models", default="mlp,mobilenet_v2,resnet50,bert,bert_opset17,gpt2")
    ap.add_argument("--batches", default="1,8")
    ap.add_argument("--threads", default="1,2")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--runs", type=int, default=10)
    ap.add_argument("--out", default="bench/RESULTS.md")
    args = ap.parse_args()

    peaks = {p["threads"]: p["peak_gflops"] for p in
             (json.loads(line) for line in subprocess.run([args.peak, "2"], capture_output=True, text=True,
                                                          check=True).stdout.splitlines())}
    env_ort = os.path.join(args.ort_dir, "node_modules")
    rows = []
    for name in args.models.split(","):
        d = model_dir(args.models_dir, name)
        opset = "17" if name.endswith("_opset17") else "13"
        base = name[: -len("_opset17")] if name.endswith("_opset17") else name
        check = subprocess.run([os.path.join(HERE, "..", "tests", "models", "check_model.sh"), args.strata, base, opset,
                                args.models_dir], capture_output=True, text=True)
        correct = "matches torch" if check.returncode == 0 else "DIFFERS from torch: " + check.stdout[-300:]
        print(f"{name}: {correct}", flush=True)
        for batch in map(int, args.batches.split(",")):
            pairs = batch_inputs(d, batch)
            gflop = count_gflop(d, pairs)
            for threads in map(int, args.threads.split(",")):
                s_res, o_res = [], []
                runs = max(3, args.runs // (4 if gflop > 20 else 1))
                for r in range(args.rounds):
                    s_cmd = [args.strata, "bench", os.path.join(d, "model.onnx"), "--threads", str(threads),
                             "--runs", str(runs), "--warmup", "2", "--json"] + [x for p in pairs for x in ("--input", p)]
                    o_cmd = ["node", os.path.join(HERE, "ort_bench.js"), os.path.join(d, "model.onnx"), str(threads),
                             str(runs), "2"] + pairs
                    order = [(s_cmd, s_res), (o_cmd, o_res)]
                    if r % 2:
                        order.reverse()
                    for cmd, sink in order:
                        try:
                            sink.append(run_json(cmd))
                        except RuntimeError as e:
                            sink.append({"error": str(e)})
                rows.append(summarise(name, batch, threads, gflop, peaks.get(threads), s_res, o_res))
                rows[-1]["correct"] = correct
                print(json.dumps(rows[-1]), flush=True)
    write_markdown(args, rows, peaks)


def med(results, key):
    vals = [r[key] for r in results if key in r]
    return statistics.median(vals) if vals else None


def summarise(name, batch, threads, gflop, peak, s, o):
    # Strata counts Conv/MatMul/Gemm work from the shapes it actually ran with; libonnx's shape
    # inference (count_gflop) cannot resolve transformer reshape chains and undercounts them.
    gflop = med(s, "gflop") or gflop
    row = {"model": name, "batch": batch, "threads": threads, "gflop": gflop}
    for tag, res in (("strata", s), ("ort", o)):
        errs = [r["error"] for r in res if "error" in r]
        if errs:
            row[f"{tag}_error"] = errs[0]
        for key in ("p50_ms", "load_ms", "peak_rss_mb"):
            row[f"{tag}_{key}"] = med(res, key)
    for key in ("p50_ms", "load_ms", "peak_rss_mb"):
        a, b = row[f"strata_{key}"], row[f"ort_{key}"]
        row[f"ratio_{key}"] = a / b if a and b else None
    for tag in ("strata", "ort"):
        p50 = row[f"{tag}_p50_ms"]
        row[f"{tag}_gflops"] = gflop / (p50 / 1e3) if p50 else None
        row[f"{tag}_peak_pct"] = 100 * row[f"{tag}_gflops"] / peak if p50 and peak else None
    return row


def fmt(v, spec):
    return format(v, spec) if isinstance(v, (int, float)) else "—"


def write_markdown(args, rows, peaks):
    cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "?")
    lines = ["# Benchmark results", "",
             "Strata versus ONNX Runtime (onnxruntime-node 1.30, all graph optimisations, spinning off), run "
             "side by side and interleaved in one run. Ratios are Strata / ORT, so below 1.0 means Strata is "
             "better.", "",
             f"Command: `bench/run` (that is, `/usr/bin/python3 bench/compare.py --models {args.models} --batches "
             f"{args.batches} --threads {args.threads} --rounds {args.rounds} --runs {args.runs}`)", "",
             f"Machine: {cpu}, {os.cpu_count()} logical CPUs, {platform.platform()}. Measured fp32 peak "
             "(bench/peak_flops.cc): " + ", ".join(f"{t} thread(s) {p:.0f} GFLOP/s" for t, p in sorted(peaks.items())),
             "",
             "| model | batch | threads | Strata p50 ms | ORT p50 ms | p50 ratio | load ratio | RSS ratio | "
             "Strata GFLOP/s (% peak) | ORT GFLOP/s (% peak) | Strata vs torch |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        err = r.get("strata_error") or r.get("ort_error")
        lines.append(
            f"| {r['model']} | {r['batch']} | {r['threads']} | {fmt(r['strata_p50_ms'], '.3f')} | "
            f"{fmt(r['ort_p50_ms'], '.3f')} | {fmt(r['ratio_p50_ms'], '.2f')} | {fmt(r['ratio_load_ms'], '.2f')} | "
            f"{fmt(r['ratio_peak_rss_mb'], '.2f')} | {fmt(r['strata_gflops'], '.0f')} ({fmt(r['strata_peak_pct'], '.0f')}%) | "
            f"{fmt(r['ort_gflops'], '.0f')} ({fmt(r['ort_peak_pct'], '.0f')}%) | {r.get('correct', '—')} |" + (f" error: {err[:120]}" if err else ""))
    lines += ["", "Load is session creation (Strata: `Session::Load`; ORT: `InferenceSession.create`). RSS is each "
              "process's peak resident set, including the Node.js runtime for ORT.", ""]
    with open(args.out, "w") as f:
        f.write("\n".join(lines))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
