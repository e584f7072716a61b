#!/bin/sh
# Loading (import + shape inference + compilation) must not copy weights twice:
# peak RSS stays under 1.3x the model file size.   load_memory.sh STRATA MODEL
set -eu
strata=$1 model=$2
json=$("$strata" bench "$model" --load-only --json)
/usr/bin/python3 - "$model" "$json" <<'PY'
import json, os, sys
size_mb = os.path.getsize(sys.argv[1]) / 2**20
r = json.loads(sys.argv[2])
ratio = r["peak_rss_mb"] / size_mb
print(f"model {size_mb:.1f} MiB, peak RSS while loading {r['peak_rss_mb']:.1f} MiB ({ratio:.2f}x), load {r['load_ms']:.0f} ms")
sys.exit(0 if ratio < 1.3 else 1)
PY
