"""The restricted pickle decoder.

Two steps keep a checkpoint from running code:

1. :func:`scan_stream` walks the stream with :func:`pickletools.genops`, which
   decodes opcodes without executing any, and refuses globals and opcodes
   outside format section 3.3 before anything is unpickled.
2. :class:`RestrictedUnpickler` resolves only ``numpy ndarray`` and
   ``builtins complex``, and ``numpy ndarray`` resolves to a factory supplied by
   the caller, which checks the arguments against the file before it builds an
   array.  This also covers globals the scan cannot see statically
   (``STACK_GLOBAL`` fed from the memo).
"""

from __future__ import annotations

import io
import pickle
import pickletools
import reprlib
from typing import Any, Callable, Iterable, List, Tuple

import numpy as np

from ._errors import CorruptCheckpointError, UnsafeCheckpointError

__all__ = ["ALLOWED_GLOBALS", "DTYPE_STRINGS", "MAX_NEST", "ArraySpec", "scan_stream",
           "unpickle_state", "collect_arrays"]

#: The only globals a checkpoint's stream may reference (format section 3.3).
ALLOWED_GLOBALS = frozenset({("numpy", "ndarray"), ("builtins", "complex")})

#: The explicit numpy dtype strings of format section 2.3, one per brine_dtype.
DTYPE_STRINGS = frozenset({
    "|b1", "|i1", "<i2", "<i4", "<i8", "|u1", "<u2", "<u4", "<u8",
    "<f4", "<f8", "<c8", "<c16",
})

# What brine writes plus what the C library's strict decoder also accepts
# (format section 3.3).  Anything else is a corrupt checkpoint, so the Python
# reader and brine_restore() agree on which files are valid.
_ACCEPTED_OPCODES = frozenset({
    "PROTO", "STOP", "FRAME",
    "MARK", "EMPTY_DICT", "SETITEM", "SETITEMS", "EMPTY_LIST", "APPEND", "APPENDS",
    "EMPTY_TUPLE", "TUPLE1", "TUPLE2", "TUPLE3", "TUPLE",
    "NONE", "NEWTRUE", "NEWFALSE", "BININT", "BININT1", "BININT2", "LONG1", "LONG4",
    "BINFLOAT", "SHORT_BINUNICODE", "BINUNICODE", "BINUNICODE8",
    "SHORT_BINBYTES", "BINBYTES", "BINBYTES8",
    "MEMOIZE", "BINPUT", "LONG_BINPUT", "BINGET", "LONG_BINGET",
    "GLOBAL", "STACK_GLOBAL", "REDUCE", "NEXT_BUFFER",
})

_STRING_OPCODES = frozenset({"SHORT_BINUNICODE", "BINUNICODE", "BINUNICODE8", "UNICODE"})

#: How deep values may nest (dicts, lists, tuples), as the C decoder's
#: BRINE_PICKLE_MAX_NEST.
MAX_NEST = 256

#: numpy's limit on dimensions (NPY_MAXDIMS).
_MAX_NDIM = 32

_short = reprlib.Repr()
_short.maxlevel, _short.maxstring, _short.maxother = 3, 40, 40


def short_repr(value: Any) -> str:
    """repr() bounded in length and depth: safe on hostile, deeply nested values."""
    return _short.repr(value)


def scan_stream(stream: bytes, *, path: str) -> int:
    """Checks a pickle stream without executing it and counts its buffers.

    Parameters
    ----------
    stream : bytes
        The content of ``/brine/pickle``.
    path : str
        The checkpoint file, for messages.

    Returns
    -------
    int
        The number of ``NEXT_BUFFER`` opcodes.

    Raises
    ------
    UnsafeCheckpointError
        A ``GLOBAL`` or ``STACK_GLOBAL`` names anything but the allowed globals.
    CorruptCheckpointError
        An opcode outside format section 3.3, a truncated stream, a length
        (string, bytes, FRAME) beyond the end of the stream, a stream
        without ``STOP`` or with bytes after it.
    """
    buffers = 0
    strings: list = []
    unsafe = None
    problem = None
    end = None
    ops = pickletools.genops(stream)
    while True:
        try:
            op, arg, pos = next(ops)
        except StopIteration:
            break
        except ValueError as exc:  # genops: unknown opcode, truncated argument, no STOP
            problem = problem or f"malformed pickle stream ({exc})"
            break
        name = op.name
        if name in ("GLOBAL", "INST"):
            module, _, qualname = str(arg).partition(" ")
            unsafe = unsafe or _unsafe_global(module, qualname)
        elif name == "STACK_GLOBAL" and len(strings) >= 2:
            unsafe = unsafe or _unsafe_global(strings[-2], strings[-1])
        elif name in _STRING_OPCODES:
            strings.append(arg)
        elif name == "NEXT_BUFFER":
            buffers += 1
        elif name == "FRAME" and pos + 9 + arg > len(stream) and problem is None:
            # genops does not check it; the unpickler would ask for arg bytes.
            problem = f"FRAME at byte {pos} claims {arg} bytes, beyond the end of the stream"
        if name not in _ACCEPTED_OPCODES and problem is None:
            problem = f"opcode {name} at byte {pos} is not allowed in a brine checkpoint"
        if name == "STOP":
            end = pos + 1
    if unsafe is not None:
        raise UnsafeCheckpointError(f"{path}: {unsafe}", path=path)
    if problem is None and end is not None and end != len(stream):
        problem = f"{len(stream) - end} bytes after the pickle stream's STOP"
    if problem is not None:
        raise CorruptCheckpointError(f"{path}: {problem}", path=path)
    return buffers


