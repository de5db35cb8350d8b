"""Executes analyse-a-run.ipynb headless, as the test suite does, and renders
the docs' copy: the notebook with its outputs and each figure as a PNG.

    BRINE_HEAT2D=build/apps/heat2d /usr/bin/python3 docs/notebooks/render.py

The notebook runs in a temporary directory (its checkpoints go there), with
Debian's jupyter-nbconvert and the kernel ``python3`` (python3-ipykernel's, for
/usr/bin/python3), so the brine package of this tree is the one imported.
tests/python/test_notebook.py calls :func:`execute` the same way.
"""

from __future__ import annotations

import base64
import json
import os
import pathlib
import shutil
import subprocess
import sys
import tempfile

HERE = pathlib.Path(__file__).resolve().parent
ROOT = HERE.parents[1]
NOTEBOOK = HERE / "analyse-a-run.ipynb"
#: Each cell may take this long (the whole notebook takes a few seconds).
CELL_TIMEOUT = 120


def nbconvert() -> str:
    """Debian's jupyter-nbconvert (package jupyter-nbconvert), or ""."""
    return shutil.which("jupyter-nbconvert") or ""


def execute(workdir: pathlib.Path, heat2d: str) -> dict:
    """Copies the notebook into workdir, executes it there and returns the
    executed notebook (nbformat's JSON).  Raises RuntimeError with
    nbconvert's output when a cell fails."""
    workdir.mkdir(parents=True, exist_ok=True)
    source = workdir / NOTEBOOK.name
    shutil.copyfile(NOTEBOOK, source)
    env = dict(os.environ)
    env["BRINE_HEAT2D"] = heat2d
    env["PYTHONPATH"] = os.pathsep.join(
        [str(ROOT / "bindings" / "python")] + [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p])
    # Jupyter's runtime files and IPython's profile in the work directory, not in $HOME.
    env["JUPYTER_RUNTIME_DIR"] = str(workdir / ".jupyter-runtime")
    env["IPYTHONDIR"] = str(workdir / ".ipython")
    env["MPLCONFIGDIR"] = str(workdir / ".matplotlib")
    cmd = [nbconvert(), "--to", "notebook", "--execute", "--output", "executed.ipynb",
           "--ExecutePreprocessor.kernel_name=python3",
           f"--ExecutePreprocessor.timeout={CELL_TIMEOUT}", str(source)]
    r = subprocess.run(cmd, cwd=workdir, env=env, capture_output=True, text=True,
                       timeout=CELL_TIMEOUT * 5)
    if r.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed with status {r.returncode}:\n"
                           f"{r.stdout}\n{r.stderr}")
    return json.loads((workdir / "executed.ipynb").read_text())


def figures(nb: dict) -> list:
    """The PNG images of the executed notebook's outputs, in order, as bytes."""
    return [base64.b64decode(out["data"]["image/png"])
            for cell in nb["cells"] if cell["cell_type"] == "code"
            for out in cell.get("outputs", []) if "image/png" in out.get("data", {})]


def main() -> int:
    heat2d = os.environ.get("BRINE_HEAT2D") or str(ROOT / "build" / "apps" / "heat2d")
    if not nbconvert():
        print("render.py: jupyter-nbconvert not found (apt-get install jupyter-nbconvert "
              "python3-ipykernel)", file=sys.stderr)
        return 1
    with tempfile.TemporaryDirectory() as tmp:
        nb = execute(pathlib.Path(tmp), heat2d)
    NOTEBOOK.write_text(json.dumps(nb, indent=1, ensure_ascii=False) + "\n")
    for old in HERE.glob("analyse-a-run-*.png"):
        old.unlink()
    for i, png in enumerate(figures(nb), 1):
        (HERE / f"analyse-a-run-{i}.png").write_bytes(png)
        print(f"docs/notebooks/analyse-a-run-{i}.png")
    return 0


if __name__ == "__main__":
    sys.exit(main())
