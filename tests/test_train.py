"""rarx train: the multiple-choice data, the leakage report, and the encoder and
cross-encoder objectives on a tiny BERT built here (a few steps each)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from rarx.eval.datasets.base import McrItem
from rarx.train.data.mc import dev_split, read_mc, write_mc

# Learnable in a few steps: the correct option repeats the question's key word, and
# only the wrong ones say "not".
_WORDS = ["sun", "moon", "rain", "snow", "wind", "fire", "rock", "tree", "fish", "bird"]


def _items(n: int = 12) -> list[McrItem]:
    out = []
    for i in range(n):
        w = _WORDS[i % len(_WORDS)]
        wrong = [_WORDS[(i + k) % len(_WORDS)] for k in (3, 5, 7)]
        options = [f"not the {x} answer {i}" for x in wrong]  # no text in two items
        label = i % 4
        options.insert(label, f"the {w} answer {i}")
        split = "dev" if i >= n - 3 else "train"
        q = f"which answer is about {w} number {i}"
        out.append(McrItem("Answer it.", q, tuple(options), label, id=f"toy/{i}", source="toy",
                           split=split, question=q))  # fmt: skip
    return out


def _write_data(path: Path, items: list[McrItem]) -> Path:
    return write_mc(path, items, {"name": "toy", "overlap": {"piqa": 0.0, "toy-eval": 0.25}})


@pytest.fixture(scope="module")
def tiny_bert(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 2-layer, 32-wide BERT with a WordPiece vocabulary of the test's words (wide
    initial weights and no dropout, so a few steps visibly learn)."""
    from transformers import BertConfig, BertModel, BertTokenizerFast

    root = tmp_path_factory.mktemp("tiny-bert")
    words = sorted({w for it in _items() for t in (it.query, *it.options) for w in t.split()})
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *words, *[str(i) for i in range(20)]]
    tok = BertTokenizerFast(vocab={w: i for i, w in enumerate(dict.fromkeys(vocab))})
    assert "[UNK]" not in tok.tokenize(_items()[0].options[0])
    cfg = BertConfig(vocab_size=len(tok), hidden_size=32, num_hidden_layers=2,
                     num_attention_heads=2, intermediate_size=64,
                     max_position_embeddings=64, initializer_range=0.2,
                     hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)  # fmt: skip
    import torch

    torch.manual_seed(0)
    BertModel(cfg).save_pretrained(root)
    tok.save_pretrained(root)
    return root


def _opts(data: Path, base: Path, out: Path, **kw):  # noqa: ANN202 - TrainOptions
    from rarx.train.common import TrainOptions

    # One batch holds every training row, so each step sees the same data and the loss
    # falls step by step.
    defaults = dict(max_steps=6, lr=1e-2, batch_size=64, seed=1, save_steps=6, quiet=True)
    return TrainOptions(data=str(data), base=str(base), out=out, **{**defaults, **kw})


def test_mc_file_round_trips_and_dev_split_is_fixed(tmp_path: Path) -> None:
    items = _items()
    path = _write_data(tmp_path / "mc.jsonl", items)
    assert read_mc(path) == items
    manifest = json.loads((tmp_path / "mc.manifest.json").read_text())
    assert manifest["file_sha256"].startswith("sha256:")
    assert dev_split("sciq/3") == dev_split("sciq/3")
    share = sum(dev_split(f"x/{i}") == "dev" for i in range(4000)) / 4000
    assert 0.08 < share < 0.12


