"""Add the ``"report"`` section (rarx.eval.report_schema) to results files already on disk,
from the figures they hold, through the same function each benchmark calls when it saves.

    python benchmarks/reportable.py benchmarks/results/*.json benchmarks/results/report/*.json
    python benchmarks/reportable.py --check benchmarks/results/*.json   # write nothing

A file's benchmark is the script whose name is the longest prefix of the file's name
(``train_mcr-qwen.json`` -> ``train_mcr.py``; ``splade_speed.json`` comes from
``splade_cacm.py``, ``mcr_ct2_arc-*.json`` from ``mcr_paired.py``); rarx's own envelopes
(kind retrieval, mcr, qa, adaptive) get theirs from rarx.eval.report_kinds. Only the
section is added: the file's text is kept byte for byte before it (a section written
earlier is replaced), and the file is checked to read back with every other key unchanged
before it is renamed into place.
"""

from __future__ import annotations

import argparse
import importlib
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from rarx.errors import RarxError  # noqa: E402
from rarx.eval.report_schema import KEY, parse  # noqa: E402
from rarx.io.atomic import atomic_write  # noqa: E402

HERE = Path(__file__).resolve().parent
# files a script writes under another name, or whose script was folded into another
ALSO = {"splade_speed": "splade_cacm", "mcr_ct2_arc": "mcr_paired"}
NOT_BENCHMARKS = {"common", "reportable", "run_all", "corpus_gen", "pipeline_common"}


def script_of(path: Path) -> str | None:
    """The benchmark script whose name is the longest prefix of the file's name."""
    stem = path.stem
    for old, script in ALSO.items():
        if stem == old or stem.startswith((old + "_", old + "-")):
            return script
    names = sorted((p.stem for p in HERE.glob("*.py") if p.stem not in NOT_BENCHMARKS),
                   key=len, reverse=True)  # fmt: skip
    for name in names:
        if stem == name or stem.startswith((name + "_", name + "-")):
            return name
    return None


def function_for(path: Path, data: dict[str, Any]) -> Callable[[dict], Any]:
    """The script's ``reportable``; for a file of rarx's own kinds (``rarx eval`` or a
    script's ``rarx eval report`` file) the kind's function, unless the script writes that
    kind in a layout of its own (``OWN_LAYOUT = True``)."""
    from rarx.eval.report_kinds import KINDS

    name = script_of(path)
    module = importlib.import_module(name) if name else None
    fn = getattr(module, "reportable", None)
    kind = data.get("kind")
    if kind in KINDS and (fn is None or not getattr(module, "OWN_LAYOUT", False)):
        return KINDS[kind]
    if fn is None:
        raise RarxError(f"{path}: no benchmark script writes it (looked for the longest script "
                        f"name that prefixes {path.stem!r}) or the script has no reportable(); "
                        "add one, or name the script in ALSO")  # fmt: skip
    return fn


def section_text(section: dict[str, Any]) -> str:
    """The section as the last top-level key of a file indented by 2."""
    body = json.dumps(section, indent=2, ensure_ascii=False)
    return f',\n  "{KEY}": ' + body.replace("\n", "\n  ")


def with_section(text: str, section: dict[str, Any]) -> str:
    """``text`` (a JSON object) with the section added as its last key, or replacing
    the one this script added before; every other byte as it was."""
    marker = f',\n  "{KEY}": '
    head = text.rstrip()
    if marker in head:  # written by this script: the section is the tail of the object
        head = head[: head.rindex(marker)] + "\n}"
    if not head.endswith("}"):
        raise RarxError("expected a JSON object ending in '}'")
    return head[:-1].rstrip() + section_text(section) + "\n}\n"


# a measurement's figures that may come from data outside the file (chance from RAR-b's
# MCR files): a rebuild without that data must not drop them
FIGURES = ("value", "ci95", "n", "chance", "p_value")


def lost_figures(stored: Any, built: dict[str, Any]) -> list[str]:
    """The figures the stored section has and the rebuilt one lacks, per measurement
    (system / dataset / measure): what this machine could not compute again."""
    if not isinstance(stored, dict):
        return []

    def figures(section: dict[str, Any]) -> dict[tuple, dict[str, Any]]:
        return {(s.get("key"), m.get("system"), m.get("dataset"), m.get("measure")): m
                for s in section.get("sections") or []
                for m in s.get("measurements") or []}  # fmt: skip

    now = figures(built)
    return [f"{where[1]} / {where[2]} / {where[3]}: {name}"
            for where, m in figures(stored).items() if where in now
            for name in FIGURES
            if m.get(name) is not None and now[where].get(name) is None]  # fmt: skip


def backfill(path: Path, check: bool) -> str:
    text = path.read_text(encoding="utf-8")
    data = json.loads(text)
    if not isinstance(data, dict):
        raise RarxError(f"{path}: expected a JSON object")
    old = {k: v for k, v in data.items() if k != KEY}
    section = function_for(path, data)(old).as_json()
    parse(section, path)  # what `rarx eval report` will read
    if data.get(KEY) == section:  # current wherever it sits (a resumed run may add keys after)
        return "unchanged"
    lost = lost_figures(data.get(KEY), section)
    if lost:
        raise RarxError(
            f"{path}: rebuilt here, the section would lose {len(lost)} figure(s) the file "
            f"holds ({'; '.join(lost[:3])}{'; ...' if len(lost) > 3 else ''}): the data "
            "they come from is not on this machine (RAR-b MCR files for chance: set "
            "RARX_DATA to the shared data folder); nothing written"
        )
    new = with_section(text, section)
    back = json.loads(new)
    if {k: v for k, v in back.items() if k != KEY} != old or back[KEY] != section:
        raise RarxError(f"{path}: adding the section would change other keys; nothing written")
    if not check:
        with atomic_write(path) as f:
            f.write(new)
    return "checked" if check else "written"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("files", nargs="+", type=Path)
    ap.add_argument("--check", action="store_true", help="Build and check; write nothing.")
    args = ap.parse_args()
    failed = 0
    for path in args.files:
        try:
            what = backfill(path, args.check)
        except (RarxError, KeyError, TypeError, ValueError) as exc:
            failed += 1
            what = f"FAILED: {type(exc).__name__}: {exc}"
        print(f"{path}: {what}")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
