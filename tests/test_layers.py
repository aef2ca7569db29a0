"""The package's shape: layers point one way, and every module imports on its own."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

import rarx

ROOT = Path(rarx.__file__).parent

# What each layer may import (besides the standard library and third-party packages);
# "core" is the package's top-level modules (types, errors, text, progress).
BELOW = {
    "core": set(),
    "io": {"core"},
    "models": {"core", "io"},
    "llm": {"core", "io", "models"},
    "index": {"core", "io", "models"},
    "rerank": {"core", "io", "models", "llm", "index"},
    "stages": {"core", "io", "models", "llm", "index", "rerank"},
    "pipeline": {"core", "io", "models", "llm", "index", "rerank", "stages"},
    "eval": {"core", "io", "models", "llm", "index", "rerank", "stages", "pipeline"},
    "train": {"core", "io", "models", "llm", "index", "rerank", "stages", "pipeline", "eval"},
}
TOP = set(BELOW) | {"train", "eval"}
BELOW["distributed"] = TOP
BELOW["serve"] = TOP | {"distributed"}
BELOW["client"] = TOP | {"distributed", "serve"}
BELOW["integrations"] = BELOW["client"] | {"client"}
BELOW["cli"] = BELOW["integrations"] | {"integrations"}
MODULE_LAYERS = {"client"}  # top-level modules that are a layer of their own
# `rarx.Pipeline` is the library's front door, imported on first use only.
EXEMPT = {("rarx", "rarx.pipeline")}


def modules() -> list[str]:
    names = []
    for path in sorted(ROOT.rglob("*.py")):
        parts = path.relative_to(ROOT.parent).with_suffix("").parts
        names.append(".".join(parts[:-1] if parts[-1] == "__init__" else parts))
    return names


def layer(module: str) -> str:
    parts = module.split(".")
    if len(parts) == 2 and parts[1] in MODULE_LAYERS:
        return parts[1]
    if len(parts) > 2 or (len(parts) == 2 and (ROOT / parts[1]).is_dir()):
        return parts[1]
    return "core"


def source_of(module: str) -> tuple[str, list[str]]:
    """The module's source and the package its relative imports start from."""
    parts = module.split(".")
    path = ROOT.parent.joinpath(*parts)
    path = path / "__init__.py" if path.is_dir() else path.with_suffix(".py")
    return path.read_text(encoding="utf-8"), parts if path.name == "__init__.py" else parts[:-1]


def rarx_imports(source: str, package: list[str]) -> set[str]:
    """Every rarx module the source imports, at the top or inside a function."""
    found = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = package[: len(package) - node.level + 1] if node.level else []
            found.add(".".join([*base, *(node.module or "").split(".")]).strip("."))
    return {name for name in found if name == "rarx" or name.startswith("rarx.")}


def upward(module: str, source: str, package: list[str]) -> list[str]:
    mine = layer(module)
    wrong = []
    for target in sorted(rarx_imports(source, package)):
        theirs = layer(target) if target != "rarx" else "core"
        if theirs != mine and theirs not in BELOW[mine] and (module, target) not in EXEMPT:
            wrong.append(f"{module} ({mine}) imports {target} ({theirs})")
    return wrong


def test_layer_table_covers_every_package() -> None:
    packages = {p.name for p in ROOT.iterdir() if p.is_dir() and (p / "__init__.py").exists()}
    missing = sorted((packages | MODULE_LAYERS) - set(BELOW))
    assert not missing, f"add {missing} to the layer table"


def test_no_module_imports_a_layer_above_it() -> None:
    wrong = [w for m in modules() for w in upward(m, *source_of(m))]
    assert not wrong, "\n".join(wrong)


def test_the_layer_check_catches_upward_and_lazy_imports() -> None:
    stage = ["rarx", "stages"]
    assert upward("rarx.stages.gate", "from rarx.pipeline.params import LLMRef", stage) == [
        "rarx.stages.gate (stages) imports rarx.pipeline.params (pipeline)"
    ]
    lazy = "def f():\n    from ..eval.qa import normalize_answer\n"
    assert upward("rarx.stages.demos", lazy, stage) == [
        "rarx.stages.demos (stages) imports rarx.eval.qa (eval)"
    ]
    assert upward("rarx.stages.gate", "from rarx.llm import LLMRef", stage) == []
    assert upward("rarx.client", "from rarx.integrations.source import Retrieved", ["rarx"]) == [
        "rarx.client (client) imports rarx.integrations.source (integrations)"
    ]


