"""The two kinds of failure a user sees, each reported by the command line as one line.

`InputError`: something the user gave cannot be used (a setting, a path, a file's content); exit 2.
`DependencyError`: something the run relies on failed (an endpoint, the disk); exit 1.
Library modules raise subclasses of these (ConfigError, EvaluationError, DataError, PolicyError, ...)
so that `shiftlab` needs no list of every module's exceptions.
"""

from __future__ import annotations


class InputError(ValueError):
    """A problem with what the user gave; the message names it in one line."""


class DependencyError(RuntimeError):
    """A failure of something outside the user's input that the run needs; the message names it."""
