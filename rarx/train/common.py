"""What every training objective shares: options, seeding, device, the time limit,
checkpoints and resuming, and the model card.

Each objective module (encoder, cross_encoder, first, gate, ...) builds its model,
data and trainer (sentence-transformers' or transformers' ``Trainer``, never a
hand-written optimiser loop), then calls :func:`fit` and :func:`write_card`. Trainers
here are transformers ``Trainer`` subclasses, so one callback and one set of
``TrainingArguments`` serve them all.
"""

from __future__ import annotations

import logging
import time
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from rarx.errors import ConfigError
from rarx.models.card import DataRef, ModelCard

log = logging.getLogger(__name__)

CHECKPOINTS = "checkpoints"  # under the output directory; the model itself is saved at its root
TRAINER_STATE = "trainer_state.json"  # in a checkpoint, written last by transformers' Trainer
# in a checkpoint: the training seconds of every piece of the run up to it (--resume adds on)
FIT_SECONDS = "rarx_fit_seconds.json"


@dataclass
class TrainOptions:
    """The flags every ``rarx train`` command takes."""

    data: str
    base: str
    out: Path
    epochs: float = 1.0
    max_steps: int = -1  # > 0 overrides epochs
    lr: float = 2e-5
    batch_size: int = 16
    seed: int = 42
    device: str = "cpu"  # cpu | cuda | auto
    max_minutes: float | None = None  # stop cleanly after this long, keeping a checkpoint
    resume: bool = False
    lora: bool = False  # LoRA adapters (peft) instead of full fine-tuning, for LLMs
    save_steps: int = 500
    quiet: bool = False

    def __post_init__(self) -> None:
        self.out = Path(self.out)
        if self.batch_size < 1:
            raise ConfigError(f"--batch-size must be at least 1, got {self.batch_size}")
        if self.max_minutes is not None and self.max_minutes <= 0:
            raise ConfigError(f"--max-minutes must be positive, got {self.max_minutes}")
        if self.max_steps <= 0 and self.epochs <= 0:
            raise ConfigError("give --epochs > 0 or --max-steps > 0")

    def card_options(self) -> dict[str, Any]:
        d = asdict(self)
        d["out"] = str(self.out)
        for k in ("quiet", "resume", "data", "base"):
            d.pop(k)
        return d


def setting(default: Any, help: str, **cli: Any) -> Any:
    """A field of an objective's settings dataclass: its default (the only place it is
    written) and the help of the ``rarx train`` flag derived from it. ``cli`` refines the
    flag: ``min`` (a lower bound), ``choices``, ``exists`` (a path that must exist),
    ``flag`` (another spelling), ``cli=False`` (no flag)."""
    return field(default=default, metadata={"help": help, **cli})


def seed_everything(seed: int) -> None:
    """Python, numpy and torch seeds, and deterministic torch kernels where they exist."""
    from transformers import set_seed

    set_seed(seed, deterministic=False)


def resolve_device(device: str) -> str:
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError("--device cuda was asked for but torch sees no GPU; use --device cpu")
    if device not in ("cpu",) and not device.startswith("cuda"):
        raise ConfigError(f"--device must be cpu, cuda or auto, got {device!r}")
    return device


def last_checkpoint(out: str | Path) -> str | None:
    """The newest whole ``checkpoint-N`` under ``out/checkpoints``, or None. The Trainer
    writes ``trainer_state.json`` after the weights and the optimiser, so a checkpoint
    without it was cut short (a run killed while saving) and the one before is taken."""
    found = (Path(out) / CHECKPOINTS).glob("checkpoint-*")
    whole = {int(p.name.rpartition("-")[2]): p for p in found
             if p.name.rpartition("-")[2].isdigit() and (p / TRAINER_STATE).is_file()}  # fmt: skip
    return str(whole[max(whole)]) if whole else None


