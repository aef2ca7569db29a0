"""Deterministic synthetic passages for speed benchmarks (dense and BM25 alike).

Passages read like shuffled encyclopedia prose: sentences of English words, about 60
words each, drawn from a Zipfian vocabulary (frequent function words, a long tail of
rarer inflected and prefixed forms), with each passage about one of a few hundred
topics so that term statistics and embeddings are clustered as in real corpora.

``generate_passages(n, seed)`` is prefix-stable: the first 1,000 of 10,000 passages are
the 1,000 passages, because every block of passages has its own random stream.
Usage: ``python benchmarks/corpus_gen.py 5`` prints five passages.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from functools import cache

import numpy as np

from rarx.types import Document, Query

FUNCTION_WORDS = """
the of and to a in is that for it as was with be by on not this are or from at which
but have an had they were their one all we can has there been if more when will would
who so no other its may these than also into some could them only time new about two
most over first then such any between after many those do through used where our both
each however while under during without because within several among since against
although often three during large early later known part form use made found well
""".split()

STEMS = """
river mountain valley forest ocean island coast desert glacier volcano lake climate
weather storm rain season soil plant tree flower seed leaf root animal bird fish insect
species habitat population city village market trade price money bank tax law court
government king queen empire war army battle treaty church temple school student
teacher language word book letter poem novel author music song dance paint artist film
theatre stage camera light sound wave energy power engine motor fuel oil gas coal steel
iron copper gold silver stone glass paper cloth wool cotton machine tool factory worker
farm crop wheat rice corn cattle horse sheep road bridge railway train ship boat port
harbour station airport flight plane rocket space planet star moon sun orbit telescope
galaxy atom molecule cell gene protein blood heart brain muscle bone skin disease virus
cancer doctor hospital patient medicine drug treatment health diet food bread milk
sugar salt water fire heat cold ice snow wind cloud temperature pressure speed distance
weight size number measure count record history century period age ancient modern
culture religion belief god spirit family child parent mother father brother sister
marriage house home room door window wall roof garden kitchen table chair bed computer
software program network data signal code system design model theory method test
experiment result study research science physics chemistry biology mathematics
geometry algebra logic problem solution question answer idea thought mind memory dream
game sport team player match score goal ball race champion league club coach season
election vote party leader president minister council policy reform right freedom
nation border region province state county district capital capitol museum library
university college degree exam lesson course class chapter article report news paper
journal editor press radio television channel broadcast audience show series episode
character story plot hero myth legend tale festival holiday travel journey tour
visitor guest hotel restaurant meal dinner breakfast coffee tea wine beer fruit apple
orange grape vegetable potato tomato bean meat chicken beef fishery harvest supply
demand cost profit loss growth decline crisis recovery industry company business
manager owner partner customer product service quality brand advertise sale store
shop market contract loan debt credit invest share stock fund budget income wage job
career skill talent effort success failure risk chance danger safety security police
crime prison judge lawyer trial evidence witness
""".split()

PREFIXES = ["", "re", "un", "pre", "over", "under", "inter", "non", "co", "sub", "counter"]
SUFFIXES = ["", "s", "ed", "ing", "er", "al", "ly", "ation", "ness", "ment", "ive", "ist", "ity"]

N_TOPICS = 300
TOPIC_WORDS = 40
BLOCK = 4096  # passages per random stream
VOCAB_SEED = 20240601  # fixed: the vocabulary and topics never change with ``seed``


def _zipf(n: int, exponent: float = 1.0) -> np.ndarray:
    """Cumulative distribution of a Zipf law over ranks 1..n (for searchsorted)."""
    weights = 1.0 / np.arange(1, n + 1) ** exponent
    cdf = np.cumsum(weights)
    return cdf / cdf[-1]


@cache
def _vocabulary() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Function words, content words (rank order) and topic word lists with their cdfs."""
    rng = np.random.default_rng(VOCAB_SEED)
    stems = list(dict.fromkeys(STEMS))
    tiers: list[list[str]] = [list(stems), [], []]
    for p in PREFIXES:
        for s in SUFFIXES:
            if p or s:
                # bare inflections are commoner than prefixed forms
                tiers[1 if not p else 2].extend(p + stem + s for stem in stems)
    content: list[str] = []
    seen: set[str] = set(FUNCTION_WORDS)
    sizes = []
    for tier in tiers:
        before = len(content)
        for i in rng.permutation(len(tier)):
            if tier[i] not in seen:
                seen.add(tier[i])
                content.append(tier[i])
        sizes.append(len(content) - before)
    # Each topic: its own 40 words, three quarters bare stems, the rest inflections, so
    # topics differ in vocabulary the way subjects do.
    topics = np.empty((N_TOPICS, TOPIC_WORDS), dtype=np.int64)
    n_stems = TOPIC_WORDS * 3 // 4
    for t in range(N_TOPICS):
        topics[t, :n_stems] = rng.choice(sizes[0], n_stems, replace=False)
        inflected = rng.choice(sizes[1], TOPIC_WORDS - n_stems, replace=False)
        topics[t, n_stems:] = sizes[0] + inflected
        rng.shuffle(topics[t])
    content_cdf = _zipf(len(content), 1.0)
    content_arr = np.array(content, dtype=object)
    function_words = np.array(list(dict.fromkeys(FUNCTION_WORDS)), dtype=object)
    return function_words, content_arr, content_cdf, topics, _zipf(TOPIC_WORDS, 0.8)


