"""The restricted pickle decoder.

Two steps keep a checkpoint from running code:

1. :func:`scan_stream` walks the stream with :func:`pickletools.genops`, which
   decodes opcodes without executing any, and refuses globals and opcodes
   outside format section 3.3 before anything is unpickled, as well as the
   text arguments of protocols 0 and 1 that the C library's strict decoder
   refuses (so both accept the same streams).
2. :class:`RestrictedUnpickler` resolves only the globals of section 3.3, each
   to a function of this module that checks its arguments and builds nothing
   but numpy arrays, dtypes and scalars of brine's 13 dtypes, bytes and
   complex numbers; ``numpy ndarray`` and numpy's ``_frombuffer`` over an
   out-of-band buffer resolve to a factory supplied by the caller, which
   checks the arguments against the file before it builds an array.  BUILD
   applies only to a ``numpy.dtype`` or to the array of numpy's
   ``_reconstruct``.  This also covers globals the scan cannot see statically
   (``STACK_GLOBAL`` fed from the memo).
"""

from __future__ import annotations

import io
import pickle
import pickletools
import re
import reprlib
import warnings
from typing import Any, Callable, Iterable, List, Optional, Tuple

import numpy as np

from ._errors import CorruptCheckpointError, UnsafeCheckpointError

__all__ = ["ALLOWED_GLOBALS", "DTYPE_STRINGS", "MAX_NEST", "ArraySpec", "scan_stream",
           "unpickle_state", "collect_arrays"]

#: brine's own globals: what brine writes (format section 3.2).
_BRINE_GLOBALS = frozenset({("numpy", "ndarray"), ("builtins", "complex")})