def _unsafe_global(module: str, name: str) -> "str | None":
    """Why the global module.name is refused, or None when it is allowed."""
    if (module, name) in ALLOWED_GLOBALS:
        return None
    return (f"the pickle stream references the global {module}.{name}; only numpy.ndarray "
            "and builtins.complex are allowed, nothing was executed")


class ArraySpec:
    """The validated arguments of one ``numpy.ndarray(...)`` call of the stream.

    Attributes
    ----------
    shape : tuple of int
        The logical shape.
    dtype : numpy.dtype
        The element type.
    order : str
        ``'C'`` or ``'F'``.
    buffer : object
        The out-of-band buffer object the stream passed.
    """

    __slots__ = ("shape", "dtype", "order", "buffer")

    def __init__(self, shape: Tuple[int, ...], dtype: np.dtype, order: str, buffer: Any) -> None:
        self.shape = shape
        self.dtype = dtype
        self.order = order
        self.buffer = buffer


def _parse_ndarray_args(args: tuple, *, path: str) -> ArraySpec:
    """Checks ``ndarray(shape, dtype_str, buffer, 0, None, order)`` (format 3.2).

    Nothing here allocates or calls numpy with the stream's values before they
    are checked: the shape has at most 32 non-negative int extents whose
    product in bytes fits in 63 bits, the dtype is one of brine's.
    """
    if len(args) != 6:
        raise CorruptCheckpointError(
            f"{path}: numpy.ndarray called with {len(args)} arguments, expected 6", path=path)
    shape, dtype_str, buffer, offset, strides, order = args
    if (type(shape) is not tuple or len(shape) > _MAX_NDIM
            or not all(type(n) is int and n >= 0 for n in shape)):
        raise CorruptCheckpointError(
            f"{path}: array shape {short_repr(shape)} is not a tuple of at most {_MAX_NDIM} "
            "non-negative ints", path=path)
    if len(shape) == 0:
        raise CorruptCheckpointError(f"{path}: array with an empty shape", path=path)
    if type(dtype_str) is not str or dtype_str not in DTYPE_STRINGS:
        raise CorruptCheckpointError(
            f"{path}: array dtype {short_repr(dtype_str)} is not a brine dtype", path=path)
    dtype = np.dtype(dtype_str)
    nbytes = dtype.itemsize
    for n in shape:
        nbytes *= n
    if nbytes >= 1 << 63:
        raise CorruptCheckpointError(
            f"{path}: array shape {short_repr(shape)} of {dtype_str} is larger than any "
            "array can be", path=path)
    if type(offset) is not int or offset != 0 or strides is not None:
        raise CorruptCheckpointError(
            f"{path}: array with offset {short_repr(offset)} and strides {short_repr(strides)}, "
            "expected 0 and None", path=path)
    if type(order) is not str or order not in ("C", "F"):
        raise CorruptCheckpointError(
            f"{path}: array order {short_repr(order)} is not 'C' or 'F'", path=path)
    return ArraySpec(shape, dtype, order, buffer)


def _complex(*args: Any) -> complex:
    # builtins.complex, restricted to the two real numbers brine writes.
    if len(args) != 2 or not all(type(x) in (int, float) for x in args):
        raise TypeError(f"complex called with {short_repr(args)}, expected two floats")
    return complex(*args)


