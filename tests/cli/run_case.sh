#!/bin/sh
# strata run --inputs on an official test case reproduces its reference outputs byte for byte
# (Identity copies exactly) in both output formats.
set -eu
strata=$1 case=$2
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
"$strata" run "$case/model.onnx" --inputs "$case/test_data_set_0" --output-dir "$out"
cmp "$out/output_0.pb" "$case/test_data_set_0/output_0.pb"
"$strata" run "$case/model.onnx" --inputs "$case/test_data_set_0" --output-dir "$out" --format npy
test -s "$out/output_0.npy"
