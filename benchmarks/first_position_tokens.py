"""FIRST's top pick piles up at the 13th identifier (``M``) on shuffled arc-challenge
windows (issue 24 part 2, ``first_rarb.py --systems position``): the tokens behind it.

Rebuilds the windows of a ``first_rarb.py`` run from its JSONL (the first stage's
candidates, shuffled as the run shuffled them) and reads them at the token level:

1. ``tokens`` (tokenizer only): around each identifier of one window, the prompt's
   token ids and strings; the reply plan (what is scored for each identifier, with ids);
   whether each scored token is the token the passage list writes, and how often each
   scored token occurs in the prompt elsewhere (inside passage text).
2. ``model`` (``--model``): per window one forward pass over the prompt + ``[``, giving
   the next-token distribution after the prompt and after ``[``; every identifier's
   score is read from those two rows exactly as FIRST reads it (checked against
   :class:`~rarx.rerank.listwise.FirstReranker` and the run's recorded top pick on the
   first ``--detail`` windows). Controls on the same windows: the identifiers re-lettered
   (``T`` .. ``A``: slot 13 is ``H``, the letter ``M`` is slot 8), the window cut to its
   first 14 candidates (``M`` second to last) and to 10 (no ``M``).

    python benchmarks/first_position_tokens.py --run first_rarb_qwen_ct2_arc \
        --queries 30 --model

Writes ``results/first_position_tokens.json``; ``--model`` appends each window to
``work/first_position_tokens.jsonl`` as it goes (``--resume`` continues it).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections import Counter
from dataclasses import replace
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import RESULTS, WORK, write_result  # noqa: E402
from first_rarb import load_set, shuffled  # noqa: E402

from rarx.llm.base import ChatPrompt  # noqa: E402
from rarx.llm.hf_tokens import HFTokens  # noqa: E402
from rarx.llm.reply import plan_reply  # noqa: E402
from rarx.rerank.prompts import ALPHABET, LISTWISE, ListwiseTemplate  # noqa: E402
from rarx.types import Ranking  # noqa: E402

REVERSED = replace(LISTWISE, identifiers=ALPHABET[:20][::-1])
VARIANTS = {  # name: (template, candidates kept)
    "standard": (LISTWISE, 20),
    "reversed-letters": (REVERSED, 20),
    "first-14": (LISTWISE, 14),
    "first-10": (LISTWISE, 10),
}
LABELS = {"standard": "A..T (as run)", "reversed-letters": "T..A (re-lettered)",
          "first-14": "first 14 (A..N)", "first-10": "first 10 (A..J)"}  # fmt: skip


class Tokenizer(HFTokens):
    """The tokenizer side of the ctranslate2 backend, without the weights."""

    def __init__(self, model: str):
        from transformers import AutoTokenizer

        from rarx.models.ct2_cache import ct2_model_dir

        self.name = model
        folder = ct2_model_dir(model, "int8") / "hf_tokenizer"
        self.tokenizer = AutoTokenizer.from_pretrained(folder)
        self.templated = bool(getattr(self.tokenizer, "chat_template", None))


def windows(run: str, data: Any, queries: int) -> list[tuple[str, int, Ranking, int | None]]:
    """(qid, seed, the shuffled window as the run built it, its recorded top pick)."""
    from rarx.types import Hit

    lines = (RESULTS / f"{run}.queries.jsonl").read_text().splitlines()
    records = [json.loads(x) for x in lines[1:] if x.strip()]
    docs = {d.docid: d for d in data.corpus}
    stage = {r["qid"]: r["docids"] for r in records if r["system"] == "first-stage"}
    picks = {(r["qid"], int(r["system"].rsplit("s", 1)[1])): r["top_pick"]
             for r in records if r["system"].startswith("position-s")}  # fmt: skip
    qids = sorted({q for q, _ in picks})[:queries]
    out = []
    for qid in qids:
        cands = Ranking(qid, tuple(Hit(d, 0.0, docs[d]) for d in stage[qid]))
        for seed in sorted(s for q, s in picks if q == qid):
            out.append((qid, seed, shuffled(cands, seed), picks[qid, seed]))
    return out


def prompt_of(tok: Any, template: ListwiseTemplate, query: str, window: Ranking, n: int,
              passage_tokens: int) -> ChatPrompt:  # fmt: skip
    texts = [tok.truncate(h.doc.text, passage_tokens) for h in window.hits[:n]]
    return template.build(query, texts)


def token_view(tok: Tokenizer, prompt: ChatPrompt, ids: list[str]) -> dict[str, Any]:
    """Per identifier: the prompt tokens around ``[X]`` in the passage list, the tokens
    scored for it (with ids), and where each scored token occurs in the prompt."""
    t = tok.tokenizer
    text = tok.render(ChatPrompt(prompt.messages))
    enc = t(text, add_special_tokens=False, return_offsets_mapping=True)
    toks, offs = enc["input_ids"], enc["offset_mapping"]
    plan = plan_reply(tok, prompt, ids, "]")
    out: dict[str, Any] = {"given": plan.given, "prompt_tokens": len(toks), "identifiers": {}}
    for c in ids:
        at = text.index(f"\n[{c}] ")
        first = next(i for i, (s, e) in enumerate(offs) if e > at + 1)
        around = list(range(max(0, first - 2), min(len(toks), first + 4)))
        scored = [(p, tok.token_id(p)) for p in plan.tokens[c]]
        listed = [toks[i] for i in around if offs[i][0] >= at + 1 and offs[i][1] <= at + 3]
        out["identifiers"][c] = {
            "passage_list": [(toks[i], t.convert_ids_to_tokens(toks[i])) for i in around],
            "scored": scored,
            "written_the_same_way": [i for _, i in scored] == listed,
            "scored_token_count_in_prompt": {p: toks.count(i) for p, i in scored},
        }
    return out


def vocab_neighbours(tok: Tokenizer, ids: list[str]) -> dict[str, list[str]]:
    """Per identifier, the other vocabulary tokens that start with its scored ``[X``
    (what else the model could write there, e.g. ``[MAX``): a collision check."""
    vocab = tok.tokenizer.get_vocab()
    out = {}
    for c in ids:
        head = "[" + c
        out[c] = sorted(v for v in vocab if v.startswith(head) and v != head)[:40]
    return out


def read_window(llm: Any, prompt: ChatPrompt, ids: list[str]) -> dict[str, Any]:
    """One forward pass over prompt + ``[``: the top next tokens after the prompt and after
    ``[``, and each identifier's score as FIRST reads it (the plan's tokens)."""
    import numpy as np

    from rarx.llm.ctranslate2_backend import _log_softmax

    plan = plan_reply(llm, prompt, ids, "]")
    if plan.given or any(ctx not in ((), ("[",)) for ctx in plan.contexts):
        raise SystemExit(f"unexpected reply plan {plan.as_dict()}: this script reads '[' paths")
    bare = llm.prompt_ids(ChatPrompt(prompt.messages))
    ids_open = llm.prompt_ids(ChatPrompt(prompt.messages, "["))
    assert ids_open[:-1] == bare, "the prompt's tokens change when '[' follows"
    logits = np.asarray(llm.generator.forward_batch([ids_open]))[0]
    rows = [_log_softmax(logits[-2]), _log_softmax(logits[-1])]  # after prompt, after '['

    def top(lp: Any, n: int = 10) -> list[tuple[str, float]]:
        best = np.argsort(-lp)[:n]
        return [(llm.tokenizer.convert_ids_to_tokens(int(i)), round(float(lp[i]), 3))
                for i in best]  # fmt: skip

    scores = {}
    for c in ids:
        toks = plan.tokens[c]
        scores[c] = float(sum(rows[j][llm.token_id(p)] for j, p in enumerate(toks)))
    return {"top_after_prompt": top(rows[0]), "top_after_bracket": top(rows[1]),
            "scores": scores}  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--run", default="first_rarb_qwen_ct2_arc", help="results/<run>.queries.jsonl")
    ap.add_argument("--dataset", default="arc-challenge")
    ap.add_argument("--llm", default="qwen2.5-coder-1.5b", help="a ctranslate2 model")
    ap.add_argument("--queries", type=int, default=30, help="the run's first N queries")
    ap.add_argument("--detail", type=int, default=8, help="windows checked against FIRST")
    ap.add_argument("--passage-tokens", type=int, default=300)
    ap.add_argument("--model", action="store_true", help="load the model (part 2)")
    ap.add_argument("--resume", action="store_true")
    ap.add_argument("--summarize", action="store_true",
                    help="the JSON from the windows the log holds (no model)")
    args = ap.parse_args()
    data = load_set(args.dataset)
    queries = {q.qid: q.text for q in data.queries}
    wins = windows(args.run, data, args.queries)
    tok = Tokenizer(args.llm)
    qid, seed, win, _ = wins[0]
    ids = LISTWISE.ids(20)
    view = token_view(tok, prompt_of(tok, LISTWISE, queries[qid], win, 20, args.passage_tokens),
                      ids)  # fmt: skip
    print(f"window {qid} seed {seed}: {view['prompt_tokens']} prompt tokens; the prompt ends "
          f"{view['given']!r} into the reply")  # fmt: skip
    for c, v in view["identifiers"].items():
        print(f"  {c}: list {v['passage_list']}  scored {v['scored']}  same: "
              f"{v['written_the_same_way']}  in prompt: {v['scored_token_count_in_prompt']}")
    payload: dict[str, Any] = {"run": args.run, "dataset": args.dataset, "llm": args.llm,
                               "token_view": {"qid": qid, "seed": seed, **view},
                               "vocab_neighbours": vocab_neighbours(tok, ids)}  # fmt: skip
    # Every window of the sample: is each identifier written the same way in the list?
    mismatched = Counter()
    extra = Counter()
    for qid, _, win, _ in wins:
        v = token_view(tok, prompt_of(tok, LISTWISE, queries[qid], win, 20,
                                      args.passage_tokens), ids)["identifiers"]  # fmt: skip
        for c, d in v.items():
            mismatched[c] += not d["written_the_same_way"]
            extra[c] += sum(n - 1 for n in d["scored_token_count_in_prompt"].values()
                            if len(d["scored"]) == 1)  # fmt: skip
    payload["all_windows"] = {"windows": len(wins),
                              "identifier_written_otherwise": dict(mismatched),
                              "scored_token_elsewhere_in_prompt": dict(extra)}  # fmt: skip
    print(f"{len(wins)} windows: identifiers written otherwise in the list {dict(mismatched)}; "
          f"a scored token also inside passage text {dict(extra)}")
    if args.summarize:
        log = WORK / "first_position_tokens.jsonl"
        rows = [json.loads(x) for x in log.read_text().splitlines() if x.strip()]
        payload["model"] = summarize(rows, None)
    elif args.model:
        payload["model"] = run_model(args, wins, queries)
    write_result("first_position_tokens", payload, reportable)


def run_model(args: Any, wins: list[Any], queries: dict[str, str]) -> dict[str, Any]:
    from rarx.llm import load_llm
    from rarx.rerank.listwise import FirstReranker
    from rarx.rerank.permutation import order_by_scores
    from rarx.types import Query

    log = WORK / "first_position_tokens.jsonl"
    WORK.mkdir(parents=True, exist_ok=True)
    done = {}
    if args.resume and log.is_file():
        for line in log.read_text().splitlines():
            r = json.loads(line)
            done[r["qid"], r["seed"]] = r
    elif log.is_file():
        log.unlink()
    t0 = time.perf_counter()
    llm = load_llm(f"ctranslate2:{args.llm}")
    first = FirstReranker(llm, k=20, window=20, stride=10, passage_tokens=args.passage_tokens)
    rows = []
    with log.open("a") as sink:
        for n, (qid, seed, win, recorded) in enumerate(wins):
            if (qid, seed) in done:
                rows.append(done[qid, seed])
                continue
            row: dict[str, Any] = {"qid": qid, "seed": seed, "recorded_top_pick": recorded}
            for name, (template, k) in VARIANTS.items():
                ids = template.ids(k)
                r = read_window(llm, prompt_of(llm, template, queries[qid], win, k,
                                               args.passage_tokens), ids)  # fmt: skip
                slots = [r["scores"][c] for c in ids]
                r["top_slot"] = order_by_scores(slots)[0]
                r["top_letter"] = ids[r["top_slot"]]
                row[name] = r
            if n < args.detail:  # the real reranker, as the run called it
                res = first.rerank_detailed([Query(qid, queries[qid])], [win])[0]
                (call,) = [d for e, d in res.events if e == "llm_call"]
                row["first_reranker"] = {
                    "top_slot": win.docids.index(res.ranking.docids[0]),
                    "max_abs_score_difference": max(
                        abs(call["logprobs"][c] - row["standard"]["scores"][c])
                        for c in LISTWISE.ids(20)),
                }  # fmt: skip
            rows.append(row)
            sink.write(json.dumps(row) + "\n")
            sink.flush()
            s = row["standard"]
            print(f"{qid} s{seed}: recorded {recorded}, read {s['top_slot']} "
                  f"({s['top_letter']}); reversed {row['reversed-letters']['top_slot']} "
                  f"({row['reversed-letters']['top_letter']}); first-14 "
                  f"{row['first-14']['top_slot']}; first-10 {row['first-10']['top_slot']}",
                  flush=True)  # fmt: skip
    return summarize(rows, time.perf_counter() - t0)


def summarize(rows: list[dict[str, Any]], seconds: float | None) -> dict[str, Any]:
    import math

    out: dict[str, Any] = {"windows": len(rows), "seconds": seconds, "variants": {}}
    out["read_equals_recorded"] = sum(r["standard"]["top_slot"] == r["recorded_top_pick"]
                                      for r in rows)  # fmt: skip
    checked = [r["first_reranker"] for r in rows if "first_reranker" in r]
    out["checked_against_first_reranker"] = {
        "windows": len(checked),
        "same_top_pick": sum(c["top_slot"] == r["standard"]["top_slot"]
                             for c, r in zip(checked, [r for r in rows if "first_reranker" in r],
                                             strict=True)),
        "max_abs_score_difference": max((c["max_abs_score_difference"] for c in checked),
                                        default=None),
    }  # fmt: skip
    for name, (template, k) in VARIANTS.items():
        ids = template.ids(k)
        slots = Counter(r[name]["top_slot"] for r in rows)
        firsts = Counter(r[name]["top_after_prompt"][0][0] for r in rows)
        mean_lp = {c: sum(r[name]["scores"][c] for r in rows) / len(rows) for c in ids}
        mean_p = {c: sum(math.exp(r[name]["scores"][c]) for r in rows) / len(rows) for c in ids}
        # What else the model would write first: top-10 tokens that are not the scored
        # first token of any identifier of this window (e.g. "[M" where M is absent).
        scored = {"[" + c if c not in "OQ" else "[" for c in ids}
        others = Counter(t for r in rows for t, _ in r[name]["top_after_prompt"]
                         if t not in scored)  # fmt: skip
        out["variants"][name] = {
            "identifiers": "".join(ids),
            "top10_tokens_not_scored_first": dict(others.most_common(15)),
            "top_pick_by_slot": [slots.get(i, 0) for i in range(k)],
            "top_pick_by_letter": {ids[i]: slots.get(i, 0) for i in range(k)},
            "most_likely_next_token": dict(firsts.most_common()),
            "mean_identifier_logprob": mean_lp,
            "mean_identifier_probability": mean_p,
        }
    return out



def reportable(data: dict[str, Any]) -> Any:
    """Top picks by identifier letter and by window slot for each variant (histograms:
    a pile-up that follows the letter moves slot when the window is re-lettered), the
    mean probability the model gives each letter, and the checks against the run."""
    from rarx.eval.report_schema import Measurement, Reportable, Section

    every = data["all_windows"]
    ids = every["windows"] * len(every["identifier_written_otherwise"])
    other = sum(every["identifier_written_otherwise"].values())
    inside = sum(every["scored_token_elsewhere_in_prompt"].values())
    checks = [Measurement("tokenizer", data["dataset"], "identifiers scored as other tokens "
                          "than the passage list writes", other, n=ids),
              Measurement("tokenizer", data["dataset"], "scored identifier tokens also found "
                          "inside passage text", inside, n=ids)]  # fmt: skip
    sections = []
    model = data.get("model")
    if model:
        n = model["windows"]
        letters, slots, probs = [], [], []
        for name, v in model["variants"].items():
            label, k = LABELS[name], len(v["identifiers"])
            for c, count in sorted(v["top_pick_by_letter"].items()):
                letters.append(Measurement(label, c, "top picks by identifier letter", count,
                                           n=n, chance=n / k))  # fmt: skip
                probs.append(Measurement(label, c, "mean probability of the identifier",
                                         v["mean_identifier_probability"][c], n=n))  # fmt: skip
            for i, count in enumerate(v["top_pick_by_slot"]):
                slots.append(Measurement(label, str(i + 1), "top picks by window slot", count,
                                         n=n, chance=n / k))  # fmt: skip
        sections += [
            Section("first-position-letters", "FIRST's top pick by identifier letter, the "
                    f"same {n} shuffled {data['dataset']} windows re-lettered or cut",
                    tuple(letters + probs), plot="histogram",
                    note="T..A names the window's slots in reverse (slot 8 is M, slot 13 is "
                    "H); the first 14 and first 10 keep the window's first candidates. A "
                    "pile-up that follows the letter, not the slot, is the model's preference "
                    "for that letter."),
            Section("first-position-slots", "FIRST's top pick by window slot, the same "
                    "windows", tuple(slots), plot="histogram"),
        ]  # fmt: skip
        checks += [Measurement("ctranslate2 int8 re-read", data["dataset"],
                               "windows whose top pick is the run's", model["read_equals_recorded"],
                               n=n)]  # fmt: skip
        fr = model["checked_against_first_reranker"]
        if fr["windows"]:
            checks.append(Measurement("FirstReranker", data["dataset"],
                                      "windows with the same top pick as this read",
                                      fr["same_top_pick"], n=fr["windows"]))  # fmt: skip
    sections.append(Section("first-position-checks", "FIRST's identifiers at the token "
                            "level: checks", tuple(checks), plot="table"))  # fmt: skip
    return Reportable("first_position_tokens", tuple(sections),
                      f"FIRST's identifiers at the token level ({data['llm']}, "
                      f"{data['run']})", {"llm": data["llm"], "run": data["run"]})  # fmt: skip


if __name__ == "__main__":
    main()
