"""Score-matrix search for Lucene BM25 and impact indexes: Anserini's rankings, exactly,
without a Lucene search per query.

At build time (once; :func:`build_matrix`) every term's postings (Lucene document ids and
term frequencies, or impacts) and every document's one-byte encoded length are read
through Lucene's own readers, every document's docid and its place in Anserini's
tie-break order through Anserini's own sort on docids (:func:`_read_docids`), and BM25's
per-posting scores are computed the way Lucene's ``BM25Similarity`` computes them (Lucene
9.9, in Anserini 1.7.1):

- ``idf = (float) Math.log(1 + (docCount - docFreq + 0.5) / (docFreq + 0.5))`` in double
  (Java's ``Math.log``, called here on each distinct argument), then rounded to float;
- ``avgdl = (float) (sumTotalTermFreq / (double) docCount)``;
- ``cache[i] = 1f / (k1 * ((1 - b) + b * LENGTH_TABLE[i] / avgdl))`` over the 256 encoded
  lengths (``SmallFloat.byte4ToInt``, read from Java), all float;
- ``score = weight - weight / (1f + freq * cache[norm])``, float, with
  ``weight = boost * idf``.

Impact indexes (Anserini's ``ImpactSimilarity``) score ``freq * boost`` in float.

A query is what Anserini's ``BagOfWordsQueryGenerator`` makes of it: the analyzer's terms
(Lucene's analyzer, the one the index used), each distinct term once, boosted by how
often it occurs (impact queries: each term boosted by its weight). Lucene's disjunction
adds a document's clause scores in double and rounds the sum to float once; so does
this module (``np.bincount`` adds in double), and the double sum of a query's few float
scores is exact, so the order of the additions cannot change it. Hits are ordered as
Anserini's sort orders them (score descending, then the collection docid's UTF-8 bytes)
and their scores get Anserini's score-tie adjustment. The tests compare every docid,
score and rank with the Lucene path.

The arrays live in ``matrix/`` beside ``lucene/`` with a manifest (``matrix.json``) that
records the Lucene commit they were read from (its ``segments_N`` file and that file's
SHA-256) and every array file's size and SHA-256. A matrix whose Lucene index changed,
or whose files do not match, is stale and is rebuilt (atomically) on open.
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np

from rarx.errors import ConfigError, IndexFormatError, RarxError
from rarx.index.anserini import CONTENTS, adjust_score_ties
from rarx.io.atomic import atomic_directory, atomic_write

log = logging.getLogger(__name__)

MATRIX_DIR = "matrix"
MATRIX_MANIFEST = "matrix.json"
MATRIX_FORMAT = 1
ENGINES = ("auto", "matrix", "lucene")
MEMORY_MODES = ("ram", "mmap")
_ARRAYS = ("offsets", "docs", "freqs", "scores", "idf", "norms", "id_rank")
_JSON_FILES = ("terms.json", "docids.json")
_POSTINGS_PER_CALL = 1_000_000  # postings serialised per Java call at build time
_DOCIDS_PER_CALL = 500_000  # documents read per sorted search at build time
_DOCIDS_CHECKED = 1000  # documents whose stored id is compared with the sorted one
_SEPARATOR = "rarxquerybreak"  # joins a batch's texts for one analyzer call
_RANK_TOP = np.int64(2**31 - 1)
_FEW_TERMS = 8  # more query terms than this: postings gathered with one index array
_NO_IDS, _NO_SCORES = np.empty(0, np.int64), np.empty(0, np.float32)


class MatrixUnavailable(RarxError):
    """This Lucene index cannot be searched through a score matrix (say why)."""


@dataclass(frozen=True)
class Bm25Params:
    k1: float
    b: float


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 22):
            h.update(chunk)
    return "sha256:" + h.hexdigest()


def lucene_fingerprint(lucene_dir: Path) -> dict[str, str]:
    """The Lucene commit a matrix was read from: its ``segments_N`` file and that file's
    hash (each commit writes a new one, naming its segments by unique ids)."""
    commits = sorted(lucene_dir.glob("segments_*"), key=lambda p: int(p.name[9:], 36))
    if not commits:
        raise IndexFormatError(f"{lucene_dir}: no Lucene commit (segments_N file) found")
    return {"segments": commits[-1].name, "sha256": _sha256(commits[-1])}


# -- building ----------------------------------------------------------------------------


def _postings_mapper() -> Any:
    """Jackson writing Anserini's ``Posting`` lists as ``[[docid,tf],...]``."""
    from rarx.index.java import jclass

    json_ann = "com.fasterxml.jackson.annotation"
    mapper = jclass("com.fasterxml.jackson.databind.ObjectMapper")()
    mapper.configure(jclass("com.fasterxml.jackson.databind.MapperFeature")
                     .SORT_PROPERTIES_ALPHABETICALLY, True)  # fmt: skip
    override = mapper.configOverride(jclass("io.anserini.index.IndexReaderUtils$Posting"))
    override.setFormat(jclass(f"{json_ann}.JsonFormat$Value").forShape(
        jclass(f"{json_ann}.JsonFormat$Shape").ARRAY))  # fmt: skip
    override.setIgnorals(jclass(f"{json_ann}.JsonIgnoreProperties$Value")
                         .forIgnoredProperties("positions"))  # fmt: skip
    return mapper


