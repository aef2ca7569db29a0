"""Anserini's BM25 search with its hits fetched as arrays, not one Java call per hit.

``SimpleSearcher.search`` returns one Java object per hit and loads every hit's stored
document just to read its id; reading ``docid`` and ``score`` from each object through
pyjnius then costs two more Java calls per hit. Here the same Lucene search runs
(Anserini's query generator and analyzer, its similarity, its sort that breaks score
ties by docid), and the hits of a whole batch of queries come back as text in one call
(Jackson, from the Anserini jar): ``[{"scoreDocs":[[score, lucene_id], ...]}, ...]``.
Lucene ids map to collection docids through a table filled once per document (as
Anserini reads them: the stored ``id`` field), and Anserini's score-tie adjustment is
applied to the score array. The result is identical to ``SimpleSearcher.search``:
docids, scores and order.

RM3 and indexes from Lucene 8 take Anserini's own pipeline (its reranker cascade),
still read back as whole arrays, one query at a time.

Anserini's document lookups (``SimpleSearcher.doc``/``doc_raw``, ``IndexReaderUtils.document``,
``documentRaw``; ``convertLuceneDocidToDocid`` for an ``IOException``) catch the exception a
damaged stored-fields block raises and return null, which reads as a missing document or
an empty text. :class:`StoredFields` reads what they returned null for again, through
Lucene, so the damage raises (and :func:`rarx.index.integrity.lucene_errors` names the file).

With ``weighted=True`` (impact indexes, :mod:`rarx.index.impact`) each query is a JSON
object of term weights, read into a Java map in one call (Jackson) and built into the
same query as ``SimpleImpactSearcher.search(Map)`` builds: each term boosted by its weight.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Any

import numpy as np

from rarx.errors import RarxError
from rarx.index.java import jclass

CONTENTS = "contents"  # Anserini's indexed field
DOCID_FIELD = "id"  # the stored collection docid
_OPEN, _NEXT, _CLOSE = '[{"scoreDocs":[', ']},{"scoreDocs":[', "]}]"  # a list of TopDocs
_HIT_END = ",{}]]"  # after a hit's score: its (omitted) docid bytes
_TIE_GAP = np.float32(1e-4)  # ScoreTiesAdjusterReranker's constants, as Java floats
_TIE_STEP = np.float32(1e-6)
_TIE_PASSES = 8
_BATCH_HITS = 200_000  # hits fetched per Java call (about 20 bytes of text each)

Hits = tuple[np.ndarray, np.ndarray, np.ndarray]  # docids (object), scores (f32), lucene ids

# pyjnius keeps a method's target object in state shared by every proxy of its class (see
# AnseriniHits): calls on proxies made per call (a StoredFields, a Document) hold this lock.
_PER_CALL_PROXIES = threading.Lock()


class StoredFields:
    """A Lucene reader's stored fields, read so that a damaged block raises Lucene's
    exception instead of reading as null."""

    def __init__(self, reader: Any):
        self._reader = reader
        self._size = int(reader.maxDoc())
        self._lucene_id = jclass("io.anserini.index.IndexReaderUtils").convertDocidToLuceneDocid

    def lucene_id(self, docid: str) -> int | None:
        """The Lucene id of collection docid ``docid`` (None: no such document). It is
        looked up in the ``id`` field's terms, not in the stored fields."""
        found = int(self._lucene_id(self._reader, docid))
        return None if found < 0 else found

    def fields(self, lucene_id: int, names: Sequence[str]) -> dict[str, str | None]:
        """The stored string fields ``names`` of document ``lucene_id`` (None: not stored).
        A damaged block raises Lucene's exception (CorruptIndexException, or whatever
        decoding its bytes raised)."""
        if not 0 <= lucene_id < self._size:
            raise RarxError(f"Lucene id {lucene_id} is outside the index (0 to {self._size - 1})")
        with _PER_CALL_PROXIES:
            document = self._reader.storedFields().document(int(lucene_id))
            return {name: document.get(name) for name in names}

    def field(self, lucene_id: int, name: str) -> str | None:
        return self.fields(lucene_id, (name,))[name]


