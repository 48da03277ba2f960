"""The one error type for bad input: a file, dataset, config or value the library cannot use.

Loaders and validators raise :class:`InputError` with a message that names the input (the file's
path or the flag) and what is wrong with it; the command line prints that message and exits with
status 2, never a traceback. It subclasses ``ValueError`` so code that catches ``ValueError`` still
catches it.
"""

from __future__ import annotations


class InputError(ValueError):
    """Bad user input; the message names the input (path, flag or field) and what is wrong."""


__all__ = ["InputError"]
