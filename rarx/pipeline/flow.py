"""The flow check: every stage's needs are provided by an earlier stage (or promised by
the caller), for a pipeline file before anything loads and for ``Pipeline([...])``."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from rarx.errors import ConfigError
from rarx.stages.registry import stage_kinds


@dataclass(frozen=True)
class FlowStep:
    where: str  # "stage 2 (rerank)", as error messages name it
    needs: frozenset[str]
    provides: frozenset[str]
    hint: str = ""  # how else the stage's needs can be met (e.g. a parameter)


def check_flow(steps: Sequence[FlowStep], source: str, given: Iterable[str] = ()) -> None:
    """Raise a ConfigError naming the first stage whose needs no earlier stage provides,
    and the stage kinds that could provide them."""
    provided = set(given)
    for step in steps:
        for need in sorted(step.needs - provided):
            givers = [k.name for k in stage_kinds().values() if k.fixed_needs
                      and not k.needs_of(None) and need in k.provides_of(None)]  # fmt: skip
            hint = f" ({step.hint})" if step.hint else ""
            raise ConfigError(
                f"{source}: {step.where} needs {need!r}, which no earlier stage provides; "
                f"put one of {', '.join(givers)} before it{hint}"
            )
        provided |= step.provides
