"""`rarx train OBJECTIVE` flags come from the objective's settings dataclass: each field is a
flag with the field's default, and the parsed flags become the dataclass."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import click
import pytest

from rarx.cli.train.options import COMMON, settings_from
from rarx.errors import ConfigError


def commands() -> list[tuple[str, Any]]:
    """Every registered objective has a command (generated from its class)."""
    from rarx.train.objective import OBJECTIVES, objective_class

    return [(name, objective_class(name).Settings) for name in OBJECTIVES]


def command(name: str) -> click.Command:
    from rarx.cli.train import train

    return train.get_command(click.Context(train), name)


def parse(name: str, args: list[str]) -> dict[str, Any]:
    return dict(command(name).make_context(name, args).params)


@pytest.mark.parametrize(("name", "cls"), commands())
def test_every_setting_is_a_flag_with_the_settings_default(name: str, cls: Any) -> None:
    need = ["--corpus", "c"] if name == "lm" else ["--data", "d"]
    need += ["--out", "o"] + (["--demos"] if name == "reader" else [])
    params = parse(name, [*need, "--base", "b"])
    for f in dataclasses.fields(cls):
        if not f.metadata.get("cli", True):
            assert f.name not in params or f.name in COMMON
            continue
        default = ",".join(f.default) if isinstance(f.default, tuple) and f.default else f.default
        assert params[f.name] == (default if default != () else None), f.name
    # parsed with nothing given, the flags rebuild the dataclass's own defaults
    rest = {k: v for k, v in params.items() if k not in (*COMMON, "corpus")}
    assert settings_from(cls, rest) == cls()


def test_flags_parse_into_the_settings(tmp_path: Path) -> None:
    from rarx.train.choice import ChoiceSettings

    teacher = tmp_path / "t.jsonl"
    teacher.write_text("")
    params = parse("choice", ["--data", "d", "--out", "o", "--sources", "arc-easy,sciq",
                              "--instructions", "--train-layers", "2", "--state-cache", "disk",
                              "--cache-dtype", "bfloat16",
                              "--teacher-scores", str(teacher), "--rank-weight", "3"])  # fmt: skip
    rest = {k: v for k, v in params.items() if k not in COMMON}
    settings = settings_from(ChoiceSettings, rest)
    assert settings == ChoiceSettings(sources=("arc-easy", "sciq"), instructions=True,
                                      train_layers=2, state_cache="disk", cache_dtype="bfloat16",
                                      teacher_scores=teacher, rank_weight=3.0)  # fmt: skip
    assert not rest  # every flag was taken
    with pytest.raises(click.BadParameter):  # not one of the caches
        parse("choice", ["--data", "d", "--out", "o", "--state-cache", "gpu"])
    with pytest.raises(click.BadParameter):  # not a dtype the caching pass runs in
        parse("choice", ["--data", "d", "--out", "o", "--cache-dtype", "float16"])
    with pytest.raises(ConfigError, match="loss weights"):  # the dataclass checks values
        settings_from(ChoiceSettings, {"lm_weight": 0.0, "rank_weight": 0.0})


def test_the_registry_names_each_objective_class_and_the_driver_checks_settings() -> None:
    from rarx.cli.train import train
    from rarx.train.choice import ChoiceSettings
    from rarx.train.common import TrainOptions
    from rarx.train.driver import run
    from rarx.train.objective import OBJECTIVES, objective_class

    ctx = click.Context(train)
    for name in OBJECTIVES:  # each class is named as it is registered, and has its command
        assert objective_class(name).name == name and name in train.list_commands(ctx)
    with pytest.raises(ConfigError, match="unknown training objective 'nope'.*choice"):
        objective_class("nope")
    opts = TrainOptions(data="d", base="b", out=Path("o"))
    with pytest.raises(TypeError, match="encoder takes EncoderSettings, got ChoiceSettings"):
        run("encoder", opts, ChoiceSettings())  # fails before any model or data loads
