import shutil
import subprocess
import sys
from pathlib import Path

import pytest

DOC = Path(__file__).resolve().parents[1] / "doc"


def test_documentation_builds_without_warnings(tmp_path):
    """``sphinx-build -W``: API reference, user guide and the executed example gallery."""
    for module in ("sphinx", "numpydoc", "sphinx_gallery", "matplotlib"):
        pytest.importorskip(module)
    source = tmp_path / "doc"
    shutil.copytree(DOC, source, ignore=shutil.ignore_patterns("_build", "generated",
                                                               "auto_examples"))
    shutil.copytree(DOC.parent / "examples", tmp_path / "examples")
    result = subprocess.run([sys.executable, "-m", "sphinx", "-W", "-q", "-b", "html",
                             str(source), str(tmp_path / "html")], capture_output=True,
                            text=True, timeout=900)
    assert result.returncode == 0, result.stderr[-3000:]
    html = (tmp_path / "html")
    assert (html / "generated" / "skcem.CEMExplainer.html").exists()
    gallery = (html / "auto_examples" / "plot_cem_digits.html").read_text()
    assert ".png" in gallery  # the example ran and its figure was captured


def test_the_package_imports_without_docstrings():
    """Found by a review: a docstring built from another's failed under python -OO, which
    strips them (the import died)."""
    import subprocess
    import sys

    done = subprocess.run([sys.executable, "-OO", "-c", "import skcem, skcem.costs, "
                           "skcem.metrics, skcem.datasets, skcem.__main__"],
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
