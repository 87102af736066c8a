#!/usr/bin/env python3
"""Tokenizes the tokenizer corpus (tests/data/tokenizer/corpus.txt, then corpus_gemma.txt: Gemma's turn markers,
whitespace runs, byte fallback) with llama.cpp's own tokenizer for Gemma 3 270M's vocabulary and writes the ids to
tests/data/tokenizer/gemma3_ids.txt (tests/tokenizer_gemma3.rs holds qorus to them).

    python3 scripts/reference/make_gemma_tokenizer_reference.py ~/.cache/qorus/models/gemma-3-270m-q4_k_m.gguf

llama.cpp is run through its C API (scripts/reference/llamacpp_tokenize.cpp, built against the llama.cpp build
tree by llamacpp_tool.build_tool), add_special=true (Gemma adds BOS) and parse_special=true. Output: a header line
starting with '#', then one line per corpus string with its ids separated by spaces. The escapes of the corpus
files are those of make_tokenizer_reference.py (\\n, \\r, \\t, \\\\, \\xNN).
"""
import os
import pathlib
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import llamacpp_tool  # noqa: E402

ROOT = pathlib.Path(__file__).resolve().parents[2]
CORPORA = [ROOT / "tests/data/tokenizer/corpus.txt", ROOT / "tests/data/tokenizer/corpus_gemma.txt"]
OUT = ROOT / "tests/data/tokenizer/gemma3_ids.txt"


def unescape(line: str) -> bytes:
    out = bytearray()
    i = 0
    esc = {"n": b"\n", "r": b"\r", "t": b"\t", "\\": b"\\"}
    while i < len(line):
        c = line[i]
        if c == "\\" and i + 1 < len(line):
            n = line[i + 1]
            if n in esc:
                out += esc[n]
                i += 2
                continue
            if n == "x":
                out.append(int(line[i + 2:i + 4], 16))
                i += 4
                continue
        out += c.encode("utf-8")
        i += 1
    return bytes(out)


def main() -> None:
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    model = pathlib.Path(sys.argv[1])
    lines = []
    for c in CORPORA:
        ls = c.read_text(encoding="utf-8").split("\n")
        if ls and ls[-1] == "":
            ls.pop()
        lines += ls
    exe = llamacpp_tool.build_tool("llamacpp_tokenize")
    text = "".join(unescape(l).hex() + "\n" for l in lines)
    r = subprocess.run([exe, str(model)], input=text.encode(), capture_output=True, check=True)
    ids = r.stdout.decode().split("\n")[: len(lines)]
    assert len(ids) == len(lines)
    with open(OUT, "w", encoding="ascii", newline="\n") as f:
        f.write(f"# {model.name} {llamacpp_tool.GENERATOR} add_special=1 parse_special=1 strings={len(lines)}\n")
        for l in ids:
            f.write(l + "\n")
    print(f"{len(lines)} strings -> {OUT}")


if __name__ == "__main__":
    main()