class RestrictedUnpickler(pickle.Unpickler):
    """A :class:`pickle.Unpickler` that resolves only the two allowed globals.

    Parameters
    ----------
    file : binary file
        The stream.
    buffers : iterable
        The out-of-band buffers, in ``NEXT_BUFFER`` order.
    make_array : callable
        Called with an :class:`ArraySpec` for every ``numpy.ndarray(...)``
        call; its return value is what the stream gets.
    path : str
        The checkpoint file, for messages.
    """

    def __init__(self, file: Any, *, buffers: Iterable[Any],
                 make_array: Callable[[ArraySpec], Any], path: str) -> None:
        super().__init__(file, buffers=buffers)
        self._make_array = make_array
        self._path = path

    def find_class(self, module: str, name: str) -> Any:  # noqa: D102 (pickle's API)
        if (module, name) == ("numpy", "ndarray"):
            path, make_array = self._path, self._make_array

            def ndarray(*args: Any) -> Any:
                return make_array(_parse_ndarray_args(args, path=path))
            return ndarray
        if (module, name) == ("builtins", "complex"):
            return _complex
        raise UnsafeCheckpointError(f"{self._path}: {_unsafe_global(module, name)}",
                                    path=self._path)

    def persistent_load(self, pid: Any) -> Any:  # noqa: D102 (pickle's API)
        raise CorruptCheckpointError(f"{self._path}: persistent id in the pickle stream",
                                     path=self._path)


def unpickle_state(stream: bytes, *, buffers: Iterable[Any],
                   make_array: Callable[[ArraySpec], Any], path: str) -> dict:
    """Decodes a checked stream (see :func:`scan_stream`) into the state dict.

    Raises
    ------
    UnsafeCheckpointError, CorruptCheckpointError
        As raised by ``make_array`` or the restricted globals, or a
        :class:`CorruptCheckpointError` for any failure of the decoder itself
        and for a value that is not a dict.
    """
    unpickler = RestrictedUnpickler(io.BytesIO(stream), buffers=buffers,
                                    make_array=make_array, path=path)
    try:
        state = unpickler.load()
    except CorruptCheckpointError:
        raise
    except Exception as exc:  # the decoder's errors: UnpicklingError, EOFError, TypeError...
        raise CorruptCheckpointError(
            f"{path}: malformed pickle stream ({type(exc).__name__}: {short_repr(str(exc))})",
            path=path) from exc
    if type(state) is not dict:
        raise CorruptCheckpointError(
            f"{path}: the pickle stream holds a {type(state).__name__}, not a dict", path=path)
    return state


def collect_arrays(state: dict, is_array: Callable[[Any], bool], *,
                   path: str) -> List[Tuple[str, dict, str, Any]]:
    """Walks the state without recursion; finds the arrays and checks the tree.

    Returns ``(name, group, key, array)`` for every value for which
    ``is_array`` is true, ``name`` being its hierarchical name (its dataset is
    ``/state/<name>``).

    Raises
    ------
    CorruptCheckpointError
        A group key that is not a non-empty str without ``/``; values nested
        deeper than :data:`MAX_NEST`; a container or array reachable twice
        (shared or recursive, which the memo opcodes can build); an array
        inside a list or tuple, where it has no name.
    """
    found: List[Tuple[str, dict, str, Any]] = []
    seen: set = set()
    # (value, its name: None inside a list or tuple, where nothing has a name, depth)
    todo: List[Tuple[Any, "str | None", int]] = [(state, "", 0)]
    while todo:
        value, name, depth = todo.pop()
        kind = type(value)
        if kind not in (dict, list, tuple) or len(value) == 0:
            continue
        if depth >= MAX_NEST:
            raise CorruptCheckpointError(f"{path}: values nest deeper than {MAX_NEST}", path=path)
        if id(value) in seen:
            raise CorruptCheckpointError(
                f"{path}: a {kind.__name__} is reachable twice in the state (shared or "
                "recursive values are not a brine state)", path=path)
        seen.add(id(value))
        items = value.items() if kind is dict else ((None, v) for v in value)
        for key, item in items:
            if kind is dict and name is not None:
                if type(key) is not str or not key or "/" in key:
                    raise CorruptCheckpointError(
                        f"{path}: invalid variable name component {short_repr(key)} in group "
                        f"{(name or '/')!r}", path=path)
                full: "str | None" = f"{name}/{key}" if name else key
            else:
                full = None
            if is_array(item):
                if full is None:
                    raise CorruptCheckpointError(
                        f"{path}: an array inside a list or tuple, where it has no name",
                        path=path)
                if id(item) in seen:
                    raise CorruptCheckpointError(
                        f"{path}: the array {full!r} is also another variable", path=path,
                        variable=full)
                seen.add(id(item))
                found.append((full, value, key, item))
            else:
                todo.append((item, full, depth + 1))
    return found
