"""Score-matrix build time, this checkout against an earlier revision, on the same Lucene
indexes: CACM and generated passages (BM25, built by rarx once per run).

Each measurement is ``build_matrix`` on a finished Lucene index in a fresh process whose
JVM is up and has opened the index as ``rarx index`` has before it builds the matrix; the
two revisions alternate, ``--repeats`` times each, and the best and median are reported.
The revisions' outputs are compared file by file (the manifest's SHA-256 of every array):
a faster build must write the same matrix.

``--before`` defaults to the commit before the build read docids in bulk (one stored-fields
read per document until then).

    python benchmarks/matrix_build.py [--passages 200000] [--before REV] [--repeats 3]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path
from typing import Any

from common import ROOT, WORK, data_dir, table, write_result
from corpus_gen import generate_passages

from rarx.index.lucene import LuceneIndex
from rarx.io.corpus import Corpus

BEFORE = "72082ff"  # the last commit whose build read one stored document per docid

CHILD = """
import json, shutil, sys, tempfile, time
from pathlib import Path
from rarx.index.lucene import count_documents
from rarx.index.matrix import Bm25Params, build_matrix

lucene = Path(sys.argv[1])
count_documents(lucene)  # as 'rarx index' has done before the matrix: JVM up, index opened
scratch = Path(tempfile.mkdtemp(dir=lucene.parent.parent))
try:
    t = time.perf_counter()
    manifest = build_matrix(lucene, scratch / "matrix", "bm25", Bm25Params(0.9, 0.4))
    seconds = time.perf_counter() - t
finally:
    shutil.rmtree(scratch)
files = {name: info["sha256"] for name, info in manifest["files"].items()}
print(json.dumps({"seconds": seconds, "files": files}))
"""


def checkout(rev: str) -> Path:
    """The ``rarx`` package at ``rev``, extracted once under benchmarks/work."""
    sha = subprocess.run(["git", "rev-parse", "--short", rev], cwd=ROOT, check=True,
                         capture_output=True, text=True).stdout.strip()  # fmt: skip
    tree = WORK / "matrix_build" / f"rev-{sha}"
    if not (tree / "rarx").is_dir():
        tree.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile() as archive:
            subprocess.run(["git", "archive", "--format=tar", sha, "rarx"], cwd=ROOT,
                           check=True, stdout=archive)  # fmt: skip
            archive.seek(0)
            with tarfile.open(fileobj=archive) as tar:
                tar.extractall(tree, filter="data")
    return tree


def child(tree: Path, lucene: Path) -> dict[str, Any]:
    env = {**os.environ, "PYTHONPATH": str(tree)}
    out = subprocess.run([sys.executable, "-c", CHILD, str(lucene)], capture_output=True,
                         text=True, env=env, cwd=tree)  # fmt: skip
    if out.returncode != 0:
        raise SystemExit(f"build failed ({tree}):\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def index_of(name: str, passages: int) -> Path:
    path = WORK / "matrix_build" / name
    if not (path / "lucene").is_dir():
        shutil.rmtree(path, ignore_errors=True)
        docs = (Corpus(data_dir() / "cacm" / "corpus.jsonl") if name == "cacm"
                else generate_passages(passages, seed=0))  # fmt: skip
        LuceneIndex.build(docs, path, quiet=True)
    return path / "lucene"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--passages", type=int, default=200_000)
    parser.add_argument("--before", default=BEFORE)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    trees = {"before": checkout(args.before), "after": ROOT}
    corpora = [("cacm", 0)] + ([(f"generated-{args.passages}", args.passages)]
                               if args.passages else [])  # fmt: skip
    results = []
    for name, passages in corpora:
        lucene = index_of(name, passages)
        runs: dict[str, list[dict[str, Any]]] = {"before": [], "after": []}
        for _ in range(args.repeats):
            for which, tree in trees.items():
                runs[which].append(child(tree, lucene))
                print(f"{name}: {which}: {runs[which][-1]['seconds']:.2f} s", flush=True)
        seconds = {w: [r["seconds"] for r in rs] for w, rs in runs.items()}
        same = all(r["files"] == runs["before"][0]["files"] for rs in runs.values() for r in rs)
        results.append({
            "corpus": name,
            "documents": json.loads((lucene.parent / "rarx_index.json").read_text())[
                "documents"],
            "seconds": seconds,
            "best": {w: min(s) for w, s in seconds.items()},
            "median": {w: statistics.median(s) for w, s in seconds.items()},
            "speedup_best": min(seconds["before"]) / min(seconds["after"]),
            "identical_matrix": same,
        })  # fmt: skip
    print()
    print(table(("corpus", "documents", "before s (best)", "after s (best)", "speedup",
                 "before s (median)", "after s (median)", "same matrix"),
                [(r["corpus"], f"{r['documents']:,}", f"{r['best']['before']:.2f}",
                  f"{r['best']['after']:.2f}", f"{r['speedup_best']:.2f}x",
                  f"{r['median']['before']:.2f}", f"{r['median']['after']:.2f}",
                  "yes" if r["identical_matrix"] else "NO") for r in results]))  # fmt: skip
    write_result("matrix_build", reportable=reportable, payload={
        "command": "python benchmarks/matrix_build.py " + " ".join(sys.argv[1:]),
        "before": args.before,
        "after": subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT,
                                capture_output=True, text=True).stdout.strip(),
        "repeats": args.repeats,
        "results": results,
    })  # fmt: skip


def reportable(data: dict) -> object:
    """The report section: best and median build seconds before and after, per corpus."""
    from rarx.eval.report_schema import Measurement as M
    from rarx.eval.report_schema import Reportable, Section

    rows = [M(f"{when} ({data[when]})", r["corpus"], f"{stat} seconds", r[stat][when],
              n=data["repeats"])
            for r in data["results"] for stat in ("best", "median") for when in ("before", "after")]
    ratio = [M("after vs before", r["corpus"], "speed-up (best)", r["speedup_best"])
             for r in data["results"]]  # fmt: skip
    return Reportable("matrix_build", (
        Section("matrix-build", "BM25 matrix build time", tuple(rows)),
        Section("matrix-build-speedup", "BM25 matrix build: speed-up", tuple(ratio), plot="table"),
    ), data.get("command", ""), {"repeats": data["repeats"]})


if __name__ == "__main__":
    main()
