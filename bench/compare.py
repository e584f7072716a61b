#!/usr/bin/python3
"""Runs Strata and ONNX Runtime side by side, interleaved, and writes bench/RESULTS.md.

  /usr/bin/python3 bench/compare.py --strata build/strata --ort-dir bench/out/ort --models-dir bench/out/models
      [--models mlp,mobilenet_v2,resnet50,bert,bert_opset17,gpt2] [--batches 1,8] [--threads 1,2]
      [--rounds 3] [--runs 10] [--isa native|avx2] [--out bench/RESULTS.md] [--header-only]

Each configuration runs `rounds` times, alternating which engine goes first, and each engine's
figure is the median over rounds of its p50. Ratios are Strata / ORT: below 1 means Strata is better.

--isa avx2 runs Strata with ONEDNN_MAX_CPU_ISA=AVX2 STRATA_ISA=avx2 (on an AVX-512 CPU: AVX2
emulated) and takes Strata's % of peak against the AVX2 FMA peak. ONNX Runtime cannot be lowered
the same way (MLAS picks its kernels from cpuid, with no environment override), so ORT runs with
the CPU's best ISA and its % of peak is against that ISA's peak; the header says which.
ONEDNN_MAX_CPU_ISA / STRATA_ISA already set in the environment are honoured and reported the same way.

The run is inserted into --out right below the line `<!-- compare.py: newest KEY run below -->`,
KEY being the ISA in effect for Strata (avx512, avx2, avx2-emulated, or mixed); the rest of the file is
kept. Without that marker the run is appended in a new section. --header-only measures the peaks
and prints the header, without running any model.
"""
import argparse
import datetime
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


def run_json(cmd, env=None):
    r = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if r.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd[:3])}... failed: {r.stderr.strip()[-500:]}")
    return json.loads(r.stdout.strip().splitlines()[-1])


# ISA levels, lowest first. "avx512" means what Strata's and oneDNN's AVX-512 kernels need
# (F, BW, DQ, VL); peak_flops measures "avx2" (AVX2+FMA, 16 ymm) and "avx512" (AVX-512F, 32 zmm).
LEVELS = ["scalar", "avx", "avx2", "avx512"]
LABEL = {"scalar": "below AVX", "avx": "AVX (no AVX2/FMA)", "avx2": "AVX2", "avx512": "AVX-512"}
ISA_ENV = ("ONEDNN_MAX_CPU_ISA", "DNNL_MAX_CPU_ISA", "STRATA_ISA")  # DNNL_: oneDNN's older name
AVX2_ENV = {"ONEDNN_MAX_CPU_ISA": "AVX2", "STRATA_ISA": "avx2"}


def cpu_info():
    """(model name, flags) of the first CPU in /proc/cpuinfo."""
    model, flags = "?", set()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name") and model == "?":
                    model = line.split(":", 1)[1].strip()
                elif line.startswith("flags") and not flags:
                    flags = set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return model, flags


def machine_level(flags):
    if {"avx512f", "avx512bw", "avx512dq", "avx512vl"} <= flags:
        return "avx512"
    if {"avx2", "fma"} <= flags:
        return "avx2"
    return "avx" if "avx" in flags else "scalar"


def onednn_cap(value):
    """The level ONEDNN_MAX_CPU_ISA allows (None: not set or not understood, so no limit)."""
    v = (value or "").strip().upper()
    if not v or v == "ALL" or v.startswith("AVX512") or v.startswith("AVX10"):
        return None
    if v.startswith("AVX2"):
        return "avx2"
    if v == "AVX":
        return "avx"
    if v.startswith("SSE"):
        return "scalar"
    return None


def strata_cap(value):
    """The level STRATA_ISA allows (src/kernels/cpu/ukernels/vec_math.cc: scalar|avx2 lower it, anything else is ignored)."""
    return {"scalar": "scalar", "avx2": "avx2"}.get((value or "").strip())


def lower(a, b):
    return a if b is None or LEVELS.index(a) <= LEVELS.index(b) else b


