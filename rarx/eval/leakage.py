"""Leakage between training data and evaluation data, measured rather than assumed.

Two texts match when they are equal after SQuAD-style normalisation
(:func:`rarx.text.normalize_answer`: lower case, no punctuation, no articles, single
spaces). For every evaluation set rarx knows, :func:`overlap_report` gives the share of
its questions found among the training questions, and, where the set has answer
options and the training items are given with theirs, the share of its items whose
question *and* options (in any order) are found.

The evaluation sets rarx knows are the packaged ones (``piqa``, ``siqa``,
``winogrande``, ``hellaswag``, ``arc-challenge``, ``sciq``, ...; see
:data:`rarx.eval.datasets.DATASETS`) and RAR-b's MCR files: those in
``$RARX_DATA/rarb-mcr/`` when that folder exists, and any files given.

Evaluation commands call :func:`model_warnings` with the models they run: a model whose
card (``rarx_model.json``) reports an overlap with the evaluated set, or whose training
file (still on disk) shares questions with it, gets a warning.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from rarx.text import normalize_answer

log = logging.getLogger(__name__)

OPTIONS_SUFFIX = "+options"  # report key of the question-and-options overlap
_SEP = "\x1f"


def question_key(text: str) -> str:
    return normalize_answer(text)


def item_key(question: str, options: Sequence[str]) -> str:
    """A question with its options; the options' order does not matter."""
    return _SEP.join([question_key(question), *sorted(normalize_answer(o) for o in options)])


@dataclass(frozen=True)
class EvalSet:
    """One evaluation set, as the keys of its questions (and items, when it has options)."""

    name: str
    questions: tuple[str, ...]
    items: tuple[str, ...] = ()


def _from_items(name: str, items: Iterable) -> EvalSet:  # McrItem-like
    items = list(items)
    return EvalSet(
        name,
        tuple(question_key(it.query) for it in items),
        tuple(item_key(it.query, it.options) for it in items),
    )


@cache
def packaged_set(name: str) -> EvalSet:
    """A packaged dataset's questions (its queries) and, with options, its MCR items."""
    from rarx.eval.datasets import dataset_spec

    built = dataset_spec(name).build()
    if built.mcr:
        return _from_items(name, built.mcr)
    return EvalSet(name, tuple(question_key(q.text) for q in built.queries))


def mcr_file_set(path: str | Path) -> EvalSet:
    """An MCR CSV, named by its file name (e.g. ``winogrande-test.csv``)."""
    from rarx.eval.mcr import read_mcr_csv

    path = Path(path)
    return _from_items(path.name, read_mcr_csv(path))


def rarb_mcr_files() -> list[Path]:
    """RAR-b MCR files on this machine: ``$RARX_DATA/rarb-mcr`` (one level of sub-folders,
    as RAR-b's ``mcr/TempReason/``). Empty when the variable or the folder is absent."""
    root = os.environ.get("RARX_DATA")
    if not root:
        return []
    folder = Path(root) / "rarb-mcr"
    if not folder.is_dir():
        return []
    return sorted(folder.glob("*.csv")) + sorted(folder.glob("*/*.csv"))


def known_eval_sets(
    files: Iterable[str | Path] = (), packaged: Iterable[str] | None = None
) -> list[EvalSet]:
    """Every packaged set (or those named), RAR-b's files found here, and ``files``.
    A file of the same name as another is read once."""
    from rarx.errors import RarxError
    from rarx.eval.datasets import DATASETS

    sets: list[EvalSet] = []
    for name in DATASETS if packaged is None else packaged:
        try:
            sets.append(packaged_set(name))
        except RarxError as exc:  # the package that ships it is missing: say so, go on
            log.warning("leakage: packaged set %s not checked (%s)", name, exc)
    seen: set[str] = set()
    for f in [*files, *rarb_mcr_files()]:
        if Path(f).name not in seen:
            seen.add(Path(f).name)
            sets.append(mcr_file_set(f))
    return sets


