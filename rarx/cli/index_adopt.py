"""``rarx index adopt``: make an index built by Anserini/pyserini a rarx index, in place."""

from __future__ import annotations

from pathlib import Path

import click

from rarx.cli.options import quiet_option

TEXT = {
    "raw-json": "text from the stored raw JSON",
    "raw": "text from the stored raw documents",
    "contents": "text from the stored contents",
    "none": "no stored text: hits carry ids and scores only",
}


@click.command()
@click.argument("path", type=click.Path(path_type=Path, exists=True, file_okay=False))
@click.option("--model", help="faiss folders: the encoder of its documents (name or path).")
@click.option("--query-prefix", default="", help="faiss folders: prepended to each query.")
@click.option(
    "--normalize/--no-normalize", default=True, show_default=True,
    help="faiss folders: L2-normalise query vectors (as the documents were).",
)  # fmt: skip
@click.option("--overwrite", is_flag=True, help="Inspect an adopted index again.")
@quiet_option
def adopt(path: Path, model: str | None, query_prefix: str, normalize: bool, overwrite: bool,
          quiet: bool) -> None:  # fmt: skip
    """Adopt a Lucene index built by Anserini/pyserini, or a pyserini faiss folder
    (files 'index' and 'docid'): check that rarx can search it as its builder would and
    write a rarx_index.json beside its files, which are left as they are.

    \b
    Examples:
      rarx index adopt ~/.cache/pyserini/indexes/lucene-index.msmarco-v1-passage.20221004.252b5e
      rarx index adopt indexes/my-faiss --model BAAI/bge-base-en-v1.5 --query-prefix "Represent ..."
      rarx search --index indexes/my-lucene --query "what is DNA"
    """
    from rarx.index.adopt import adopt as adopt_index

    manifest = adopt_index(path, model=model, query_prefix=query_prefix, normalize=normalize,
                           overwrite=overwrite)  # fmt: skip
    if quiet:
        return
    p = manifest.params
    what = f"{manifest.kind} index of {manifest.documents:,} documents ({p['layout']}"
    what += f", Lucene {p['lucene_version']})" if "lucene_version" in p else f", {manifest.model})"
    click.echo(f"adopted {path}: {what}; {TEXT.get(p.get('text', 'none'), '')}", err=True)
    if p.get("layout") == "anserini-lucene" and not p.get("analyzer_checked"):
        click.echo(
            "rarx: warning: no stored text to check the analyzer against; rarx searches with "
            "Anserini's default English analyzer, right only if the index was built with it",
            err=True,
        )
