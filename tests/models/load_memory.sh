#!/bin/sh
# Loading (import + shape inference + compilation) holds at most one copy of the weights: payloads
# are borrowed from the file's mapping (resident only once read) or copied once while the mapped
# source pages are dropped, and protobuf never sees them. So peak RSS stays below the model file's
# size (the whole-file protobuf parse this replaced peaked at ~1.09x).   load_memory.sh STRATA MODEL
set -eu
strata=$1 model=$2
json=$("$strata" bench "$model" --load-only --json)
/usr/bin/python3 - "$model" "$json" <<'PY'
import json, os, sys
size_mb = os.path.getsize(sys.argv[1]) / 2**20
r = json.loads(sys.argv[2])
ratio = r["peak_rss_mb"] / size_mb
print(f"model {size_mb:.1f} MiB, peak RSS while loading {r['peak_rss_mb']:.1f} MiB ({ratio:.2f}x), load {r['load_ms']:.0f} ms")
sys.exit(0 if ratio < 1.0 else 1)
PY
