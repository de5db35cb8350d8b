#!/usr/bin/python3
"""Plot the temperature field of the newest heat2d checkpoint in a directory.

Usage: plot_field.py DIR [-o heat2d.png]

Loads the newest checkpoint of DIR with ``brine.load(DIR)`` and saves a PNG of
``field/T`` with a colour bar; the title gives the step and the time.  Needs
numpy and matplotlib (Debian's /usr/bin/python3); the brine package is taken
from bindings/python of this source tree when it is not installed.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

try:
    import brine
except ImportError:
    # apps/heat2d/plot_field.py -> <source root>/bindings/python
    sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bindings" / "python"))
    import brine

import numpy as np
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402  (after choosing the backend)


def _state_of(loaded: Any) -> Mapping:
    """The state dict of what brine.load returned (the dict itself or an object holding it)."""
    if isinstance(loaded, Mapping):
        return loaded
    state = getattr(loaded, "state", None)
    if isinstance(state, Mapping):
        return state
    if isinstance(loaded, tuple):
        for item in loaded:
            if isinstance(item, Mapping):
                return item
    raise TypeError(f"brine.load returned a {type(loaded).__name__}, not a checkpoint state")


def _lookup(state: Mapping, name: str) -> Any:
    """A variable by its hierarchical name: nested dicts, or a flat 'a/b' key."""
    if name in state:
        return state[name]
    node: Any = state
    for part in name.split("/"):
        if not isinstance(node, Mapping) or part not in node:
            raise KeyError(f"the checkpoint has no variable {name!r}")
        node = node[part]
    return node


def plot(directory: Path, output: Path, *, dpi: int = 120) -> tuple[int, float]:
    """Saves the PNG of field/T of the newest checkpoint of directory; returns (step, time)."""
    loaded = brine.load(str(directory))
    state = _state_of(loaded)
    field = np.asarray(_lookup(state, "field/T"))
    if field.ndim != 2:
        raise ValueError(f"{directory}: field/T has {field.ndim} dimensions, expected 2")
    step = int(_lookup(state, "step"))
    time = float(_lookup(state, "time"))

    ny, nx = field.shape
    fig, ax = plt.subplots(figsize=(6.4, 6.4 * ny / nx + 0.6), layout="constrained")
    # Row 0 is the top (hot) edge: imshow's default origin puts it at the top.
    image = ax.imshow(field, cmap="inferno", interpolation="nearest")
    fig.colorbar(image, ax=ax, label="temperature T", shrink=0.85)
    ax.set_title(f"heat2d: field/T at step {step}, t = {time:.6g}")
    ax.set_xlabel(f"x (i, {nx} points)")
    ax.set_ylabel(f"y (j, {ny} points)")
    fig.savefig(output, dpi=dpi)
    plt.close(fig)
    return step, time


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("directory", type=Path, help="heat2d checkpoint directory (--dir)")
    parser.add_argument("-o", "--output", type=Path, default=Path("heat2d.png"),
                        help="PNG to write (default: %(default)s)")
    parser.add_argument("--dpi", type=int, default=120, help="resolution (default: %(default)s)")
    args = parser.parse_args(argv)
    step, time = plot(args.directory, args.output, dpi=args.dpi)
    print(f"wrote {args.output} (step {step}, time {time:.6g})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
