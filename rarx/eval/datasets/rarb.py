"""RAR-b's Full sets as published: one Hugging Face dataset repository per task,
``RAR-b/<task>``, holding ``corpus.jsonl``, ``queries.jsonl`` and ``qrels/test.tsv``
(a BEIR folder; qrels with a header row) beside a loading script ``<task>.py``.

``rarx datasets download rarb/<task>`` fetches those three files (never the script)
with ``huggingface_hub`` at the revision MTEB pins where it pins one, and writes
RAR-b's instruction for the task as ``instruction.txt``. A folder cloned by other means
(``git clone https://huggingface.co/datasets/RAR-b/<task>``) loads as is: its task, and
so its instruction, is recognised from the loading script's name or the folder's name.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from rarx.errors import RarxError

HF_ORG = "RAR-b"
FILES = ("corpus.jsonl", "queries.jsonl", "qrels/test.tsv")


@dataclass(frozen=True)
class RarbTask:
    name: str  # the repository name under RAR-b/ (RAR-b's own spelling)
    instruction: str  # RAR-b's task_to_instruction (rarb/dataset_utils.py)
    revision: str | None = None  # the commit MTEB's task pins, where we know it


_CONTEXT = "Given the following context and question, retrieve the correct answer."
_QUESTION = "Given the following question, retrieve the correct answer."
_FACTS = "Given the following question and facts, retrieve the correct answer."
_ALL = "Given the following question, facts and contexts, retrieve the correct answer."
TASKS = {t.name: t for t in (
    RarbTask("alphanli", "Given the following start and end of a story, retrieve a possible "
             "reason that leads to the end.", "303f40ef3d50918d3dc43577d33f2f7344ad72c1"),
    RarbTask("hellaswag", "Given the following unfinished context, retrieve the most plausible "
             "ending to finish it.", "a5c990205e017d10761197ccab3000936689c3ae"),
    RarbTask("winogrande", "Given the following sentence, retrieve an appropriate answer to fill "
             "in the missing underscored part.", "f74c094f321077cf909ddfb8bccc1b5912a4ac28"),
    RarbTask("piqa", "Given the following goal, retrieve a possible solution.",
             "bb30be7e9184e6b6b1d99bbfe1bb90a3a81842e6"),
    RarbTask("siqa", _CONTEXT, "4ed8415e9dc24060deefc84be59e2db0aacbadcc"),
    RarbTask("quail", _CONTEXT, "1851bc536f8bdab29e03e29191c4586b1d8d7c5a"),
    RarbTask("ARC-Challenge", "Retrieve the answer to the question.",
             "c481e0da3dcbbad8bce7721dea9085b74320a0a3"),
    RarbTask("spartqa", "Given the following spatial reasoning question, retrieve the right "
             "answer.", "9ab3ca3ccdd0d43f9cd6d346a363935d127f4f45"),
    RarbTask("TempReason-l1", "Given the following question about time, retrieve the correct "
             "answer.", "9097e99aa8c9d827189c65f2e11bfe756af439f6"),
    RarbTask("TempReason-l2-pure", _QUESTION, "27668949b97bfb178901e0cf047cbee805305dc1"),
    RarbTask("TempReason-l2-fact", _FACTS, "13758bcf978613b249d0de4d0840f57815122bdf"),
    RarbTask("TempReason-l2-context", _ALL),
    RarbTask("TempReason-l3-pure", _QUESTION, "68fba138e7e63daccecfbdad0a9d2714e56e34ff"),
    RarbTask("TempReason-l3-fact", _FACTS),
    RarbTask("TempReason-l3-context", _ALL),
    RarbTask("math-pooled", "Retrieve the answer for the following math problem.",
             "2393603c0221ff52f448d12dd75f0856103c6cca"),
    RarbTask("humanevalpack-mbpp-pooled", "Retrieve the answer for the following coding "
             "problem.", "25f7d11a7ac12dcbb8d3836eb2de682b98c825e4"),
)}  # fmt: skip
_BY_LOWER = {name.lower(): t for name, t in TASKS.items()}


def rarb_task(name: str) -> RarbTask:
    """A task by its repository name (any letter case), or an error listing them."""
    task = _BY_LOWER.get(name.lower())
    if task is None:
        raise RarxError(
            f"unknown RAR-b task {name!r}; RAR-b's Full sets are: "
            + ", ".join(f"rarb/{n}" for n in TASKS)
        )
    return task


def identify_task(folder: Path) -> RarbTask | None:
    """The RAR-b task a folder holds: its loading script ``<task>.py`` (as cloned from
    the hub, whatever the folder is called), else the folder's own name."""
    for path in folder.glob("*.py"):
        if path.stem in TASKS:
            return TASKS[path.stem]
    return _BY_LOWER.get(folder.name.lower())


def default_target(task: RarbTask) -> Path:
    return Path("data") / "rarb" / task.name


def _offline_error(task: RarbTask, target: Path, exc: BaseException) -> RarxError:
    from rarx.eval.datasets.beir import LAYOUT

    repo = f"{HF_ORG}/{task.name}"
    at = f" and `git checkout {task.revision}` in it" if task.revision else ""
    reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return RarxError(
        f"cannot download {repo} from the Hugging Face hub ({reason}). Offline? On a machine "
        f"with network run `git clone https://huggingface.co/datasets/{repo}`{at} and copy "
        f"the folder to {target}; {LAYOUT}. Then pass --dataset {target}"
    )


def download_rarb(name: str, out: Path | None = None) -> Path:
    """Fetch ``RAR-b/<name>`` into ``out`` (default ``data/rarb/<name>``), atomically:
    the folder appears complete, with ``instruction.txt`` and ``rarx_source.json``, or
    not at all."""
    from rarx.errors import require
    from rarx.eval.datasets.beir import is_beir_folder

    task = rarb_task(name)
    target = Path(out) if out is not None else default_target(task)
    if is_beir_folder(target):
        return target
    hub = require("huggingface_hub", "dense")
    repo = f"{HF_ORG}/{task.name}"
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target.parent, prefix=f".{target.name}.download-") as tmp:
        folder = Path(tmp) / task.name
        try:
            info = hub.HfApi().dataset_info(repo, revision=task.revision)
            listed = {s.rfilename for s in info.siblings or ()}
            missing = [f for f in FILES if f not in listed]
            if missing:
                raise RarxError(
                    f"{repo}@{info.sha} lacks {', '.join(missing)}; rarx expects RAR-b's "
                    f"published layout ({', '.join(FILES)})"
                )
            hub.snapshot_download(
                repo, repo_type="dataset", revision=info.sha, local_dir=folder,
                allow_patterns=[*FILES, "instruction.txt"],
            )  # fmt: skip
        except RarxError:
            raise
        except Exception as exc:  # hub errors: connection, not found, gated, HTTP
            raise _offline_error(task, target, exc) from None
        for f in FILES:
            if not (folder / f).is_file():
                raise RarxError(f"{repo}@{info.sha}: {f} did not arrive; nothing was written")
        shutil.rmtree(folder / ".cache", ignore_errors=True)  # huggingface_hub's bookkeeping
        if not (folder / "instruction.txt").is_file():
            (folder / "instruction.txt").write_text(task.instruction + "\n", encoding="utf-8")
        source = {"repository": repo, "revision": info.sha, "files": list(FILES)}
        (folder / "rarx_source.json").write_text(json.dumps(source, indent=2) + "\n")
        if target.exists():
            shutil.rmtree(target)
        shutil.move(str(folder), target)
    return target