def _open_reader(lucene_dir: Path) -> Any:
    from rarx.index.java import jclass

    path = jclass("java.io.File")(str(lucene_dir)).toPath()
    directory = jclass("org.apache.lucene.store.FSDirectory").open(path)
    return jclass("org.apache.lucene.index.DirectoryReader").open(directory)


def _read_postings(reader: Any, leaf: Any) -> tuple[list[str], np.ndarray, np.ndarray, np.ndarray]:
    """Every term of the ``contents`` field in Lucene's term order, with its postings:
    ``(terms, offsets, docs, freqs)`` (term i's postings are ``offsets[i]:offsets[i+1]``)."""
    from rarx.index.java import jclass

    mapper = _postings_mapper()
    postings_of = jclass("io.anserini.index.IndexReaderUtils").getPostingsListForAnalyzedTerm
    array_list = jclass("java.util.ArrayList")
    terms_enum = leaf.terms(CONTENTS).iterator()
    terms: list[str] = []
    sizes: list[int] = []
    doc_parts: list[np.ndarray] = []
    freq_parts: list[np.ndarray] = []
    batch, batch_postings = array_list(), 0

    def flush() -> None:
        nonlocal batch, batch_postings
        if batch.size():
            text = mapper.writeValueAsString(batch).replace("[", "").replace("]", "")
            pairs = np.fromstring(text, dtype=np.int64, sep=",") if text else np.empty(0, np.int64)
            doc_parts.append(pairs[0::2].astype(np.int32))
            freq_parts.append(pairs[1::2].astype(np.int32))
        batch, batch_postings = array_list(), 0

    while (term_bytes := terms_enum.next()) is not None:
        term = term_bytes.utf8ToString()
        df = int(terms_enum.docFreq())
        postings = postings_of(reader, term)
        if postings is None or postings.size() != df:
            raise RarxError(f"reading the postings of term {term!r} failed (docFreq {df})")
        terms.append(term)
        sizes.append(df)
        batch.add(postings)
        batch_postings += df
        if batch_postings >= _POSTINGS_PER_CALL:
            flush()
    flush()
    docs = np.concatenate(doc_parts) if doc_parts else np.empty(0, np.int32)
    freqs = np.concatenate(freq_parts) if freq_parts else np.empty(0, np.int32)
    offsets = np.zeros(len(sizes) + 1, dtype=np.int64)
    np.cumsum(sizes, out=offsets[1:])
    if docs.shape[0] != offsets[-1]:
        raise RarxError(f"read {docs.shape[0]} postings, the terms' docFreqs sum to {offsets[-1]}")
    # Within a term Lucene returns ids in increasing order: a check that the columns are
    # (docid, tf), as asked of Jackson.
    steps = np.diff(docs)
    starts = offsets[1:-1]
    steps[starts[(starts > 0) & (starts < docs.shape[0])] - 1] = 1
    if steps.size and steps.min() <= 0:
        raise RarxError("postings came back out of order; the Anserini jar's Jackson changed")
    return terms, offsets, docs, freqs


