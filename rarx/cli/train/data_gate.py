"""``rarx train data gate``: Adapt-LLM instances from the base model's closed-book answers."""

from __future__ import annotations

from pathlib import Path

import click

from rarx.cli.options import quiet_option


@click.command("gate")
@click.option("--llm", "llm_name", default="smollm2-135m", show_default=True,
              help="The base model that answers closed-book (the one to be trained).")  # fmt: skip
@click.option("--questions", multiple=True, required=True,
              help="Question sources, repeatable or comma-separated: sciq, squad, boolq "
              "(with passages), nq-open, triviaqa (closed-book signal only). An answer is "
              "correct when it contains a gold one; on yes/no questions (boolq) when its "
              "first yes/no word is the gold one.")  # fmt: skip
@click.option("--out", type=click.Path(path_type=Path), required=True, help="Output folder.")
@click.option("--limit", type=click.IntRange(min=1), help="Training questions per source.")
@click.option("--dev-limit", type=click.IntRange(min=1),
              help="Dev questions per source [default: all, or a quarter of --limit].")  # fmt: skip
@click.option("--max-new-tokens", type=click.IntRange(min=1), default=24, show_default=True,
              help="Closed-book answer length (the gate's own default).")  # fmt: skip
@click.option("--passage-tokens", type=click.IntRange(min=1), default=150, show_default=True,
              help="Gold passages are cut to this many tokens (the generate stage's "
              "default).")  # fmt: skip
@click.option("--batch-size", type=click.IntRange(min=1), default=16, show_default=True)
@click.option("--device", default="cpu", show_default=True)
@quiet_option
def gate(llm_name: str, questions: tuple[str, ...], out: Path, limit: int | None,
         dev_limit: int | None, max_new_tokens: int, passage_tokens: int, batch_size: int,
         device: str, quiet: bool) -> None:  # fmt: skip
    """Ask the base model every train and dev question closed-book; correct → question
    → answer, wrong → question → <RET> and question + gold passage → answer. Test
    questions (rarx eval adaptive's) are never used."""
    from rarx.llm import load_llm
    from rarx.train.data.gate import build_gate_data, parse_sources

    sources = parse_sources(questions)
    llm = load_llm(llm_name, device=device, batch_size=batch_size)
    s = build_gate_data(llm, sources, out, limit, dev_limit, max_new_tokens, passage_tokens,
                        batch_size, quiet)  # fmt: skip
    for split in ("train", "dev"):
        counts = ", ".join(f"{k} {v}" for k, v in sorted(s.instances.get(split, {}).items()))
        acc = ", ".join(f"{k} {v:.3f}" for k, v in s.closed_book_accuracy.get(split, {}).items())
        click.echo(f"{split}: {sum(s.questions[split].values())} questions ({counts}); "
                   f"closed-book accuracy {acc}")  # fmt: skip
    click.echo(f"wrote {out} in {s.seconds:.0f} s")
