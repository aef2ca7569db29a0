"""Do FIRST's training windows look like its evaluation windows? (issue 24, part 3)

Side by side, a windows file from ``rarx train data ranking`` and the windows
``first_rarb.py`` reranks (its seeded sample of each set, its first stage's top ``--k``):
tokens per window as the model reads them (prompt, and the reply training teaches),
tokens per passage, the share of windows whose answer the first stage found, and where the
answer sits among the identifiers. Token counts use ``--tokenizer-of`` (default
qwen2.5-coder-1.5b's tokenizer, read without its weights: a one-layer random model over
it). Reads evaluation data only to describe it; nothing is tuned on it.

    python benchmarks/first_train_windows.py --windows FILE [--dataset arc-challenge ...]
        [--queries 60] [--name first_train_windows]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import table, write_result  # noqa: E402


def tokenizer_llm(model: str, root: Path) -> Any:
    """The transformers backend over a one-layer random model with ``model``'s tokenizer:
    its prompts and token counts are the model's, without loading its weights."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    from rarx.llm.transformers_backend import TransformersLLM
    from rarx.models.cache import causal_lm_dir
    from rarx.models.registry import resolve_model

    source = causal_lm_dir(resolve_model(model))
    tok = AutoTokenizer.from_pretrained(source)
    config = AutoConfig.from_pretrained(source)
    small = {"num_hidden_layers": 1, "hidden_size": 64, "intermediate_size": 64,
             "num_attention_heads": 2, "num_key_value_heads": 1}  # fmt: skip
    if getattr(config, "layer_types", None):  # one per layer
        small["layer_types"] = config.layer_types[:1]
    config = type(config)(**{**config.to_dict(), **small})
    torch.manual_seed(0)
    AutoModelForCausalLM.from_config(config).save_pretrained(root)
    tok.save_pretrained(root)
    return TransformersLLM(str(root), device="cpu")


def describe(llm: Any, windows: list[Any]) -> dict[str, Any]:
    from rarx.train.first import WindowEncoder

    enc = WindowEncoder(llm)
    encoded = [enc.encode(w) for w in windows]
    prompt = [e.prompt_len for e in encoded]
    reply = [len(e.input_ids) - e.prompt_len - e.branch for e in encoded]  # branch: not reply
    passage = [len(llm.tokenizer.encode(llm.truncate(p, 300), add_special_tokens=False))
               for w in windows for p in w.passages]  # fmt: skip
    found = [w for w in windows if w.grades and max(w.grades) > 0]
    k = max(len(w.passages) for w in windows)
    where = [0] * k
    for w in found:
        where[w.grades.index(max(w.grades))] += 1
    return {
        "windows": len(windows),
        "prompt_tokens_mean": statistics.fmean(prompt),
        "prompt_tokens_median": statistics.median(prompt),
        "prompt_tokens_max": max(prompt),
        "reply_tokens_mean": statistics.fmean(reply),
        "passage_tokens_mean": statistics.fmean(passage),
        "passages_per_window": statistics.fmean(len(w.passages) for w in windows),
        "with_instruction": sum(w.instruction != "" for w in windows) / len(windows),
        "answer_among_candidates": len(found) / len(windows),
        "answer_position_histogram": where,
    }


def eval_windows(dataset: str, n: int, seed: int, k: int) -> list[Any]:
    """first_rarb's windows for ``dataset``: its sample, its first stage's top k in the
    first stage's order, graded by the set's qrels (the answer is not put in)."""
    import first_rarb

    from rarx.rerank.base import passage_text
    from rarx.train.data.ranking import RankingWindow

    data = first_rarb.load_set(dataset)
    queries = first_rarb.sample(data, n, seed)
    _, cands, _ = first_rarb.first_stage(data, dataset, queries, k)
    out = []
    for q, r in zip(queries, cands, strict=True):
        judged = data.qrels[q.qid]
        out.append(RankingWindow(
            q.qid, q.text, tuple(r.docids), tuple(passage_text(h, None) for h in r.hits),
            tuple(range(len(r.hits))), dataset, "first-stage", data.instruction,
            tuple(max(0, judged.get(d, 0)) for d in r.docids)))  # fmt: skip
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    ap.add_argument("--windows", required=True, type=Path, help="a windows file (training)")
    ap.add_argument("--dataset", action="append", help="repeatable; default arc-challenge, "
                    "piqa, siqa")  # fmt: skip
    ap.add_argument("--queries", type=int, default=60, help="first_rarb's sample, its first n")
    ap.add_argument("--seed", type=int, default=0, help="first_rarb's seed")
    ap.add_argument("--k", type=int, default=20)
    ap.add_argument("--tokenizer-of", default="qwen2.5-coder-1.5b")
    ap.add_argument("--name", default="first_train_windows")
    args = ap.parse_args()
    from rarx.train.data.manifest import read_manifest
    from rarx.train.data.ranking import read_windows

    start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="rarx-tok-") as tmp:
        llm = tokenizer_llm(args.tokenizer_of, Path(tmp))
        rows = {"training": describe(llm, read_windows(args.windows))}
        for dataset in args.dataset or ["arc-challenge", "piqa", "siqa"]:
            rows[f"eval {dataset}"] = describe(llm, eval_windows(dataset, args.queries,
                                                                 args.seed, args.k))  # fmt: skip
    keys = ["windows", "prompt_tokens_mean", "prompt_tokens_max", "reply_tokens_mean",
            "passage_tokens_mean", "with_instruction", "answer_among_candidates"]  # fmt: skip
    print(table(["windows of", *keys],
                [[name, *[round(v[x], 3) if isinstance(v[x], float) else v[x] for x in keys]]
                 for name, v in rows.items()]))  # fmt: skip
    manifest = read_manifest(args.windows) or {}
    write_result(args.name, {
        "windows_file": str(args.windows), "windows_sha256": manifest.get("file_sha256"),
        "recipe": {k: manifest.get(k) for k in ("name", "sources", "first_stages", "window",
                                                 "shuffle", "insert_at", "instruction_share")},
        "tokenizer_of": args.tokenizer_of, "eval_queries": args.queries, "seed": args.seed,
        "k": args.k, "seconds": time.perf_counter() - start, "windows": rows,
        "note": "training windows hold the answer always (put in at a seeded place when the "
                "first stage missed it); evaluation windows as first_rarb reranks them",
    })  # fmt: skip


if __name__ == "__main__":
    main()
