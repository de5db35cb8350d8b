/*
 * Opcodes of pickle protocol 5 used by brine's encoder (pickle_encode.c) and
 * decoder (pickle_decode.c).  Internal to the format layer.
 *
 * Names and byte values are those of CPython: the opcode constants in
 * Lib/pickle.py, documented one by one in Lib/pickletools.py.  Every opcode
 * of protocols 0 to 5 is listed, so that the decoder can name the ones it
 * refuses; which of them it accepts is decided in pickle_decode.c (see
 * docs/format.md, section 3.3).
 */
#ifndef BRINE_FORMAT_PICKLE_OPCODES_H
#define BRINE_FORMAT_PICKLE_OPCODES_H

enum {
    OP_MARK = '(',
    OP_STOP = '.',
    OP_POP = '0',
    OP_POP_MARK = '1',
    OP_DUP = '2',
    OP_FLOAT = 'F',
    OP_INT = 'I',
    OP_LONG = 'L',
    OP_PERSID = 'P',
    OP_BINPERSID = 'Q',
    OP_STRING = 'S',
    OP_BINSTRING = 'T',
    OP_SHORT_BINSTRING = 'U',
    OP_UNICODE = 'V',
    OP_BUILD = 'b',
    OP_DICT = 'd',
    OP_GET = 'g',
    OP_INST = 'i',
    OP_LIST = 'l',
    OP_OBJ = 'o',
    OP_PUT = 'p',
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
    OP_NEWOBJ = 0x81,
    OP_EXT1 = 0x82,
    OP_EXT2 = 0x83,
    OP_EXT4 = 0x84,
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
    OP_EMPTY_SET = 0x8f,
    OP_ADDITEMS = 0x90,
    OP_FROZENSET = 0x91,
    OP_NEWOBJ_EX = 0x92,
    OP_STACK_GLOBAL = 0x93,
    OP_MEMOIZE = 0x94,
    OP_FRAME = 0x95,
    OP_BYTEARRAY8 = 0x96,
    OP_NEXT_BUFFER = 0x97,
    OP_READONLY_BUFFER = 0x98
};

#endif /* BRINE_FORMAT_PICKLE_OPCODES_H */
