"""The ``rarx`` command. Subcommands are imported only when invoked, so ``rarx --help``
and a BM25 search never import torch."""

from __future__ import annotations

import importlib
import importlib.util
import logging
import os
import sys
from typing import Any

import click

from rarx import __version__
from rarx.errors import RarxError

# name -> "module:attribute"; each module holds one click command or group.
COMMANDS: dict[str, tuple[str, str]] = {
    "index": ("rarx.cli.index:index", "Build an index from a corpus; check or adopt one."),
    "search": ("rarx.cli.search:search", "Search one or more indexes (fused) for queries."),
    "models": ("rarx.cli.models:models", "List named models; install the ones shipped in parts."),
    "datasets": ("rarx.cli.datasets:datasets", "List and prepare evaluation datasets."),
    "eval": ("rarx.cli.eval:eval_", "Score runs, retrieval systems, MCR and QA."),
    "run": ("rarx.cli.run:run", "Run a pipeline file over queries (answers, rankings, traces)."),
    "pipeline": ("rarx.cli.pipeline:pipeline", "Check pipeline files without loading models."),
    "qa-memory": ("rarx.cli.qa_memory:qa_memory", "Calibrate a QA memory's answer threshold."),
    "train": ("rarx.cli.train:train", "Train encoders, cross-encoders, FIRST rerankers, gates."),
    "serve": ("rarx.cli.serve:serve", "Serve named indexes and pipelines over HTTP."),
}


class LazyGroup(click.Group):
    """A group whose subcommands live in modules imported only when invoked; an entry
    whose module is absent is not offered."""

    commands_table: dict[str, tuple[str, str]] = COMMANDS

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(self._available())

    def _available(self) -> dict[str, tuple[str, str]]:
        available = {}
        for name, (target, help_) in self.commands_table.items():
            module = target.split(":")[0]
            if importlib.util.find_spec(module) is not None:
                available[name] = (target, help_)
        return available

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        entry = self._available().get(cmd_name)
        if entry is None:
            return None
        module, attr = entry[0].split(":")
        return getattr(importlib.import_module(module), attr)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        rows = [(name, help_) for name, (_, help_) in sorted(self._available().items())]
        if rows:
            with formatter.section("Commands"):
                formatter.write_dl(rows)


@click.group(cls=LazyGroup)
@click.version_option(__version__, prog_name="rarx")
def cli() -> None:
    """rarx: retrieval and reranking for reasoning-as-retrieval and adaptive RAG."""


class _LogFormat(logging.Formatter):
    """Status lines as they are; warnings and errors as ``rarx: warning: ...``."""

    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        return (
            text
            if record.levelno < logging.WARNING
            else f"rarx: {record.levelname.lower()}: {text}"
        )


class _StderrHandler(logging.StreamHandler):
    """Writes to whatever ``sys.stderr`` is at the time (tests and tools replace it)."""

    @property
    def stream(self) -> Any:
        return sys.stderr

    @stream.setter
    def stream(self, value: Any) -> None:
        pass


def log_to_stderr() -> None:
    """rarx's log messages go to stderr (stdout is for results), INFO and up; a command's
    --quiet raises the level to WARNING."""
    logger = logging.getLogger("rarx")
    if not any(isinstance(h, _StderrHandler) for h in logger.handlers):
        handler = _StderrHandler()
        handler.setFormatter(_LogFormat("%(message)s"))
        logger.addHandler(handler)
    logger.setLevel(logging.INFO)


def main(argv: list[str] | None = None) -> None:
    # Weight-loading bars and tokenizer notices from transformers drown rarx's own progress
    # output; users can still turn them on by setting these variables themselves.
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    log_to_stderr()
    try:
        cli.main(args=argv, standalone_mode=False)
    except RarxError as exc:
        click.echo(f"rarx: error: {exc}", err=True)
        sys.exit(1)
    except click.exceptions.Abort:
        click.echo("rarx: interrupted", err=True)
        sys.exit(130)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        click.echo("rarx: interrupted", err=True)
        sys.exit(130)


if __name__ == "__main__":
    main()
