"""Shared fixtures: tiny corpora written in the test, never ../shared."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from rarx.pipeline.resources import Resources

_TINY = [  # (id, title, text)
    ("d1", "Photosynthesis", "Plants use sunlight, water and carbon dioxide to make glucose."),
    ("d2", "Mitochondria", "The mitochondria is the powerhouse of the cell, producing ATP."),
    ("d3", "Plate tectonics", "Earthquakes happen where tectonic plates slide past each other."),
    ("d4", "Volcanoes", "Magma rises through the crust and erupts from volcanoes as lava."),
    ("d5", "Gravity", "Gravity pulls objects toward the Earth; Newton described it."),
    ("d6", "Evaporation", "Water evaporates when heated by the sun and forms clouds."),
    ("d7", "", "Enzymes speed up chemical reactions in living cells."),
    ("d8", "DNA", "DNA carries genetic information in a double helix."),
]
TINY_DOCS = [{"id": i, "title": t, "text": x} for i, t, x in _TINY]


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


@pytest.fixture
def tiny_corpus(tmp_path: Path) -> Path:
    """BEIR-style JSONL (``_id``/``title``/``text``)."""
    rows = [{"_id": d["id"], "title": d["title"], "text": d["text"]} for d in TINY_DOCS]
    return write_jsonl(tmp_path / "corpus.jsonl", rows)


@pytest.fixture(scope="session")
def tiny_bm25(tmp_path_factory: pytest.TempPathFactory):  # noqa: ANN201 - LuceneIndex
    from rarx.index.lucene import LuceneIndex
    from rarx.io.corpus import Corpus

    root = tmp_path_factory.mktemp("bm25")
    rows = [{"_id": d["id"], "title": d["title"], "text": d["text"]} for d in TINY_DOCS]
    corpus = write_jsonl(root / "corpus.jsonl", rows)
    return LuceneIndex.build(Corpus(corpus), root / "index", quiet=True)


@pytest.fixture(scope="session")
def resources() -> Resources:
    """Models and indexes shared by every test that runs a pipeline: each loads once."""
    return Resources(llm_options={"device": "cpu", "batch_size": 4})


@pytest.fixture(scope="session")
def smol(resources: Resources) -> Any:
    """The packaged SmolLM2 (transformers backend), the same model the pipelines use."""
    return resources.llm("smollm2-135m").inner  # type: ignore[attr-defined]


@pytest.fixture(scope="session")
def minilm() -> Any:
    """The packaged MiniLM encoder."""
    from rarx.models.encoder import Encoder

    return Encoder(model="minilm", device="cpu")