def test_leakage_finds_planted_overlaps(tmp_path: Path) -> None:
    from rarx.eval.leakage import mcr_file_set, overlap_report
    from rarx.eval.mcr import write_mcr_csv

    evalfile = tmp_path / "toy-test.csv"
    write_mcr_csv(evalfile, [
        McrItem("", "What melts ice?", ("heat", "cold"), 0),
        McrItem("", "Where do fish live?", ("water", "trees"), 0),
        McrItem("", "What do bees make?", ("honey", "milk"), 0),
        McrItem("", "Who wrote Hamlet?", ("Shakespeare", "Dickens"), 0),
    ])  # fmt: skip
    sets = [mcr_file_set(evalfile)]
    # Planted: one question differing only in case, punctuation and articles; one with
    # its options too (in another order); one unrelated question.
    train = ["what MELTS the ice", "Where do fish live?", "Why is the sky blue?"]
    items = [("Where do fish live", ["trees", "water"])]
    report = overlap_report(train, items=items, sets=sets)
    assert report == {"toy-test.csv": 0.5, "toy-test.csv+options": 0.25}
    assert overlap_report(["Why is the sky blue?"], sets=sets) == {"toy-test.csv": 0.0}


def test_leakage_checks_packaged_sets() -> None:
    from rarx.eval.datasets import dataset_spec
    from rarx.eval.leakage import overlap_report
    from rarx.text import normalize_answer

    piqa = dataset_spec("piqa").build().mcr
    planted = {normalize_answer(it.query) for it in piqa[:100]}  # some goals repeat in PIQA
    found = sum(normalize_answer(it.query) in planted for it in piqa)
    report = overlap_report([it.query.upper() for it in piqa[:100]], packaged=["piqa"])
    assert found >= 100 and report["piqa"] == pytest.approx(found / len(piqa), abs=1e-6)


def test_eval_warns_about_a_card_that_overlaps(tmp_path: Path) -> None:
    from rarx.eval.leakage import model_warnings
    from rarx.models.card import DataRef, ModelCard

    data = _write_data(tmp_path / "mc.jsonl", _items())
    model = tmp_path / "model"
    model.mkdir()
    ModelCard("base", "cross-encoder", [DataRef.of(data, 12)], 1,
              overlap={"toy-eval": 0.25}).write(model)  # fmt: skip
    assert model_warnings([str(model)], ["other.csv"], ["Unrelated question?"]) == []
    by_name = model_warnings([str(model)], ["toy-eval"])
    assert len(by_name) == 1 and "toy-eval: 25.0%" in by_name[0]
    # Measured against the training file the card names, under any name.
    measured = model_warnings([str(model)], ["x.csv"], [_items()[0].query, "Other?"])
    assert len(measured) == 1 and "measured now: 50.0%" in measured[0]
    assert model_warnings(["minilm", str(tmp_path)], ["toy-eval"]) == []  # no card


def _first_last(losses: list[float]) -> tuple[float, float]:
    return sum(losses[:2]) / 2, sum(losses[-2:]) / 2


@pytest.mark.parametrize("loss", ["listwise", "bce"])
def test_cross_encoder_learns_and_loads_as_a_model(
    tmp_path: Path, tiny_bert: Path, loss: str
) -> None:
    from rarx.eval.mcr_scorers import load_scorer
    from rarx.models.card import ModelCard
    from rarx.rerank.cross_encoder import CrossEncoderReranker
    from rarx.train.cross_encoder import CrossEncoderSettings
    from rarx.train.data.mc import scorer_accuracy
    from rarx.train.driver import run

    data = _write_data(tmp_path / "mc.jsonl", _items())
    out = tmp_path / "ce"
    run(
        "cross-encoder",
        _opts(data, tiny_bert, out),
        CrossEncoderSettings(loss=loss, logging_steps=1),
    )
    first, last = _first_last(_losses(out))
    assert last < first
    read = ModelCard.read(out)
    assert read is not None and read.steps == 6 and read.objective == "cross-encoder"
    assert read.data[0].checksum.startswith("sha256:") and read.data[0].rows == 12
    assert read.overlap["toy-eval"] == 0.25  # from the data's manifest
    assert read.metrics["dev_questions"] == 3 and 0 <= read.metrics["dev_accuracy"] <= 1
    reranker = CrossEncoderReranker(str(out))  # the directory is a model name
    assert reranker.model.num_labels == 1
    # the card's dev accuracy is what `rarx eval mcr --scorer cross-encoder` gives
    dev = [it for it in _items() if it.split == "dev"]
    scored = scorer_accuracy(load_scorer("cross-encoder", str(out), device="cpu"), dev)
    assert read.metrics["dev_accuracy"] == scored["accuracy"]