def _read_norms(leaf: Any, size: int) -> np.ndarray:
    """Each document's one-byte encoded length (what BM25's length cache is indexed by)."""
    values = leaf.getNormValues(CONTENTS)
    if values is None:  # a field without norms: Lucene's scorer reads 1 for every document
        return np.ones(size, dtype=np.uint8)
    norms = np.zeros(size, dtype=np.uint8)  # a document without the field reads 0
    advance, value = values.advanceExact, values.longValue
    for doc in range(size):
        if advance(doc):
            norms[doc] = int(value()) & 0xFF
    return norms


def _docid_order_mapper() -> Any:
    """Jackson writing a sorted search's hits as ``{"scoreDocs":[[doc,[[bytes,length,
    offset]]], ...]}``: each document's Lucene id and its docid sort value (a BytesRef:
    base64 bytes, then the docid's length and offset within them)."""
    from rarx.index.java import jclass

    search, json_ann = "org.apache.lucene.search", "com.fasterxml.jackson.annotation"
    array = jclass(f"{json_ann}.JsonFormat$Value").forShape(
        jclass(f"{json_ann}.JsonFormat$Shape").ARRAY)  # fmt: skip
    ignore = jclass(f"{json_ann}.JsonIgnoreProperties$Value").forIgnoredProperties
    accessor = jclass(f"{json_ann}.PropertyAccessor")
    visibility = jclass(f"{json_ann}.JsonAutoDetect$Visibility")
    mapper = jclass("com.fasterxml.jackson.databind.ObjectMapper")()
    mapper.setVisibility(accessor.ALL, visibility.NONE)
    mapper.setVisibility(accessor.FIELD, visibility.PUBLIC_ONLY)
    mapper.configure(jclass("com.fasterxml.jackson.databind.MapperFeature")
                     .SORT_PROPERTIES_ALPHABETICALLY, True)  # fmt: skip
    hit = mapper.configOverride(jclass(f"{search}.FieldDoc"))
    hit.setFormat(array)
    hit.setIgnorals(ignore("score", "shardIndex"))
    mapper.configOverride(jclass("org.apache.lucene.util.BytesRef")).setFormat(array)
    mapper.configOverride(jclass(f"{search}.TopFieldDocs")).setIgnorals(
        ignore("totalHits", "fields"))  # fmt: skip
    return mapper


def _sorted_docid_rows(text: str) -> tuple[np.ndarray, list[str]]:
    """Lucene ids and docids, in the order of ``text`` (the mapper's output)."""
    docs, docids = [], []
    for doc, values in json.loads(text)["scoreDocs"]:
        ((data, length, offset),) = values
        docs.append(doc)
        docids.append(base64.b64decode(data)[offset : offset + length].decode("utf-8"))
    return np.asarray(docs, dtype=np.int64), docids


