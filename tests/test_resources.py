"""Resources: each model and index loads once, shared under an explicit policy."""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from typing import Any

import pytest

from rarx.index.base import Index
from rarx.llm import LLM, LLMOutput
from rarx.pipeline import Resources, Serial, Shared
from rarx.pipeline.resources import SerializedIndex, SerializedLLM
from rarx.types import Query
from tests.fakes import ScriptedLLM


class _Overlap(ScriptedLLM):
    """Records how many generate calls run at once."""

    def __init__(self) -> None:
        super().__init__(reply="ok")
        self.running = self.most = 0
        self._count = threading.Lock()

    def generate(self, prompts: Sequence[Any], max_new_tokens: int = 128, stop: Any = ()
                 ) -> list[LLMOutput]:  # fmt: skip
        with self._count:
            self.running += 1
            self.most = max(self.most, self.running)
        time.sleep(0.02)
        with self._count:
            self.running -= 1
        return super().generate(prompts, max_new_tokens, stop)


def _hammer(llm: LLM) -> None:
    threads = [threading.Thread(target=llm.generate, args=(["q"],)) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()


def test_serial_runs_one_call_at_a_time_and_shared_lets_them_overlap() -> None:
    fake = _Overlap()
    serial = Serial().llm(fake)
    assert isinstance(serial, SerializedLLM) and serial.name == "scripted"
    _hammer(serial)
    assert fake.most == 1
    shared = Shared().llm(fake)
    assert shared is fake
    _hammer(shared)
    assert fake.most > 1  # six threads sleeping 20 ms inside the call


@pytest.mark.slow
def test_an_index_loads_once_under_the_policy_given(tiny_bm25: Any) -> None:
    seen: list[str] = []

    class Counting(Shared):
        def index(self, index: Index) -> Index:
            seen.append(index.kind)
            return index

    shared = Resources(policy=Counting())
    first = shared.index(tiny_bm25.path)
    assert shared.index(str(tiny_bm25.path)) is first and seen == ["bm25"]
    assert type(first) is type(tiny_bm25)  # no wrapper
    serial = Resources().index(tiny_bm25.path)
    assert isinstance(serial, SerializedIndex) and serial.kind == "bm25"
    q = [Query("q", "volcano lava")]
    assert serial.search(q, 3) == first.search(q, 3) == tiny_bm25.search(q, 3)
