"""Optional packages (pandas, xarray, tqdm), imported only when used.

``import brine`` needs only numpy and h5py; the notebook conveniences use
pandas, xarray and tqdm when they are installed and degrade (a list instead of
a DataFrame, no progress bar) or say what to install when they are not.
"""

from __future__ import annotations

import importlib
from types import ModuleType
from typing import Any, Iterable, Iterator, Optional, TypeVar

__all__ = ["optional_module", "require_module", "progress", "ByteBar", "PROGRESS_MIN_BYTES",
           "PROGRESS_MIN_ITEMS"]

T = TypeVar("T")

#: With ``progress=None``, a bar is shown for reads of at least this many bytes...
PROGRESS_MIN_BYTES = 256 << 20
#: ...or for at least this many checkpoints.
PROGRESS_MIN_ITEMS = 100


def optional_module(name: str) -> Optional[ModuleType]:
    """The module, or None when it is not installed (or blocked with
    ``sys.modules[name] = None``)."""
    try:
        return importlib.import_module(name)
    except ImportError:
        return None


def require_module(name: str, purpose: str, debian: str) -> ModuleType:
    """The module, or ImportError saying which package provides it."""
    module = optional_module(name)
    if module is None:
        raise ImportError(f"{purpose} needs {name}, which is not installed "
                          f"(Debian: apt-get install {debian}; pip: pip install {name})")
    return module


def _tqdm_class() -> Any:
    """tqdm's notebook widget when ipywidgets is there, its text bar otherwise
    (tqdm.auto would warn in a notebook without ipywidgets)."""
    if optional_module("tqdm") is None:
        return None
    if optional_module("ipywidgets") is not None:
        auto = optional_module("tqdm.auto")
        if auto is not None:
            return auto.tqdm
    return importlib.import_module("tqdm").tqdm


def progress(items: Iterable[T], *, total: int, weight: int = 0, desc: str = "",
             unit: str = "it", enabled: Optional[bool] = None) -> Iterator[T]:
    """Iterates over items, with a tqdm bar when asked or when the work is large.

    Parameters
    ----------
    items : iterable
    total : int
        Number of items.
    weight : int
        Bytes the iteration reads, for the automatic choice.
    enabled : bool or None
        True: a bar (when tqdm is installed); False: none; None: a bar when
        tqdm is installed and there are at least :data:`PROGRESS_MIN_ITEMS`
        items or :data:`PROGRESS_MIN_BYTES` bytes.
    """
    if enabled is None:
        enabled = total >= PROGRESS_MIN_ITEMS or weight >= PROGRESS_MIN_BYTES
    bar = _tqdm_class() if enabled and total > 0 else None
    if bar is None:
        yield from items
        return
    with bar(items, total=total, desc=desc, unit=unit) as wrapped:
        yield from wrapped


class ByteBar:
    """A tqdm bar counting bytes, or nothing (see :func:`progress` for enabled)."""

    def __init__(self, *, total: int, desc: str, enabled: Optional[bool]) -> None:
        if enabled is None:
            enabled = total >= PROGRESS_MIN_BYTES
        bar = _tqdm_class() if enabled else None
        self._bar = (bar(total=total, desc=desc, unit="B", unit_scale=True, unit_divisor=1024)
                     if bar is not None else None)

    @property
    def active(self) -> bool:
        """True when a bar is shown: then readers report bytes in blocks."""
        return self._bar is not None

    def update(self, nbytes: int) -> None:
        if self._bar is not None:
            self._bar.update(nbytes)

    def __enter__(self) -> "ByteBar":
        return self

    def __exit__(self, *exc_info: Any) -> None:
        if self._bar is not None:
            self._bar.close()