def isa_setup(isa_option):
    """What every engine runs with: the environment for Strata and the facts for the header."""
    model, flags = cpu_info()
    machine = machine_level(flags)
    strata_env = dict(os.environ)
    if isa_option == "avx2":
        strata_env.update(AVX2_ENV)
    set_vars = {k: strata_env[k] for k in ISA_ENV if strata_env.get(k)}
    dnn = lower(machine, onednn_cap(set_vars.get("ONEDNN_MAX_CPU_ISA") or set_vars.get("DNNL_MAX_CPU_ISA")))
    own = lower(machine, strata_cap(set_vars.get("STRATA_ISA")))
    env_text = " ".join(f"{k}={v}" for k, v in set_vars.items())
    if dnn == own == machine:
        strata_text = f"{LABEL[machine]} (native" + (f"; {env_text} set, which lowers nothing here)" if env_text else ")")
    elif dnn == own:
        strata_text = f"{LABEL[dnn]} (emulated on an {LABEL[machine]} CPU: {env_text})"
    else:
        strata_text = (f"mixed: oneDNN {LABEL[dnn]}, Strata's own kernels {LABEL[own]} "
                       f"(on an {LABEL[machine]} CPU: {env_text or 'no ISA variables set'})")
    # Efficiency is against the peak of the widest ISA a Strata kernel may use.
    strata_level = dnn if LEVELS.index(dnn) >= LEVELS.index(own) else own
    key = "mixed" if dnn != own else strata_level + ("-emulated" if strata_level != machine else "")
    # MLAS (platform.cpp) reads cpuid and XCR0 once when the library loads: AVX-512F kernels when the
    # CPU has avx512f, else AVX2/FMA3. No environment variable changes that.
    ort_level = "avx512" if "avx512f" in flags else ("avx2" if {"avx2", "fma"} <= flags else machine)
    return {"cpu": model, "flags": flags, "machine": machine, "strata_env": strata_env, "strata_text": strata_text,
            "strata_level": strata_level, "ort_level": ort_level, "key": key}


def measure_peaks(peak_binary, max_threads):
    """{(isa, threads): GFLOP/s} from bench/peak_flops.cc (one JSON line per ISA and thread count)."""
    out = subprocess.run([peak_binary, str(max_threads)], capture_output=True, text=True, check=True).stdout
    peaks = {}
    for line in out.splitlines():
        if line.strip().startswith("{"):
            p = json.loads(line)
            peaks[(p.get("isa", "avx512"), p["threads"])] = p["peak_gflops"]
    return peaks


def ort_version(ort_dir):
    try:
        with open(os.path.join(ort_dir, "node_modules", "onnxruntime-node", "package.json")) as f:
            return json.load(f)["version"]
    except (OSError, ValueError, KeyError):
        return "(version not found in --ort-dir)"