def _read_docids(reader: Any, size: int, lucene_dir: Path) -> tuple[list[str], np.ndarray]:
    """Every document's collection docid, and its rank in the order Anserini's searches
    break score ties in (its sort on the ``id`` doc values: the docid's bytes, then the
    Lucene id). Read by that sort itself, over all documents, a few Java calls per
    ``_DOCIDS_PER_CALL`` documents (not one per document: reading stored fields costs
    tens of microseconds a document). A sample is checked against the stored ids, which
    the Lucene path reports."""
    from jnius import cast

    from rarx.index.java import jclass

    search = "org.apache.lucene.search"
    searcher = jclass(f"{search}.IndexSearcher")(cast("org.apache.lucene.index.IndexReader",
                                                      reader))  # fmt: skip
    tie_break = jclass("io.anserini.search.SimpleSearcher").BREAK_SCORE_TIES_BY_DOCID.getSort()
    by_docid = jclass(f"{search}.Sort")(tie_break[1])
    everything = jclass(f"{search}.MatchAllDocsQuery")()
    field_doc, bytes_ref = jclass(f"{search}.FieldDoc"), jclass("org.apache.lucene.util.BytesRef")
    write = _docid_order_mapper().writeValueAsString
    parts: list[tuple[np.ndarray, list[str]]] = []
    read = 0
    while read < size:
        n = min(_DOCIDS_PER_CALL, size - read)
        try:
            if not parts:
                top = searcher.search(everything, n, by_docid)
            else:  # after the last hit read: its sort value and Lucene id
                last_doc, last_id = int(parts[-1][0][-1]), parts[-1][1][-1]
                after = field_doc(last_doc, float("nan"), [bytes_ref(last_id.encode("utf-8"))])
                top = searcher.searchAfter(after, everything, n, by_docid)
        except Exception as exc:  # a JavaException: no id doc values to sort on
            if getattr(exc, "classname", None) != "java.lang.IllegalStateException":
                raise
            raise MatrixUnavailable(f"{lucene_dir}: documents cannot be sorted by docid "
                                    f"({getattr(exc, 'innermessage', exc)})") from None
        part = _sorted_docid_rows(write(top))
        if part[0].shape[0] != n:
            raise RarxError(f"{lucene_dir}: the sort by docid returned {part[0].shape[0]} of "
                            f"{n} documents")  # fmt: skip
        parts.append(part)
        read += n
    order = np.concatenate([d for d, _ in parts]) if parts else np.empty(0, np.int64)
    id_rank = np.full(size, -1, dtype=np.int32)
    id_rank[order] = np.arange(size, dtype=np.int32)
    if size and id_rank.min() < 0:
        raise RarxError(f"{lucene_dir}: the sort by docid left out some documents")
    docids: list[str] = [""] * size
    for doc, docid in zip(order.tolist(), (i for _, ids in parts for i in ids), strict=True):
        docids[doc] = docid
    stored_id = jclass("io.anserini.index.IndexReaderUtils").convertLuceneDocidToDocid
    for doc in np.unique(np.linspace(0, size - 1, min(size, _DOCIDS_CHECKED), dtype=np.int64)):
        stored = stored_id(reader, int(doc))
        if stored != docids[doc]:
            raise MatrixUnavailable(
                f"{lucene_dir}: document {int(doc)}'s stored id is {stored!r}, its id doc "
                f"values (Anserini's sort) say {docids[doc]!r}"
            )
    return docids, id_rank


def _java_idf(df: np.ndarray, doc_count: int) -> np.ndarray:
    """BM25Similarity.idf for each term: the argument in double as Java computes it, Java's
    own Math.log (once per distinct docFreq), then rounded to float."""
    from rarx.index.java import jclass

    log_ = jclass("java.lang.Math").log
    distinct, inverse = np.unique(df, return_inverse=True)
    args = 1.0 + (doc_count - distinct.astype(np.float64) + 0.5) / (distinct + 0.5)
    logs = np.array([log_(float(a)) for a in args.tolist()], dtype=np.float64)
    return logs.astype(np.float32)[inverse]


def _length_table() -> list[int]:
    from rarx.index.java import jclass

    byte4_to_int = jclass("org.apache.lucene.util.SmallFloat").byte4ToInt
    return [int(byte4_to_int(i if i < 128 else i - 256)) for i in range(256)]


def norm_inverse_cache(
    params: Bm25Params, avgdl: np.float32, length_table: Sequence[int]
) -> np.ndarray:
    """BM25Scorer's 256-entry cache, float arithmetic in Lucene's order."""
    k1, b = np.float32(params.k1), np.float32(params.b)
    lengths = np.asarray(length_table, dtype=np.float32)
    with np.errstate(divide="ignore", invalid="ignore"):  # Java's inf and NaN, as they come
        scaled = (b * lengths) / avgdl
        return (np.float32(1) / (k1 * ((np.float32(1) - b) + scaled))).astype(np.float32)


def bm25_scores_weights(weight: Any, freqs: np.ndarray, norm_inverse: np.ndarray) -> np.ndarray:
    """``weight - weight / (1f + freq * normInverse)`` in float, per posting (``weight``:
    one float32 or one per posting)."""
    weight = np.asarray(weight, dtype=np.float32)
    denominator = np.float32(1) + freqs.astype(np.float32) * norm_inverse
    return (weight - weight / denominator).astype(np.float32)


def _all_scores(
    idf: np.ndarray, offsets: np.ndarray, docs: np.ndarray, freqs: np.ndarray,
    norms: np.ndarray, cache: np.ndarray,
) -> np.ndarray:  # fmt: skip
    """Every posting's score at boost 1 (weight = its term's idf)."""
    weights = np.repeat(idf, np.diff(offsets))
    return bm25_scores_weights(weights, freqs, cache[norms[docs]])


