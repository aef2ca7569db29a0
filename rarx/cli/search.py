"""``rarx search``: search one or more indexes, fusing their rankings when several."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import click

from rarx.cli.options import quiet_option, rerank_options, threads_option
from rarx.index.base import load_index
from rarx.io.atomic import atomic_write
from rarx.io.table import table
from rarx.io.topics import read_topics
from rarx.io.trec import format_run
from rarx.pipeline.search import SearchOptions, search_pipeline
from rarx.stages.rerank import RerankParams
from rarx.types import Query, Ranking

SNIPPET = 80


def open_index(
    path: Path, rm3: bool, k1: float | None, b: float | None, engine: str | None = None,
    matrix_memory: str | None = None,
) -> Any:  # fmt: skip
    """Load options go only to a kind that takes them (else a ConfigError naming it)."""
    given = {"rm3": rm3 or None, "k1": k1, "b": b, "engine": engine,
             "matrix_memory": matrix_memory}  # fmt: skip
    return load_index(path, **{name: v for name, v in given.items() if v is not None})


def run_meta(paths: tuple[Path, ...], indexes: list[Any], k: int, queries: int) -> dict:
    """Which index, kind and search path (settings: BM25's engine, k1, b...) made a run."""
    return {
        "indexes": [
            {"path": str(p), "kind": i.manifest.kind, "settings": dict(getattr(i, "settings", {}))}
            for p, i in zip(paths, indexes, strict=True)
        ],
        "k": k,
        "queries": queries,
    }


def _snippet(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= SNIPPET else text[: SNIPPET - 1] + "…"


def format_table(queries: list[Query], rankings: list[Ranking]) -> str:
    lines = []
    for q, r in zip(queries, rankings, strict=True):
        if len(queries) > 1:
            lines.append(f"# {q.qid}: {q.text}")
        rows = [
            (rank, h.docid, h.score, _snippet(h.doc.contents) if h.doc else "")
            for rank, h in enumerate(r.hits, 1)
        ]
        lines.append(table(["rank", "docid", "score", "text"], rows))
        if not r.hits:
            lines.append("   (no hits)")
    return "\n".join(lines) + "\n"


def format_jsonl(queries: list[Query], rankings: list[Ranking]) -> str:
    out = []
    for q, r in zip(queries, rankings, strict=True):
        hits = []
        for rank, h in enumerate(r.hits, 1):
            hit: dict[str, Any] = {"rank": rank, "docid": h.docid, "score": h.score}
            if h.doc is not None:
                hit.update(title=h.doc.title, text=h.doc.text)
            hits.append(hit)
        out.append(json.dumps({"qid": q.qid, "query": q.text, "hits": hits}, ensure_ascii=False))
    return "\n".join(out) + "\n"


@click.command()
@click.option(
    "--index",
    "index_paths",
    multiple=True,
    required=True,
    type=click.Path(path_type=Path),
    help="Index directory; repeat to fuse several.",
)
@click.option("--query", help="One query text.")
@click.option(
    "--topics",
    type=click.Path(path_type=Path),
    help="Queries: TSV (qid<TAB>text), BEIR queries.jsonl, SGML or TREC topics.",
)
@click.option("--output", "-o", type=click.Path(path_type=Path), help="Write here, not stdout.")
@click.option(
    "--k", type=click.IntRange(min=1), default=10, show_default=True, help="Hits per query."
)
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["trec", "jsonl", "table"]),
    help="Output format [default: table for --query, trec for --topics].",
)
@click.option(
    "--fusion",
    type=click.Choice(["rrf"]),
    default="rrf",
    show_default=True,
    help="How to fuse several --index.",
)
@click.option(
    "--fusion-depth",
    type=click.IntRange(min=1),
    default=1000,
    show_default=True,
    help="Hits taken from each index before fusing.",
)
@click.option("--rm3", is_flag=True, help="BM25 with RM3 query expansion (10 terms, 10 docs, 0.5).")
@click.option("--k1", type=float, help="BM25 k1 [default: as built, 0.9].")
@click.option("--b", type=float, help="BM25 b [default: as built, 0.4].")
@click.option(
    "--search-engine",
    type=click.Choice(["auto", "matrix", "lucene"]),
    help="BM25/SPLADE: search the score matrix beside the index (same rankings as Lucene, "
    "faster) or Lucene itself [default: auto, the matrix unless --rm3].",
)
@click.option(
    "--matrix-memory",
    type=click.Choice(["ram", "mmap"]),
    help="Load the score matrix into memory, or leave it on disk, memory-mapped [default: ram].",
)
@click.option("--instruction", default="", help="Instruction prepended to queries (dense).")
@click.option("--tag", default="rarx", show_default=True, help="Run tag (TREC format).")
@rerank_options(
    "Rerank the top --rerank-k hits: FIRST single-token listwise, generated permutation "
    "(listwise), or a cross-encoder."
)
@click.option("--strict", is_flag=True, help="Fail when the reranking LLM fails for a window.")
@threads_option
@quiet_option
def search(
    index_paths: tuple[Path, ...],
    query: str | None,
    topics: Path | None,
    output: Path | None,
    k: int,
    fmt: str | None,
    fusion: str,
    fusion_depth: int,
    rm3: bool,
    k1: float | None,
    b: float | None,
    search_engine: str | None,
    matrix_memory: str | None,
    instruction: str,
    tag: str,
    rerank: RerankParams | None,
    strict: bool,
    threads: int,
    quiet: bool,
) -> None:
    """Search indexes with one query or a topics file.

    \b
    Examples:
      rarx search --index indexes/sciq-bm25 --query "what do plants need to grow"
      rarx search --index indexes/sciq-bm25 --topics data/sciq/queries.jsonl -o run.trec
      rarx search --index indexes/sciq-bm25 --index indexes/sciq-minilm --query "..."
      rarx search --index indexes/sciq-bm25 --query "..." --rerank first --rerank-k 20
    """
    if (query is None) == (topics is None):
        raise click.UsageError("give exactly one of --query TEXT or --topics FILE")
    queries = [Query("q1", query)] if query is not None else read_topics(topics)  # type: ignore[arg-type]
    fmt = fmt or ("table" if query is not None else "trec")
    indexes = [open_index(p, rm3, k1, b, search_engine, matrix_memory) for p in index_paths]
    options = SearchOptions(
        k=k, instruction=instruction, threads=threads, fusion_depth=fusion_depth,
        docs=fmt != "trec", strict=strict, rerank=rerank,
    )  # fmt: skip
    states = search_pipeline(indexes, options).run(queries)
    rankings = [s.ranking.top(k) for s in states if s.ranking is not None]
    if fmt == "trec":
        text = "".join(format_run(rankings, tag))
    elif fmt == "jsonl":
        text = format_jsonl(queries, rankings)
    else:
        text = format_table(queries, rankings)
    if output is None:
        sys.stdout.write(text)
    else:
        with atomic_write(output) as f:
            f.write(text)
        with atomic_write(Path(f"{output}.meta.json")) as f:  # what answered the run
            json.dump(run_meta(index_paths, indexes, k, len(queries)), f, indent=1)
            f.write("\n")
        if not quiet:
            click.echo(
                f"wrote {sum(len(r) for r in rankings):,} hits for {len(queries):,} "
                f"queries to {output}",
                err=True,
            )
