#!/bin/sh
# Loading (import + shape inference + compilation) holds one copy of the weights: payloads are
# borrowed from the file's mapping or copied once while the mapped source pages are dropped,
# protobuf never sees them, and a weight a kernel packs into its own layout is freed as soon as it
# is packed (so only the weight being packed is briefly held twice). Peak RSS above the process's
# baseline (measured on a tiny model) therefore stays within 5% of the model file's size; the
# whole-file protobuf parse this replaced peaked at ~1.09x plus packing.
#   load_memory.sh STRATA MODEL TINY_MODEL
set -eu
strata=$1 model=$2 tiny=$3
json=$("$strata" bench "$model" --load-only --json)
base=$("$strata" bench "$tiny" --load-only --json)
/usr/bin/python3 - "$model" "$json" "$base" <<'PY'
import json, os, sys
size_mb = os.path.getsize(sys.argv[1]) / 2**20
r, b = json.loads(sys.argv[2]), json.loads(sys.argv[3])
ratio = (r["peak_rss_mb"] - b["peak_rss_mb"]) / size_mb
print(f"model {size_mb:.1f} MiB, peak RSS while loading {r['peak_rss_mb']:.1f} MiB, baseline {b['peak_rss_mb']:.1f} MiB: "
      f"{ratio:.3f}x the model above baseline (limit 1.05x), load {r['load_ms']:.0f} ms")
sys.exit(0 if ratio < 1.05 else 1)
PY
