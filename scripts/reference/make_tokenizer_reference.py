#!/usr/bin/env python3
"""Tokenizes tests/data/tokenizer/corpus.txt with llama.cpp (through llama-cpp-python) and
writes the ids to tests/data/tokenizer/smollm2_ids.txt.

Usage:
    pip install llama-cpp-python   # builds llama.cpp
    python3 scripts/reference/make_tokenizer_reference.py path/to/SmolLM2-135M-Instruct.Q4_1.gguf

Each corpus string is tokenized as the model does by default (add_bos=True lets the model's
tokenizer.ggml.add_bos_token decide; SmolLM2 adds none) with special=True, so special tokens
written in the text become their ids. Output: a header line starting with '#', then one line
per corpus string with its ids separated by spaces (an empty line for no ids).
"""
import pathlib
import sys

import llama_cpp

ROOT = pathlib.Path(__file__).resolve().parents[2]
CORPUS = ROOT / "tests/data/tokenizer/corpus.txt"
OUT = ROOT / "tests/data/tokenizer/smollm2_ids.txt"


def unescape(line: str) -> bytes:
    out = bytearray()
    i = 0
    while i < len(line):
        c = line[i]
        if c == "\\" and i + 1 < len(line):
            n = line[i + 1]
            if n == "n":
                out += b"\n"; i += 2; continue
            if n == "r":
                out += b"\r"; i += 2; continue
            if n == "t":
                out += b"\t"; i += 2; continue
            if n == "\\":
                out += b"\\"; i += 2; continue
            if n == "x":
                out.append(int(line[i + 2:i + 4], 16)); i += 4; continue
        out += c.encode("utf-8")
        i += 1
    return bytes(out)


def main() -> None:
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    model = pathlib.Path(sys.argv[1])
    llm = llama_cpp.Llama(model_path=str(model), vocab_only=True, verbose=False)
    lines = CORPUS.read_text(encoding="utf-8").split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    bos_added = len(llm.tokenize(b"", add_bos=True, special=True)) > 0
    with open(OUT, "w", encoding="ascii", newline="\n") as f:
        f.write(
            f"# {model.name} llama-cpp-python {llama_cpp.__version__} add_bos={int(bos_added)} "
            f"special=1 strings={len(lines)}\n"
        )
        for line in lines:
            ids = llm.tokenize(unescape(line), add_bos=True, special=True)
            f.write(" ".join(str(i) for i in ids) + "\n")
    print(f"{len(lines)} strings -> {OUT} (add_bos={int(bos_added)})")


if __name__ == "__main__":
    main()
