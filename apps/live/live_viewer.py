#!/usr/bin/python3
"""Receives a running simulation's state (apps/live/heat_live.c) over a Unix socket.

Each message is a pickle written by brine_dumps, preceded by its length as 8
bytes little-endian; ``pickle.loads`` with numpy alone reads it: no h5py, no
brine.  The viewer prints one line per state (or, with --plot, redraws the
field with matplotlib) and, with --dump DIR, keeps each received pickle as
DIR/state-<step>.pkl.

usage: live_viewer.py SOCKET [--count N] [--dump DIR] [--plot]
"""

from __future__ import annotations

import argparse
import os
import pickle
import socket
import sys


def read_exact(conn: socket.socket, n: int) -> bytes:
    """n bytes from conn, or b"" when the peer closed before the first of them."""
    chunks = []
    got = 0
    while got < n:
        c = conn.recv(min(n - got, 1 << 20))
        if not c:
            if got:
                raise EOFError(f"connection closed after {got} of {n} bytes")
            return b""
        chunks.append(c)
        got += len(c)
    return b"".join(chunks)


def summary(state: dict) -> str:
    field = state["field"]["T"]
    return (f"step {state['step']:6d}  time {state['time']:.4f}  field {field.shape} {field.dtype}"
            f"  min {field.min():.4f}  max {field.max():.4f}  mean {field.mean():.6f}")


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("socket", help="Unix socket path to listen on (removed first if it exists)")
    p.add_argument("--count", type=int, default=0, help="stop after N states (default: until the sender closes)")
    p.add_argument("--dump", help="directory where each received pickle is kept as state-<step>.pkl")
    p.add_argument("--plot", action="store_true", help="redraw the field with matplotlib")
    args = p.parse_args(argv)
    if os.path.exists(args.socket):
        os.unlink(args.socket)
    srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    srv.bind(args.socket)
    srv.listen(1)
    print(f"listening on {args.socket}", flush=True)
    conn, _ = srv.accept()
    received = 0
    plot = None
    with conn:
        while not args.count or received < args.count:
            head = read_exact(conn, 8)
            if not head:
                break
            payload = read_exact(conn, int.from_bytes(head, "little"))
            state = pickle.loads(payload)
            received += 1
            print(summary(state), flush=True)
            if args.dump:
                os.makedirs(args.dump, exist_ok=True)
                with open(os.path.join(args.dump, f"state-{state['step']:012d}.pkl"), "wb") as f:
                    f.write(payload)
            if args.plot:
                import matplotlib.pyplot as plt  # only when asked: the viewer needs numpy alone
                if plot is None:
                    plot = plt.imshow(state["field"]["T"], origin="upper", cmap="inferno")
                    plt.colorbar(plot)
                else:
                    plot.set_data(state["field"]["T"])
                plt.title(f"step {state['step']}")
                plt.pause(0.01)
    srv.close()
    os.unlink(args.socket)
    print(f"received {received} states", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
