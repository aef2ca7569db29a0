"""Evaluation: datasets (BEIR, RAR-b Full and MCR, packaged sets), metrics and runners.

Nothing heavy is imported here; scorers that need torch import it when they run.
"""
