"""Exceptions raised by the brine package.

Every exception subclasses :class:`BrineError`, and the ones about a bad file
also subclass :class:`ValueError`, as h5py and numpy do for bad input.  Each
message names the file and, where there is one, the variable.
"""

from __future__ import annotations

from typing import Optional

__all__ = [
    "BrineError",
    "CorruptCheckpointError",
    "UnsafeCheckpointError",
    "UnsupportedVersionError",
]


class BrineError(Exception):
    """Base class of every error the brine package raises itself.

    Parameters
    ----------
    message : str
        The full message; it already names the file and the variable.
    path : str, optional
        The checkpoint file concerned, when there is one.
    variable : str, optional
        The variable concerned (its hierarchical name), when there is one.
    """

    def __init__(self, message: str, *, path: Optional[str] = None,
                 variable: Optional[str] = None) -> None:
        super().__init__(message)
        self.path = path
        self.variable = variable


class CorruptCheckpointError(BrineError, ValueError):
    """A checkpoint file is damaged or does not follow the format.

    Raised for a file that is not HDF5, a missing dataset or attribute, a
    CRC-32 or fletcher32 checksum mismatch, a malformed pickle stream, a buffer
    count that differs from the stream's, or a dataset whose type or shape
    disagrees with the array the stream describes.
    """


class UnsafeCheckpointError(CorruptCheckpointError):
    """The pickle stream references a global the format does not allow.

    Allowed are ``numpy.ndarray``, ``builtins.complex`` and numpy's own array,
    dtype and scalar reconstructors (docs/format.md, section 3.3).  Nothing
    from the stream has been executed when this is raised.
    """


class UnsupportedVersionError(BrineError, ValueError):
    """The checkpoint was written in a newer format than this reader knows.

    Attributes
    ----------
    found : int
        The file's ``brine_format``.
    supported : int
        The newest format this reader knows.
    """

    def __init__(self, message: str, *, path: Optional[str] = None,
                 variable: Optional[str] = None, found: Optional[int] = None,
                 supported: Optional[int] = None) -> None:
        super().__init__(message, path=path, variable=variable)
        self.found = found
        self.supported = supported