def _block(block: int, count: int, seed: int, mean_words: int) -> Iterator[Document]:
    """The first ``count`` passages of a block; draws are always made for the whole block,
    so a passage does not depend on how many are asked for."""
    size = BLOCK
    function_words, content, content_cdf, topics, topic_cdf = _vocabulary()
    function_cdf = _zipf(len(function_words), 1.0)
    topic_popularity = _zipf(N_TOPICS, 0.5)
    rng = np.random.default_rng([seed, block])
    lengths = np.clip(np.rint(rng.normal(mean_words, mean_words / 5, size)), 20, 3 * mean_words)
    lengths = lengths.astype(np.int64)
    passage_topic = np.searchsorted(topic_popularity, rng.random(size))
    total = int(lengths.sum())
    kind = rng.random(total)  # < .45 function word, < .80 topic word, else any content word
    topic_of_token = np.repeat(passage_topic, lengths)
    words = np.empty(total, dtype=object)
    f = kind < 0.45
    words[f] = function_words[np.searchsorted(function_cdf, rng.random(int(f.sum())))]
    t = (kind >= 0.45) & (kind < 0.80)
    slot = np.searchsorted(topic_cdf, rng.random(int(t.sum())))
    words[t] = content[topics[topic_of_token[t], slot]]
    c = kind >= 0.80
    ranks = np.minimum(np.searchsorted(content_cdf, rng.random(int(c.sum()))), len(content) - 1)
    words[c] = content[ranks]
    sentence_lengths = rng.integers(8, 21, size=total // 8 + size)
    title_lengths = rng.integers(2, 6, size=size)
    title_slots = np.searchsorted(topic_cdf, rng.random((size, 5)))
    s = 0
    start = 0
    for i in range(count):
        toks = words[start : start + lengths[i]].tolist()
        start += lengths[i]
        pos = 0
        while pos < len(toks):
            end = min(pos + int(sentence_lengths[s]), len(toks))
            s += 1
            toks[pos] = toks[pos].capitalize()
            toks[end - 1] += "."
            pos = end
        title_ids = dict.fromkeys(topics[passage_topic[i], title_slots[i, : title_lengths[i]]])
        title = " ".join(content[j].capitalize() for j in title_ids)
        yield Document(f"p{block * BLOCK + i:08d}", " ".join(toks), title)


def generate_passages(n: int, seed: int = 0, mean_words: int = 60) -> Iterator[Document]:
    """``n`` synthetic passages with ids ``p00000000``, ``p00000001``, ... (deterministic)."""
    for block in range((n + BLOCK - 1) // BLOCK):
        yield from _block(block, min(BLOCK, n - block * BLOCK), seed, mean_words)


def generate_queries(n: int, seed: int = 1) -> Iterator[Query]:
    """``n`` keyword queries of 2-6 topic words each, ids ``q0``, ``q1``, ..."""
    _, content, _, topics, topic_cdf = _vocabulary()
    rng = np.random.default_rng([seed, 1 << 30])
    for i in range(n):
        topic = int(rng.integers(N_TOPICS))
        slots = np.searchsorted(topic_cdf, rng.random(int(rng.integers(2, 7))))
        yield Query(f"q{i}", " ".join(dict.fromkeys(content[topics[topic, slots]])))


if __name__ == "__main__":
    for d in generate_passages(int(sys.argv[1]) if len(sys.argv) > 1 else 3):
        print(f"{d.docid}  [{d.title}]\n  {d.text}\n")
