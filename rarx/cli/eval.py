"""``rarx eval``: score run files, retrieval systems on datasets, and MCR accuracy."""

from __future__ import annotations

import json
from pathlib import Path

import click

from rarx.eval.metrics import DEFAULT_MEASURES


def _warn(messages: list[str]) -> None:
    for m in messages:
        click.echo(f"rarx: warning: {m}", err=True)


@click.group("eval")
def eval_() -> None:
    """Score runs (ir-measures), retrieval systems on datasets, and MCR accuracy."""


@eval_.command("run")
@click.option(
    "--run",
    "run_path",
    required=True,
    type=click.Path(path_type=Path),
    help="TREC run file (qid Q0 docid rank score tag).",
)
@click.option(
    "--qrels",
    "qrels_path",
    required=True,
    type=click.Path(path_type=Path),
    help="TREC qrels (qid 0 docid rel) or BEIR qrels TSV.",
)
@click.option(
    "-m",
    "--measure",
    "measures",
    multiple=True,
    help=f"ir-measures string; repeatable (default: {' '.join(DEFAULT_MEASURES)}).",
)
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.option("--per-query", is_flag=True, help="Also show each query's figures.")
def run_cmd(
    run_path: Path, qrels_path: Path, measures: tuple[str, ...], as_json: bool, per_query: bool
) -> None:
    """Score a run file against qrels, exactly as ir-measures / trec_eval would."""
    from rarx.eval.metrics import evaluate, parse_measures, read_run_scores
    from rarx.eval.report import table
    from rarx.io.trec import read_qrels

    names = measures or DEFAULT_MEASURES
    parse_measures(names)  # a bad measure fails before any file is read
    qrels = read_qrels(qrels_path)
    run = read_run_scores(run_path)
    result = evaluate(run.run, qrels, names, run.duplicates)
    _warn(result.warnings)
    if as_json:
        out = {"run": str(run_path), "qrels": str(qrels_path), **result.as_dict(per_query)}
        out.pop("warnings", None)
        click.echo(json.dumps(out, indent=2))
        return
    if per_query:
        rows = [
            (qid, *(vals[m] for m in result.measures))
            for qid, vals in sorted(result.per_query.items())
        ]
        click.echo(table(["query", *result.measures], rows))
        click.echo()
    rows = [(m, result.aggregate[m]) for m in result.measures]
    click.echo(table(["measure", f"mean ({result.queries} queries)"], rows))
