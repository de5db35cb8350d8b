"""docs/notebooks/analyse-a-run.ipynb, executed headless with Debian's
jupyter-nbconvert and python3-ipykernel's kernel ``python3``: every cell must
run without error and draw its figures.

The notebook runs in a temporary copy (docs/ is never modified) on the heat2d
that ctest passes in BRINE_HEAT2D.  docs/notebooks/render.py runs it the same
way to refresh the docs' copy and its PNGs; this test also checks that copy
is an executed notebook of the same cells and that docs/python.md shows its
figures.
"""

from __future__ import annotations

import importlib.util
import json
import os
import pathlib
import re

import numpy as np
import pytest

import brine

ROOT = pathlib.Path(__file__).resolve().parents[2]
NOTEBOOKS = ROOT / "docs" / "notebooks"


def load_render():
    spec = importlib.util.spec_from_file_location("render", NOTEBOOKS / "render.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


render = load_render()


def outputs(nb: dict, kind: str) -> list:
    return [o for c in nb["cells"] if c["cell_type"] == "code" for o in c.get("outputs", [])
            if o["output_type"] == kind or kind in o.get("data", {})]


def text_of(nb: dict) -> str:
    parts = []
    for o in outputs(nb, "stream"):
        parts.append("".join(o["text"]))
    for o in outputs(nb, "text/plain"):
        parts.append("".join(o["data"]["text/plain"]))
    return "\n".join(parts)


def sources(nb: dict) -> list:
    return [(c["cell_type"], "".join(c["source"])) for c in nb["cells"]]


def test_notebook_executes(tmp_path):
    heat2d = os.environ.get("BRINE_HEAT2D")
    if not heat2d:
        pytest.skip("BRINE_HEAT2D is not set (ctest sets it)")
    if not render.nbconvert():
        pytest.skip("jupyter-nbconvert is not installed (scripts/install-deps.sh installs "
                    "jupyter-nbconvert and python3-ipykernel)")
    before = render.NOTEBOOK.read_bytes()
    nb = render.execute(tmp_path / "nb", heat2d)
    assert render.NOTEBOOK.read_bytes() == before, "the test must not modify docs/"

    assert outputs(nb, "error") == []
    code = [c for c in nb["cells"] if c["cell_type"] == "code"]
    assert all(c.get("execution_count") for c in code), "a cell did not run"
    # what the cells show: the runs, the listing, the comparisons
    text = text_of(nb)
    assert f"brine {brine.__version__}, numpy {np.__version__}" in text
    assert "run-a: done: step 600" in text and "run-b: done: step 600" in text
    assert "<brine.Run 'run-a': 12 checkpoints>" in text
    assert "step=600 (open)" in text
    assert re.search(r"\{'field/T': 0\.\d+\}", text), "run-a and run-b differ only in field/T"
    htmls = ["".join(o["data"]["text/html"]) for o in outputs(nb, "text/html")]
    assert any("12 checkpoints, steps 50 to 600, 12 verify" in h for h in htmls)
    assert any("<code>field/T</code>" in h for h in htmls)
    # the four figures, each a real PNG
    pngs = render.figures(nb)
    assert len(pngs) == 4
    assert all(p.startswith(b"\x89PNG\r\n\x1a\n") and len(p) > 5000 for p in pngs)
    # the produced checkpoints are where the notebook ran
    assert len(list((tmp_path / "nb" / "run-a").glob("ckpt-*.h5"))) == 12


def test_docs_copy_is_executed_and_shown():
    """The committed notebook carries the outputs of its own cells, and
    docs/python.md shows its figures (refreshed by render.py)."""
    nb = json.loads(render.NOTEBOOK.read_text())
    code = [c for c in nb["cells"] if c["cell_type"] == "code"]
    assert code and all(c.get("execution_count") for c in code), (
        "run docs/notebooks/render.py to execute the docs' notebook")
    assert outputs(nb, "error") == []
    pngs = render.figures(nb)
    doc = (ROOT / "docs" / "python.md").read_text()
    for i, png in enumerate(pngs, 1):
        name = f"analyse-a-run-{i}.png"
        assert (NOTEBOOKS / name).read_bytes() == png, f"{name} differs from the notebook's figure"
    shown = re.findall(r"\(notebooks/(analyse-a-run-\d+\.png)\)", doc)
    assert shown and set(shown) <= {f"analyse-a-run-{i}.png" for i in range(1, len(pngs) + 1)}
    assert "(notebooks/analyse-a-run.ipynb)" in doc