def training_arguments(opts: TrainOptions, cls: type | None = None, **overrides: Any) -> Any:
    """``TrainingArguments`` (or a subclass, e.g. sentence-transformers') with the shared
    settings: seeds and data order fixed, checkpoints under ``out/checkpoints`` (only the
    newest kept), no external loggers, the CPU unless a GPU is asked for."""
    if cls is None:
        from transformers import TrainingArguments

        cls = TrainingArguments
    device = resolve_device(opts.device)
    kwargs: dict[str, Any] = dict(
        output_dir=str(opts.out / CHECKPOINTS),
        num_train_epochs=opts.epochs,
        max_steps=opts.max_steps if opts.max_steps > 0 else -1,
        learning_rate=opts.lr,
        per_device_train_batch_size=opts.batch_size,
        seed=opts.seed,
        data_seed=opts.seed,
        use_cpu=device == "cpu",
        save_strategy="steps",
        save_steps=opts.save_steps,
        save_total_limit=1,
        logging_steps=10,
        report_to=[],
        disable_tqdm=opts.quiet,
        dataloader_num_workers=0,
    )
    kwargs.update(overrides)
    return cls(**kwargs)


def time_limit_callback(minutes: float, fit_schedule: bool = True) -> Any:
    """A callback that stops training once ``minutes`` have passed since the first step,
    saving a checkpoint at that step, so ``--max-minutes`` never loses the work done.

    It also fits the learning-rate schedule to the time budget: the trainer plans its
    schedule (e.g. linear decay) over every step of ``--epochs``, which a time-limited
    run may never reach, so the rate would barely decay. The schedule is read at
    ``max(step, the step the elapsed share of the budget stands for)``: it ends at the
    deadline, or at the planned last step if that comes first, whatever the machine's
    speed. ``fit_schedule=False`` (``--max-steps`` given: the plan is the steps) leaves
    the schedule to the steps, so a run split into time-limited pieces (``--resume``)
    follows one schedule over them instead of decaying to zero in every piece."""
    from transformers import TrainerCallback

    class StopAfter(TrainerCallback):
        def __init__(self) -> None:
            self.deadline: float | None = None
            self.fired = False

        def on_train_begin(self, args, state, control, **kw):  # noqa: ANN001, ANN201
            start = time.monotonic()
            self.deadline = start + minutes * 60
            scheduler = kw.get("lr_scheduler")
            if (fit_schedule and scheduler is not None and hasattr(scheduler, "lr_lambdas")
                    and state.max_steps):  # fmt: skip
                first, last = state.global_step, state.max_steps
                scheduler.lr_lambdas = [
                    _timed(fn, first, last, start, minutes * 60) for fn in scheduler.lr_lambdas
                ]

        def on_step_end(self, args, state, control, **kw):  # noqa: ANN001, ANN201
            if self.deadline is not None and time.monotonic() >= self.deadline:
                self.fired = True
                control.should_training_stop = True
                control.should_save = True
            return control

    return StopAfter()


def _timed(fn: Any, first: int, last: int, start: float, budget: float) -> Any:
    """``fn`` (a LambdaLR factor of the step) read at the step the elapsed time stands
    for, when that is further than the real step; a plain closure, so scheduler
    checkpoints do not pickle it (a resumed run fits its own budget again)."""

    def factor(step: int) -> float:
        share = min(1.0, (time.monotonic() - start) / budget)
        return fn(max(step, min(last, first + round(share * (last - first)))))

    return factor


def seconds_ledger(start: float, before: float) -> Any:
    """A callback writing, into each checkpoint the Trainer saves, the training seconds up
    to it: ``before`` (the pieces this one resumed) plus this piece's since ``start``
    (``time.perf_counter()``). A resumed run reads it back (:func:`seconds_before`), so
    its card counts every piece, not only the last."""
    import json

    from transformers import TrainerCallback
    from transformers.trainer_utils import PREFIX_CHECKPOINT_DIR

    from rarx.io.atomic import atomic_write

    class Ledger(TrainerCallback):
        def on_save(self, args, state, control, **kw):  # noqa: ANN001, ANN201
            folder = Path(args.output_dir) / f"{PREFIX_CHECKPOINT_DIR}-{state.global_step}"
            if folder.is_dir():
                spent = before + time.perf_counter() - start
                with atomic_write(folder / FIT_SECONDS) as f:
                    json.dump({"seconds": round(spent, 1), "step": state.global_step}, f)
            return control

    return Ledger()


