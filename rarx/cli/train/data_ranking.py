"""``rarx train data ranking``: ranking windows with a teacher order, for FIRST."""

from __future__ import annotations

from pathlib import Path

import click

from rarx.cli.options import quiet_option


@click.command()
@click.option(
    "--dataset",
    required=True,
    help="A packaged dataset name (rarx datasets list) or a BEIR folder; or a multiple-choice "
    "training file or name (reasoning-mc): its training questions against the pooled options "
    "of their source, as RAR-b's Full sets are built.",
)
@click.option("--out", type=click.Path(path_type=Path), required=True, help="Windows file (JSONL).")
@click.option(
    "--index",
    type=click.Path(path_type=Path, exists=True, file_okay=False),
    help="First-stage index over the dataset's corpus [default: BM25 built over it].",
)
@click.option(
    "--teacher-run",
    type=click.Path(path_type=Path, exists=True, dir_okay=False),
    help="A teacher reranker's TREC run: its order instead of the qrels'.",
)
@click.option(
    "--window",
    type=click.IntRange(min=2, max=26),
    default=20,
    show_default=True,
    help="Candidates per window (the first stage's top ones).",
)
@click.option(
    "--queries",
    "limit",
    type=click.IntRange(min=1),
    help="Use a seeded sample of this many judged queries [default: all].",
)
@click.option(
    "--shuffle",
    type=click.FloatRange(0, 1),
    default=0.5,
    show_default=True,
    help="Share of windows shown in a random order instead of the first stage's.",
)
@click.option(
    "--insert-relevant/--no-insert-relevant",
    default=True,
    show_default=True,
    help="Qrels teacher: put the relevant passage in when the first stage missed it.",
)
@click.option(
    "--insert-at",
    type=click.Choice(["last", "random"]),
    help="Where an inserted relevant passage goes [default: last; random for a "
    "multiple-choice file].",
)
@click.option(
    "--sources",
    help="Multiple-choice file: only these sources (comma-separated) [default: all].",
)
@click.option(
    "--first-stage",
    "first_stages",
    type=click.Choice(["minilm", "bm25"]),
    multiple=True,
    help="Multiple-choice file: the first stage(s) the candidates come from, one per question "
    "(seeded) when several [default: minilm].",
)
@click.option(
    "--instruction-share",
    type=click.FloatRange(0, 1),
    default=0.5,
    show_default=True,
    help="Multiple-choice file: share of windows whose prompt opens with the item's task "
    "instruction (the rest have none).",
)
@click.option("--seed", type=int, default=42, show_default=True)
@click.option("--split", default="test", show_default=True, help="Qrels split of a BEIR folder.")
@click.option(
    "--work-dir",
    type=click.Path(path_type=Path),
    default=Path("indexes/eval"),
    show_default=True,
    help="Where the BM25 index over the corpus is kept.",
)
@quiet_option
def ranking(
    dataset: str,
    out: Path,
    index: Path | None,
    teacher_run: Path | None,
    window: int,
    limit: int | None,
    shuffle: float,
    insert_relevant: bool,
    insert_at: str | None,
    sources: str | None,
    first_stages: tuple[str, ...],
    instruction_share: float,
    seed: int,
    split: str,
    work_dir: Path,
    quiet: bool,
) -> None:
    """Build FIRST training windows: each judged query of --dataset with its first-stage
    top --window candidates, ordered by the qrels (relevant first, then the first
    stage's order) or by --teacher-run. Evaluation-only sets (RAR-b test data) are
    refused."""
    from rarx.errors import ConfigError
    from rarx.train.data.mc import DATA_NAMES
    from rarx.train.data.ranking import build_ranking_data

    if dataset in DATA_NAMES or Path(dataset).is_file():
        from rarx.train.data.full_windows import build_full_windows

        if index is not None or teacher_run is not None or not insert_relevant:
            raise ConfigError(
                "--index, --teacher-run and --no-insert-relevant are for a ranking dataset; "
                f"{dataset} is a multiple-choice file, whose windows come from --first-stage"
            )
        names = [s.strip() for s in sources.split(",") if s.strip()] if sources else None
        stats = build_full_windows(
            dataset, out, sources=names, first_stages=first_stages or ("minilm",),
            window=window, limit=limit, shuffle=shuffle, insert_at=insert_at or "random",
            instruction_share=instruction_share, seed=seed, work_dir=work_dir, quiet=quiet,
        )  # fmt: skip
    else:
        if sources or first_stages:
            raise ConfigError(
                "--sources and --first-stage are for a multiple-choice file; for a ranking "
                "dataset pass --index (or let BM25 be built)"
            )
        stats = build_ranking_data(
            dataset,
            out,
            index=index,
            teacher_run=teacher_run,
            window=window,
            limit=limit,
            shuffle=shuffle,
            insert_relevant=insert_relevant,
            insert_at=insert_at or "last",
            seed=seed,
            split=split,
            work_dir=work_dir,
            quiet=quiet,
        )
    teacher = "teacher run" if teacher_run else "qrels"
    extra = ""
    if not teacher_run:
        extra = (
            f"; {stats.without_relevant} without a relevant candidate "
            f"({stats.inserted_relevant} given one)"
        )
    if stats.skipped_short:
        extra += f"; {stats.skipped_short} skipped (fewer than 2 candidates)"
    click.echo(
        f"wrote {stats.windows} windows ({teacher} order, {stats.shuffled} shuffled) "
        f"from {stats.queries} queries to {out}{extra}"
    )
    seen = {k: v for k, v in stats.overlap.items() if v > 0}
    if seen:
        shares = ", ".join(f"{k} {v:.1%}" for k, v in sorted(seen.items()))
        click.echo(f"overlap with evaluation sets (share of their questions): {shares}")