def private_imports(module: str, source: str, package: list[str]) -> list[str]:
    """Names with a leading underscore that ``module`` imports from another rarx module
    (a private module's public names are fine: ``from ._llm import scorer_llm``)."""
    wrong = []
    for node in ast.walk(ast.parse(source)):
        if not isinstance(node, ast.ImportFrom):
            continue
        base = package[: len(package) - node.level + 1] if node.level else []
        target = ".".join([*base, *(node.module or "").split(".")]).strip(".")
        if not target.startswith("rarx") or target == module:
            continue
        for alias in node.names:
            if alias.name.startswith("_") and not alias.name.startswith("__"):
                wrong.append(f"{module} imports {target}.{alias.name}")
    return wrong


def test_no_module_imports_another_modules_private_names() -> None:
    wrong = [w for m in modules() for w in private_imports(m, *source_of(m))]
    assert not wrong, "make them public in a module named for what they are:\n" + "\n".join(wrong)
    found = private_imports("rarx.index.impact", "from .dense import _DocStore", ["rarx", "index"])
    assert found == ["rarx.index.impact imports rarx.index.dense._DocStore"]


# Each module imported in a child forked from a parent that has imported no rarx module:
# a fresh interpreter's view (circular imports show) at a fraction of the cost. The parent
# first imports the other modules rarx's modules import at their top (numpy, click,
# fastapi, llama_index, ...): every child would import them again, and having them
# already changes nothing a child's rarx imports do or fail to do.
_IMPORT_EACH = """
import gc, importlib, os, sys
for name in filter(None, sys.argv[1].split(",")):
    try:
        importlib.import_module(name)
    except Exception:
        pass  # the child that imports it meets the same error
gc.freeze()  # the children's collections leave the parent's objects (and pages) alone
preloaded = sorted(m for m in sys.modules if m == "rarx" or m.startswith("rarx."))
if preloaded:
    sys.exit(f"the preloaded modules imported rarx modules: {preloaded}")
failed, running = [], []  # running: (pid, read end, name), one child per core at a time

def reap():
    pid, r, name = running.pop(0)
    message = os.read(r, 4096).decode()  # a child writes at most 2,000 bytes, then exits
    os.close(r)
    if os.waitpid(pid, 0)[1] != 0:
        failed.append(message or f"{name}: child failed")

for name in sys.argv[2:]:
    if len(running) >= (os.cpu_count() or 1):
        reap()
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(r)
        try:
            importlib.import_module(name)
            os._exit(0)
        except BaseException as exc:
            os.write(w, f"{name}: {type(exc).__name__}: {exc}".encode()[:2000])
            os._exit(1)
    os.close(w)
    running.append((pid, r, name))
while running:
    reap()
print("\\n".join(failed))
sys.exit(1 if failed else 0)
"""


def top_level_imports() -> list[str]:
    """The modules other than rarx's that rarx's modules import at their top level."""
    found: set[str] = set()
    for module in modules():
        for node in ast.parse(source_of(module)[0]).body:
            if isinstance(node, ast.Import):
                found |= {a.name for a in node.names}
            elif isinstance(node, ast.ImportFrom) and not node.level and node.module:
                found.add(node.module)
    return sorted(n for n in found if n.split(".")[0] not in ("rarx", "__future__"))


@pytest.mark.skipif(not hasattr(__import__("os"), "fork"), reason="needs fork")
def test_every_module_imports_on_its_own() -> None:
    out = subprocess.run(
        [sys.executable, "-c", _IMPORT_EACH, ",".join(top_level_imports()), *modules()],
        capture_output=True, text=True, cwd=ROOT.parent, timeout=300,
    )  # fmt: skip
    assert out.returncode == 0, out.stdout + out.stderr
