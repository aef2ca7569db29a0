"""What defending an index costs: the file record written at build time (sha256 of every
file), the size check on every open, and ``rarx index check`` beside Lucene's own
CheckIndex (the field's reference tool for Lucene indexes), on CACM and on generated
passages, BM25 indexes built by rarx.

- build: the whole ``LuceneIndex.build`` (record included), and the record alone
  (``record_files`` again on the built directory, page cache warm as at build time);
- open: ``LuceneIndex.load`` (JVM already started) and the size check alone;
- check: the sha256 pass alone (``checksum_problems``), Lucene's CheckIndex alone, and all
  of ``check_index`` (checksums, CheckIndex, open).

Times are the best of ``--repeats`` (builds: one each). Ratios are the integrity part over
the work it guards.

    python benchmarks/index_integrity.py [--passages 200000] [--repeats 3]
"""

from __future__ import annotations

import argparse
import shutil
import time
from collections.abc import Iterable
from typing import Any

from common import WORK, best_of, data_dir, table, write_result
from corpus_gen import generate_passages

from rarx.index.check import check_index, check_lucene
from rarx.index.integrity import checksum_problems, record_files, size_problems
from rarx.index.lucene import LuceneIndex
from rarx.io.corpus import read_corpus
from rarx.types import Document


def measure(name: str, docs: Iterable[Document], repeats: int) -> dict[str, Any]:
    path = WORK / "integrity" / name
    shutil.rmtree(path, ignore_errors=True)
    t = time.perf_counter()
    built = LuceneIndex.build(docs, path, quiet=True)
    build_s = time.perf_counter() - t
    built.close()
    files = built.manifest.files
    size_mb = sum(r["size"] for r in files.values()) / 2**20
    record_s, _ = best_of(lambda: record_files(path), repeats)
    load_s, _ = best_of(lambda: LuceneIndex.load(path).close(), repeats)
    sizes_s, _ = best_of(lambda: size_problems(path, files), max(repeats, 20))
    sums_s, problems = best_of(lambda: checksum_problems(path, files), repeats)
    assert problems == [], problems
    scratch = check_index(path, lucene=False)  # a report for check_lucene to fill

    def lucene() -> str:
        return check_lucene(path, path / "lucene", scratch)

    lucene_s, summary = best_of(lucene, repeats)
    assert scratch.ok, scratch.problems
    check_s, report = best_of(lambda: check_index(path), repeats)
    assert report.ok, report.problems
    return {
        "index": name,
        "documents": built.manifest.documents,
        "files": len(files),
        "size_mb": round(size_mb, 2),
        "build_s": round(build_s, 3),
        "record_s": round(record_s, 4),
        "record_over_build": round(record_s / build_s, 4),
        "sha256_mb_per_s": round(size_mb / sums_s, 1),
        "load_ms": round(load_s * 1000, 3),
        "size_check_ms": round(sizes_s * 1000, 4),
        "size_check_over_load": round(sizes_s / load_s, 4),
        "checksums_s": round(sums_s, 4),
        "lucene_checkindex_s": round(lucene_s, 4),
        "checksums_over_checkindex": round(sums_s / lucene_s, 3),
        "index_check_s": round(check_s, 4),
        "lucene_summary": summary,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--passages", type=int, default=200_000)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    rows = [measure("cacm", read_corpus(data_dir() / "cacm" / "corpus.jsonl"), args.repeats)]
    print(f"cacm done ({rows[0]['build_s']:.1f} s build)", flush=True)
    if args.passages:
        docs = generate_passages(args.passages, seed=0)
        rows.append(measure(f"generated-{args.passages}", docs, args.repeats))
    columns = [
        ("index", "index"), ("documents", "docs"), ("size_mb", "MB"), ("build_s", "build s"),
        ("record_s", "record s"), ("record_over_build", "record/build"),
        ("load_ms", "open ms"), ("size_check_ms", "size check ms"),
        ("checksums_s", "sha256 s"), ("sha256_mb_per_s", "MB/s"),
        ("lucene_checkindex_s", "CheckIndex s"), ("checksums_over_checkindex", "sha256/CheckIndex"),
        ("index_check_s", "index check s"),
    ]  # fmt: skip
    print(table([label for _, label in columns], [[r[k] for k, _ in columns] for r in rows]))
    write_result("index_integrity", {"repeats": args.repeats, "results": rows}, reportable)


def reportable(data: dict) -> object:
    """The report section: what recording and checking an index costs, against building
    it and against Lucene's CheckIndex, per index."""
    from rarx.eval.report_schema import Measurement as M
    from rarx.eval.report_schema import Reportable, Section

    rows = [M("rarx", r["index"], m, r[m]) for r in data["results"]
            for m in ("record_over_build", "size_check_over_load", "checksums_over_checkindex")]
    secs = [M(m, r["index"], "seconds", r[m]) for r in data["results"]
            for m in ("build_s", "record_s", "checksums_s", "lucene_checkindex_s", "index_check_s")]
    return Reportable("index_integrity", (
        Section("index-integrity", "Index integrity: cost ratios", tuple(rows), plot="table"),
        Section("index-integrity-seconds", "Index integrity: seconds", tuple(secs)),
    ), ", ".join(f"{r['index']} ({r['documents']} documents)" for r in data["results"]),
        {"repeats": data["repeats"]})


if __name__ == "__main__":
    main()
