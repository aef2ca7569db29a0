"""``rarx eval retrieval``: systems side by side on a dataset."""

from __future__ import annotations

import json
from pathlib import Path

import click

from rarx.cli.eval.run import measures_option
from rarx.cli.options import engine_options, json_option, quiet_option, ray_engine, warn
from rarx.eval.metrics import DEFAULT_MEASURES


@click.command("retrieval")
@click.option(
    "--dataset",
    required=True,
    help="Packaged dataset name, a BEIR / RAR-b Full folder, or a downloaded rarb/TASK.",
)
@click.option("--split", default="test", show_default=True, help="Qrels split.")
@click.option(
    "--index",
    "indexes",
    multiple=True,
    type=click.Path(path_type=Path),
    help="A built rarx index (any kind: bm25, dense, splade, ...); repeatable.",
)
@click.option(
    "--pipeline",
    "pipelines",
    multiple=True,
    type=click.Path(path_type=Path),
    help="A pipeline YAML whose final ranking is scored; repeatable.",
)
@click.option("--bm25", is_flag=True, help="BM25 built over the dataset's corpus.")
@click.option(
    "--model",
    "models",
    multiple=True,
    help="Dense model (e.g. minilm) over the dataset's corpus; repeatable.",
)
@click.option(
    "--splade",
    "splade_models",
    multiple=True,
    help="SPLADE model (e.g. splade-tiny) over the dataset's corpus, an impact index kept "
    "in --work-dir; repeatable. A built splade index goes to --index.",
)
@click.option("--hybrid", is_flag=True, help="Also RRF of BM25 and each dense or SPLADE model.")
@click.option(
    "--instructions",
    is_flag=True,
    help="Also run each dense model with the dataset's instruction (reuses the "
    "document embeddings).",
)
@measures_option
@click.option("-k", "--depth", default=100, show_default=True, help="Hits per query.")
@click.option(
    "--work-dir",
    type=click.Path(path_type=Path),
    default=Path("indexes/eval"),
    show_default=True,
    help="Where BM25 and SPLADE indexes and document embeddings are kept.",
)
@click.option(
    "--run-dir",
    type=click.Path(path_type=Path),
    default=None,
    help="Write each system's TREC run here.",
)
@click.option(
    "--results",
    type=click.Path(path_type=Path),
    default=None,
    help="Write a results JSON (dataset, systems, settings, versions, figures).",
)
@json_option
@engine_options
@quiet_option
def retrieval_cmd(
    dataset: str,
    split: str,
    indexes: tuple[Path, ...],
    pipelines: tuple[Path, ...],
    bm25: bool,
    models: tuple[str, ...],
    splade_models: tuple[str, ...],
    hybrid: bool,
    instructions: bool,
    measures: tuple[str, ...],
    depth: int,
    work_dir: Path,
    run_dir: Path | None,
    results: Path | None,
    as_json: bool,
    engine: str,
    workers: int | None,
    ray_address: str | None,
    quiet: bool,
) -> None:
    """Evaluate systems side by side on a dataset, with paired t-tests against the first.

    With --engine ray, --pipeline systems run on Ray workers and --model systems encode
    the corpus on them; the figures are the same as a local run's."""
    from rarx.distributed import execution_for
    from rarx.eval.leakage import dataset_warnings, pipeline_models
    from rarx.eval.results import write_results
    from rarx.eval.retrieval import RetrievalSystems, evaluate_retrieval
    from rarx.io.trec import write_run

    systems = RetrievalSystems(
        indexes, pipelines, bm25, models, hybrid, instructions, splade=splade_models
    )
    names = measures or DEFAULT_MEASURES
    ray = ray_engine(engine, workers, ray_address)
    result = evaluate_retrieval(
        dataset, systems, split=split, measures=names, depth=depth, work_dir=work_dir, quiet=quiet,
        execution=execution_for(ray),
    )  # fmt: skip
    if run_dir is not None:
        for i, s in enumerate(result.systems):
            write_run(run_dir / f"{i:02d}.trec", s.run.rankings, tag=f"s{i}")
    warn(dataset_warnings([*models, *pipeline_models(pipelines)], result.data, dataset))
    out = result.as_dict()
    if results is not None:
        write_results(results, out)
    if as_json:
        click.echo(json.dumps(out, indent=2, default=str))
        return
    _print_systems(result.systems, result.queries, str(result.data.path))


def _print_systems(scored: list, n_queries: int, where: str) -> None:  # noqa: ANN001
    from rarx.io.table import table

    measures = scored[0].evaluation.measures
    rows = []
    for i, s in enumerate(scored):
        cells: list[object] = [f"{i}: {s.run.name}"]
        for m in measures:
            p = s.p_values.get(m)
            mark = "*" if p is not None and p < 0.05 else ""
            cells.append(f"{s.evaluation.aggregate[m]:.4f}{mark}")
        qps = s.run.queries_per_second
        cells.append(int(round(qps)) if qps else "-")
        rows.append(cells)
    click.echo(f"{where}: {n_queries} queries")
    click.echo(table(["system", *measures, "q/s"], rows))
    click.echo("* p < 0.05, paired t-test against system 0")
