"""Warnings attributed to the user's line, however deep in skcem (or scikit-learn) they arise."""

import os
import sys
import warnings
from pathlib import Path

import sklearn

# Frames in these folders are skipped: ``transform`` is reached through scikit-learn's
# ``set_output`` wrapper, ``fit_transform`` or a ``Pipeline``, each adding frames of its own.
_LIBRARY_FOLDERS = tuple(str(Path(module.__file__).resolve().parent) + os.sep
                         for module in (sys.modules[__package__], sklearn))


class SkcemWarning(UserWarning):
    """The base of every warning skcem gives (each a ``UserWarning``).

    Examples
    --------
    >>> import warnings
    >>> from skcem import SkcemWarning
    >>> warnings.simplefilter("ignore", SkcemWarning)  # skcem's warnings, and no others
    """


def warn(message, category=SkcemWarning):
    """``warnings.warn`` with the stack level of the first caller outside skcem and sklearn."""
    frame, level = sys._getframe(1), 2
    while frame is not None and str(Path(frame.f_code.co_filename).resolve()).startswith(
            _LIBRARY_FOLDERS):
        frame, level = frame.f_back, level + 1
    warnings.warn(message, category, stacklevel=level)