def overlap_report(
    questions: Iterable[str],
    *,
    items: Iterable[tuple[str, Sequence[str]]] = (),
    files: Iterable[str | Path] = (),
    packaged: Iterable[str] | None = None,
    sets: Sequence[EvalSet] | None = None,
) -> dict[str, float]:
    """Share of each evaluation set found in the training data (0.0 to 1.0).

    ``questions``: the training questions (every text a model sees as a query). Each
    evaluation set gets ``name -> share of its questions among them``; with ``items``
    (training (question, options) pairs), sets with options also get
    ``name+options -> share of its items whose question and options match``.
    ``sets`` replaces the known sets (``files`` and ``packaged`` then do nothing).
    """
    train_q = {question_key(q) for q in questions}
    train_items = {item_key(q, opts) for q, opts in items}
    report: dict[str, float] = {}
    for s in known_eval_sets(files, packaged) if sets is None else sets:
        if not s.questions:
            continue
        report[s.name] = round(sum(q in train_q for q in s.questions) / len(s.questions), 6)
        if s.items and train_items:
            share = sum(k in train_items for k in s.items) / len(s.items)
            report[s.name + OPTIONS_SUFFIX] = round(share, 6)
    return report


def training_questions(path: str | Path) -> list[str]:
    """The question texts of a rarx training file (JSONL rows with ``question`` and/or
    ``query`` fields, as ``rarx train data`` writes them). Other files give none."""
    out: list[str] = []
    try:
        with open(path, encoding="utf-8") as f:
            for line in f:
                if not line.strip():
                    continue
                row = json.loads(line)
                if not isinstance(row, dict):
                    return []
                out.extend(str(row[k]) for k in ("question", "query") if row.get(k))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return []
    return out


def _card_dir(model: str) -> Path | None:
    from rarx.llm.factory import LLMSpec

    # "ctranslate2:models/gate" names the same trained directory through another backend.
    path = Path(os.path.expanduser(LLMSpec.parse(model).model))
    return path if path.is_dir() else None


def model_warnings(
    models: Iterable[str], names: Sequence[str], questions: Iterable[str] = ()
) -> list[str]:
    """Warnings for the models (local directories with a card) trained on data that
    overlaps the evaluation set called ``names`` (e.g. its file name and dataset name)
    whose questions are ``questions``. Models without a card give none."""
    from rarx.models.card import ModelCard

    questions = list(questions)
    evaluated = {question_key(q) for q in questions}
    out = []
    for model in dict.fromkeys(models):
        directory = _card_dir(model)
        card = ModelCard.read(directory) if directory is not None else None
        if card is None:
            continue
        shares = card.overlapping([n for n in names if n])
        seen = {
            question_key(q) for ref in card.data for q in training_questions(ref.path)
        } & evaluated
        if seen:
            shares["measured now"] = sum(question_key(q) in seen for q in questions) / len(
                questions
            )
        if shares:
            said = ", ".join(f"{k}: {v:.1%}" for k, v in shares.items())
            out.append(
                f"model {model} was trained on data that overlaps the evaluated set "
                f"({said} of its questions are in the training data, per "
                f"{directory}/rarx_model.json); its score here is not a held-out evaluation"
            )
    return out


def spec_models(spec: object) -> list[str]:
    """Every string parameter of a pipeline spec's stages (model names and paths among
    them), for :func:`model_warnings`, which keeps those that are trained models."""
    import dataclasses

    out: list[str] = []
    for stage in getattr(spec, "stages", ()):
        params = stage.params
        values = (
            [getattr(params, f.name) for f in dataclasses.fields(params)]
            if dataclasses.is_dataclass(params)
            else list(vars(params).values())
            if hasattr(params, "__dict__")
            else []
        )
        out.extend(v for v in values if isinstance(v, str) and v)
    return out


def dataset_warnings(models: Sequence[str], data: Any, dataset: str) -> list[str]:
    """:func:`model_warnings` for a BEIR dataset (``data``) asked for as ``dataset``: it
    is known by that name, its folder's and its manifest's."""
    from rarx.eval.datasets import read_manifest

    names = [dataset, Path(data.path).name, (read_manifest(data.path) or {}).get("name", "")]
    return model_warnings(list(models), names, [q.text for q in data.queries])


def pipeline_models(paths: Iterable[str | Path]) -> list[str]:
    """The trained models the pipeline files name."""
    from rarx.pipeline.spec import load_spec

    return [m for p in paths for m in spec_models(load_spec(p))]