def git_revision():
    here = os.path.join(HERE, "..")
    try:
        rev = subprocess.run(["git", "-C", here, "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                             check=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", here, "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True).stdout.strip()
        return f"`{rev}`" + (" plus uncommitted changes" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


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
    ap.add_argument("--isa", choices=("native", "avx2"), default="native",
                    help="avx2: run Strata with " + " ".join(f"{k}={v}" for k, v in AVX2_ENV.items())
                    + " and take its %% of peak against the AVX2 peak")
    ap.add_argument("--out", default="bench/RESULTS.md")
    ap.add_argument("--header-only", action="store_true",
                    help="measure the peaks and print the results header; run no model, write nothing")
    args = ap.parse_args()

    isa = isa_setup(args.isa)
    if args.isa == "avx2" and LEVELS.index(isa["machine"]) < LEVELS.index("avx2"):
        sys.exit(f"--isa avx2: this CPU ({isa['cpu']}) has no AVX2+FMA")
    peaks = measure_peaks(args.peak, max(map(int, args.threads.split(","))))
    header = header_lines(args, isa, peaks)
    print("\n".join(header), flush=True)
    if args.header_only:
        return
    rows = []
    for name in args.models.split(","):
        d = model_dir(args.models_dir, name)
        opset = "17" if name.endswith("_opset17") else "13"
        base = name[: -len("_opset17")] if name.endswith("_opset17") else name
        check = subprocess.run([os.path.join(HERE, "..", "tests", "models", "check_model.sh"), args.strata, base, opset,
                                args.models_dir], capture_output=True, text=True, env=isa["strata_env"])
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
                    order = [(s_cmd, s_res, isa["strata_env"]), (o_cmd, o_res, None)]
                    if r % 2:
                        order.reverse()
                    for cmd, sink, env in order:
                        try:
                            sink.append(run_json(cmd, env))
                        except RuntimeError as e:
                            sink.append({"error": str(e)})
                rows.append(summarise(name, batch, threads, gflop, peaks.get((isa["strata_level"], threads)),
                                      peaks.get((isa["ort_level"], threads)), s_res, o_res))
                rows[-1]["correct"] = correct
                print(json.dumps(rows[-1]), flush=True)
    write_markdown(args, isa, header, rows)


def med(results, key):
    vals = [r[key] for r in results if key in r]
    return statistics.median(vals) if vals else None


def summarise(name, batch, threads, gflop, strata_peak, ort_peak, s, o):
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
    for tag, peak in (("strata", strata_peak), ("ort", ort_peak)):
        p50 = row[f"{tag}_p50_ms"]
        row[f"{tag}_gflops"] = gflop / (p50 / 1e3) if p50 else None
        row[f"{tag}_peak_pct"] = 100 * row[f"{tag}_gflops"] / peak if p50 and peak else None
    return row


def fmt(v, spec):
    return format(v, spec) if isinstance(v, (int, float)) else "—"


def header_lines(args, isa, peaks):
    """Which run this was and on what: date, command, CPU, ISAs and the peaks the % figures use."""
    def peak_text(level):
        vals = sorted((t, p) for (i, t), p in peaks.items() if i == level)
        if not vals:
            return f"{LABEL[level]} not measured"
        text = ", ".join(f"{t} thread(s) {p:.0f}" for t, p in vals) + " GFLOP/s"
        one, most = vals[0][1], vals[-1][1]
        if len(vals) > 1 and vals[0][0] == 1 and most < 0.8 * vals[-1][0] * one:
            text += (f" (the {vals[-1][0]}-thread figure is only {most / one:.2f}x the 1-thread one: "
                     "something else was running)")
        return text

    flags = isa["flags"]
    has = lambda f: "yes" if f in flags else "no"
    machine_text = (f"{LABEL[isa['machine']]} (avx512f: {has('avx512f')}, avx512bw/dq/vl: "
                    f"{'yes' if {'avx512bw', 'avx512dq', 'avx512vl'} <= flags else 'no'}, "
                    f"avx2: {has('avx2')}, fma: {has('fma')})")
    ort_text = (f"{LABEL[isa['ort_level']]}. onnxruntime-node {ort_version(args.ort_dir)}, all graph "
                "optimisations, spinning off. MLAS picks its kernels "
                "from cpuid when the library loads and reads no environment variable that lowers them "
                f"({', '.join(ISA_ENV)} do not reach it), so it ran its {LABEL[isa['ort_level']]} kernels "
                "whatever --isa says")
    if isa["strata_level"] != isa["ort_level"]:
        ort_text += (f". Strata and ORT ran different ISAs in this run, so the ratios are not what an "
                     f"{LABEL[isa['strata_level']]}-only machine would show")
    compare_args = (f"--isa {args.isa} --models {args.models} --batches {args.batches} --threads {args.threads} "
                    f"--rounds {args.rounds} --runs {args.runs}")
    outer = os.environ.get("STRATA_BENCH_COMMAND")  # set by bench/run
    command = (f"`{outer}` (that is, `/usr/bin/python3 bench/compare.py {compare_args}`)" if outer
               else f"`/usr/bin/python3 bench/compare.py {compare_args}`")
    def used(level):
        vals = sorted((t, p) for (i, t), p in peaks.items() if i == level)
        if not vals:
            return "no measured peak (none for this ISA)"
        return f"{LABEL[level]} peak (" + ", ".join(f"{p:.0f} at {t} thread(s)" for t, p in vals) + " GFLOP/s)"

    strata_pct, ort_pct = used(isa["strata_level"]), used(isa["ort_level"])
    now = datetime.datetime.now().astimezone()
    return [
        f"### Run of {now:%Y-%m-%d %H:%M %Z}", "",
        f"- Date: {now:%Y-%m-%d %H:%M:%S %Z}",
        f"- Command: {command}, at commit {git_revision()}",
        f"- CPU: {isa['cpu']}, {os.cpu_count()} logical CPUs, {platform.platform()}",
        f"- ISA of the machine: {machine_text}",
        f"- ISA in effect for Strata: {isa['strata_text']}",
        f"- ISA in effect for ONNX Runtime: {ort_text}",
        "- Measured fp32 FMA peak (bench/peak_flops.cc): AVX2 " + peak_text("avx2") + "; AVX-512 "
        + peak_text("avx512"),
        f"- Peak used: Strata's % of peak is against the {strata_pct}, ORT's against the {ort_pct}",
    ]


def write_markdown(args, isa, header, rows):
    strata_pct = f"% of {LABEL[isa['strata_level']]} peak"
    ort_pct = f"% of {LABEL[isa['ort_level']]} peak"
    lines = header + [
        "",
        "| model | batch | threads | Strata p50 ms | ORT p50 ms | p50 ratio | load ratio | RSS ratio | "
        f"Strata GFLOP/s ({strata_pct}) | ORT GFLOP/s ({ort_pct}) | Strata vs torch |",
        "|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        err = r.get("strata_error") or r.get("ort_error")
        lines.append(
            f"| {r['model']} | {r['batch']} | {r['threads']} | {fmt(r['strata_p50_ms'], '.3f')} | "
            f"{fmt(r['ort_p50_ms'], '.3f')} | {fmt(r['ratio_p50_ms'], '.2f')} | {fmt(r['ratio_load_ms'], '.2f')} | "
            f"{fmt(r['ratio_peak_rss_mb'], '.2f')} | {fmt(r['strata_gflops'], '.0f')} ({fmt(r['strata_peak_pct'], '.0f')}%) | "
            f"{fmt(r['ort_gflops'], '.0f')} ({fmt(r['ort_peak_pct'], '.0f')}%) | {r.get('correct', '—')} |" + (f" error: {err[:120]}" if err else ""))
    lines += ["", "Load is session creation (Strata: `Session::Load`; ORT: `InferenceSession.create`). RSS is each "
              "process's peak resident set, including the Node.js runtime for ORT."]
    block = "\n".join(lines)
    # Newest first: the run goes right below its ISA's marker, and nothing already in the file is lost.
    key = isa["key"]
    marker = f"<!-- compare.py: newest {key} run below -->"
    titles = {"avx512": "AVX-512 hardware", "avx2": "AVX2 hardware",
              "avx2-emulated": "AVX2 emulated on AVX-512 hardware",
              "mixed": "Mixed ISA (oneDNN and Strata's own kernels at different levels)"}
    old = open(args.out).read() if os.path.exists(args.out) else None
    if old is not None and marker in old:
        before, after = old.split(marker, 1)
        text = before + marker + "\n\n" + block + "\n\n" + after.lstrip("\n")
    else:
        section = f"## {titles.get(key, key)}\n\n{marker}\n\n{block}\n"
        intro = ("# Benchmark results\n\nStrata versus ONNX Runtime (onnxruntime-node, all graph optimisations, "
                 "spinning off), run side by side and interleaved in one run. Ratios are Strata / ORT, so below "
                 "1.0 means Strata is better.\n\n")
        text = (old.rstrip("\n") + "\n\n" + section) if old else (intro + section)
    with open(args.out, "w") as f:
        f.write(text)
    print(f"wrote {args.out} (section {key})")


if __name__ == "__main__":
    main()