def adjust_score_ties(scores: np.ndarray, starts: Sequence[int] | np.ndarray = (0,)) -> np.ndarray:
    """Anserini's ``ScoreTiesAdjusterReranker`` on a float32 array: round each score to 4
    decimals; within a run of scores no more than 1e-4 below the previous (adjusted)
    one, subtract 1e-6 times the position in the run. Java float arithmetic throughout.
    ``starts``: where each query's hits begin, for several queries in one array."""
    x = np.asarray(scores, dtype=np.float32).astype(np.float64) * 10000.0
    rounded = np.floor(x)
    rounded += (x - rounded) >= 0.5  # Math.round: floor(x + 0.5), without the addition's error
    r = (rounded / 10000.0).astype(np.float32)
    n = r.shape[0]
    if n < 2:
        return r
    first = np.zeros(n, dtype=bool)  # where a query's hits begin (a tie run cannot span two)
    begins = np.asarray(starts, dtype=np.int64)
    first[begins[begins < n]] = True
    first[0] = True
    # Each hit's tie test reads the previous *adjusted* score. Guess the ties from the
    # rounded scores, then test the guess against the scores it adjusts: a guess that
    # passes is the answer (right up to hit i means hit i+1 is tested right), and a
    # failing test corrects at least the first wrong guess. Few passes; else walk in order.
    tie = ~first
    tie[1:] &= ~((r[:-1] - r[1:]) > _TIE_GAP)
    for _ in range(_TIE_PASSES):
        adjusted = _apply_ties(r, tie)
        tested = ~first[1:] & ~((adjusted[:-1] - r[1:]) > _TIE_GAP)
        if np.array_equal(tested, tie[1:]):
            return adjusted
        tie[1:] = tested
    out, run = r.copy(), 0
    for i in range(1, n):
        if first[i] or (out[i - 1] - r[i]) > _TIE_GAP:
            run = 0
        else:
            run += 1
            out[i] = r[i] - _TIE_STEP * np.float32(run)
    return out


def _apply_ties(r: np.ndarray, tie: np.ndarray) -> np.ndarray:
    idx = np.arange(r.shape[0])
    run = idx - np.maximum.accumulate(np.where(tie, 0, idx))  # position within a tie run
    return np.where(tie, r - _TIE_STEP * run.astype(np.float32), r)


def _top_docs_mapper() -> Any:
    """A Jackson mapper writing a list of sorted TopDocs (a Python list, passed as a Java
    array) as ``[{"scoreDocs":[[doc,[score,{}]], ...]}, ...]``: each hit's Lucene id and
    its sort values (the score, then the docid's bytes, left out)."""
    search = "org.apache.lucene.search"
    fmt = jclass("com.fasterxml.jackson.annotation.JsonFormat$Value")
    ignore = jclass("com.fasterxml.jackson.annotation.JsonIgnoreProperties$Value")
    visibility = jclass("com.fasterxml.jackson.annotation.JsonAutoDetect$Visibility")
    accessor = jclass("com.fasterxml.jackson.annotation.PropertyAccessor")
    mapper = jclass("com.fasterxml.jackson.databind.ObjectMapper")()
    mapper.setVisibility(accessor.ALL, visibility.NONE)
    mapper.setVisibility(accessor.FIELD, visibility.PUBLIC_ONLY)
    mapper.disable(
        jclass("com.fasterxml.jackson.databind.SerializationFeature").FAIL_ON_EMPTY_BEANS
    )
    hit = mapper.configOverride(jclass(f"{search}.FieldDoc"))
    hit.setFormat(fmt.forShape(jclass("com.fasterxml.jackson.annotation.JsonFormat$Shape").ARRAY))
    hit.setIgnorals(ignore.forIgnoredProperties("score", "shardIndex"))
    mapper.configOverride(jclass("org.apache.lucene.util.BytesRef")).setIgnorals(
        ignore.forIgnoredProperties("bytes", "offset", "length")
    )
    mapper.configOverride(jclass(f"{search}.TopFieldDocs")).setIgnorals(
        ignore.forIgnoredProperties("totalHits", "fields")
    )
    top_docs, float_ = jclass(f"{search}.TopFieldDocs"), jclass("java.lang.Float")
    none = jclass(f"{search}.TotalHits")(0, jclass(f"{search}.TotalHits$Relation").EQUAL_TO)
    hit = jclass(f"{search}.FieldDoc")(
        7, float("nan"), [float_(2.5), jclass("org.apache.lucene.util.BytesRef")()]
    )
    probe = [top_docs(none, [hit], []), top_docs(none, [], [])]
    expected = f"{_OPEN}[7,[2.5{_HIT_END}{_NEXT}{_CLOSE}"
    if (text := mapper.writeValueAsString(probe)) != expected:
        raise RarxError(
            f"the Anserini jar's Jackson wrote {text!r} for test hits, not {expected!r}; "
            "reinstall 'rarx[lucene]' (pyserini 1.6.0)"
        )
    return mapper