def build_matrix(
    lucene_dir: Path, target: Path, similarity: str, params: Bm25Params | None = None,
    quiet: bool = True,
) -> dict[str, Any]:  # fmt: skip
    """Read the Lucene index at ``lucene_dir`` and write its score matrix at ``target``
    (atomically, replacing a stale one); returns the matrix manifest.
    ``similarity``: ``"bm25"`` (with ``params``) or ``"impact"``."""
    if similarity not in ("bm25", "impact"):
        raise ConfigError(f"similarity must be 'bm25' or 'impact', got {similarity!r}")
    if similarity == "bm25" and params is None:
        raise ConfigError("a BM25 matrix needs its k1 and b")
    started = time.perf_counter()
    fingerprint = lucene_fingerprint(lucene_dir)
    reader = _open_reader(lucene_dir)
    try:
        leaves = reader.leaves()
        if leaves.size() != 1:
            raise MatrixUnavailable(
                f"{lucene_dir}: the Lucene index has {leaves.size()} segments; a score matrix "
                "is read from a one-segment index (as 'rarx index' writes)"
            )
        leaf = leaves.get(0).reader()
        size = int(reader.maxDoc())
        if reader.numDeletedDocs():
            raise MatrixUnavailable(f"{lucene_dir}: the Lucene index has deleted documents")
        field = leaf.terms(CONTENTS)
        if field is None:
            raise MatrixUnavailable(f"{lucene_dir}: no indexed '{CONTENTS}' field")
        doc_count, sum_ttf = int(field.getDocCount()), int(field.getSumTotalTermFreq())
        if not quiet:
            log.info("reading %s documents' postings from Lucene for the score matrix...", size)
        terms, offsets, docs, freqs = _read_postings(reader, leaf)
        docids, id_rank = _read_docids(reader, size, lucene_dir)
        norms = _read_norms(leaf, size) if similarity == "bm25" else np.zeros(size, np.uint8)
        df = np.diff(offsets)
        manifest: dict[str, Any] = {
            "format_version": MATRIX_FORMAT,
            "similarity": similarity,
            "lucene": fingerprint,
            "documents": size,
            "terms": len(terms),
            "postings": int(offsets[-1]),
            "doc_count": doc_count,
            "sum_total_term_freq": sum_ttf,
        }
        arrays: dict[str, np.ndarray] = {"offsets": offsets, "docs": docs, "freqs": freqs,
                                         "norms": norms}  # fmt: skip
        if similarity == "bm25":
            assert params is not None
            table = _length_table()
            avgdl = np.float32(sum_ttf / doc_count) if doc_count else np.float32(0)
            idf = _java_idf(df, doc_count)
            cache = norm_inverse_cache(params, avgdl, table)
            arrays.update(idf=idf, scores=_all_scores(idf, offsets, docs, freqs, norms, cache))
            manifest.update(k1=params.k1, b=params.b, length_table=table)
        else:
            arrays.update(idf=np.zeros(0, np.float32), scores=np.zeros(0, np.float32))
        arrays["id_rank"] = id_rank
    finally:
        reader.close()
    with atomic_directory(target, True, MATRIX_MANIFEST, "a score matrix",
                          "move it away", MatrixUnavailable) as tmp:  # fmt: skip
        files: dict[str, dict[str, Any]] = {}
        for name in _ARRAYS:
            np.save(tmp / f"{name}.npy", arrays[name], allow_pickle=False)
        (tmp / "terms.json").write_text(json.dumps(terms, ensure_ascii=False), encoding="utf-8")
        (tmp / "docids.json").write_text(json.dumps(docids, ensure_ascii=False), encoding="utf-8")
        for name in [f"{a}.npy" for a in _ARRAYS] + list(_JSON_FILES):
            files[name] = {"bytes": (tmp / name).stat().st_size, "sha256": _sha256(tmp / name)}
        manifest["files"] = files
        manifest["build_seconds"] = round(time.perf_counter() - started, 3)
        with atomic_write(tmp / MATRIX_MANIFEST) as f:
            json.dump(manifest, f, indent=1)
            f.write("\n")
    return manifest


