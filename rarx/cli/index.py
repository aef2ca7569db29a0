"""``rarx index``: build an index from a corpus, and the ``rarx index SUBCOMMAND`` tools
for indexes (``check``). The kinds, and their build options, come from the index
registry: each kind's typed build parameters become options here."""

from __future__ import annotations

import time
import typing
from pathlib import Path
from typing import Any

import click

from rarx.cli.main import LazyGroup
from rarx.cli.options import engine_options, quiet_option, ray_engine
from rarx.errors import ConfigError
from rarx.index.registry import OptionSpec, build_index, build_option_specs, index_kind, kinds
from rarx.io.corpus import Corpus


def _click_type(hint: Any) -> Any:
    args = [a for a in typing.get_args(hint) if a is not type(None)]
    if typing.get_origin(hint) is typing.Literal:
        return click.Choice([str(a) for a in args])
    return _click_type(args[0]) if len(args) == 1 else hint


def _help(spec: OptionSpec) -> str:
    """The help text, then the kinds that take the option and its default for each."""
    where = ", ".join(spec.defaults)
    values = {v for v in spec.defaults.values() if v not in (None, "")}
    if len(values) == 1:
        where += f"; default: {values.pop()}"
    elif values:
        where += "; default: " + ", ".join(f"{v} ({k})" for k, v in spec.defaults.items())
    return f"{spec.help} [{where}]"


def build_options(f: Any) -> Any:
    """One option per build parameter of any kind (None: not given, the kind's default)."""
    for spec in reversed(build_option_specs()):
        f = click.option(spec.flag, spec.name, type=_click_type(spec.type), default=None,
                         help=_help(spec))(f)  # fmt: skip
    return f


def _corpus_help() -> str:
    other = [f"for --kind {k.name}, {k.corpus_help}" for k in kinds().values() if k.corpus_help]
    return "JSONL file (id+contents, or BEIR _id/title/text), BEIR folder, or Parquet" + "".join(
        f"; {o}" for o in other
    )


class IndexGroup(LazyGroup):
    """``rarx index`` builds (its options, no subcommand); each subcommand below is a
    tool for existing indexes, in a module imported only when it is invoked."""

    commands_table = {
        "check": ("rarx.cli.index_check:check", "Verify an index's files: checksums, Lucene."),
        "adopt": ("rarx.cli.index_adopt:adopt", "Adopt an Anserini/pyserini index, in place."),
    }

    def format_usage(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        formatter.write_usage(ctx.command_path, "--corpus PATH --index DIR [OPTIONS]")
        formatter.write_usage(ctx.command_path, "COMMAND [ARGS]...", prefix="       ")


@click.group(cls=IndexGroup, invoke_without_command=True)
@click.option("--corpus", "corpus_path", type=click.Path(path_type=Path),
              help=_corpus_help() + ". Required to build.")  # fmt: skip
@click.option(
    "--index",
    "index_path",
    type=click.Path(path_type=Path),
    help="Directory to create, e.g. indexes/NAME. Required to build.",
)
@click.option(
    "--kind",
    type=click.Choice(list(kinds())),
    default="bm25",
    show_default=True,
    help="; ".join(f"{k.name}: {k.summary}" for k in kinds().values()) + ".",
)
@build_options
@click.option("--dedupe", is_flag=True, help="Keep the first of documents with the same id.")
@click.option("--overwrite", is_flag=True, help="Replace an existing index at --index.")
@engine_options
@quiet_option
@click.pass_context
def index(
    ctx: click.Context,
    corpus_path: Path | None,
    index_path: Path | None,
    kind: str,
    dedupe: bool,
    overwrite: bool,
    engine: str,
    workers: int | None,
    ray_address: str | None,
    quiet: bool,
    **options: Any,
) -> None:
    """Build an index from a corpus. Options in [brackets] name the kinds they apply to.

    A build holds a lock on --index: a second build of the same path fails at once. It
    removes temporary directories that killed builds of that path left, and records
    every file's size and sha256 in the index's manifest ('rarx index check' verifies).

    \b
    Examples:
      rarx index --corpus data/sciq --index indexes/sciq-bm25 --kind bm25
      rarx index --corpus data/sciq --index indexes/sciq-minilm --kind dense --model minilm
      rarx index --corpus data/sciq --index indexes/sciq-splade --kind splade --quantization 100
      rarx index --corpus pairs.jsonl --index indexes/sciq-qa-memory --kind qa-memory
      rarx index --corpus data/sciq --index indexes/sciq-minilm --kind dense --engine ray
      rarx index check indexes/sciq-bm25
    """
    if ctx.invoked_subcommand is not None:
        return
    missing = [flag for flag, v in (("--corpus", corpus_path), ("--index", index_path)) if not v]
    if missing:
        raise click.UsageError(
            f"building an index needs {' and '.join(missing)} (or a command: "
            f"{', '.join(IndexGroup.commands_table)})",
            ctx,
        )
    assert corpus_path is not None and index_path is not None
    start = time.perf_counter()
    spec = index_kind(kind)
    given = {name: value for name, value in options.items() if value is not None}
    taken = {s.name: s.flag for s in build_option_specs([spec])}
    extra = [s.flag for s in build_option_specs() if s.name in given and s.name not in taken]
    if extra:
        raise ConfigError(
            f"{', '.join(extra)}: not an option of --kind {kind}; its build options are "
            f"{', '.join(taken.values()) or 'none'}"
        )
    if dedupe and not spec.reads_corpus:
        raise ConfigError(f"--dedupe applies to document corpora, not --kind {kind}")
    params = spec.make_build_params(given)
    ray = ray_engine(engine, workers, ray_address)
    source: Any = corpus_path
    if ray is not None:
        from rarx.distributed import build_index as build_on_ray

        if dedupe:
            raise ConfigError("--dedupe reads the corpus in one process: use --engine local")
        built = build_on_ray(kind, source, index_path, params, ray, overwrite=overwrite,
                             quiet=quiet)  # fmt: skip
    else:
        source = Corpus(corpus_path, dedupe=dedupe) if spec.reads_corpus else corpus_path
        built = build_index(kind, source, index_path, params, overwrite=overwrite, quiet=quiet)
    if getattr(source, "duplicates", 0):
        click.echo(f"--dedupe: dropped {source.duplicates:,} documents with repeated ids", err=True)
    if not quiet:
        click.echo(
            f"indexed {built.manifest.documents:,} {spec.unit} into {index_path} "
            f"({kind}) in {time.perf_counter() - start:.1f}s",
            err=True,
        )