def _losses(out: Path) -> list[float]:
    from rarx.train.common import last_checkpoint

    state = json.loads((Path(last_checkpoint(out)) / "trainer_state.json").read_text())
    return [e["loss"] for e in state["log_history"] if "loss" in e]


def test_cross_encoder_distils_teacher_scores(tmp_path: Path) -> None:
    from rarx.errors import InputError
    from rarx.train.cross_encoder import targets

    items = _items()[:2]
    teacher = {items[0].id: [0.0, 0.0, 0.0, 0.0], items[1].id: [1.0, 0.0, 0.0, 0.0]}
    t = targets(items, teacher, alpha=0.5, temperature=1.0)
    assert t[0][items[0].label] == pytest.approx(0.5 + 0.5 * 0.25)
    assert sum(t[1]) == pytest.approx(1.0)
    with pytest.raises(InputError, match="one per option"):
        targets(items, {items[0].id: [1.0]}, 0.5, 1.0)


def test_encoder_learns_resumes_and_stops_on_time(tmp_path: Path, tiny_bert: Path) -> None:
    from rarx.models.card import ModelCard
    from rarx.models.encoder import Encoder, EncoderConfig
    from rarx.train.common import last_checkpoint
    from rarx.train.driver import run
    from rarx.train.encoder import EncoderSettings

    data = _write_data(tmp_path / "mc.jsonl", _items())
    out = tmp_path / "enc"
    settings = EncoderSettings(logging_steps=1)
    card = run("encoder", _opts(data, tiny_bert, out, max_steps=4, save_steps=2), settings)
    assert card.steps == 4 and last_checkpoint(out).endswith("checkpoint-4")
    # --resume continues from the checkpoint: the global step goes on from 4.
    ledger = Path(last_checkpoint(out)) / "rarx_fit_seconds.json"
    recorded = json.loads(ledger.read_text())
    assert recorded["step"] == 4 and 0 <= recorded["seconds"] <= card.seconds
    # as if the first piece had trained for an hour: the resumed card counts it
    ledger.write_text(json.dumps({**recorded, "seconds": 3600.0}))
    resumed = run("encoder", _opts(data, tiny_bert, out, max_steps=6, resume=True), settings)
    assert resumed.steps == 6 and resumed.options["resumed_from"] == 4
    assert resumed.options["seconds_before_resume"] == 3600.0
    piece = resumed.options["seconds_this_piece"]
    assert resumed.seconds == pytest.approx(3600.0 + piece, abs=0.1) and piece < 3600
    first, last = _first_last(_losses(out))
    assert last < first
    assert ModelCard.read(out).metrics["dev_questions"] == 3
    vecs = Encoder(EncoderConfig(model=str(out))).encode(["sun"], batch_size=1)
    assert vecs.shape == (1, 32)
    # --max-minutes stops cleanly after the first step and keeps its checkpoint.
    late = tmp_path / "late"
    stopped = run("encoder", _opts(data, tiny_bert, late, max_steps=50, max_minutes=1e-6), settings)
    assert stopped.stopped_early and stopped.steps < 50
    assert last_checkpoint(late).endswith(f"checkpoint-{stopped.steps}")
    assert ModelCard.read(late).stopped_early
    # rarx eval mcr warns when the model's training data holds evaluated questions.
    from click.testing import CliRunner

    from rarx.cli.main import cli
    from rarx.eval.mcr import write_mcr_csv

    seen, csv = _items()[0], tmp_path / "toy-test.csv"
    new = McrItem("", "which answer is new", ("the sun answer", "not the sun"), 0)
    write_mcr_csv(csv, [McrItem("", seen.query, seen.options, seen.label), new])
    res = CliRunner().invoke(cli, ["eval", "mcr", "--data", str(csv), "--model", str(out)])
    assert res.exit_code == 0, res.output
    assert "warning: model" in res.stderr and "measured now: 50.0%" in res.stderr


