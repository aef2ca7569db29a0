"""``rarx pipeline validate``: check pipeline files without loading any model."""

from __future__ import annotations

from pathlib import Path

import click

from rarx.pipeline.spec import PipelineSpec, check_indexes, load_spec


@click.group()
def pipeline() -> None:
    """Work with pipeline files."""


@pipeline.command()
@click.argument("files", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--no-index-check", is_flag=True, help="Do not check that the named indexes exist.")
def validate(files: tuple[Path, ...], no_index_check: bool) -> None:
    """Check pipeline FILES: stages, parameters, their order, and (unless told not to)
    that each named index exists and is of the right kind. Loads no model.

    \b
    Example:
      rarx pipeline validate pipelines/*.yaml
    """
    for path in files:
        spec = load_spec(path)
        if not no_index_check:
            check_indexes(spec)
        stages = " → ".join(s.kind for s in spec.stages)
        click.echo(f"{path}: ok ({spec.name}: {stages})")
        for line in _llm_choices(spec):
            click.echo(f"  {line}")


def _llm_choices(spec: PipelineSpec) -> list[str]:
    """Which LLM each preference list resolves to here (checked, not loaded)."""
    from rarx.errors import RarxError
    from rarx.llm import choose_llm

    out = []
    for s in spec.stages:
        for name, value in vars(s.params).items():
            if isinstance(value, tuple) and name.endswith("llm"):
                try:
                    out.append(f"{s.where} {name}: {choose_llm(value)[1]}")
                except RarxError as exc:
                    out.append(f"{s.where} {name}: {exc}")
    return out
