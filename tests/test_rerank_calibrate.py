"""FIRST's content-free calibration: the identifiers' prior, read from a window whose
passages (and query) are "...", is subtracted before ranking. With the real SmolLM2: the
order is exactly that of the subtraction, the prior is read once per window size, and
the option reaches the reranker from YAML and the CLI (slow: a forward pass each; the
fast tests check the same logic with a scripted LLM)."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from rarx.errors import ConfigError
from rarx.pipeline import Pipeline, Resources, load_spec
from rarx.rerank import LISTWISE, RerankError, make_reranker
from rarx.rerank.listwise import CONTENT_FREE
from rarx.types import Query
from tests.fakes import ScriptedLLM, passages_in
from tests.test_rerank import QUERY, TEXTS, ranking


def normalised(logprobs: Sequence[float]) -> list[float]:
    """Log-softmax, written out here rather than taken from rarx."""
    z = math.log(sum(math.exp(x) for x in logprobs))
    return [x - z for x in logprobs]


def only_call(result: Any) -> dict[str, Any]:
    (call,) = [d for e, d in result.events if e == "llm_call"]
    return call


@pytest.mark.slow
def test_calibration_ranks_by_logprob_minus_the_content_free_prior(smol: Any) -> None:
    texts = TEXTS[:6]  # the answer (mitochondria producing ATP) sits at C
    ids = LISTWISE.ids(6)
    plain = make_reranker("first", "smol", 6, window=6, stride=3, llm=smol)
    uncalibrated = plain.rerank_detailed([QUERY], [ranking(texts)])[0]
    raw = only_call(uncalibrated)["logprobs"]
    # The prior, read here with the model directly: the same template, "..." everywhere.
    (cf,) = smol.next_token_logprobs([LISTWISE.build(CONTENT_FREE, [CONTENT_FREE] * 6)], ids)
    prior = normalised([cf[c] for c in ids])
    expected = sorted(range(6), key=lambda i: -(raw[ids[i]] - prior[i]))

    cal = make_reranker("first", "smol", 6, window=6, stride=3, llm=smol, calibrate="query-free")
    result = cal.rerank_detailed([QUERY], [ranking(texts)])[0]
    assert result.ranking.docids == [f"d{i}" for i in expected]
    call = only_call(result)
    assert all(math.isclose(call["meta"]["calibration"]["prior"][c], prior[i], abs_tol=1e-4)
               for i, c in enumerate(ids))  # fmt: skip
    assert all(math.isclose(call["logprobs"][c], raw[c] - prior[i], abs_tol=1e-4)
               for i, c in enumerate(ids))  # fmt: skip
    # SmolLM2 favours "A" whatever the window holds: uncalibrated, A's passage is on top;
    # calibrated, the prior that put it there is gone.
    assert max(range(6), key=lambda i: prior[i]) == 0
    assert uncalibrated.ranking.docids[0] == "d0"
    assert result.ranking.docids[0] != "d0"

    # With the query kept, a window of content-free passages is the prior itself: every
    # calibrated score is equal (up to float noise, which then decides the order);
    # uncalibrated, the letter prior alone orders it.
    blank = ranking([CONTENT_FREE] * 6)
    per_query = make_reranker("first", "smol", 6, window=6, stride=3, llm=smol, calibrate="query")
    kept = per_query.rerank_detailed([QUERY], [blank])[0]
    scores = list(only_call(kept)["logprobs"].values())
    assert max(scores) - min(scores) < 1e-4
    query_prior = per_query.prior(6, QUERY.text)
    assert query_prior is not None
    by_prior = sorted(range(6), key=lambda i: -query_prior[i])
    assert plain.rerank([QUERY], [blank])[0].docids == [blank.docids[i] for i in by_prior]


class CountingLLM:
    """The real LLM, with the prompts it is asked to score recorded."""

    def __init__(self, llm: Any):
        self.llm = llm
        self.prompts: list[Any] = []

    def __getattr__(self, name: str) -> Any:
        return getattr(self.llm, name)

    def next_token_logprobs(self, prompts: Sequence[Any], candidates: Sequence[str]) -> Any:
        self.prompts += prompts
        return self.llm.next_token_logprobs(prompts, candidates)

    def path_logprobs(self, prompts: Sequence[Any], paths: Any, candidates: Any) -> Any:
        self.prompts += prompts
        return self.llm.path_logprobs(prompts, paths, candidates)

    def content_free(self) -> int:
        return sum(set(passages_in(p)) == {CONTENT_FREE} for p in self.prompts)


def calibration_passes(results: Sequence[Any]) -> int:
    return sum(d["meta"]["calibration"].get("forward_passes", 0)
               for r in results for e, d in r.events if e == "llm_call")  # fmt: skip


@pytest.mark.slow
def test_the_prior_is_read_once_per_window_size(smol: Any) -> None:
    queries = [QUERY, Query("q2", "Why do volcanoes erupt?")]
    rankings = [ranking(TEXTS[:5], "q1"), ranking(TEXTS[3:8], "q2")]
    # k=5, window 4, stride 2: windows (1, 5) and (0, 3), sizes 4 and 3, for each query
    llm = CountingLLM(smol)
    rr = make_reranker("first", "smol", 5, window=4, stride=2, llm=llm, calibrate="query-free")
    first = rr.rerank_detailed(queries, rankings)
    assert llm.content_free() == 2  # one per window size, for both queries
    assert calibration_passes(first) == 2  # charged once each, in the trace
    passes = sum(d["meta"]["forward_passes"] for r in first for e, d in r.events
                 if e == "llm_call")  # fmt: skip
    assert passes == 4 + 2  # one real pass per window, and the two priors
    assert rr.prior(4) is not None and rr.prior(3) is not None and rr.prior(5) is None
    again = rr.rerank_detailed(queries[1:], rankings[1:])
    assert llm.content_free() == 2 and calibration_passes(again) == 0  # cached
    assert again[0].ranking == first[1].ranking

    llm = CountingLLM(smol)
    rr = make_reranker("first", "smol", 5, window=4, stride=2, llm=llm, calibrate="query")
    rr.rerank_detailed(queries[:1], rankings[:1])
    assert llm.content_free() == 2  # this query's, per window size
    cf = [p for p in llm.prompts if set(passages_in(p)) == {CONTENT_FREE}]
    assert all(QUERY.text in p.messages[-1][1] for p in cf)
    rr.rerank_detailed(queries[:1], rankings[:1])
    assert llm.content_free() == 2
    assert rr.prior(4, QUERY.text) is not None and rr.prior(4, "Why do volcanoes erupt?") is None


def letter_biased(bias: dict[str, float], word: str) -> Any:
    """A FIRST scorer: a fixed prior per identifier, plus 2 for a passage with ``word``."""

    def scores(prompt: Any, candidates: Sequence[str]) -> dict[str, float]:
        ps = passages_in(prompt)
        return {c: bias.get(c, 0.0) + (2.0 if word in p else 0.0)
                for c, p in zip(candidates, ps, strict=False)}  # fmt: skip

    return scores


def test_scripted_prior_is_read_once_per_window_size_and_query() -> None:
    queries = [QUERY, Query("q2", "Why do volcanoes erupt?")]
    rankings = [ranking(TEXTS[:5], "q1"), ranking(TEXTS[3:8], "q2")]  # windows of 4 and 3
    for mode, first, second in [("query-free", 2, 2), ("query", 4, 4)]:
        llm = ScriptedLLM(scores=letter_biased({"A": 5.0}, "ATP"))
        rr = make_reranker("first", "s", 5, window=4, stride=2, llm=llm, calibrate=mode)
        results = rr.rerank_detailed(queries, rankings)
        blank = [p for p in llm.calls if set(passages_in(p)) == {CONTENT_FREE}]
        assert len(blank) == first and calibration_passes(results) == first
        rr.rerank_detailed(queries, rankings)
        assert sum(set(passages_in(p)) == {CONTENT_FREE} for p in llm.calls) == second


def test_calibration_applies_per_order_and_rejects_a_partial_prior() -> None:
    # "A" is favoured by 5 whatever the passage: uncalibrated, the bias decides;
    # calibrated (the content-free window has no ATP passage), the passage does.
    llm = ScriptedLLM(scores=letter_biased({"A": 5.0}, "ATP"))
    texts = TEXTS[:4]  # ATP at C
    plain = make_reranker("first", "s", 4, window=4, stride=2, llm=llm)
    assert plain.rerank([QUERY], [ranking(texts)])[0].docids[0] == "d0"
    for orders in (1, 2):  # with two orders, each order's row is calibrated by position
        cal = make_reranker("first", "s", 4, window=4, stride=2, llm=llm, orders=orders,
                            calibrate="query-free")  # fmt: skip
        assert cal.rerank([QUERY], [ranking(texts)])[0].docids == ["d2", "d0", "d1", "d3"]

    # A backend that gives no log-probability for some identifier cannot calibrate.
    partial = ScriptedLLM(scores=lambda p, cands: {"A": -1.0, "B": -2.0})
    rr = make_reranker("first", "s", 4, window=4, stride=2, llm=partial, calibrate="query-free",
                       strict=True)  # fmt: skip
    with pytest.raises(RerankError, match=r"calibration needs every identifier.*\['C', 'D'\]"):
        rr.rerank([QUERY], [ranking(texts)])
    with pytest.raises(ConfigError, match="calibrate must be one of none, query-free, query"):
        make_reranker("first", "s", 4, llm=llm, calibrate="yes")
    with pytest.raises(ConfigError, match="'calibrate' applies to method 'first' only"):
        make_reranker("listwise", "s", 4, llm=llm, calibrate="query-free")


@pytest.mark.slow
def test_pipeline_yaml_carries_calibrate(
    tiny_bm25: Any, resources: Resources, tmp_path: Path
) -> None:
    path = tmp_path / "p.yaml"
    path.write_text(
        "stages:\n"
        f"  - retrieve: {{index: {tiny_bm25.path}, k: 4}}\n"
        "  - rerank: {method: first, llm: smollm2-135m, k: 4, window: 4, stride: 2,"
        " calibrate: query-free}\n"
    )
    pipe = Pipeline.from_spec(load_spec(path), resources=resources)
    assert pipe.stages[1].reranker.calibrate == "query-free"  # type: ignore[attr-defined]
    (state,) = pipe.run([Query("q1", "water sun earth cells")])
    (call,) = [t.data for t in state.trace if t.event == "llm_call"]
    cal = call["meta"]["calibration"]
    assert cal["mode"] == "query-free" and cal["forward_passes"] == 1
    # ranked by the calibrated scores, which are the raw ones less the prior
    ids = LISTWISE.ids(4)
    calibrated = [call["logprobs"][c] for c in ids]
    assert all(math.isclose(calibrated[i], cal["raw_logprobs"][i] - cal["prior"][c],
                            abs_tol=1e-9) for i, c in enumerate(ids))  # fmt: skip
    (bm25,) = tiny_bm25.search([state.query], k=4)
    by_score = sorted(range(4), key=lambda i: -calibrated[i])
    assert state.ranking.docids[:4] == [bm25.docids[i] for i in by_score]

    bad_params = [("calibrate: sometimes", "'query-free'"),
                  ("method: listwise, calibrate: query", "'calibrate' applies")]  # fmt: skip
    for bad, fragment in bad_params:
        path.write_text(f"stages:\n  - retrieve: {{index: x}}\n  - rerank: {{{bad}}}\n")
        with pytest.raises(ConfigError, match=fragment):
            load_spec(path)


@pytest.mark.slow
def test_search_cli_calibrates_first(tiny_bm25: Any, smol: Any) -> None:
    def rarx(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "rarx.cli.main", *args],
                              capture_output=True, text=True)  # fmt: skip

    query = "water sun earth cells"
    base = ["search", "--index", str(tiny_bm25.path), "--query", query, "--k", "4",
            "--rerank", "first", "--rerank-k", "4", "--format", "jsonl"]  # fmt: skip
    out = rarx(*base, "--rerank-calibrate", "query-free")
    assert out.returncode == 0, out.stderr
    (row,) = [json.loads(line) for line in out.stdout.splitlines()]
    (bm25,) = tiny_bm25.search([Query("q1", query)], k=4, with_docs=True)
    reranker = make_reranker("first", "smol", 4, window=20, stride=10, llm=smol,
                             calibrate="query-free")  # fmt: skip
    direct = reranker.rerank([Query("q1", query)], [bm25])[0]
    assert [h["docid"] for h in row["hits"]] == direct.docids
    bad = rarx(*base, "--rerank-calibrate", "yes")
    assert bad.returncode == 2 and "'query-free'" in bad.stderr
