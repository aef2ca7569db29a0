"""A teacher's option scores on the training questions of a multiple-choice file, kept
as a training file (``{"id", "scores"}`` per line) for ``rarx train cross-encoder
--teacher-scores``. Any MCR scorer of :mod:`rarx.eval.mcr_scorers` can teach (e.g.
``llm-likelihood`` with ``normalize="pmi"``). Only the ``train`` split is scored: the dev
split and every evaluation file stay unseen by the teacher's distillation.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from rarx.errors import ConfigError

log = logging.getLogger(__name__)


def write_teacher_scores(
    data: str,
    out: str | Path,
    scorer: str = "llm-likelihood",
    model: str | None = None,
    limit: int | None = None,
    chunk: int = 64,
    **options: Any,
) -> int:
    """Score the first ``limit`` training questions of ``data`` (a file or data name)
    with the named MCR scorer and write them to ``out``; returns how many. Rows are
    written as they are scored, so a long run can be followed."""
    from rarx.eval.mcr_scorers import load_scorer
    from rarx.io.atomic import atomic_write
    from rarx.io.jsonl import write_jsonl
    from rarx.train.data.mc import read_mc, resolve_data, split_items

    if limit is not None and limit < 1:
        raise ConfigError(f"--limit must be at least 1, got {limit}")
    train, _ = split_items(read_mc(resolve_data(data)))
    train = train[:limit]
    teacher = load_scorer(scorer, model, **options)
    with atomic_write(out) as f:
        for start in range(0, len(train), chunk):
            part = train[start : start + chunk]
            items = part
            scores = teacher.scores(items, False)
            write_jsonl(f, ({"id": it.id, "scores": [float(x) for x in s]}
                            for it, s in zip(part, scores, strict=True)))  # fmt: skip
            log.info("teacher: %d/%d questions", start + len(part), len(train))
    return len(train)