def read_matrix_manifest(directory: Path) -> dict[str, Any] | None:
    path = directory / MATRIX_MANIFEST
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def stale_reason(directory: Path, lucene_dir: Path, similarity: str) -> str | None:
    """Why the matrix at ``directory`` cannot be used for ``lucene_dir`` (None: it can).
    Cheap: the Lucene commit file's hash and the matrix files' sizes."""
    manifest = read_matrix_manifest(directory)
    if manifest is None:
        return "no matrix manifest"
    if manifest.get("format_version") != MATRIX_FORMAT or manifest.get("similarity") != similarity:
        return "another matrix format"
    try:
        if manifest.get("lucene") != lucene_fingerprint(lucene_dir):
            return "the Lucene index changed since the matrix was built"
    except IndexFormatError as exc:
        return str(exc)
    for name, info in manifest.get("files", {}).items():
        p = directory / name
        if not p.is_file() or p.stat().st_size != info["bytes"]:
            return f"{name} is missing or has the wrong size"
    return None


def verify_matrix(directory: Path) -> list[str]:
    """The matrix files whose SHA-256 is not the one recorded at build (a full read)."""
    manifest = read_matrix_manifest(directory)
    if manifest is None:
        return [MATRIX_MANIFEST]
    return [
        name for name, info in manifest.get("files", {}).items()
        if not (directory / name).is_file() or _sha256(directory / name) != info["sha256"]
    ]  # fmt: skip


def _available_memory() -> int | None:
    try:
        with open("/proc/meminfo", encoding="ascii") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


# -- searching ----------------------------------------------------------------------------

Hits = tuple[np.ndarray, np.ndarray, np.ndarray]  # docids (object), scores (f32), lucene ids


