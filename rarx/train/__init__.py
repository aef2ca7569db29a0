"""Training: one module per objective, each a class implementing
:class:`rarx.train.objective.Objective` and listed in its registry; :mod:`rarx.train.driver`
runs them (seeding, fitting, saving, the card), :mod:`rarx.train.common` holds the shared
Trainer glue and :mod:`rarx.train.data` the data builders.

Nothing heavy is imported here; each objective imports its trainer when it runs.
"""