class AnseriniHits:
    """Searches one Anserini ``SimpleSearcher`` as it would search itself (after
    ``set_bm25``/``set_rm3``), returning ``(docids, scores, lucene_ids)`` arrays per query.

    Holds a table from Lucene ids to docids, filled as documents are first returned
    (one pointer per document in the index)."""

    def __init__(self, searcher: Any, weighted: bool = False):
        self._simple = searcher
        self._reader = searcher.reader
        self._analyzer = searcher.analyzer
        self._generator = jclass("io.anserini.search.query.BagOfWordsQueryGenerator")()
        self._sort = jclass("io.anserini.search.SimpleSearcher").BREAK_SCORE_TIES_BY_DOCID
        # Anserini's own IndexSearcher is created lazily on its first search; this one
        # is the same: the reader and the similarity set by set_bm25.
        self._searcher = jclass("org.apache.lucene.search.IndexSearcher")(self._reader)
        self._searcher.setSimilarity(searcher.get_similarity())
        self._cascade_only = bool(searcher.use_rm3() or searcher.backwardsCompatibilityLucene8)
        # pyjnius keeps a method's target object in state shared by every proxy of its
        # class, and a new proxy resets it: threads call methods only on these proxies,
        # made once, never on objects (or fresh proxies of objects) made per call.
        self._cascade = searcher.cascade
        self._mapper = None if self._cascade_only else _top_docs_mapper()
        self._weights = None  # JSON text -> Map<String, Float>, for weighted queries
        if weighted:
            if self._cascade_only:
                raise RarxError("weighted queries take no RM3 and need a Lucene 9+ index")
            reader = jclass("com.fasterxml.jackson.databind.ObjectMapper")().readerForMapOf(
                jclass("java.lang.Float")
            )
            self._weights = reader.readValue
        self._ids: np.ndarray | None = None  # Lucene id -> docid, filled on first sight
        self._known = np.zeros(0, dtype=bool)
        self._ids_lock = threading.Lock()
        self._id_of = jclass("io.anserini.index.IndexReaderUtils").convertLuceneDocidToDocid
        self._stored = StoredFields(self._reader)

    def _search_batch(self, texts: Sequence[str], k: int) -> list[Hits]:
        """The fast path: one Java call per query to search, one to fetch all hits.

        Anserini has Lucene score its hits a second time after sorting them (``doDocScores``)
        and reports that score. The sort's own first value is the same number (every Lucene
        scorer sums a document's clause scores in double, then rounds once), so it is read
        from there instead, saving that pass; the tests compare with SimpleSearcher."""
        # Methods of the proxies made in __init__ only (see there): safe from threads.
        build, search, weights = self._generator.buildQuery, self._searcher.search, self._weights
        if weights is not None:
            queries = [build(CONTENTS, weights(t)) for t in texts]
        else:
            queries = [build(CONTENTS, self._analyzer, t) for t in texts]
        tops = [search(q, k, self._sort, False) for q in queries]
        assert self._mapper is not None, "made in __init__ unless the cascade is the only path"
        chunks = self._mapper.writeValueAsString(tops)[len(_OPEN) : -len(_CLOSE)].split(_NEXT)
        sizes = np.array([c.count(_HIT_END) for c in chunks], dtype=np.int64)
        flat = ",".join(c for c in chunks if c).replace(_HIT_END, "")
        # [doc,[score pairs; scores are shortest round-trip decimals (Float.toString), which
        # float32 parses exactly
        pairs = np.fromstring(flat.replace("[", ""), sep=",") if flat else np.empty(0)
        starts = np.cumsum(sizes) - sizes
        scores = adjust_score_ties(pairs[1::2].astype(np.float32), starts)
        lucene = pairs[0::2].astype(np.int64)
        docids = self._docids(lucene)
        cuts = starts[1:]
        return list(
            zip(np.split(docids, cuts), np.split(scores, cuts), np.split(lucene, cuts), strict=True)
        )

    def _search_cascade(self, text: str, k: int) -> Hits:
        """``SimpleSearcher._search`` step by step, reading its final ScoredDocs' arrays.
        Objects made here get only constructors and field access (safe from threads)."""
        query = self._generator.buildQuery(CONTENTS, self._analyzer, text)
        tokens = jclass("io.anserini.analysis.AnalyzerUtils").analyze(self._analyzer, text)
        args = jclass("io.anserini.search.SearchCollection$Args")()
        args.arbitraryScoreTieBreak = bool(self._simple.backwardsCompatibilityLucene8)
        args.hits = k
        depth = args.rerankcutoff if self._simple.use_rm3() else k
        if args.arbitraryScoreTieBreak:
            top = self._searcher.search(query, depth)
        else:
            top = self._searcher.search(query, depth, self._sort, True)
        context = jclass("io.anserini.rerank.RerankerContext")(
            self._searcher, None, query, None, text, tokens, None, args
        )
        scored = jclass("io.anserini.search.ScoredDocs").fromTopDocs(top, self._searcher)
        scored = self._cascade.run(scored, context)
        docids = np.array(scored.docids, dtype=object).reshape(-1)
        return (
            docids,
            np.array(scored.scores, dtype=np.float32).reshape(-1),
            np.array(scored.lucene_docids, dtype=np.int64).reshape(-1),
        )

    def _docids(self, lucene: np.ndarray) -> np.ndarray:
        if self._ids is None:
            with self._ids_lock:
                if self._ids is None:
                    size = int(self._reader.maxDoc())
                    self._known = np.zeros(size, dtype=bool)
                    self._ids = np.full(size, None, dtype=object)
        table, known = self._ids, self._known
        missing = np.flatnonzero(~known[lucene])
        for row in np.unique(lucene[missing]).tolist():
            docid = self._id_of(self._reader, row)  # the stored id, as Anserini reads it
            if docid is None:  # Anserini's null for an IOException: read again, to raise it
                docid = self._stored.field(row, DOCID_FIELD)
            table[row] = docid
            known[row] = True
        return table[lucene]

    def search_many(self, texts: Sequence[str], k: int, threads: int = 1) -> list[Hits]:
        """One result per text; with ``threads`` > 1, Python threads share the texts (the
        Java calls release the GIL)."""
        if not texts:
            return []

        def run(part: Sequence[str]) -> list[Hits]:
            if self._cascade_only:
                return [self._search_cascade(t, k) for t in part]
            step = max(1, _BATCH_HITS // k)  # bounds the text Java writes at once
            return [
                h
                for i in range(0, len(part), step)
                for h in self._search_batch(part[i : i + step], k)
            ]

        threads = max(1, min(threads, len(texts)))
        if threads == 1:
            return run(texts)
        from jnius import detach

        size = -(-len(texts) // threads)
        parts = [texts[i : i + size] for i in range(0, len(texts), size)]
        results: list[list[Hits]] = [[] for _ in parts]
        errors: list[BaseException] = []

        def work(i: int) -> None:
            try:
                results[i] = run(parts[i])
            except BaseException as exc:  # re-raised in the caller's thread
                errors.append(exc)
            finally:
                detach()  # a thread that touched the JVM must leave it before it ends

        workers = [threading.Thread(target=work, args=(i,)) for i in range(len(parts))]
        for w in workers:
            w.start()
        for w in workers:
            w.join()
        if errors:
            raise errors[0]
        return [hits for part in results for hits in part]
