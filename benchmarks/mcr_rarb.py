"""MCR accuracy on RAR-b's own CSV files with minilm, without and with instructions,
scored as RAR-b scores it. Also checks that rarx's batched encoding predicts exactly
what RAR-b's one-question-at-a-time loop predicts (set MCR_PER_QUESTION=0 to skip).

    python benchmarks/mcr_rarb.py
"""

from __future__ import annotations

import os
import time
from pathlib import Path

from common import shared_data, with_report

from rarx.eval.mcr import mcr_encoder, mcr_files, read_mcr_csv, score_mcr
from rarx.eval.results import envelope, write_results
from rarx.io.table import table

DATA = shared_data()  # RARX_DATA, else ../shared/data
OUT = Path(__file__).parent / "results" / "mcr_rarb.json"


OWN_LAYOUT = True  # kind "mcr" with files[].with_instructions: {accuracy, ...}


def reportable(data: dict) -> object:
    """The report section of ``mcr_rarb.json`` (accuracy without / with instructions per
    file, chance from the files) and of ``mcr_rarb_reference.json`` (RAR-b's own code
    against rarx, batched and per question, and their disagreements)."""
    from common import mcr_chance

    from rarx.eval.report_schema import Measurement, Reportable, Section, scalars

    model = data["model"].split(" ")[0]
    reference = data.get("kind") == "mcr_rarb_reference"
    rows, checks = [], []
    for f in data["files"]:
        task, n = Path(f["file"]).stem, f["questions"]
        chance = mcr_chance(Path(data["data"].split(" ")[0]) / f["file"], n)
        for key in ("without_instructions", "with_instructions"):
            v, inst = f[key], key == "with_instructions"
            if not reference:
                rows.append(Measurement(model, task, "accuracy", v["accuracy"], None, n, chance,
                                        instructions=inst))  # fmt: skip
                pq = v.get("per_question") or {}
                if pq:
                    checks.append(Measurement("batched vs per question", task,
                                              "predictions differing", pq[
                                                  "predictions_differing_from_batched"], n=n,
                                              instructions=inst))  # fmt: skip
                continue
            for name, k in (("RAR-b's code", "rarb_accuracy"), ("rarx batched",
                            "rarx_accuracy_batched"), ("rarx per question",
                            "rarx_accuracy_per_question")):  # fmt: skip
                rows.append(Measurement(f"{model} ({name})", task, "accuracy", v[k], None, n,
                                        chance, instructions=inst))  # fmt: skip
            for k in ("disagreements_rarb_vs_rarx_batched",
                      "disagreements_rarb_vs_rarx_per_question"):  # fmt: skip
                checks.append(Measurement(k.replace("_", " "), task, "predictions differing",
                                          v[k], n=n, instructions=inst))  # fmt: skip
    key = "mcr-rarb-reference" if reference else "mcr-rarb"
    title = ("RAR-b's own MCR code against rarx" if reference
             else "MCR accuracy on RAR-b's files, scored as RAR-b scores")  # fmt: skip
    sections = [Section(key, title, tuple(rows), note="Chance: the mean of 1/options.")]
    if checks:
        sections.append(Section(f"{key}-agreement", f"{title}: agreement", tuple(checks),
                                plot="table"))  # fmt: skip
    return Reportable("mcr_rarb", tuple(sections), f"{data['model']} on {data['data']}",
                      scalars(data["settings"]))


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
    write_results(OUT, with_report(envelope(
        "mcr", model="minilm", data=str(DATA / "rarb-mcr"),
        settings={"max_seq_length": int(encoder.model.max_seq_length), "similarity": "cosine",
                  "ties": "first option", "query_with_instruction": "(instruction + ' ' + query)"
                  ".strip()"},
        files=files), reportable))  # fmt: skip
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
