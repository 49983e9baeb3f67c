"""Imports deferred until used; this module runs before anything else of stackcheck.

The Docker SDK imports paramiko as it loads (for ``ssh://`` engines), which
costs about 130 ms (measured, ``python -X importtime``: a third of ``import
docker``) in every run, remote engine or not. Until something reads one of its
attributes, ``paramiko`` is a stand-in module here; the first read imports the
real one, which then serves every later ``import paramiko``.

(``importlib.util.LazyLoader`` does not help on Python 3.11: ``import`` itself
reads the module's ``__spec__``, which loads it.)
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
import threading
import types
from typing import Any

_LOCK = threading.RLock()


class _Deferred(types.ModuleType):
    """Stands in for a module until one of its attributes is read."""

    def __getattr__(self, name: str) -> Any:  # only for attributes not set
        with _LOCK:
            if sys.modules.get(self.__name__) is self:
                del sys.modules[self.__name__]
            real = importlib.import_module(self.__name__)
            self.__dict__.update(real.__dict__)
        return getattr(real, name)


def defer(name: str) -> None:
    """Let ``import name`` cost nothing until the module is used (if it is installed)."""
    with _LOCK:
        if name in sys.modules or importlib.util.find_spec(name) is None:
            return
        sys.modules[name] = _Deferred(name)


defer("paramiko")
