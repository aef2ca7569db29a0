"""``rarx train OBJECTIVE``: one command per registered objective
(:data:`rarx.train.objective.OBJECTIVES`), generated from its class: the shared flags with
its defaults, one flag per field of its settings dataclass, its help."""

from __future__ import annotations

from typing import Any

import click

from rarx.cli.train.options import options_from, settings_from, settings_options, train_options
from rarx.cli.train.report import print_card


def objective_command(name: str) -> click.Command:
    from rarx.train.objective import objective_class  # the class's module: no torch at import

    cls = objective_class(name)

    def run(**kwargs: Any) -> None:
        from rarx.train.driver import run as train

        opts = options_from(kwargs, cls.cli.data_flag)
        print_card(train(name, opts, settings_from(cls.Settings, kwargs)), opts.out)

    command = settings_options(cls.Settings)(run)
    command = train_options(cls.cli)(command)
    return click.command(name, help=cls.cli.help)(command)
