"""Registration by naming convention: import every public module of a package, once.

Registries (ops, passes, import rules, kernel generators) are filled by
decorators that run when their module is imported.  Instead of a hand-kept
list of those modules, a registry owns a ``Discovery`` of its package::

    _DISCOVERY = Discovery("passes")

    def get_pass(name):
        _DISCOVERY.ensure()        # imports passes/<every module not starting with "_">
        ...

so a new module dropped into the folder registers itself with no other edit.
Helper modules that register nothing may start with an underscore (they are
then skipped), or are simply imported with the rest.

``ensure`` is safe to call from several threads at once: the first caller
imports under a lock and the others wait for it; the package counts as loaded
only after every import finished.  A call made by the importing thread itself
(a module that asks its registry while being imported) returns at once.  All
packages share one (re-entrant) lock, so two threads discovering different
packages whose modules import each other cannot wait on each other.
"""

from __future__ import annotations

import importlib
import pkgutil
import threading
from typing import Optional

_LOCK = threading.RLock()


class Discovery:
    """Imports every module of ``package`` whose name does not start with ``_``."""

    def __init__(self, package: str) -> None:
        self.package = package
        self._loaded = False
        self._loader: Optional[int] = None  # the thread importing right now

    def module_names(self) -> list[str]:
        """The package's public modules (and subpackages), in name order, as found on ``__path__`` now."""
        pkg = importlib.import_module(self.package)
        names = {m.name for m in pkgutil.iter_modules(list(pkg.__path__)) if not m.name.startswith("_")}
        return sorted(names)

    @property
    def loaded(self) -> bool:
        return self._loaded

    def ensure(self) -> None:
        """Import every public module of the package (once; later calls return at once)."""
        if self._loaded:
            return
        with _LOCK:
            if self._loaded or self._loader == threading.get_ident():
                return
            self._loader = threading.get_ident()
            try:
                for name in self.module_names():
                    importlib.import_module(f"{self.package}.{name}")
                self._loaded = True
            finally:
                self._loader = None

    def reset(self) -> None:
        """Scan the folder again at the next ``ensure`` (modules already imported are not re-run)."""
        with _LOCK:
            self._loaded = False
