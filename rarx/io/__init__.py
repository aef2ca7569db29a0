"""Readers and writers for the field's formats: TREC runs and qrels, topics, JSONL,
BEIR folders and Parquet."""

from rarx.io.atomic import atomic_write
from rarx.io.corpus import read_corpus
from rarx.io.topics import read_topics
from rarx.io.trec import read_qrels, read_run, write_qrels, write_run

__all__ = [
    "atomic_write",
    "read_corpus",
    "read_qrels",
    "read_run",
    "read_topics",
    "write_qrels",
    "write_run",
]
