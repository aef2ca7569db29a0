"""``rarx qa-memory``: tools for question-answer memories (``rarx index --kind qa-memory``)."""

from __future__ import annotations

import json
from pathlib import Path

import click

from rarx.cli.options import json_option, quiet_option


@click.group("qa-memory")
def qa_memory() -> None:
    """Work with a question-answer memory index."""


@qa_memory.command()
@click.option("--memory", required=True, type=click.Path(path_type=Path),
              help="The qa-memory index directory.")  # fmt: skip
@click.option("--dev", required=True, type=click.Path(path_type=Path),
              help="Dev questions with gold answers (JSONL {question, answer} or "
                   "{_id, text, answers}); never the questions you evaluate on.")  # fmt: skip
@click.option("--precision", type=click.FloatRange(0.0, 1.0, min_open=True), default=0.9,
              show_default=True, help="Target precision of memory answers.")  # fmt: skip
@click.option("--rerank-model", default=None,
              help="A CrossEncoder (name or path) that rescores the nearest stored questions; "
                   "use the same one as the stage's rerank_model.")  # fmt: skip
@click.option("--rerank-k", type=click.IntRange(min=1), default=10, show_default=True)
@click.option("--min-hits", type=click.IntRange(min=1), default=1, show_default=True,
              help="Fewest dev hits a threshold must keep.")  # fmt: skip
@click.option("--dry-run", is_flag=True, help="Report the threshold without writing it.")
@json_option
@quiet_option
def calibrate(
    memory: Path, dev: Path, precision: float, rerank_model: str | None, rerank_k: int,
    min_hits: int, dry_run: bool, as_json: bool, quiet: bool,
) -> None:  # fmt: skip
    """Pick the lowest threshold reaching --precision on a dev split and write it into the
    index manifest; the qa_memory stage then uses it when it sets no threshold."""
    from rarx.eval.qa_memory import calibrate_memory

    cal = calibrate_memory(memory, dev, precision, rerank_model=rerank_model,
                           rerank_k=rerank_k, min_hits=min_hits, write=not dry_run)  # fmt: skip
    if as_json:
        click.echo(json.dumps(cal.as_dict(), sort_keys=True))
        return
    where = "not written (--dry-run)" if dry_run else f"written to {memory}"
    click.echo(
        f"threshold {cal.threshold:.4f}: precision {cal.precision:.3f} (target {cal.target}), "
        f"coverage {cal.coverage:.3f} ({cal.hits}/{cal.questions} dev questions); {where}"
    )
