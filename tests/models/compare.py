#!/usr/bin/python3
"""Compares Strata's .npy outputs with torch's references: compare.py DIR_WITH_REFS DIR_WITH_OUTPUTS.

Tolerance (docs/conformance.md): |strata - torch| <= atol + rtol * |torch| elementwise, with
rtol 1e-3 and atol 1e-4 * max(1, max|torch|). Real models accumulate thousands of fp32 products
in a different order than torch, so the absolute part scales with the output's magnitude.
"""
import glob
import os
import sys

import numpy as np

refs = sorted(glob.glob(os.path.join(sys.argv[1], "ref_*.npy")))
if not refs:
    sys.exit(f"no ref_*.npy in {sys.argv[1]}")
ok = True
for ref_path in refs:
    k = ref_path.rsplit("_", 1)[1].split(".")[0]
    ref = np.load(ref_path)
    out_path = os.path.join(sys.argv[2], f"output_{k}.npy")
    got = np.load(out_path)
    if got.shape != ref.shape:
        print(f"output {k}: shape {got.shape} != torch {ref.shape}")
        ok = False
        continue
    atol = 1e-4 * max(1.0, float(np.abs(ref).max()))
    err = np.abs(got.astype(np.float64) - ref)
    bad = err > atol + 1e-3 * np.abs(ref)
    print(f"output {k}: shape {ref.shape}, max abs err {err.max():.3g}, max |ref| {np.abs(ref).max():.3g}, "
          f"{int(bad.sum())} elements out of tolerance")
    ok &= not bad.any()
sys.exit(0 if ok else 1)