class ScoreMatrix:
    """A loaded matrix: search term bags (``{term: boost}``) as Anserini would."""

    def __init__(self, directory: Path, memory: str = "ram", params: Bm25Params | None = None):
        if memory not in MEMORY_MODES:
            raise ConfigError(
                f"matrix memory must be one of {', '.join(MEMORY_MODES)}, got {memory!r}"
            )
        manifest = read_matrix_manifest(directory)
        if manifest is None:
            raise IndexFormatError(f"{directory}: no readable {MATRIX_MANIFEST}")
        self.directory = directory
        self.manifest = manifest
        self.memory = memory
        self.similarity = manifest["similarity"]
        needed = sum(info["bytes"] for info in manifest["files"].values())
        available = _available_memory()
        if memory == "ram" and available is not None and needed > available:
            raise RarxError(
                f"{directory}: the score matrix needs {needed / 2**30:.2f} GiB of memory, "
                f"{available / 2**30:.2f} GiB is available; keep it on disk with "
                "--matrix-memory mmap (load option matrix_memory='mmap'), or search with "
                "Lucene: --search-engine lucene"
            )
        mode: Literal["r"] | None = "r" if memory == "mmap" else None
        try:
            arrays = {a: np.load(directory / f"{a}.npy", mmap_mode=mode, allow_pickle=False)
                      for a in _ARRAYS}  # fmt: skip
            self.terms = {
                t: i
                for i, t in enumerate(
                    json.loads((directory / "terms.json").read_text(encoding="utf-8"))
                )
            }
            self.docids = np.array(
                json.loads((directory / "docids.json").read_text(encoding="utf-8")), dtype=object
            )
        except MemoryError:
            raise RarxError(
                f"{directory}: the score matrix does not fit in memory; use --matrix-memory "
                "mmap or --search-engine lucene"
            ) from None
        except (OSError, ValueError) as exc:
            raise IndexFormatError(
                f"{directory}: unreadable score matrix ({exc}); delete {directory} and it is "
                "rebuilt on the next open"
            ) from None
        self._offsets = arrays["offsets"]
        self._docs = arrays["docs"]
        self._freqs = arrays["freqs"]
        self._idf = arrays["idf"]
        self._id_rank = arrays["id_rank"]
        self.size = int(manifest["documents"])
        self._scores = arrays["scores"]
        self._cache: np.ndarray | None = None
        self._norms = arrays["norms"]
        if self.similarity == "bm25":
            built = Bm25Params(float(manifest["k1"]), float(manifest["b"]))
            self.params = params or built
            avgdl = (np.float32(manifest["sum_total_term_freq"] / manifest["doc_count"])
                     if manifest["doc_count"] else np.float32(0))  # fmt: skip
            self._cache = norm_inverse_cache(self.params, avgdl, manifest["length_table"])
            if (np.float32(self.params.k1), np.float32(self.params.b)) != (
                np.float32(built.k1),
                np.float32(built.b),
            ):  # other k1/b than built: the per-posting scores are computed once, here
                self._scores = _all_scores(
                    self._idf, self._offsets, self._docs, self._freqs, self._norms, self._cache
                )
                self.memory = "ram"

    @property
    def nbytes(self) -> int:
        return int(sum(info["bytes"] for info in self.manifest["files"].values()))

    def _gather(self, found: list[tuple[int, float]]) -> tuple[np.ndarray, np.ndarray]:
        """Many terms' postings and scores in a few whole-array steps (the same values,
        in the same order, as :meth:`_term_scores` term by term)."""
        columns = np.array([c for c, _ in found], dtype=np.int64)
        boosts = np.array([b for _, b in found], dtype=np.float32)
        starts, ends = self._offsets[columns], self._offsets[columns + 1]
        lengths = ends - starts
        # index of every posting: each term's start, then 0, 1, 2... within the term
        firsts = np.cumsum(lengths) - lengths
        idx = np.repeat(starts - firsts, lengths) + np.arange(int(lengths.sum()))
        docs = self._docs[idx]
        if self.similarity == "impact":
            return docs, self._freqs[idx].astype(np.float32) * np.repeat(boosts, lengths)
        if bool((boosts == 1).all()):
            return docs, self._scores[idx]
        assert self._cache is not None
        weights = np.repeat(boosts * self._idf[columns], lengths)  # float: boost * idf
        return docs, bm25_scores_weights(weights, self._freqs[idx], self._cache[self._norms[docs]])

    def _term_scores(self, column: int, boost: float) -> np.ndarray:
        start, end = int(self._offsets[column]), int(self._offsets[column + 1])
        if self.similarity == "impact":
            return self._freqs[start:end].astype(np.float32) * np.float32(boost)
        if boost == 1.0:
            return self._scores[start:end]
        assert self._cache is not None
        weight = np.float32(boost) * self._idf[column]
        docs = self._docs[start:end]
        return bm25_scores_weights(weight, self._freqs[start:end], self._cache[self._norms[docs]])

    def search_many(self, bags: Sequence[Mapping[str, float]], k: int) -> list[Hits]:
        """Each bag's top ``k`` in Anserini's order: ``(docids, scores, lucene ids)``, the
        scores tie-adjusted as Anserini reports them."""
        if not bags:
            return []
        found = [self._search_one(bag, k) for bag in bags]
        sizes = np.array([f.shape[0] for f, _ in found], dtype=np.int64)
        starts = np.cumsum(sizes) - sizes
        flat_ids = np.concatenate([f for f, _ in found])
        adjusted = adjust_score_ties(np.concatenate([s for _, s in found]), starts)
        docids = self.docids[flat_ids]
        cuts = starts[1:]
        return list(zip(np.split(docids, cuts), np.split(adjusted, cuts),
                        np.split(flat_ids, cuts), strict=True))  # fmt: skip

    def _search_one(self, bag: Mapping[str, float], k: int) -> tuple[np.ndarray, np.ndarray]:
        """Lucene ids and float scores (before the tie adjustment) of one query's top ``k``."""
        found = [(c, b) for t, b in bag.items() if (c := self.terms.get(t)) is not None]
        if not found:
            return _NO_IDS, _NO_SCORES
        if len(found) > _FEW_TERMS:
            docs, parts = self._gather(found)
        else:  # few (often long) posting lists: slices copy fastest
            doc_parts, score_parts = [], []
            for column, boost in found:
                start, end = int(self._offsets[column]), int(self._offsets[column + 1])
                doc_parts.append(self._docs[start:end])
                score_parts.append(self._term_scores(column, boost))
            docs = doc_parts[0] if len(doc_parts) == 1 else np.concatenate(doc_parts)
            parts = score_parts[0] if len(score_parts) == 1 else np.concatenate(score_parts)
        # A document's clause scores added in double, as Lucene's disjunction adds them,
        # then rounded to float once.
        sums = np.bincount(docs, weights=parts, minlength=self.size)
        if parts.min() > 0:
            matched = np.flatnonzero(sums != 0)  # via a bool array: several times faster
        else:  # a zero score still matches (Lucene returns it)
            matched = np.flatnonzero(np.bincount(docs, minlength=self.size) != 0)
        scores = sums[matched].astype(np.float32)
        n = scores.shape[0]
        if n > k:  # the hits scoring at least the k-th best score (ties with it included)
            kth = np.partition(scores, n - k)[n - k]
            keep = np.flatnonzero(scores >= kth)
            matched, scores = matched[keep], scores[keep]
        # One int64 key per hit in Anserini's order: the score's bits (a non-negative
        # float's bits order as the float does), then the docid's rank, reversed.
        key = scores.view(np.int32).astype(np.int64) << 32
        key |= _RANK_TOP - self._id_rank[matched]
        top = np.argsort(key)[::-1][:k]
        return matched[top], scores[top]