def seconds_before(checkpoint: str | Path) -> float | None:
    """The training seconds recorded in ``checkpoint`` (:func:`seconds_ledger`); None where
    it holds no record (written before rarx kept one, or by another tool)."""
    import json

    try:
        found = json.loads((Path(checkpoint) / FIT_SECONDS).read_text(encoding="utf-8"))
        return float(found["seconds"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


@dataclass
class FitResult:
    steps: int
    epochs: float
    seconds: float  # every piece of the run; this piece's alone where earlier ones are unknown
    started: str
    stopped_early: bool
    loss_history: list[float]
    resumed_from: int = 0  # the checkpoint's global step when --resume continued one
    piece_seconds: float | None = None  # this piece's, when it resumed a checkpoint
    # the pieces before (from the checkpoint's record); None: resumed a checkpoint without one
    seconds_before: float | None = 0.0


def fit(trainer: Any, opts: TrainOptions) -> FitResult:
    """Run ``trainer`` with the time limit and resume rules, and return what happened."""
    if opts.quiet:  # without tqdm the trainer prints each log dict to stdout instead
        from transformers.trainer_callback import PrinterCallback

        trainer.remove_callback(PrinterCallback)
    stopper = None
    if opts.max_minutes is not None:
        # --max-steps fixes the plan: time only stops (and checkpoints) a piece of it
        stopper = time_limit_callback(opts.max_minutes, fit_schedule=opts.max_steps <= 0)
        trainer.add_callback(stopper)
    resume_from, resumed_from = None, 0
    before: float | None = 0.0  # None: a resumed checkpoint that records no seconds
    if opts.resume:
        resume_from = last_checkpoint(opts.out)
        if resume_from is None:
            raise ConfigError(
                f"--resume: no checkpoint under {opts.out / CHECKPOINTS}; "
                "run without --resume to start from the base model"
            )
        log.info("resuming from %s", resume_from)
        resumed_from = _checkpoint_step(resume_from)
        before = seconds_before(resume_from)
        if before is None:
            log.warning("%s records no training seconds: the card's seconds count this "
                        "piece only", resume_from)  # fmt: skip
    started = datetime.now(UTC).isoformat(timespec="seconds")
    t0 = time.perf_counter()
    trainer.add_callback(seconds_ledger(t0, before or 0.0))
    trainer.train(resume_from_checkpoint=resume_from)
    piece = time.perf_counter() - t0
    state = trainer.state
    losses = [float(e["loss"]) for e in state.log_history if "loss" in e]
    return FitResult(
        steps=int(state.global_step),
        epochs=float(state.epoch or 0.0),
        seconds=round((before or 0.0) + piece, 1),
        started=started,
        stopped_early=bool(stopper is not None and stopper.fired),
        loss_history=losses,
        resumed_from=resumed_from,
        piece_seconds=round(piece, 1) if resume_from else None,
        seconds_before=before,
    )


def _checkpoint_step(checkpoint: str) -> int:
    import json

    state = Path(checkpoint) / TRAINER_STATE
    if not state.is_file():
        return 0
    return int(json.loads(state.read_text(encoding="utf-8")).get("global_step", 0))


def write_card(
    opts: TrainOptions,
    objective: str,
    data: list[DataRef],
    result: FitResult,
    metrics: dict[str, float] | None = None,
    overlap: dict[str, float] | None = None,
    **options: Any,
) -> ModelCard:
    """Write ``rarx_model.json`` into the output directory (after the model is saved)."""
    card = ModelCard(
        base=opts.base,
        objective=objective,
        data=data,
        seed=opts.seed,
        steps=result.steps,
        epochs=round(result.epochs, 4),
        started=result.started,
        seconds=result.seconds,
        stopped_early=result.stopped_early,
        metrics=dict(metrics or {}),
        overlap=dict(overlap or {}),
        options={**opts.card_options(), **options}
        | ({"resumed_from": result.resumed_from, "seconds_this_piece": result.piece_seconds,
            "seconds_before_resume": result.seconds_before} if result.resumed_from else {}),
    )
    card.write(opts.out)
    return card


def file_ref(path: Path | None) -> dict[str, str] | None:
    """A card's reference to an input file (a teacher's scores): path and checksum."""
    if path is None:
        return None
    from rarx.io.hashing import file_checksum

    return {"path": str(path), "checksum": file_checksum(path)}
