"""Downloads of public benchmark folders, only when the user asks (``rarx datasets
download``). BEIR archives are verified against their published checksums before use;
RAR-b's Full sets come from the Hugging Face hub (:mod:`rarx.eval.datasets.rarb`).
Offline, the error says where to put a folder fetched by other means."""

from __future__ import annotations

import shutil
import tempfile
import urllib.error
import urllib.request
import zipfile
from pathlib import Path

from rarx.errors import RarxError
from rarx.eval.datasets.beir import LAYOUT, is_beir_folder
from rarx.io.hashing import file_digest

BEIR_URL = "https://public.ukp.informatik.tu-darmstadt.de/thakur/BEIR/datasets/{name}.zip"
# MD5 of each archive as published in the BEIR repository's dataset table.
BEIR_MD5 = {
    "scifact": "5f7d1de60b170fc8027bb7898e2efca1",
    "nfcorpus": "a89dba18a62ef92f7d323ec890a0d38d",
    "arguana": "8ad3e3c2a5867cdced806d6503f29b99",
    "fiqa": "17918ed23cd04fb15047f73e6c3bd9d9",
    "trec-covid": "ce62140cb23feb9becf6270d0d1fe6d1",
    "scidocs": "38121350fc3a4d2f48850f6aff52e4a9",
}


def download_dataset(spec: str, out: Path | None = None, timeout: float = 60.0) -> Path:
    """Fetch ``beir/<name>`` into ``out`` (default ``data/beir/<name>``), or RAR-b's
    Full set ``rarb/<task>`` from the Hugging Face hub (default ``data/rarb/<task>``)."""
    source, _, name = spec.partition("/")
    if source == "rarb":
        from rarx.eval.datasets.rarb import download_rarb

        return download_rarb(name, out)
    if source != "beir" or name not in BEIR_MD5:
        known = ", ".join(f"beir/{n}" for n in BEIR_MD5)
        raise RarxError(f"unknown download {spec!r}; known: {known}, rarb/<task> (RAR-b Full)")
    target = Path(out) if out is not None else Path("data") / "beir" / name
    if is_beir_folder(target):
        return target
    url = BEIR_URL.format(name=name)
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target.parent, prefix=f".{target.name}.download-") as tmp:
        archive = Path(tmp) / f"{name}.zip"
        try:
            with urllib.request.urlopen(url, timeout=timeout) as resp, open(archive, "wb") as f:
                shutil.copyfileobj(resp, f)
        except (urllib.error.URLError, OSError, TimeoutError) as exc:
            raise RarxError(
                f"cannot download {url} ({getattr(exc, 'reason', exc)}). Offline? Fetch "
                f"{name}.zip elsewhere (md5 {BEIR_MD5[name]}), unzip it and put the folder at "
                f"{target}; {LAYOUT}. Then pass --dataset {target}"
            ) from None
        digest = file_digest(archive, "md5")
        if digest != BEIR_MD5[name]:
            raise RarxError(
                f"{url}: checksum mismatch (md5 {digest}, expected {BEIR_MD5[name]}); "
                "nothing was written. Try again, or fetch the archive by other means"
            )
        with zipfile.ZipFile(archive) as z:
            z.extractall(Path(tmp) / "x")
        inner = Path(tmp) / "x" / name
        if not is_beir_folder(inner):
            raise RarxError(f"{url}: archive does not hold {name}/corpus.jsonl as expected")
        if target.exists():
            shutil.rmtree(target)
        shutil.move(str(inner), target)
    return target
