"""Write the notebooks in notebooks/ from the cell lists in scripts/notebooks/ (reviewable as code).

Each `scripts/notebooks/NAME.py` defines `CELLS`; it becomes `notebooks/NAME.ipynb`.

python scripts/make_notebooks.py            # all notebooks
python scripts/make_notebooks.py math_eval  # one
"""

import importlib.util
import sys
from pathlib import Path

import nbformat
from nbformat.v4 import new_notebook

ROOT = Path(__file__).resolve().parent.parent
SPECS = ROOT / "scripts" / "notebooks"


def cells_of(spec: Path) -> list:
    module_spec = importlib.util.spec_from_file_location(spec.stem, spec)
    module = importlib.util.module_from_spec(module_spec)
    module_spec.loader.exec_module(module)
    return module.CELLS


def main(names: list[str]) -> None:
    out = ROOT / "notebooks"
    out.mkdir(exist_ok=True)
    specs = sorted(SPECS.glob("*.py"))
    for spec in specs:
        if names and spec.stem not in names:
            continue
        notebook = new_notebook(
            cells=cells_of(spec),
            metadata={
                "kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}
            },
        )
        nbformat.write(notebook, out / f"{spec.stem}.ipynb")
        print(f"wrote notebooks/{spec.stem}.ipynb")


if __name__ == "__main__":
    main(sys.argv[1:])
