"""Training: one module per objective on the shared code in :mod:`rarx.train.common`.

Nothing heavy is imported here; each objective imports its trainer when it runs.
"""
