#!/usr/bin/env python3
"""Compare the tensors of two GGUF files: same names, types, shapes and bytes?

Used to check that the project's converted models (scripts/fetch_models.py) equal the ones made with
llama.cpp's tools (make_variants_llamacpp.py), so reference data made from either applies to both.

  python3 scripts/reference/compare_gguf_tensors.py A.gguf B.gguf
Exit status 0 when every tensor is byte-identical.
"""
import sys

import numpy as np

try:
    import gguf
except ImportError:
    raise SystemExit("needs the gguf package: pip install gguf")


def main() -> int:
    if len(sys.argv) != 3:
        print(__doc__)
        return 2
    a, b = (gguf.GGUFReader(p) for p in sys.argv[1:])
    ta = {t.name: t for t in a.tensors}
    tb = {t.name: t for t in b.tensors}
    bad = 0
    for name in sorted(set(ta) | set(tb)):
        if name not in ta or name not in tb:
            print(f"{name}: only in {'A' if name in ta else 'B'}")
            bad += 1
            continue
        x, y = ta[name], tb[name]
        if x.tensor_type != y.tensor_type or list(x.shape) != list(y.shape):
            print(f"{name}: {x.tensor_type.name}{list(x.shape)} vs {y.tensor_type.name}{list(y.shape)}")
            bad += 1
            continue
        bx, by = np.asarray(x.data).view(np.uint8).ravel(), np.asarray(y.data).view(np.uint8).ravel()
        if not np.array_equal(bx, by):
            fx = gguf.quants.dequantize(x.data, x.tensor_type).ravel()
            fy = gguf.quants.dequantize(y.data, y.tensor_type).ravel()
            print(f"{name}: {x.tensor_type.name} bytes differ in {int(np.count_nonzero(bx != by))} of {bx.size}; "
                  f"max |diff| of values {float(np.max(np.abs(fx - fy))):.3g}, "
                  f"values differing {int(np.count_nonzero(fx != fy))}")
            bad += 1
    print(f"{len(ta)} vs {len(tb)} tensors, {bad} differ")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
