"""``rarx index``: build an index from a corpus."""

from __future__ import annotations

import time
from pathlib import Path

import click

from rarx.cli.options import quiet_option, threads_option
from rarx.index.base import index_class
from rarx.io.corpus import Corpus


@click.command()
@click.option(
    "--corpus",
    "corpus_path",
    required=True,
    type=click.Path(path_type=Path),
    help="JSONL file (id+contents, or BEIR _id/title/text), BEIR folder, or Parquet; "
    "for --kind qa-memory a JSONL of {question, answer}.",
)
@click.option(
    "--index",
    "index_path",
    required=True,
    type=click.Path(path_type=Path),
    help="Directory to create, e.g. indexes/NAME.",
)
@click.option(
    "--kind", type=click.Choice(["bm25", "dense", "qa-memory"]), default="bm25", show_default=True
)
@click.option("--model", default="minilm", show_default=True, help="Encoder for --kind dense.")
@click.option(
    "--faiss",
    "faiss_kind",
    type=click.Choice(["flat", "hnsw", "ivfpq"]),
    default="flat",
    show_default=True,
    help="faiss structure for --kind dense.",
)
@click.option(
    "--batch-size",
    type=click.IntRange(min=1),
    default=64,
    show_default=True,
    help="Encoding batch size for --kind dense.",
)
@click.option(
    "--k1", type=float, default=0.9, show_default=True, help="BM25 k1 (default at search)."
)
@click.option("--b", type=float, default=0.4, show_default=True, help="BM25 b (default at search).")
@click.option("--dedupe", is_flag=True, help="Keep the first of documents with the same id.")
@click.option("--overwrite", is_flag=True, help="Replace an existing index at --index.")
@threads_option
@quiet_option
def index(
    corpus_path: Path,
    index_path: Path,
    kind: str,
    model: str,
    faiss_kind: str,
    batch_size: int,
    k1: float,
    b: float,
    dedupe: bool,
    overwrite: bool,
    threads: int,
    quiet: bool,
) -> None:
    """Build an index from a corpus.

    \b
    Examples:
      rarx index --corpus data/sciq --index indexes/sciq-bm25 --kind bm25
      rarx index --corpus data/sciq --index indexes/sciq-minilm --kind dense --model minilm
      rarx index --corpus pairs.jsonl --index indexes/sciq-qa-memory --kind qa-memory
    """
    start = time.perf_counter()
    cls = index_class(kind)
    if kind == "qa-memory":  # pairs, not documents: the memory reads its own JSONL
        built = cls.build(
            corpus_path, index_path, model=model, overwrite=overwrite, quiet=quiet,
            batch_size=batch_size,
        )  # fmt: skip
        if not quiet:
            click.echo(
                f"indexed {built.manifest.documents:,} question-answer pairs into {index_path} "
                f"(qa-memory) in {time.perf_counter() - start:.1f}s",
                err=True,
            )
        return
    corpus = Corpus(corpus_path, dedupe=dedupe)
    if kind == "bm25":
        built = cls.build(
            corpus, index_path, overwrite=overwrite, threads=threads, k1=k1, b=b, quiet=quiet
        )
    else:
        built = cls.build(
            corpus,
            index_path,
            overwrite=overwrite,
            model=model,
            faiss=faiss_kind,
            batch_size=batch_size,
            quiet=quiet,
        )
    if corpus.duplicates:
        click.echo(f"--dedupe: dropped {corpus.duplicates:,} documents with repeated ids", err=True)
    if not quiet:
        click.echo(
            f"indexed {built.manifest.documents:,} documents into {index_path} "
            f"({kind}) in {time.perf_counter() - start:.1f}s",
            err=True,
        )
