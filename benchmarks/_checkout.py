"""Running a benchmark's function against another checkout of skcem, in a subprocess."""

import json
import os
import subprocess
import sys
from pathlib import Path


def call_in_checkout(repo, module, function, *args):
    """``module.function(*args)`` (a module of this folder) run in a subprocess that imports
    skcem from the checkout ``repo`` (``git worktree add PATH COMMIT``): its result, which
    must be a JSON value. Asserts that skcem came from ``repo``."""
    code = ("import json, sys, importlib, skcem; sys.path.append(sys.argv[1]); "
            "out = getattr(importlib.import_module(sys.argv[2]), sys.argv[3])"
            "(*json.loads(sys.argv[4])); print(json.dumps([skcem.__file__, out]))")
    repo = Path(repo).resolve()
    out = subprocess.run([sys.executable, "-W", "ignore", "-c", code,
                          str(Path(__file__).resolve().parent), module, function,
                          json.dumps(list(args))],
                         env=dict(os.environ, PYTHONPATH=str(repo)), cwd=repo,
                         capture_output=True, text=True, check=True).stdout
    imported, result = json.loads(out.splitlines()[-1])
    assert Path(imported).resolve().is_relative_to(repo), f"skcem imported from {imported}"
    return result
