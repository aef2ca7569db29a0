"""MCR accuracy on RAR-b's own CSV files with minilm, without and with instructions,
scored as RAR-b scores it. Also checks that rarx's batched encoding predicts exactly
what RAR-b's one-question-at-a-time loop predicts (set MCR_PER_QUESTION=0 to skip).

    RARX_DATA=/work/shared/data python benchmarks/mcr_rarb.py
"""

from __future__ import annotations

import os
import time
from pathlib import Path

from rarx.eval.mcr import mcr_encoder, mcr_files, read_mcr_csv, score_mcr
from rarx.eval.results import envelope, write_results
from rarx.io.table import table

DATA = Path(os.environ.get("RARX_DATA", "/work/shared/data"))
OUT = Path(__file__).parent / "results" / "mcr_rarb.json"


def main() -> None:
    encoder = mcr_encoder("minilm")
    per_question = os.environ.get("MCR_PER_QUESTION", "1") != "0"
    rows, files = [], []
    for path in mcr_files(DATA / "rarb-mcr"):
        items = read_mcr_csv(path)
        entry = {"file": path.name, "questions": len(items)}
        cache: dict = {}
        for inst in (False, True):
            key = "with_instructions" if inst else "without_instructions"
            t = time.perf_counter()
            acc, preds = score_mcr(items, encoder, inst, option_cache=cache)
            entry[key] = {
                "accuracy": acc,
                "correct": round(acc * len(items)),
                "seconds": time.perf_counter() - t,
            }
            if per_question:
                t = time.perf_counter()
                acc_pq, preds_pq = score_mcr(items, encoder, inst, per_question=True)
                entry[key]["per_question"] = {
                    "accuracy": acc_pq,
                    "predictions_differing_from_batched": sum(
                        a != b for a, b in zip(preds, preds_pq, strict=True)
                    ),
                    "seconds": time.perf_counter() - t,
                }
            print(path.name, key, entry[key], flush=True)
        files.append(entry)
        rows.append(
            [
                path.name,
                len(items),
                entry["without_instructions"]["accuracy"],
                entry["with_instructions"]["accuracy"],
            ]
        )
    print(table(["file", "questions", "acc w/o inst", "acc w/ inst"], rows))
    write_results(OUT, envelope(
        "mcr", model="minilm", data=str(DATA / "rarb-mcr"),
        settings={"max_seq_length": int(encoder.model.max_seq_length), "similarity": "cosine",
                  "ties": "first option", "query_with_instruction": "(instruction + ' ' + query)"
                  ".strip()"},
        files=files))  # fmt: skip
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
