"""A user's mistake told apart from steelkit's own bug.

``UserError``: the user's file, row, option or value is at fault, and the message names it; the command lines
print it in one line and exit 2 (``UnknownName`` for a name that is none of the known ones). Anything else
that escapes a command is a bug in steelkit: it keeps its traceback and exits 1, asking for a report.
"""

from __future__ import annotations

REPORT = "this is a bug in steelkit, not in your input: please report it with the traceback above"


class UserError(ValueError):
    """The user's input is at fault; the message says which and how to mend it."""


class UnknownName(UserError, KeyError):
    """A name (a preset, an architecture, a kernel) that is none of the known ones."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""
