"""``rarx eval mcr``: MCR accuracy per file."""

from __future__ import annotations

import json
from pathlib import Path

import click

from rarx.cli.options import json_option, quiet_option, warn
from rarx.eval.mcr_scorers import SCORERS


@click.command("mcr")
@click.option(
    "--data",
    "data_path",
    required=True,
    type=click.Path(path_type=Path),
    help="An MCR CSV, a folder of them (RAR-b's mcr/), a prepared dataset folder, or C-STS's "
    "csts_validation.csv (read as csts-easy and csts-hard).",
)
@click.option(
    "--scorer",
    type=click.Choice(list(SCORERS)),
    default="bi-encoder",
    show_default=True,
    help="How options are scored (the first maximum wins).",
)
@click.option(
    "--model",
    default=None,
    help="Model name or path: bi-encoder minilm, LLM scorers smollm2-135m by default; "
    "cross-encoder needs one.",
)
@click.option(
    "--normalize",
    type=click.Choice(["sum", "mean", "pmi"]),
    default=None,
    help="llm-likelihood: option log-probability summed, per token, or minus its "
    "log-probability after 'Answer:' (default sum).",
)
@click.option("--device", default=None, help="cpu, cuda, cuda:1 ... (default: CUDA when present).")
@click.option(
    "--dtype",
    default=None,
    help="LLM scorers: the weights' dtype (default float32; bfloat16 is fast on GPUs and on "
    "CPUs with AMX).",
)
@click.option("--batch-size", type=click.IntRange(min=1), default=None, help="Rows per batch.")
@click.option("--instructions", is_flag=True, help="Score with instructions as well as without.")
@click.option(
    "--per-question",
    is_flag=True,
    default=None,
    help="bi-encoder: encode one question at a time, exactly as RAR-b's loop does (slower).",
)
@click.option(
    "--results", type=click.Path(path_type=Path), default=None, help="Write a results JSON."
)
@quiet_option
@json_option
def mcr_cmd(
    data_path: Path,
    scorer: str,
    model: str | None,
    normalize: str | None,
    device: str | None,
    dtype: str | None,
    batch_size: int | None,
    instructions: bool,
    per_question: bool | None,
    results: Path | None,
    quiet: bool,
    as_json: bool,
) -> None:
    """MCR accuracy per file (RAR-b's multiple-choice setting): each option of a question
    is scored, and the question counts when its correct option scores highest."""
    from rarx.eval.mcr_run import run_mcr
    from rarx.eval.results import write_results
    from rarx.io.table import table

    run = run_mcr(data_path, scorer, model, instructions=instructions, normalize=normalize,
                  device=device, dtype=dtype, batch_size=batch_size, per_question=per_question,
                  quiet=quiet)  # fmt: skip
    warn(run.warnings)
    rows, out = run.rows, run.results
    if results is not None:
        write_results(results, out)
    if as_json:
        click.echo(json.dumps(out, indent=2))
        return
    header = ["file", "kind", "questions", "acc w/o inst"] + (
        ["acc w/ inst"] if instructions else []
    )
    click.echo(
        table(
            header,
            [
                [Path(r.file).name, r.kind or "-", r.questions, r.accuracy_without]
                + ([r.accuracy_with] if instructions else [])
                for r in rows
            ],
        )
    )
