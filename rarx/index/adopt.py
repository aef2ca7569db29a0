"""Adopting indexes built elsewhere: a Lucene index written by Anserini/pyserini
(``IndexCollection``, ``python -m pyserini.index.lucene``, pyserini's prebuilt indexes)
and a pyserini faiss folder (``index`` + ``docid``, as ``pyserini.encode`` writes it).

:func:`adopt` inspects the folder, refuses what rarx cannot search as its builder
would (with the reason), and writes a ``rarx_index.json`` beside the index's own files,
which it never changes. The manifest says the index is adopted (``params["adopted"]``),
its layout and how ids and text are stored; its kind is ``bm25`` or ``dense``, so
every rarx command opens it as it opens one rarx built. There is no corpus checksum:
rarx never saw the corpus.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from rarx import __version__
from rarx.errors import ConfigError, IndexExistsError, IndexFormatError
from rarx.index.base import MANIFEST_NAME, Manifest, now_iso

LUCENE_LAYOUT = "anserini-lucene"
FAISS_LAYOUT = "pyserini-faiss"
FAISS_FILE = "index"  # pyserini's names
DOCID_FILE = "docid"
CONTENTS, ID, RAW = "contents", "id", "raw"  # Anserini's field names
SAMPLE_DOCS = 1000  # documents whose norms are read to tell an impact index from BM25
ANALYZER_DOCS = 5  # documents whose stored text is analyzed to check the analyzer

# How an adopted Lucene index stores its text (params["text"]):
RAW_JSON = "raw-json"  # the raw field holds the source JSON (JsonCollection): its contents
RAW_TEXT = "raw"  # the raw field holds the document as it was read (TREC, HTML, ...)
STORED_CONTENTS = "contents"  # -storeContents: the indexed text is stored
NO_TEXT = "none"  # ids only: hits have no text


def layout_of(path: Path) -> str:
    if (path / FAISS_FILE).is_file() and (path / DOCID_FILE).is_file():
        return FAISS_LAYOUT
    if any(path.glob("segments_*")):
        return LUCENE_LAYOUT
    raise IndexFormatError(
        f"{path}: neither a Lucene index (no segments_N file) nor a pyserini faiss index "
        f"folder (files '{FAISS_FILE}' and '{DOCID_FILE}'); rarx adopts those two layouts"
    )


def adopt(
    path: str | Path, *, model: str | None = None, query_prefix: str = "",
    normalize: bool = True, overwrite: bool = False,
) -> Manifest:  # fmt: skip
    """Inspect the index at ``path`` and write its rarx manifest there. A faiss folder
    needs ``model``: the query encoder of the model that encoded its documents (with its
    ``query_prefix``, and ``normalize`` as the documents were)."""
    path = Path(path)
    if not path.is_dir():
        raise IndexFormatError(f"{path}: no such directory")
    existing = path / MANIFEST_NAME
    if existing.is_file():
        adopted = json.loads(existing.read_text(encoding="utf-8")).get("params", {}).get("adopted")
        if not adopted:
            raise IndexExistsError(f"{path} is already a rarx index; there is nothing to adopt")
        if not overwrite:
            raise IndexExistsError(
                f"{path} is already adopted; pass overwrite=True (--overwrite) to inspect it again"
            )
    layout = layout_of(path)
    if layout == LUCENE_LAYOUT:
        if model is not None or query_prefix:
            raise ConfigError(f"{path} is a Lucene (BM25) index: it takes no model or prefix")
        manifest = _lucene_manifest(path)
    else:
        if model is None:
            raise ConfigError(
                f"{path} is a pyserini faiss index, which does not record its encoder; give the "
                "model that encoded its documents (--model NAME-OR-PATH, e.g. minilm or "
                "BAAI/bge-base-en-v1.5) and its --query-prefix if it has one"
            )
        manifest = _faiss_manifest(path, model, query_prefix, normalize)
    manifest.write(path)
    return manifest


# -- Lucene ---------------------------------------------------------------------------


def _lucene_manifest(path: Path) -> Manifest:
    from rarx.index.java import jclass

    directory = jclass("org.apache.lucene.store.FSDirectory").open(
        jclass("java.io.File")(str(path.resolve())).toPath()
    )
    try:
        reader = jclass("org.apache.lucene.index.DirectoryReader").open(directory)
    except Exception as exc:  # a JavaException: not readable by this Lucene
        directory.close()
        raise IndexFormatError(f"{path}: Lucene cannot open this index ({exc})") from None
    try:
        info = _inspect_lucene(path, reader, directory, jclass)
    finally:
        reader.close()
        directory.close()
    return Manifest(
        kind="bm25", documents=info.pop("documents"), corpus_checksum="",
        params={"k1": 0.9, "b": 0.4, "analyzer": "lucene-default-english", "adopted": True,
                "layout": LUCENE_LAYOUT, "lucene_dir": ".", **info},
        built_at=now_iso(), rarx_version=__version__,
    )  # fmt: skip


def _inspect_lucene(path: Path, reader: Any, directory: Any, jclass: Any) -> dict[str, Any]:
    documents = int(reader.numDocs())
    if documents == 0:
        raise IndexFormatError(f"{path}: the Lucene index holds no documents")
    fields = jclass("org.apache.lucene.index.FieldInfos").getMergedFieldInfos(reader)
    contents = fields.fieldInfo(CONTENTS)
    if contents is None or contents.getIndexOptions().toString() == "NONE":
        names = sorted(str(f.name) for f in fields.iterator())
        raise IndexFormatError(
            f"{path}: no indexed '{CONTENTS}' field (fields: {', '.join(names)}); rarx searches "
            "Anserini's 'contents' field, as pyserini's LuceneSearcher does"
        )
    if contents.omitsNorms() or _all_norms_unit(reader):
        raise IndexFormatError(
            f"{path}: an impact index (every document length norm is 1, as Anserini's -impact "
            "indexing writes them): its term frequencies are learned weights (SPLADE, uniCOIL), "
            "not counts, so BM25 over it would be wrong; rarx adopts BM25 indexes"
        )
    sampled = _live(reader, ANALYZER_DOCS)
    if not sampled:
        raise IndexFormatError(f"{path}: no live document among the {documents} counted")
    stored = reader.storedFields().document(sampled[0])
    if stored.get(ID) is None:
        raise IndexFormatError(
            f"{path}: documents have no stored '{ID}' field, so hits cannot be named by "
            "their collection ids; rarx adopts indexes written by Anserini's generators"
        )
    mode = _text_mode(stored)
    checked = False
    if mode in (RAW_JSON, STORED_CONTENTS):  # raw TREC/HTML holds markup that is not indexed
        texts = [_text_of(reader.storedFields().document(i), mode) for i in sampled]
        missing = _terms_not_indexed(str(path), reader, "\n".join(texts), jclass)
        if missing:
            raise IndexFormatError(
                f"{path}: the text of its first documents, analyzed as Anserini's default "
                f"English analyzer does (Porter stemming, stopwords), gives terms the index "
                f"lacks ({', '.join(missing[:5])}): it was built with another analyzer "
                "(-language, -pretokenized, -stemmer); rarx searches with the default one only"
            )
        checked = True
    commit = jclass("org.apache.lucene.index.SegmentInfos").readLatestCommit(directory)
    return {
        "documents": documents, "text": mode, "analyzer_checked": checked,
        "docvectors": bool(contents.hasVectors()),
        "lucene_version": int(commit.getCommitLuceneVersion().major),
    }  # fmt: skip


def _live(reader: Any, n: int) -> list[int]:
    """The ids of the first ``n`` documents not deleted."""
    found: list[int] = []
    for leaf in reader.leaves().toArray():
        live = leaf.reader().getLiveDocs()  # None: no deletions
        for i in range(int(leaf.reader().maxDoc())):
            if live is None or live.get(i):
                found.append(int(leaf.docBase) + i)
                if len(found) == n:
                    return found
    return found


def _text_mode(stored: Any) -> str:
    raw = stored.get(RAW)
    if raw is not None:
        try:
            obj = json.loads(str(raw))
        except ValueError:
            return RAW_TEXT
        json_contents = isinstance(obj, dict) and isinstance(obj.get(CONTENTS), str)
        return RAW_JSON if json_contents else RAW_TEXT
    return STORED_CONTENTS if stored.get(CONTENTS) is not None else NO_TEXT


def _text_of(stored: Any, mode: str) -> str:
    if mode == RAW_JSON:
        return str(json.loads(str(stored.get(RAW))).get(CONTENTS, ""))
    return str(stored.get(CONTENTS) or "")


def _all_norms_unit(reader: Any) -> bool:
    """Anserini's impact indexing writes a norm of 1 for every document; BM25 indexing
    writes the document's length. All-1 norms with an average length above one say impact."""
    seen, unit = 0, True
    for leaf in reader.leaves().toArray():
        norms = leaf.reader().getNormValues(CONTENTS)
        if norms is None:
            continue
        while seen < SAMPLE_DOCS and norms.nextDoc() < 2**31 - 1:
            seen += 1
            if int(norms.longValue()) > 1:
                unit = False
                break
        if not unit or seen >= SAMPLE_DOCS:
            break
    if not unit or seen == 0:
        return False
    length = docs = 0
    for leaf in reader.leaves().toArray():
        terms = leaf.reader().terms(CONTENTS)
        if terms is not None:
            length += int(terms.getSumTotalTermFreq())
            docs += int(terms.getDocCount())
    return length > 1.5 * docs