#: The globals a checkpoint's stream may reference (format section 3.3): brine's
#: own, numpy's reconstructors of arrays, dtypes and scalars (numpy 1.x and 2.x
#: module names), and what CPython's protocols 0 to 2 write for bytes and complex.
ALLOWED_GLOBALS = _BRINE_GLOBALS | frozenset({
    ("__builtin__", "complex"),
    ("numpy.core.numeric", "_frombuffer"), ("numpy._core.numeric", "_frombuffer"),
    ("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
    ("numpy", "dtype"),
    ("numpy.core.multiarray", "scalar"), ("numpy._core.multiarray", "scalar"),
    ("_codecs", "encode"),
    ("builtins", "bytes"), ("__builtin__", "bytes"),
})

#: The explicit numpy dtype strings of format section 2.3, one per brine_dtype.
DTYPE_STRINGS = frozenset({
    "|b1", "|i1", "<i2", "<i4", "<i8", "|u1", "<u2", "<u4", "<u8",
    "<f4", "<f8", "<c8", "<c16",
})

#: numpy's dtype codes (dtype.__reduce__: kind and size) of the brine dtypes.
_DTYPE_CODES = {
    "b1": "|b1", "i1": "|i1", "i2": "<i2", "i4": "<i4", "i8": "<i8",
    "u1": "|u1", "u2": "<u2", "u4": "<u4", "u8": "<u8",
    "f4": "<f4", "f8": "<f8", "c8": "<c8", "c16": "<c16",
}

# What brine writes plus what the C library's strict decoder also accepts
# (format section 3.3).  Anything else is a corrupt checkpoint, so the Python
# reader and brine_restore() agree on which files are valid.
_ACCEPTED_OPCODES = frozenset({
    "PROTO", "STOP", "FRAME",
    "MARK", "EMPTY_DICT", "DICT", "SETITEM", "SETITEMS", "EMPTY_LIST", "LIST", "APPEND",
    "APPENDS", "EMPTY_TUPLE", "TUPLE1", "TUPLE2", "TUPLE3", "TUPLE",
    "NONE", "NEWTRUE", "NEWFALSE", "INT", "BININT", "BININT1", "BININT2", "LONG", "LONG1",
    "LONG4", "FLOAT", "BINFLOAT", "UNICODE", "SHORT_BINUNICODE", "BINUNICODE", "BINUNICODE8",
    "STRING", "BINSTRING", "SHORT_BINSTRING",
    "SHORT_BINBYTES", "BINBYTES", "BINBYTES8", "BYTEARRAY8",
    "MEMOIZE", "PUT", "BINPUT", "LONG_BINPUT", "GET", "BINGET", "LONG_BINGET",
    "GLOBAL", "STACK_GLOBAL", "REDUCE", "BUILD", "NEXT_BUFFER",
})

_STRING_OPCODES = frozenset({"SHORT_BINUNICODE", "BINUNICODE", "BINUNICODE8", "UNICODE",
                             "STRING", "BINSTRING", "SHORT_BINSTRING"})

#: How deep values may nest (dicts, lists, tuples), as the C decoder's
#: BRINE_PICKLE_MAX_NEST.
MAX_NEST = 256

#: numpy's limit on dimensions (NPY_MAXDIMS), for brine's own ndarray form.
_MAX_NDIM = 32

#: brine's limit on dimensions (BRINE_MAX_NDIM), for numpy's forms.
_MAX_NUMPY_NDIM = 8

_short = reprlib.Repr()
_short.maxlevel, _short.maxstring, _short.maxother = 3, 40, 40


def short_repr(value: Any) -> str:
    """repr() bounded in length and depth: safe on hostile, deeply nested values."""
    return _short.repr(value)


# -- the static scan --------------------------------------------------------------

_DECIMAL = re.compile(rb"-?([0-9]+)")
_FLOAT = re.compile(rb"[-+]?(?:(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][-+]?[0-9]+)?"
                    rb"|(?i:inf|infinity|nan))")
_ESCAPES = {ord("\\"): 0x5C, ord("'"): 0x27, ord('"'): 0x22, ord("n"): 0x0A, ord("r"): 0x0D,
            ord("t"): 0x09, ord("a"): 0x07, ord("b"): 0x08, ord("f"): 0x0C, ord("v"): 0x0B}
_HEX = frozenset(b"0123456789abcdefABCDEF")


def _decimal_problem(raw: bytes, *, leading_zeros: bool) -> Optional[str]:
    """Why raw is not a decimal integer as pickle writes one (None when it is): an
    optional '-' and digits; "007" is refused unless leading_zeros (CPython's C
    unpickler reads it as octal, its Python one refuses it)."""
    m = _DECIMAL.fullmatch(raw)
    if not m:
        return f"{short_repr(raw)} is not a decimal integer"
    digits = m.group(1)
    if not leading_zeros and digits[:1] == b"0" and digits.strip(b"0"):
        return f"{short_repr(raw)} has leading zeros, which Python's int(x, 0) refuses"
    return None


def _string_problem(raw: bytes) -> Optional[str]:
    """Why the argument of STRING is refused (format 3.3), None when it is accepted."""
    if len(raw) < 2 or raw[0] != raw[-1] or raw[:1] not in (b"'", b'"'):
        return "the STRING argument must be quoted"
    body, i = raw[1:-1], 0
    while i < len(body):
        c = body[i]
        i += 1
        if c == 0x5C:
            if i == len(body):
                return "the string ends with a lone backslash"
            e = body[i]
            i += 1
            if e in _ESCAPES:
                c = _ESCAPES[e]
            elif 0x30 <= e <= 0x37:
                c, k = e - 0x30, 1
                while k < 3 and i < len(body) and 0x30 <= body[i] <= 0x37:
                    c, i, k = c * 8 + body[i] - 0x30, i + 1, k + 1
            elif e == 0x78 and i + 2 <= len(body) and body[i] in _HEX and body[i + 1] in _HEX:
                c, i = int(body[i:i + 2], 16), i + 2
            else:
                return f"the string has the escape '\\{chr(e)}', which brine does not decode"
        if c >= 0x80:
            return f"the string has the byte {c:#04x}: not ASCII, which Python 3 refuses by default"
    return None


def _unicode_problem(raw: bytes) -> Optional[str]:
    """Why the raw-unicode-escape argument of UNICODE is refused, None when accepted."""
    i = raw.find(b"\\")
    while i >= 0:
        kind = raw[i + 1:i + 2]
        k = 4 if kind == b"u" else 8 if kind == b"U" else 0
        digits = raw[i + 2:i + 2 + k]
        if not k:
            return (f"a backslash at byte {i} of the string starts no \\uXXXX or \\UXXXXXXXX "
                    "escape (pickle writes a backslash as \\u005c)")
        if len(digits) != k or not all(c in _HEX for c in digits):
            return f"bad \\{kind.decode()} escape at byte {i} of the string"
        cp = int(digits, 16)
        if cp > 0x10FFFF or 0xD800 <= cp <= 0xDFFF:
            return f"the escape at byte {i} of the string is not a character (U+{cp:04X})"
        i = raw.find(b"\\", i + 2 + k)
    return None


def _argument_problem(name: str, arg: Any, raw: bytes) -> Optional[str]:
    """The C decoder's checks of opcode arguments beyond what genops checks.

    raw: for the text opcodes, the bytes of their line (without the newline).
    """
    if name == "INT":
        if raw == b"-0":
            return "'-0' is ambiguous (False or 0 depending on CPython's unpickler)"
        return None if raw in (b"00", b"01") else _decimal_problem(raw, leading_zeros=False)
    if name == "LONG":
        return _decimal_problem(raw[:-1] if raw.endswith(b"L") else raw, leading_zeros=False)
    if name in ("PUT", "GET"):
        if not raw.isdigit():
            return f"memo index {short_repr(raw)} is not a non-negative decimal integer"
        return None if int(raw) < 1 << 64 else "memo index too large"
    if name == "FLOAT":
        if not _FLOAT.fullmatch(raw):
            return f"{short_repr(raw)} is not a float as Python writes one"
        if abs(float(raw)) == float("inf") and raw.lstrip(b"+-.")[:1].isdigit():
            return f"{short_repr(raw)} is out of the range of a double"
        return None
    if name == "STRING":
        return _string_problem(raw)
    if name == "UNICODE":
        return _unicode_problem(raw)
    if name in ("BINSTRING", "SHORT_BINSTRING") and not str(arg).isascii():
        return "the string is not ASCII, which Python 3 refuses by default"
    if name in ("SHORT_BINUNICODE", "BINUNICODE", "BINUNICODE8"):
        try:
            str(arg).encode("utf-8")
        except UnicodeEncodeError:
            return "the string is not valid UTF-8 (it encodes a surrogate)"
    return None


_TEXT_OPCODES = frozenset({"INT", "LONG", "FLOAT", "STRING", "UNICODE", "PUT", "GET"})


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
        An opcode outside format section 3.3, an argument the format refuses,
        a truncated stream, a length (string, bytes, FRAME) beyond the end of
        the stream, a stream without ``STOP`` or with bytes after it.
    """
    buffers = 0
    # The last two values pushed, when known to be str (else None), and the memo's
    # str values: what STACK_GLOBAL takes, also when the memo provides the names.
    last2: list = [None, None]
    memo: dict = {}
    unsafe = None
    problem = None
    end = None
    ops = pickletools.genops(stream)
    while True:
        try:
            with warnings.catch_warnings():  # STRING's invalid escapes, refused below
                warnings.simplefilter("ignore", DeprecationWarning)
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
        elif name == "STACK_GLOBAL" and None not in last2:
            unsafe = unsafe or _unsafe_global(last2[0], last2[1])
        elif name == "NEXT_BUFFER":
            buffers += 1
        elif name == "FRAME" and pos + 9 + arg > len(stream) and problem is None:
            # genops does not check it; the unpickler would ask for arg bytes.
            problem = f"FRAME at byte {pos} claims {arg} bytes, beyond the end of the stream"
        if name not in _ACCEPTED_OPCODES and problem is None:
            problem = f"opcode {name} at byte {pos} is not allowed in a brine checkpoint"
        if problem is None and name in _ACCEPTED_OPCODES:
            raw = b""
            if name in _TEXT_OPCODES:
                raw = stream[pos + 1:stream.index(b"\n", pos + 1)]
            why = _argument_problem(name, arg, raw)
            if why:
                problem = f"{name} at byte {pos}: {why}"
        if name in _STRING_OPCODES:
            last2 = [last2[1], str(arg)]
        elif name in ("GET", "BINGET", "LONG_BINGET"):
            last2 = [last2[1], memo.get(arg)]
        elif name in ("MEMOIZE", "PUT", "BINPUT", "LONG_BINPUT"):
            memo[len(memo) if name == "MEMOIZE" else arg] = last2[1]
        elif name not in ("FRAME", "PROTO"):
            last2 = [None, None]
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
    return (f"the pickle stream references the global {module}.{name}; only numpy.ndarray, "
            "builtins.complex, numpy's _frombuffer, _reconstruct, dtype and scalar, and "
            "_codecs.encode and bytes are allowed (docs/format.md 3.3), nothing was executed")


# -- values of the restricted unpickler ---------------------------------------------

class ArraySpec:
    """The validated arguments of one array of the stream with an out-of-band buffer.

    Made from brine's ``numpy.ndarray(...)`` call or numpy's ``_frombuffer``.

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


class _OutOfBand:
    """An out-of-band buffer of the stream (NEXT_BUFFER), until an array takes it."""

    __slots__ = ("buffer",)

    def __init__(self, buffer: Any) -> None:
        self.buffer = buffer


class _Dtype:
    """A ``numpy.dtype(code, align, copy)`` of the stream, before and after its BUILD."""

    __slots__ = ("dtype", "built", "used")

    def __init__(self, dtype: np.dtype) -> None:
        self.dtype = dtype
        self.built = False
        self.used = False


class _Unbuilt:
    """The array of numpy's ``_reconstruct`` before its BUILD, which replaces it."""

    __slots__ = ("keys",)

    def __init__(self) -> None:
        self.keys: list = []  # the memo keys holding it


class _Memo(dict):
    """The unpickler's memo, which remembers where it holds an :class:`_Unbuilt`."""

    def __setitem__(self, key: Any, value: Any) -> None:
        super().__setitem__(key, value)
        if type(value) is _Unbuilt:
            value.keys.append(key)


class _Global:
    """An allowed global: a function of this module, called only by REDUCE."""

    __slots__ = ("name", "function")

    def __init__(self, name: str, function: Callable[..., Any]) -> None:
        self.name = name
        self.function = function

    def __call__(self, *args: Any) -> Any:
        return self.function(*args)


#: Values that exist only while the stream is decoded (the C decoder's internal kinds).
_INTERNAL = (_Dtype, _Global, _Unbuilt)


def _nbytes(shape: Tuple[int, ...], dtype: np.dtype, what: str) -> int:
    nbytes = dtype.itemsize
    for n in shape:
        nbytes *= n
    if nbytes >= 1 << 63:
        raise TypeError(f"{what}: shape {short_repr(shape)} of {dtype.str} is larger than any "
                        "array can be")
    return nbytes


def _check_shape(shape: Any, max_ndim: int, what: str) -> Tuple[int, ...]:
    if (type(shape) is not tuple or len(shape) > max_ndim
            or not all(type(n) is int and n >= 0 for n in shape)):
        raise TypeError(f"{what}: shape {short_repr(shape)} is not a tuple of at most "
                        f"{max_ndim} non-negative ints")
    return shape


def _normal_order(order: str, shape: Tuple[int, ...]) -> str:
    """format 2.3: 'F' only when the bytes lie differently from 'C'."""
    big = sum(n != 1 for n in shape)
    return "F" if order == "F" and big >= 2 and 0 not in shape else "C"


def _inband_array(data: Any, shape: Tuple[int, ...], dtype: np.dtype, order: str,
                  what: str) -> np.ndarray:
    """A new, writable array of in-band data (bytes or bytearray) of exactly the right size."""
    nbytes = _nbytes(shape, dtype, what)
    if len(data) != nbytes:
        raise TypeError(f"{what}: the in-band data has {len(data)} bytes, the shape "
                        f"{short_repr(shape)} of {dtype.str} needs {nbytes}")
    flat = np.frombuffer(bytes(data), dtype=dtype)
    return flat.reshape(shape, order=order).copy(order="K")


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


def _dtype(*args: Any) -> _Dtype:
    # numpy.dtype(code, align, copy) as dtype.__reduce__ writes it: ('f8', False, True).
    if len(args) != 3 or type(args[0]) is not str or not all(type(x) is bool for x in args[1:]):
        raise TypeError(f"numpy.dtype called with {short_repr(args)}, expected (code, align, "
                        "copy) as numpy writes it")
    if args[0] not in _DTYPE_CODES:
        raise TypeError(f"numpy dtype {short_repr(args[0])} is not one of brine's 13 dtypes")
    return _Dtype(np.dtype(_DTYPE_CODES[args[0]]))


def _dtype_of(value: Any, what: str) -> np.dtype:
    if type(value) is not _Dtype:
        raise TypeError(f"{what}: the dtype is a {type(value).__name__}, not a numpy.dtype")
    value.used = True
    return value.dtype


def _scalar(*args: Any) -> Any:
    # numpy's scalar(dtype, bytes): a numpy scalar from its little-endian bytes.
    if len(args) != 2 or type(args[1]) is not bytes:
        raise TypeError(f"numpy's scalar called with {short_repr(args)}, expected (dtype, bytes)")
    dtype = _dtype_of(args[0], "numpy's scalar")
    data = args[1]
    if len(data) != dtype.itemsize:
        raise TypeError(f"a numpy {dtype.name} scalar has {len(data)} bytes, not {dtype.itemsize}")
    if dtype.kind == "b" and data[0] > 1:
        raise TypeError(f"a numpy bool scalar holds the byte {data[0]}, not 0 or 1")
    return np.frombuffer(data, dtype=dtype)[0]


def _encode(*args: Any) -> bytes:
    # _codecs.encode(text, 'latin1'): how protocols 0 to 2 write bytes.
    if len(args) != 2 or type(args[0]) is not str or args[1] != "latin1" or type(args[1]) is not str:
        raise TypeError(f"_codecs.encode called with {short_repr(args)}, expected (str, 'latin1')")
    try:
        return args[0].encode("latin-1")
    except UnicodeEncodeError:
        raise TypeError("_codecs.encode to latin1 of a character above U+00FF") from None


def _bytes(*args: Any) -> bytes:
    # builtins.bytes(): how protocols 0 to 2 write b''; bytes(n) would allocate n bytes.
    if args:
        raise TypeError(f"bytes called with {short_repr(args)}, expected no arguments")
    return b""


def _is_int(value: Any, want: int) -> bool:
    return type(value) is int and value == want


class RestrictedUnpickler(pickle._Unpickler):
    """An unpickler that resolves only the allowed globals (format section 3.3).

    CPython's pure-Python unpickler, so that BUILD can be restricted: it
    applies only to a ``numpy.dtype`` (numpy's state of a plain dtype) and to
    the array of numpy's ``_reconstruct``.

    Parameters
    ----------
    file : binary file
        The stream.
    buffers : iterable
        The out-of-band buffers, in ``NEXT_BUFFER`` order.
    make_array : callable
        Called with an :class:`ArraySpec` for every array whose data is an
        out-of-band buffer (``numpy.ndarray(...)`` or numpy's
        ``_frombuffer``); its return value is what the stream gets.  Arrays
        with in-band data (numpy's ``_reconstruct``, or bytes given to either)
        become numpy arrays here.
    path : str
        The checkpoint file, for messages.
    """

    dispatch = dict(pickle._Unpickler.dispatch)

    def __init__(self, file: Any, *, buffers: Iterable[Any],
                 make_array: Callable[[ArraySpec], Any], path: str) -> None:
        super().__init__(file, buffers=buffers)
        self._make_array = make_array
        self._path = path
        self.memo = _Memo()
        self.unbuilt = 0  # arrays of _reconstruct awaiting their BUILD
        g = _Global
        ndarray = g("numpy.ndarray", self._ndarray)
        frombuffer = g("numpy's _frombuffer", self._frombuffer)
        reconstruct = g("numpy's _reconstruct", self._reconstruct)
        scalar = g("numpy's scalar", _scalar)
        complex_ = g("complex", _complex)
        bytes_ = g("bytes", _bytes)
        self._ndarray_global = ndarray
        self._globals = {
            ("numpy", "ndarray"): ndarray,
            ("builtins", "complex"): complex_, ("__builtin__", "complex"): complex_,
            ("numpy.core.numeric", "_frombuffer"): frombuffer,
            ("numpy._core.numeric", "_frombuffer"): frombuffer,
            ("numpy.core.multiarray", "_reconstruct"): reconstruct,
            ("numpy._core.multiarray", "_reconstruct"): reconstruct,
            ("numpy", "dtype"): g("numpy.dtype", _dtype),
            ("numpy.core.multiarray", "scalar"): scalar,
            ("numpy._core.multiarray", "scalar"): scalar,
            ("_codecs", "encode"): g("_codecs.encode", _encode),
            ("builtins", "bytes"): bytes_, ("__builtin__", "bytes"): bytes_,
        }
        assert set(self._globals) == ALLOWED_GLOBALS

    def find_class(self, module: str, name: str) -> Any:  # noqa: D102 (pickle's API)
        found = self._globals.get((module, name))
        if found is None:
            raise UnsafeCheckpointError(f"{self._path}: {_unsafe_global(module, name)}",
                                        path=self._path)
        return found

    def persistent_load(self, pid: Any) -> Any:  # noqa: D102 (pickle's API)
        raise CorruptCheckpointError(f"{self._path}: persistent id in the pickle stream",
                                     path=self._path)

    # -- the opcodes this class changes ----------------------------------------------

    def _load_next_buffer(self) -> None:
        pickle._Unpickler.dispatch[pickle.NEXT_BUFFER[0]](self)
        self.stack[-1] = _OutOfBand(self.stack[-1])
    dispatch[pickle.NEXT_BUFFER[0]] = _load_next_buffer

    def _load_stop(self) -> None:
        # As the C decoder: STOP leaves exactly one value and no open MARK.
        if self.metastack or len(self.stack) != 1:
            raise CorruptCheckpointError(
                f"{self._path}: malformed pickle stream: STOP with {len(self.stack)} values "
                f"and {len(self.metastack)} open MARKs, not one value", path=self._path)
        pickle._Unpickler.dispatch[pickle.STOP[0]](self)
    dispatch[pickle.STOP[0]] = _load_stop

    def _load_build(self) -> None:
        state = self.stack.pop()
        inst = self.stack[-1]
        if type(inst) is _Dtype:
            self._build_dtype(inst, state)
        elif type(inst) is _Unbuilt:
            self._build_array(inst, state)
        else:
            raise CorruptCheckpointError(
                f"{self._path}: BUILD applies only to a numpy.dtype or numpy's _reconstruct "
                f"array, not to a {type(inst).__name__}", path=self._path)
    dispatch[pickle.BUILD[0]] = _load_build

    def _build_dtype(self, dt: _Dtype, state: Any) -> None:
        # numpy's state of a plain dtype: (3, byteorder, None, None, None, -1, -1, 0)
        name = dt.dtype.name
        if dt.built or dt.used:
            raise TypeError(f"BUILD changes the numpy.dtype {name} a second time or after its use")
        if (type(state) is not tuple or len(state) != 8 or not _is_int(state[0], 3)
                or type(state[1]) is not str or len(state[1]) != 1
                or state[2:5] != (None, None, None) or not _is_int(state[5], -1)
                or not _is_int(state[6], -1) or not _is_int(state[7], 0)):
            raise TypeError(f"the state of the numpy.dtype {name} must be numpy's (3, '<', None, "
                            f"None, None, -1, -1, 0) of a plain dtype, not {short_repr(state)}")
        order = state[1]
        if order == ">":
            raise TypeError(f"numpy dtype {name} with byte order '>' is big-endian: brine reads "
                            "little-endian data only")
        if order == "|" and dt.dtype.itemsize > 1 or order not in "<|=":
            raise TypeError(f"the numpy.dtype {name} has the byte order {order!r}")
        dt.built = True

    def _build_array(self, unbuilt: _Unbuilt, state: Any) -> None:
        # ndarray.__setstate__((1, shape, dtype, is_fortran, data)): a new array of a copy of
        # the data, which replaces the placeholder on the stack and in the memo.
        what = "numpy's _reconstruct array"
        if (type(state) is not tuple or len(state) != 5 or not _is_int(state[0], 1)
                or type(state[2]) is not _Dtype or type(state[3]) not in (bool, int)
                or state[3] not in (0, 1) or type(state[4]) is not bytes):
            raise TypeError(f"the state of {what} must be (1, shape, numpy.dtype, is_fortran, "
                            f"bytes), not {short_repr(state)}")
        shape = _check_shape(state[1], _MAX_NUMPY_NDIM, what)
        dtype = _dtype_of(state[2], what)
        fortran = bool(state[3])
        data = state[4]
        arr = _inband_array(data, shape, dtype, _normal_order("F" if fortran else "C", shape), what)
        self.stack[-1] = arr
        for key in unbuilt.keys:
            if self.memo.get(key) is unbuilt:
                self.memo[key] = arr
        self.unbuilt -= 1

    # -- the globals that build arrays ------------------------------------------------

    def _ndarray(self, *args: Any) -> Any:
        spec = _parse_ndarray_args(args, path=self._path)
        if type(spec.buffer) is bytes:
            return _inband_array(spec.buffer, spec.shape, spec.dtype, spec.order,
                                 "numpy.ndarray")
        if type(spec.buffer) is not _OutOfBand:
            raise CorruptCheckpointError(
                f"{self._path}: numpy.ndarray's buffer is a {type(spec.buffer).__name__}, not "
                "NEXT_BUFFER or bytes", path=self._path)
        spec.buffer = spec.buffer.buffer
        return self._make_array(spec)

    def _frombuffer(self, *args: Any) -> Any:
        # numpy's _frombuffer(buffer, dtype, shape, order[, axis_order]): frombuffer(buffer,
        # dtype).reshape(shape, order); with order 'K' (numpy 2), reshape(shape, 'C')
        # .transpose(axis_order): only the identity and the reversal are C or F arrays.
        what = "numpy's _frombuffer"
        if len(args) not in (4, 5):
            raise TypeError(f"{what} called with {len(args)} arguments, expected 4 or 5")
        buf, dtype, shape, order = args[:4]
        axes = args[4] if len(args) == 5 else None
        dtype = _dtype_of(dtype, what)
        shape = _check_shape(shape, _MAX_NUMPY_NDIM, what)
        if type(order) is not str or order not in ("C", "F", "K"):
            raise TypeError(f"{what}: order {short_repr(order)} is not 'C', 'F' or 'K'")
        if order != "K" and axes is not None:
            raise TypeError(f"{what}: axis_order must be None when the order is {order!r}")
        if order == "K":
            n = len(shape)
            if (type(axes) is not tuple or len(axes) != n
                    or sorted(a if type(a) is int else -1 for a in axes) != list(range(n))):
                raise TypeError(f"{what}: order 'K' needs an axis_order permuting the {n} axes, "
                                f"not {short_repr(axes)}")
            if axes == tuple(range(n)):
                order = "C"
            elif axes == tuple(reversed(range(n))):
                order, shape = "F", shape[::-1]
            else:
                raise TypeError(f"{what}: axis_order {axes} is neither the identity nor the "
                                "reversal: brine arrays are in C or F order")
        order = _normal_order(order, shape)
        if type(buf) in (bytes, bytearray):
            return _inband_array(buf, shape, dtype, order, what)
        if type(buf) is not _OutOfBand:
            raise TypeError(f"{what}: the buffer is a {type(buf).__name__}, not NEXT_BUFFER, "
                            "bytes or bytearray")
        _nbytes(shape, dtype, what)
        return self._make_array(ArraySpec(shape, dtype, order, buf.buffer))

    def _reconstruct(self, *args: Any) -> _Unbuilt:
        # numpy's _reconstruct(numpy.ndarray, (0,), b'b'): an empty array BUILD fills.
        if (len(args) != 3 or args[0] is not self._ndarray_global or type(args[1]) is not tuple
                or len(args[1]) != 1 or not _is_int(args[1][0], 0) or args[2] != b"b"
                or type(args[2]) is not bytes):
            raise TypeError(f"numpy's _reconstruct called with {short_repr(args)}, expected "
                            "(numpy.ndarray, (0,), b'b')")
        self.unbuilt += 1
        return _Unbuilt()


def unpickle_state(stream: bytes, *, buffers: Iterable[Any],
                   make_array: Callable[[ArraySpec], Any], path: str) -> dict:
    """Decodes a checked stream (see :func:`scan_stream`) into the state dict.

    Raises
    ------
    UnsafeCheckpointError, CorruptCheckpointError
        As raised by ``make_array`` or the restricted globals, or a
        :class:`CorruptCheckpointError` for any failure of the decoder itself,
        for an array of numpy's ``_reconstruct`` without its BUILD, and for a
        value that is not a dict.
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
    if unpickler.unbuilt:
        raise CorruptCheckpointError(
            f"{path}: numpy's _reconstruct array without its BUILD", path=path)
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
        if kind in _INTERNAL:
            raise CorruptCheckpointError(
                f"{path}: the state holds a {'global' if kind is _Global else 'numpy.dtype'}, "
                "which may only be an argument of numpy's reconstructors", path=path)
        if kind is _OutOfBand:
            raise CorruptCheckpointError(
                f"{path}: {'variable ' + repr(name) if name else 'the state'} holds a bare "
                "out-of-band buffer, not an array", path=path, variable=name or None)
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
