#!/usr/bin/env python3
"""Fetches llama.cpp's tokenizer test vectors into a git-ignored cache.

llama.cpp ships vocabulary-only GGUF files with inputs and expected ids
(`models/ggml-vocab-<name>.gguf`, `.gguf.inp`, `.gguf.out`). The llama-cpp-python source
distribution on PyPI vendors llama.cpp, so we download that sdist with pip and extract only
those files.

Cache directory (first that applies):
  $QORUS_TOKENIZER_VECTORS
  $QORUS_MODEL_DIR/../tokenizer-vectors
  ~/.cache/qorus/tokenizer-vectors

Prints the cache directory on stdout. Exit status 0 when the vectors are there.
"""
import os
import pathlib
import subprocess
import sys
import tarfile
import tempfile

VERSION = "0.3.36"  # the llama.cpp snapshot our tests were validated against
MARKER = f".complete-llama-cpp-python-{VERSION}"


def cache_dir() -> pathlib.Path:
    if os.environ.get("QORUS_TOKENIZER_VECTORS"):
        return pathlib.Path(os.environ["QORUS_TOKENIZER_VECTORS"])
    if os.environ.get("QORUS_MODEL_DIR"):
        return pathlib.Path(os.environ["QORUS_MODEL_DIR"]).resolve().parent / "tokenizer-vectors"
    return pathlib.Path.home() / ".cache" / "qorus" / "tokenizer-vectors"


def download_sdist(dest: pathlib.Path) -> pathlib.Path:
    # `--no-binary llama-cpp-python` selects the source distribution. pip prepares its metadata,
    # which needs the build backend (scikit-build-core) and a CMake >= 3.21; `--no-build-isolation`
    # uses ours instead of building an isolated environment (which can take very long). Both come
    # from PyPI into a directory of their own (`pip install --target`), so the Python environment
    # is left as it is and a machine without CMake works.
    tools = dest / "build-tools"
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--target", str(tools), "scikit-build-core", "cmake"],
        check=True,
        stdout=sys.stderr,
    )
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(tools)] + ([env["PYTHONPATH"]] if env.get("PYTHONPATH") else []))
    env["PATH"] = os.pathsep.join([str(tools / "bin"), env.get("PATH", "")])
    subprocess.run(
        [
            sys.executable, "-m", "pip", "download", "--no-deps", "--no-build-isolation",
            "--no-binary", "llama-cpp-python", "-d", str(dest / "sdist"), f"llama-cpp-python=={VERSION}",
        ],
        check=True,
        stdout=sys.stderr,
        env=env,
    )
    dest = dest / "sdist"
    found = sorted(dest.glob("llama_cpp_python-*.tar.gz"))
    if not found:
        sys.exit("pip download produced no llama_cpp_python sdist")
    return found[0]


def main() -> None:
    out = cache_dir()
    if (out / MARKER).exists():
        print(out)
        return
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        sdist = download_sdist(pathlib.Path(tmp))
        n = 0
        with tarfile.open(sdist) as tar:
            for m in tar.getmembers():
                parts = pathlib.PurePosixPath(m.name).parts
                if (
                    m.isfile()
                    and len(parts) >= 2
                    and parts[-2] == "models"
                    and "vendor" in parts
                    and parts[-1].startswith("ggml-vocab-")
                ):
                    f = tar.extractfile(m)
                    if f is None:
                        continue
                    (out / parts[-1]).write_bytes(f.read())
                    n += 1
    if n == 0:
        sys.exit("no ggml-vocab-* files in the sdist")
    (out / MARKER).write_text(f"{n} files\n")
    print(out)


if __name__ == "__main__":
    main()