def _terms_not_indexed(path: str, reader: Any, text: str, jclass: Any) -> list[str]:
    searcher = jclass("io.anserini.search.SimpleSearcher")(path)
    try:
        tokens = jclass("io.anserini.analysis.AnalyzerUtils").analyze(searcher.analyzer, text)
        term = jclass("org.apache.lucene.index.Term")
        words = sorted({str(t) for t in tokens.toArray()})
        return [w for w in words if reader.docFreq(term(CONTENTS, w)) == 0]
    finally:
        searcher.close()


# -- faiss ----------------------------------------------------------------------------


def _faiss_manifest(path: Path, model: str, query_prefix: str, normalize: bool) -> Manifest:
    from rarx.errors import require

    faiss = require("faiss", "dense")
    try:
        index = faiss.read_index(str(path / FAISS_FILE))
    except RuntimeError as exc:
        raise IndexFormatError(
            f"{path / FAISS_FILE}: faiss cannot read it as a float index ({str(exc)[:200]}); "
            "binary (hashed) indexes are not adopted"
        ) from None
    if index.metric_type != faiss.METRIC_INNER_PRODUCT:
        raise IndexFormatError(
            f"{path}: the faiss index ranks by L2 distance; rarx ranks by inner product, as "
            "pyserini's encoders write their indexes"
        )
    inner = faiss.downcast_index(index)
    if isinstance(inner, faiss.IndexFlat):
        structure, structure_params = "flat", {}
    elif isinstance(inner, faiss.IndexHNSWFlat):
        structure, structure_params = "hnsw", {"ef_search": int(inner.hnsw.efSearch)}
    else:
        raise IndexFormatError(
            f"{path}: a faiss {type(inner).__name__}; rarx adopts flat and HNSW (flat-storage) "
            "indexes, whose vectors it can read back"
        )
    lines = (path / DOCID_FILE).read_text(encoding="utf-8").splitlines()
    docids = [line.rstrip() for line in lines]
    if len(docids) != index.ntotal:
        raise IndexFormatError(
            f"{path}: {len(docids):,} lines in '{DOCID_FILE}' but {index.ntotal:,} vectors in "
            f"'{FAISS_FILE}'; one docid per vector is expected"
        )
    if not all(docids) or len(set(docids)) != len(docids):
        raise IndexFormatError(
            f"{path}: '{DOCID_FILE}' has empty or repeated docids (several vectors per "
            "document, as in MaxP indexes); rarx rankings name each document once"
        )
    from rarx.models.encoder import Encoder, EncoderConfig

    encoder = Encoder(EncoderConfig(model=model, query_prefix=query_prefix, normalize=normalize))
    if encoder.dim != index.d:
        raise IndexFormatError(
            f"{path}: its vectors are {index.d}-d, the model {model!r} gives {encoder.dim}-d "
            "ones; give the model that encoded the documents"
        )
    return Manifest(
        kind="dense", documents=int(index.ntotal), corpus_checksum="", model=model,
        params={"dim": int(index.d), "metric": "inner_product", "normalize": normalize,
                "query_prefix": query_prefix, "doc_prefix": "",
                "max_seq_length": encoder.max_seq_length, "faiss": structure,
                "faiss_params": structure_params, "adopted": True, "layout": FAISS_LAYOUT,
                "faiss_file": FAISS_FILE, "docid_file": DOCID_FILE, "text": NO_TEXT},
        built_at=now_iso(), rarx_version=__version__,
    )  # fmt: skip
