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
templates_path = ["_templates"]
numpydoc_show_class_members = False
# Public classes and functions: documented parameters that exist, sections in order, and an
# Examples section on every public class.
numpydoc_validation_checks = {"PR02", "PR03", "GL06", "GL07", "EX01"}
numpydoc_validation_exclude = {r"\._", r"^skcem\.(costs|metrics|plotting|datasets)\.",
                               r"\.(to_dict|to_json|to_frame|changes|as_images|fit|transform|"
                               r"explain|score|kneighbors|get_params|set_params|set_output|"
                               r"fit_transform|get_feature_names_out|get_metadata_routing|"
                               r"set_fit_request|set_transform_request|set_score_request|"
                               r"set_explain_request|__init__)$",
                               r"\.(PN|PP|delta|perturbation)$"}
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
