#!/bin/sh
# Every bad input gets a non-zero exit and an "strata: <kind>: ..." message, never a crash.
set -u
strata=$1 case=$2
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
fail=0
expect_error() {  # expect_error "description" "expected text" command...
  what=$1 text=$2; shift 2
  "$@" >"$dir/out" 2>&1
  code=$?
  if [ $code -eq 0 ] || [ $code -gt 2 ] || ! grep -q "$text" "$dir/out"; then
    echo "FAIL: $what (exit $code):"; cat "$dir/out"; fail=1
  else
    echo "ok: $what -> $(head -c 200 "$dir/out")"
  fi
}
head -c 4096 /dev/urandom > "$dir/garbage.onnx"
head -c 100 "$case/model.onnx" > "$dir/truncated.onnx"
: > "$dir/empty.onnx"
expect_error "garbage model" "strata: invalid model" "$strata" run "$dir/garbage.onnx"
expect_error "truncated model" "strata: invalid model" "$strata" run "$dir/truncated.onnx"
expect_error "empty model" "strata: invalid model" "$strata" run "$dir/empty.onnx"
expect_error "missing model" "strata: I/O error" "$strata" run "$dir/nope.onnx"
expect_error "missing input" "no value given for input" "$strata" run "$case/model.onnx"
expect_error "unknown input name" "has no input named" "$strata" run "$case/model.onnx" --input bogus="$dir/garbage.onnx"
expect_error "garbage input file" "not a valid" "$strata" run "$case/model.onnx" --input x="$dir/garbage.onnx"
head -c 20 "$case/test_data_set_0/input_0.pb" > "$dir/trunc_input.pb"
expect_error "truncated input file" "strata:" "$strata" run "$case/model.onnx" --input x="$dir/trunc_input.pb"
python_npy() { /usr/bin/python3 -c "import numpy as np; np.save('$dir/$1', np.zeros($2, dtype='$3'))"; }
python_npy wrong_dtype.npy "(1,1,2,2)" int32
expect_error "wrong input dtype" "expected dtype float32, got int32" "$strata" run "$case/model.onnx" --input x="$dir/wrong_dtype.npy"
python_npy wrong_shape.npy "(1,4)" float32
expect_error "wrong input rank" "rank" "$strata" run "$case/model.onnx" --input x="$dir/wrong_shape.npy"
/usr/bin/python3 - "$dir/zero_stride.onnx" <<'PY'
import sys
import onnx
from onnx import helper, TensorProto
n = helper.make_node("Conv", ["x", "w"], ["y"], strides=[0, 0])
g = helper.make_graph([n], "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 1, 4, 4])],
                      [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
                      [helper.make_tensor("w", TensorProto.FLOAT, [1, 1, 2, 2], [1.0] * 4)])
onnx.save(helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)]), sys.argv[1])
PY
expect_error "conv with zero strides (once a SIGFPE in libonnx)" "must be positive" "$strata" run "$dir/zero_stride.onnx"
exit $fail
