"""``rarx run``: run a pipeline file over queries; write rankings, answers and traces."""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

import click

from rarx.cli.options import engine_options, quiet_option, ray_engine
from rarx.errors import ConfigError
from rarx.io.atomic import atomic_write
from rarx.stages.common import ERROR
from rarx.types import Query

if TYPE_CHECKING:
    from rarx.distributed.pipeline import RayPipeline


@click.command()
@click.argument("pipeline_file", type=click.Path(path_type=Path))
@click.option("--query", "texts", multiple=True, help="A query (repeatable).")
@click.option(
    "--topics",
    type=click.Path(path_type=Path),
    help="Queries: TSV qid<TAB>text, BEIR queries.jsonl, or TREC/SGML topics.",
)
@click.option("--output", "-o", type=click.Path(path_type=Path), help="Write JSONL here.")
@click.option("--hits", type=click.IntRange(min=0), default=10, show_default=True,
              help="Ranked hits written per query.")  # fmt: skip
@click.option("--batch-size", type=click.IntRange(min=1), default=16, show_default=True)
@click.option("--explain", is_flag=True, help="Print what each stage did, per query.")
@click.option("--strict", is_flag=True, help="Stop at the first stage error.")
@engine_options
@quiet_option
def run(
    pipeline_file: Path, texts: tuple[str, ...], topics: Path | None, output: Path | None,
    hits: int, batch_size: int, explain: bool, strict: bool, engine: str, workers: int | None,
    ray_address: str | None, quiet: bool,
) -> None:  # fmt: skip
    """Run PIPELINE_FILE over --query texts or a --topics file.

    Each result is one JSON line (qid, query, answer, error, ranking, context, trace),
    written to --output or, without it, to stdout.

    \b
    Examples:
      rarx run pipelines/bm25.yaml --query "What do plants need for photosynthesis?"
      rarx run pipelines/adaptive-rag.yaml --topics data/sciq/queries.jsonl -o run.jsonl
      rarx run pipelines/bm25-first.yaml --topics data/sciq/queries.jsonl --engine ray
    """
    from rarx.pipeline.output import explain as explain_state
    from rarx.pipeline.output import to_jsonl
    from rarx.pipeline.pipeline import Pipeline
    from rarx.pipeline.spec import check_indexes, load_spec

    if bool(texts) == bool(topics):
        raise ConfigError("give queries with --query TEXT (repeatable) or --topics FILE, not both")
    spec = load_spec(pipeline_file)  # all checks before any model loads
    check_indexes(spec)
    if topics is not None:
        from rarx.io.topics import read_topics

        queries = read_topics(topics)
    else:
        queries = [Query(f"q{i}", t) for i, t in enumerate(texts, 1)]
    ray = ray_engine(engine, workers, ray_address)
    start = time.perf_counter()
    on_ray: RayPipeline | None = None
    if ray is not None:
        from rarx.distributed.pipeline import RayPipeline

        on_ray = RayPipeline(spec, ray, strict=strict).start()  # each worker loads it once
    pipe: Pipeline | RayPipeline = (
        on_ray if on_ray is not None else Pipeline.from_spec(spec, strict=strict)
    )
    loaded = time.perf_counter() - start
    from rarx.progress import progress

    lines, errors = [], 0
    batches = [queries[i : i + batch_size] for i in range(0, len(queries), batch_size)]
    done = progress(pipe.run_batches(batches), desc="running", unit="batch",
                    total=len(batches), quiet=quiet or len(batches) < 2)  # fmt: skip
    try:
        for states in done:
            for state in states:
                errors += bool(state.context.get(ERROR))
                lines.append(to_jsonl(state, hits))
                if explain:
                    click.echo(explain_state(state), err=output is None)
    finally:  # a failed batch (--strict) must not leave the workers holding the cluster
        if on_ray is not None:
            on_ray.close()
    body = "".join(line + "\n" for line in lines)
    if output is not None:
        with atomic_write(output) as f:
            f.write(body)
    else:
        sys.stdout.write(body)
    if not quiet:
        click.echo(
            f"{len(queries)} queries through {spec.name} ({len(spec.stages)} stages) in "
            f"{time.perf_counter() - start:.1f}s (loading {loaded:.1f}s); {errors} with errors"
            + (f"; wrote {output}" if output else ""),
            err=True,
        )
