/*
 * Opcodes of pickle protocol 5 used by brine's encoder (pickle_encode.c) and
 * decoder (pickle_decode.c).  Internal to the format layer.
 *
 * Names and byte values are those of CPython: the opcode constants in
 * Lib/pickle.py, documented one by one in Lib/pickletools.py.  The set listed
 * here is every opcode either file names; which of them the decoder accepts
 * is decided in pickle_decode.c (see docs/format.md, section 3.3).
 */
#ifndef BRINE_FORMAT_PICKLE_OPCODES_H
#define BRINE_FORMAT_PICKLE_OPCODES_H

enum {
    OP_MARK = '(',
    OP_STOP = '.',
    OP_BININT = 'J',
    OP_BININT1 = 'K',
    OP_BININT2 = 'M',
    OP_NONE = 'N',
    OP_REDUCE = 'R',
    OP_BINBYTES = 'B',
    OP_SHORT_BINBYTES = 'C',
    OP_BINFLOAT = 'G',
    OP_BINUNICODE = 'X',
    OP_APPEND = 'a',
    OP_APPENDS = 'e',
    OP_GLOBAL = 'c',
    OP_BINGET = 'h',
    OP_LONG_BINGET = 'j',
    OP_BINPUT = 'q',
    OP_LONG_BINPUT = 'r',
    OP_SETITEM = 's',
    OP_TUPLE = 't',
    OP_SETITEMS = 'u',
    OP_EMPTY_TUPLE = ')',
    OP_EMPTY_LIST = ']',
    OP_EMPTY_DICT = '}',
    OP_PROTO = 0x80,
    OP_TUPLE1 = 0x85,
    OP_TUPLE2 = 0x86,
    OP_TUPLE3 = 0x87,
    OP_NEWTRUE = 0x88,
    OP_NEWFALSE = 0x89,
    OP_LONG1 = 0x8a,
    OP_LONG4 = 0x8b,
    OP_SHORT_BINUNICODE = 0x8c,
    OP_BINUNICODE8 = 0x8d,
    OP_BINBYTES8 = 0x8e,
    OP_STACK_GLOBAL = 0x93,
    OP_MEMOIZE = 0x94,
    OP_FRAME = 0x95,
    OP_NEXT_BUFFER = 0x97,
    OP_READONLY_BUFFER = 0x98
};

#endif /* BRINE_FORMAT_PICKLE_OPCODES_H */
