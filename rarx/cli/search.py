"""``rarx search``: search one or more indexes, fusing their rankings when several."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import click

from rarx.cli.options import quiet_option, threads_option
from rarx.index.base import Capability, load_index
from rarx.index.fusion import rrf
from rarx.index.registry import has_capability
from rarx.index.registry import search as search_index
from rarx.io.atomic import atomic_write
from rarx.io.table import table
from rarx.io.topics import read_topics
from rarx.io.trec import format_run
from rarx.types import Document, Hit, Query, Ranking

SNIPPET = 80


def open_index(path: Path, rm3: bool, k1: float | None, b: float | None) -> Any:
    """Load options go only to a kind that takes them (else a ConfigError naming it)."""
    given = {"rm3": rm3 or None, "k1": k1, "b": b}
    return load_index(path, **{name: v for name, v in given.items() if v is not None})


def search_one(
    index: Any, queries: list[Query], k: int, threads: int, instruction: str, with_docs: bool
) -> list[Ranking]:
    return search_index(
        index, queries, k, instruction=instruction, threads=threads, with_docs=with_docs
    )


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
@click.option("--instruction", default="", help="Instruction prepended to queries (dense).")
@click.option("--tag", default="rarx", show_default=True, help="Run tag (TREC format).")
@click.option(
    "--rerank",
    type=click.Choice(["first", "listwise", "cross-encoder"]),
    help="Rerank the top --rerank-k hits: FIRST single-token listwise, generated permutation "
    "(listwise), or a cross-encoder.",
)
@click.option(
    "--rerank-llm",
    default="smollm2-135m",
    show_default=True,
    help="LLM for first/listwise; model name or path for cross-encoder.",
)
@click.option("--rerank-k", type=click.IntRange(min=1), default=20, show_default=True,
              help="How many top hits to rerank.")  # fmt: skip
@click.option("--rerank-window", type=click.IntRange(min=2), default=20, show_default=True)
@click.option("--rerank-stride", type=click.IntRange(min=1), default=10, show_default=True)
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
    instruction: str,
    tag: str,
    rerank: str | None,
    rerank_llm: str,
    rerank_k: int,
    rerank_window: int,
    rerank_stride: int,
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
    with_docs = fmt != "trec"
    indexes = [open_index(p, rm3, k1, b) for p in index_paths]
    depth = max(k, rerank_k) if rerank else k
    if len(indexes) == 1:
        rankings = search_one(indexes[0], queries, depth, threads, instruction, with_docs=False)
    else:
        runs = [
            search_one(ix, queries, max(depth, fusion_depth), threads,
                       instruction if has_capability(ix, Capability.INSTRUCTIONS) else "",
                       with_docs=False)
            for ix in indexes
        ]  # fmt: skip
        rankings = rrf(runs, k=depth)
    if rerank:
        from rarx.rerank import make_reranker

        reranker = make_reranker(
            rerank, rerank_llm, rerank_k, window=rerank_window, stride=rerank_stride,
            strict=strict, docs=lambda docid: _lookup(docid, indexes),
        )  # fmt: skip
        rankings = [r.top(k) for r in reranker.rerank(queries, rankings)]
    if with_docs:
        rankings = [_attach_docs(r, indexes) for r in rankings]
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
        if not quiet:
            click.echo(
                f"wrote {sum(len(r) for r in rankings):,} hits for {len(queries):,} "
                f"queries to {output}",
                err=True,
            )


def _lookup(docid: str, indexes: list[Any]) -> Document | None:
    return next((d for ix in indexes if (d := ix.doc(docid)) is not None), None)


def _attach_docs(ranking: Ranking, indexes: list[Any]) -> Ranking:
    hits = (Hit(h.docid, h.score, h.doc or _lookup(h.docid, indexes)) for h in ranking.hits)
    return Ranking(ranking.qid, tuple(hits))