class BatchAnalyzer:
    """Lucene's analyzer over a batch of query texts in one Java call: the texts joined by
    a separator word, the tokens split on its analysed form (a batch whose texts contain
    that word is analysed one text at a time)."""

    def __init__(self, analyzer: Any):
        from rarx.index.java import jclass

        self._analyzer = analyzer
        self._analyze = jclass("io.anserini.analysis.AnalyzerUtils").analyze
        self._write = jclass("com.fasterxml.jackson.databind.ObjectMapper")().writeValueAsString
        (self._mark,) = self._tokens(_SEPARATOR) or ("",)

    def _tokens(self, text: str) -> list[str]:
        return json.loads(self._write(self._analyze(self._analyzer, text)))

    def bags(self, texts: Sequence[str]) -> list[dict[str, float]]:
        """Each text's terms with their counts, as BagOfWordsQueryGenerator boosts them."""
        if not texts:
            return []
        tokens = self._tokens(f" {_SEPARATOR} ".join(texts))
        groups: list[list[str]] = [[]]
        for t in tokens:
            if t == self._mark:
                groups.append([])
            else:
                groups[-1].append(t)
        if len(groups) != len(texts):  # a text held the separator itself
            groups = [self._tokens(t) for t in texts]
        bags = []
        for group in groups:
            bag: dict[str, float] = {}
            for t in group:
                bag[t] = bag.get(t, 0.0) + 1.0
            bags.append(bag)
        return bags


def open_matrix(
    index_path: Path, lucene_dir: Path, similarity: str, memory: str,
    params: Bm25Params | None, build_params: Bm25Params | None,
) -> ScoreMatrix:  # fmt: skip
    """The index's score matrix, (re)built first when missing or stale."""
    directory = index_path / MATRIX_DIR
    reason = stale_reason(directory, lucene_dir, similarity)
    if reason is not None:
        log.info("building the score matrix of %s (%s)", index_path, reason)
        try:
            build_matrix(lucene_dir, directory, similarity, build_params)
        except OSError as exc:
            raise MatrixUnavailable(
                f"{index_path}: cannot write its score matrix ({exc}); make the index "
                "writable, or search with Lucene (--search-engine lucene)"
            ) from None
    return ScoreMatrix(directory, memory, params)


def check_engine(engine: str) -> str:
    if engine not in ENGINES:
        raise ConfigError(f"search engine must be one of {', '.join(ENGINES)}, got {engine!r}")
    return engine


def matrix_size_report(index_path: Path) -> dict[str, int]:
    """Bytes of the matrix files and of the Lucene index, for size comparisons."""

    def size(p: Path) -> int:
        return sum(f.stat().st_size for f in p.rglob("*") if f.is_file()) if p.exists() else 0

    return {"matrix_bytes": size(index_path / MATRIX_DIR),
            "lucene_bytes": size(index_path / "lucene")}  # fmt: skip


__all__ = [
    "ENGINES", "MATRIX_DIR", "MEMORY_MODES", "BatchAnalyzer", "Bm25Params", "MatrixUnavailable",
    "ScoreMatrix", "build_matrix", "open_matrix", "stale_reason", "verify_matrix",
]  # fmt: skip
