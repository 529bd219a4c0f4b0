"""Warnings attributed to the user's line, however deep in skcem (or scikit-learn) they arise."""

import contextvars
import os
import re
import sys
import threading
import warnings
from contextlib import contextmanager
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


# ``warnings.catch_warnings`` swaps the process's list of filters on entry and puts its copy
# back on exit: two threads inside at once put back each other's (before Python 3.14's
# context-aware warnings), and filters stay for good, silencing warnings the user expects.
# skcem's threads enter one at a time.
_FILTERS_LOCK = threading.RLock()

# skcem's own warnings silenced in the current context (thread): (category, message pattern).
_SILENCED = contextvars.ContextVar("skcem_silenced", default=())


@contextmanager
def catching_warnings():
    """``warnings.catch_warnings()``, which skcem's threads enter one at a time.

    For the short calls that quieten a library's warnings (a model's, numpy's): what runs
    inside must not wait for another thread of skcem's.
    """
    if getattr(sys.flags, "context_aware_warnings", False):  # Python 3.14's, per context
        with warnings.catch_warnings():
            yield
        return
    with _FILTERS_LOCK, warnings.catch_warnings():
        yield


@contextmanager
def filters_held():
    """skcem's threads one at a time through code whose libraries enter
    ``warnings.catch_warnings`` themselves (pandas', scikit-learn's input checks): two
    threads entering and leaving them out of order put back each other's filters (a
    scikit-learn "error" filter stayed for good). Never around a model's call: a network
    takes its own lock there, which another thread holds while it waits for this one."""
    if getattr(sys.flags, "context_aware_warnings", False):
        yield
        return
    with _FILTERS_LOCK:
        yield


@contextmanager
def silencing(category, pattern=None):
    """skcem's own warnings of ``category`` (whose message matches the regular expression
    ``pattern``, if given) not given in this context, without any process-wide filter: safe
    in threads, and around calls of any length."""
    token = _SILENCED.set(_SILENCED.get() + ((category, pattern),))
    try:
        yield
    finally:
        _SILENCED.reset(token)


def warn(message, category=SkcemWarning):
    """``warnings.warn`` with the stack level of the first caller outside skcem and sklearn
    (unless :func:`silencing` silences it)."""
    if any(issubclass(category, silenced) and (pattern is None or re.match(pattern, message))
           for silenced, pattern in _SILENCED.get()):
        return
    frame, level = sys._getframe(1), 2
    while frame is not None and str(Path(frame.f_code.co_filename).resolve()).startswith(
            _LIBRARY_FOLDERS):
        frame, level = frame.f_back, level + 1
    warnings.warn(message, category, stacklevel=level)
