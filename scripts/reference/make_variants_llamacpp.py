#!/usr/bin/env python3
"""Development copies of the SmolLM2 model variants, made with llama.cpp's own tools.

The project derives its F16 / Q8_0 / pure Q4_0 test models from the Q4_1 GGUF with its own Rust
code (scripts/fetch_models.py). This script makes the same variants independently, with gguf-py and
llama.cpp's quantizer, so the two can be compared tensor by tensor (compare_gguf_tensors.py) and the
reference data can be produced without waiting for the Rust side:

  F16  : every 2-D tensor dequantized (gguf-py, f32: d*q + m) and rounded to f16; 1-D tensors stay
         F32; all metadata copied, general.file_type = 1 (MOSTLY_F16).
  Q8_0 : llama_model_quantize(F16 file, ftype MOSTLY_Q8_0, pure=True)
  Q4_0 : llama_model_quantize(F16 file, ftype MOSTLY_Q4_0, pure=True)  (token_embd Q4_0 too)

Usage: make_variants_llamacpp.py SRC_Q4_1.gguf OUT_DIR
Needs: pip install gguf numpy llama-cpp-python
"""
import argparse
import ctypes
import os
import sys

import numpy as np

try:
    import gguf
except ImportError:  # gguf-py is also vendored in llama.cpp's source tree
    sys.exit("needs the gguf package: pip install gguf")

STEM = "SmolLM2-135M-Instruct"


def make_f16(src: str, dst: str) -> None:
    r = gguf.GGUFReader(src)
    arch = r.fields["general.architecture"].contents()
    w = gguf.GGUFWriter(dst, arch)
    for key, field in r.fields.items():
        if key.startswith("GGUF.") or key == "general.architecture":
            continue
        vtype = field.types[0]
        sub = field.types[-1] if vtype == gguf.GGUFValueType.ARRAY else None
        val = field.contents()
        if key == "general.file_type":
            val = int(gguf.LlamaFileType.MOSTLY_F16)
        w.add_key_value(key, val, vtype, sub_type=sub)
    for t in r.tensors:
        # t.shape is in ggml order (ne0 = row length first); numpy wants the reverse.
        ne = [int(x) for x in t.shape]
        data = gguf.quants.dequantize(t.data, t.tensor_type).astype(np.float32, copy=False)
        data = data.reshape(list(reversed(ne)))
        if len(ne) >= 2 and ne[1] > 1:
            w.add_tensor(t.name, data.astype(np.float16), raw_dtype=gguf.GGMLQuantizationType.F16)
        else:
            w.add_tensor(t.name, data.astype(np.float32), raw_dtype=gguf.GGMLQuantizationType.F32)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


def quantize(src: str, dst: str, ftype: int, nthread: int) -> None:
    import llama_cpp

    params = llama_cpp.llama_model_quantize_default_params()
    params.ftype = ftype
    params.pure = True
    params.nthread = nthread
    rc = llama_cpp.llama_model_quantize(src.encode(), dst.encode(), ctypes.byref(params))
    if rc != 0:
        sys.exit(f"llama_model_quantize({dst}) failed: {rc}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("src", help="SmolLM2-135M-Instruct.Q4_1.gguf")
    ap.add_argument("out_dir")
    ap.add_argument("--threads", type=int, default=2)
    a = ap.parse_args()
    os.makedirs(a.out_dir, exist_ok=True)
    f16 = os.path.join(a.out_dir, f"{STEM}.F16.gguf")
    make_f16(a.src, f16)
    print("wrote", f16)
    import llama_cpp

    for name, ft in (("Q8_0", llama_cpp.LLAMA_FTYPE_MOSTLY_Q8_0), ("Q4_0", llama_cpp.LLAMA_FTYPE_MOSTLY_Q4_0)):
        out = os.path.join(a.out_dir, f"{STEM}.{name}.gguf")
        quantize(f16, out, ft, a.threads)
        print("wrote", out)


if __name__ == "__main__":
    main()
