#!/bin/sh
# Exports one reference model from Debian's torch (cached in WORKDIR), runs it through
# `strata run`, and compares the outputs with torch's.   check_model.sh STRATA NAME OPSET WORKDIR [THREADS]
# (THREADS matters because some kernels differ by thread count: Winograd convolutions run at 1 thread only.)
set -eu
strata=$1 name=$2 opset=$3 work=$4 threads=${5:-0}
here=$(cd "$(dirname "$0")" && pwd)
dir="$work/opset$opset/$name"
if [ ! -f "$dir/ref_0.npy" ]; then
  /usr/bin/python3 "$here/export.py" --out "$work/opset$opset" --models "$name" --opset "$opset"
fi
inputs=$(/usr/bin/python3 -c "
import onnx, sys
m = onnx.load('$dir/model.onnx', load_external_data=False)
inits = {i.name for i in m.graph.initializer}
names = [i.name for i in m.graph.input if i.name not in inits]
print(' '.join(f'--input {n}=$dir/input_{k}.npy' for k, n in enumerate(names)))")
rm -rf "$dir/out"
# shellcheck disable=SC2086
"$strata" run "$dir/model.onnx" $inputs --output-dir "$dir/out" --format npy --threads "$threads"
/usr/bin/python3 "$here/compare.py" "$dir" "$dir/out"
