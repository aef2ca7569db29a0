"""``rarx eval run``: a run file scored against qrels."""

from __future__ import annotations

import json
from pathlib import Path

import click

from rarx.cli.options import json_option, warn
from rarx.eval.metrics import DEFAULT_MEASURES


@click.command("run")
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
@json_option
@click.option("--per-query", is_flag=True, help="Also show each query's figures.")
def run_cmd(
    run_path: Path, qrels_path: Path, measures: tuple[str, ...], as_json: bool, per_query: bool
) -> None:
    """Score a run file against qrels, exactly as ir-measures / trec_eval would."""
    from rarx.eval.metrics import evaluate, parse_measures, read_run_scores
    from rarx.io.table import table
    from rarx.io.trec import read_qrels

    names = measures or DEFAULT_MEASURES
    parse_measures(names)  # a bad measure fails before any file is read
    qrels = read_qrels(qrels_path)
    run = read_run_scores(run_path)
    result = evaluate(run.run, qrels, names, run.duplicates)
    warn(result.warnings)
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


def measures_option(f):  # noqa: ANN001, ANN202 - a click decorator
    return click.option(
        "-m",
        "--measure",
        "measures",
        multiple=True,
        help=f"ir-measures string; repeatable (default: {' '.join(DEFAULT_MEASURES)}).",
    )(f)
