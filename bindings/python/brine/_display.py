"""Rich display in Jupyter: the HTML of Checkpoint._repr_html_ and Run._repr_html_.

Every text that comes from a file (names, paths, attribute values, error
messages) goes through html.escape: a variable named ``<script>`` is shown,
never run.
"""

from __future__ import annotations

import html
import os
from typing import TYPE_CHECKING, Any, Iterable, List, Sequence

from ._lazy import LazyArray

if TYPE_CHECKING:
    from ._checkpoint import Checkpoint
    from ._mpi import RankCheckpoints
    from ._run import Run

__all__ = ["checkpoint_html", "run_html", "ranks_html", "human_size", "MAX_ROWS"]

#: A run's table shows at most this many checkpoints (the first and the last ones).
MAX_ROWS = 60

_STYLE = ("<style>.brine-repr table{border-collapse:collapse;margin:2px 0 8px 0}"
          ".brine-repr th,.brine-repr td{padding:1px 8px;text-align:left}"
          ".brine-repr td.num{text-align:right;font-family:monospace}"
          ".brine-repr .bad{color:#b00}</style>")


def human_size(nbytes: float) -> str:
    """1536 -> '1.5 KiB'."""
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(nbytes) < 1024 or unit == "TiB":
            return f"{nbytes:.0f} {unit}" if unit == "B" else f"{nbytes:.1f} {unit}"
        nbytes /= 1024
    raise AssertionError("unreachable")


def _e(value: Any) -> str:
    return html.escape(str(value), quote=True)


def _table(header: Sequence[str], rows: Iterable[Sequence[str]]) -> str:
    """rows: cells already escaped HTML (a cell starting with '<td' is used as is)."""
    head = "".join(f"<th>{_e(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(c if c.startswith("<td") else f"<td>{c}</td>" for c in row)
                   + "</tr>" for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _num(text: str) -> str:
    return f'<td class="num">{text}</td>'


def _scalar_text(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def checkpoint_html(ckpt: "Checkpoint") -> str:
    """A checkpoint's metadata and a table of its variables."""
    title = f"brine checkpoint, step {ckpt.step}: {os.path.basename(ckpt.path)}"
    if ckpt.closed:
        return (f'<div class="brine-repr"><b>{_e(title)}</b> (closed)<br>'
                f"<code>{_e(ckpt.path)}</code></div>")
    meta = [("path", ckpt.path), ("step", ckpt.step), ("format", ckpt.format_version),
            *sorted(ckpt.attrs.items())]
    rows: List[Sequence[str]] = []
    stored_total = memory_total = 0
    for name, value in ckpt.variables().items():
        if isinstance(value, LazyArray):
            stored = value.stored_bytes
            memory_total += value.nbytes
            stored_total += stored
            ratio = f"{value.nbytes / stored:.2f}" if stored else "&ndash;"
            rows.append((f"<code>{_e(name)}</code>", _e(value.dtype), _e(value.shape),
                         _num(_e(human_size(value.nbytes))), _num(_e(human_size(stored))),
                         _num(ratio), ""))
        else:
            rows.append((f"<code>{_e(name)}</code>", _e(type(value).__name__), "()", _num(""),
                         _num(""), _num(""), f"<code>{_e(_scalar_text(value))}</code>"))
    ratio = f" (ratio {memory_total / stored_total:.2f})" if stored_total else ""
    summary = (f"{len(rows)} variables, {human_size(memory_total)} of arrays in memory, "
               f"{human_size(stored_total)} stored{ratio}")
    return (f'<div class="brine-repr">{_STYLE}<b>{_e(title)}</b>'
            + _table(("attribute", "value"), ((_e(k), f"<code>{_e(v)}</code>") for k, v in meta))
            + f"<div>{_e(summary)}</div>"
            + _table(("variable", "dtype", "shape", "size", "stored", "ratio", "value"), rows)
            + "</div>")


def run_html(run: "Run") -> str:
    """A run's directory and its checkpoints, with their status and scalars."""
    entries = run.entries()
    ok = sum(e.status == "ok" for e in entries)
    multirank = sum(os.path.isdir(e.path) for e in entries)
    title = f"brine run {run.directory}: {len(entries)} checkpoints"
    if entries:
        title += (f", steps {entries[0].step} to {entries[-1].step}, {ok} verify, "
                  f"{human_size(sum(e.size for e in entries))}")
    if multirank:
        title += f", {multirank} multi-rank"
    scalar_names: List[str] = []
    for e in entries:
        scalar_names += [n for n in e.scalars if n not in scalar_names and n != "step"]
    shown = entries
    if len(entries) > MAX_ROWS:
        shown = entries[:MAX_ROWS // 2] + [None] + entries[-MAX_ROWS // 2:]
    rows: List[Sequence[str]] = []
    for e in shown:
        if e is None:
            rows.append(["&hellip;"] * (6 + len(scalar_names)))
            continue
        status = (_e(e.status) if e.status == "ok"
                  else f'<td class="bad" title="{_e(e.error)}">{_e(e.status)}</td>')
        rows.append([_num(_e(e.step)), f"<code>{_e(os.path.basename(e.path))}</code>",
                     _num(_e(human_size(e.size))), _num(_e(e.ranks)), _e(e.created), status]
                    + [_num(_e(_scalar_text(e.scalars[n]))) if n in e.scalars else ""
                       for n in scalar_names])
    errors = "".join(f'<div class="bad">{_e(os.path.basename(e.path))}: {_e(e.error)}</div>'
                     for e in entries if e.status != "ok")
    return (f'<div class="brine-repr">{_STYLE}<b>{_e(title)}</b>'
            + _table(["step", "file", "size", "ranks", "created", "status"] + scalar_names, rows)
            + errors + "</div>")


def ranks_html(ckpts: "RankCheckpoints") -> str:
    """A multi-rank checkpoint: one row per rank with its file and variables' shapes."""
    title = (f"brine multi-rank checkpoint, step {ckpts.step}, {ckpts.nranks} ranks: "
             f"{os.path.basename(ckpts.path)}")
    rows: List[Sequence[str]] = []
    for r, ckpt in enumerate(ckpts):
        if ckpt.closed:
            rows.append((_num(_e(r)), f"<code>{_e(os.path.basename(ckpt.path))}</code>",
                         "(closed)"))
            continue
        arrays = ", ".join(f"{n} {v.shape}" for n, v in ckpt.variables().items()
                           if isinstance(v, LazyArray))
        rows.append((_num(_e(r)), f"<code>{_e(os.path.basename(ckpt.path))}</code>",
                     f"<code>{_e(arrays)}</code>"))
    return (f'<div class="brine-repr">{_STYLE}<b>{_e(title)}</b><br><code>{_e(ckpts.path)}</code>'
            + _table(("rank", "file", "arrays"), rows) + "</div>")
