// ONNX Runtime (onnxruntime-node) side of the benchmark; prints the same JSON keys as
// `strata bench --json`.   node ort_bench.js MODEL THREADS RUNS WARMUP NAME=FILE.npy...
const fs = require('fs');
const ort = require('onnxruntime-node');

function readNpy(path) {
  const buf = fs.readFileSync(path);
  const major = buf[6];
  const headerLen = major === 1 ? buf.readUInt16LE(8) : buf.readUInt32LE(8);
  const start = major === 1 ? 10 : 12;
  const header = buf.toString('latin1', start, start + headerLen);
  const descr = /'descr':\s*'([^']+)'/.exec(header)[1];
  const shape = /'shape':\s*\(([^)]*)\)/.exec(header)[1].split(',').map(s => s.trim()).filter(s => s).map(Number);
  const data = buf.subarray(start + headerLen);
  const copy = new Uint8Array(data).buffer;  // aligned copy
  const types = {'<f4': ['float32', Float32Array], '<i8': ['int64', BigInt64Array], '<i4': ['int32', Int32Array]};
  if (!types[descr]) throw new Error(`unsupported npy dtype ${descr} in ${path}`);
  const [name, Ctor] = types[descr];
  return new ort.Tensor(name, new Ctor(copy), shape);
}

// Peak resident set of this process image (VmHWM). process.resourceUsage().maxRSS survives exec,
// so it would report the benchmark driver's peak instead.
function peakRssMb() {
  const m = /VmHWM:\s+(\d+) kB/.exec(fs.readFileSync('/proc/self/status', 'utf8'));
  return m ? Number(m[1]) / 1024 : 0;
}

(async () => {
  const [model, threads, runs, warmup, ...pairs] = process.argv.slice(2);
  const feeds = {};
  for (const p of pairs) {
    const eq = p.indexOf('=');
    feeds[p.slice(0, eq)] = readNpy(p.slice(eq + 1));
  }
  const opts = {intraOpNumThreads: Number(threads), interOpNumThreads: 1, graphOptimizationLevel: 'all',
                executionMode: 'sequential',
                extra: {session: {intra_op: {allow_spinning: '0'}, inter_op: {allow_spinning: '0'}}}};
  const baselineRss = process.memoryUsage().rss;
  let t = process.hrtime.bigint();
  const session = await ort.InferenceSession.create(model, opts);
  const loadMs = Number(process.hrtime.bigint() - t) / 1e6;
  t = process.hrtime.bigint();
  await session.run(feeds);
  const firstMs = Number(process.hrtime.bigint() - t) / 1e6;
  for (let i = 0; i < Number(warmup); i++) await session.run(feeds);
  const times = [];
  for (let i = 0; i < Math.max(1, Number(runs)); i++) {
    t = process.hrtime.bigint();
    await session.run(feeds);
    times.push(Number(process.hrtime.bigint() - t) / 1e6);
  }
  times.sort((a, b) => a - b);
  const pct = p => times[Math.min(times.length - 1, Math.round(p * (times.length - 1)))];
  console.log(JSON.stringify({load_ms: loadMs, first_run_ms: firstMs, p50_ms: pct(0.5), p90_ms: pct(0.9),
                              p99_ms: pct(0.99), min_ms: times[0], runs: times.length, threads: Number(threads),
                              peak_rss_mb: peakRssMb(),
                              baseline_rss_mb: baselineRss / 2 ** 20}));
})().catch(e => { console.error(String(e)); process.exit(1); });