def test_option_loss_is_cross_entropy_over_each_questions_options() -> None:
    import math

    import torch

    from rarx.train.option_loss import OptionSoftmaxLoss

    scores = {("q1", "a"): 2.0, ("q1", "b"): 0.0, ("q1", "c"): 0.0, ("q2", "x"): 1.0,
              ("q2", "y"): 1.0}  # fmt: skip

    class Fixed:  # a 1-output "cross-encoder" with fixed pair scores
        num_labels, device = 1, torch.device("cpu")

        def preprocess(self, pairs, prompt=None, task=None):  # noqa: ANN001, ANN201
            return {"s": torch.tensor([scores[p] for p in pairs])}

        def __call__(self, tokens):  # noqa: ANN001, ANN204
            return {"scores": tokens["s"]}

    loss = OptionSoftmaxLoss(Fixed())
    inputs = [["q1", "q2"], [["a", "b", "c"], ["x", "y"]]]
    got = loss(inputs, [torch.tensor([1.0, 0.0, 0.0]), torch.tensor([0.5, 0.5])])
    q1 = -math.log(math.exp(2) / (math.exp(2) + 2))  # one-hot on the first option
    q2 = -math.log(0.5)  # two equal scores against a uniform target
    assert float(got) == pytest.approx((q1 + q2) / 2, rel=1e-6)


def test_max_minutes_fits_the_lr_schedule_to_the_time_budget(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A time-limited run of a 1,000-step linear schedule: the rate follows the share of
    the budget spent (not only the steps done), so it has decayed by the deadline."""
    import torch
    from transformers import TrainerControl, TrainerState, get_linear_schedule_with_warmup

    from rarx.train import common

    now = [100.0]
    monkeypatch.setattr(common.time, "monotonic", lambda: now[0])
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    scheduler = get_linear_schedule_with_warmup(opt, 0, 1000)
    stopper = common.time_limit_callback(1.0)  # 60 s
    state, control = TrainerState(global_step=0, max_steps=1000), TrainerControl()
    stopper.on_train_begin(None, state, control, lr_scheduler=scheduler)

    def lr_after(steps: int, seconds: float) -> float:
        now[0] = 100.0 + seconds
        for _ in range(steps):
            opt.step()
            scheduler.step()
        return opt.param_groups[0]["lr"]

    assert lr_after(10, 0.0) == pytest.approx(0.99)  # the steps lead while time is short
    assert lr_after(10, 30.0) == pytest.approx(0.5)  # half the budget: half decayed
    assert lr_after(10, 54.0) == pytest.approx(0.1)
    state.global_step = 30
    assert not stopper.on_step_end(None, state, control).should_training_stop
    assert lr_after(1, 61.0) == 0.0  # at the deadline the schedule has ended
    assert stopper.on_step_end(None, state, control).should_training_stop


def test_max_minutes_with_max_steps_keeps_the_schedule_over_the_pieces(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """--max-steps fixes the plan: a time-limited piece stops at its deadline with the
    rate where the steps put it, and the next piece (resumed at step 30) goes on from
    there instead of decaying to zero again."""
    import torch
    from transformers import TrainerControl, TrainerState, get_linear_schedule_with_warmup

    from rarx.train import common

    now = [100.0]
    monkeypatch.setattr(common.time, "monotonic", lambda: now[0])
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    scheduler = get_linear_schedule_with_warmup(opt, 0, 100)
    for piece, start in ((0, 0), (1, 30)):
        stopper = common.time_limit_callback(1.0, fit_schedule=False)
        state, control = TrainerState(global_step=start, max_steps=100), TrainerControl()
        stopper.on_train_begin(None, state, control, lr_scheduler=scheduler)
        assert opt.param_groups[0]["lr"] == pytest.approx(1.0 - start / 100)
        now[0] += 61.0  # past the piece's deadline after 30 steps
        for _ in range(30):
            opt.step()
            scheduler.step()
        state.global_step = start + 30
        assert stopper.on_step_end(None, state, control).should_training_stop
        assert opt.param_groups[0]["lr"] == pytest.approx(1.0 - (start + 30) / 100), piece
