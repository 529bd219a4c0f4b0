"""Sphinx configuration for skcem's documentation."""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

project = "skcem"
author = "skcem developers"
copyright = "2026, skcem developers"
extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.intersphinx",
    "numpydoc",
    "sphinx_gallery.gen_gallery",
]
autosummary_generate = True
numpydoc_show_class_members = False
numpydoc_validation_checks = set()
html_theme = "alabaster"
exclude_patterns = ["_build", "auto_examples/*.ipynb", "auto_examples/*.py",
                    "auto_examples/*.zip", "auto_examples/*.md5", "auto_examples/*.json"]
nitpicky = False

sphinx_gallery_conf = {
    "examples_dirs": "../examples",
    "gallery_dirs": "auto_examples",
    # Examples that need MNIST files or take minutes are shown, not executed.
    "filename_pattern": r"plot_(cem_digits|cem_iris|similarity_digits|grid_search|pipeline)",
    "download_all_examples": False,
    "plot_gallery": "True",
    "abort_on_example_error": True,
}
