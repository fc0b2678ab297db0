"""The session cap kept by the training loop: a time limit, and whether the next epoch still fits.

Kaggle kills a GPU session after 12 hours, and what a killed version wrote may be lost with it. So a
training run takes a time limit (the notebooks pass the cap minus ``MARGIN``, counted from the notebook's
start) and, before each epoch, asks whether that epoch, the final pass (the last epoch of a segmenter)
and the checkpoint save still fit, from the epochs measured so far. If not, it stops cleanly after the
last saved epoch: ``last.pt``, ``metrics.csv`` and the curves are written, and a resumed run ends as an
uninterrupted one would.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass, field

from steelkit import units
from steelkit.errors import UserError

SESSION_CAP = 12 * 3600  # Kaggle's GPU session cap, seconds
MARGIN = 30 * 60  # wheels installed and images checked before the loop starts, outputs saved after it
# The one session limit, in seconds: the training notebooks stop by it (their default TIME_LIMIT), and the plan
# splits a kernel into parts that each fit it (``budget.SESSION_HOURS``)
KERNEL_LIMIT = SESSION_CAP - MARGIN
FINAL_PASS_FACTOR = 2.0  # the final pass: a validation pass plus the tables' labelling, about as long again
RECENT = 3  # epochs an estimate looks back over (the slowest of them)
_UNITS = {"h": 3600, "m": 60, "s": 1}


def parse_duration(text: str | float | int) -> float:
    """Seconds from ``3600``, ``"90m"``, ``"11h30m"``, ``"1h 5m 30s"``; anything else, or not above 0, is a
    ValueError naming the value."""
    if isinstance(text, (int, float)):
        seconds = float(text)
    else:
        spec = str(text).strip().lower().replace(" ", "")
        parts = re.fullmatch(r"((\d+(\.\d+)?)[hms])+|\d+(\.\d+)?", spec)
        if not parts:
            raise UserError(f"time limit {text!r}: expected seconds or hours/minutes/seconds like 11h30m")
        seconds = float(spec) if spec[-1].isdigit() else sum(
            float(number) * _UNITS[unit] for number, unit in re.findall(r"(\d+(?:\.\d+)?)([hms])", spec))
    if seconds <= 0:
        raise UserError(f"time limit {text!r}: must be above 0")
    return seconds


@dataclass
class Deadline:
    """``limit`` seconds from ``started`` on ``clock`` (wall time, so that a notebook's start counts)."""

    limit: float
    started: float | None = None
    clock: callable = time.time
    epochs: list = field(default_factory=list)  # seconds of each epoch of this call, saves included
    validations: list = field(default_factory=list)  # seconds of each epoch's validation

    def __post_init__(self):
        self.started = self.clock() if self.started is None else self.started

    def left(self) -> float:
        return self.limit - (self.clock() - self.started)

    def record(self, epoch_seconds: float, validation_seconds: float) -> None:
        self.epochs.append(epoch_seconds)
        self.validations.append(validation_seconds)

    def next_epoch_problem(self, history: list[dict], last_epoch: bool, segmenter: bool) -> str | None:
        """Why the next epoch would not fit (None if it does, or if nothing has been measured yet).
        ``history``: metrics rows of earlier calls (``seconds``, ``val_seconds``) for a resumed run."""
        epochs = self.epochs or [row["seconds"] for row in history if "seconds" in row]
        validations = self.validations or [row["val_seconds"] for row in history if "val_seconds" in row]
        if not epochs:
            return None
        epoch = max(epochs[-RECENT:])
        final = FINAL_PASS_FACTOR * max(validations[-RECENT:]) if last_epoch and segmenter and validations else 0.0
        left = self.left()
        if epoch + final <= left:
            return None
        return (f"{units.duration(left)} of the {units.duration(self.limit)} time limit left; an epoch takes about "
                f"{units.duration(epoch)}" + (f" and the final pass about {units.duration(final)}" if final else ""))

    def check_holds_an_epoch(self, history: list[dict]) -> None:
        """A limit shorter than one epoch measured (this call's first, or a resumed run's) is a mistake."""
        epochs = self.epochs[:1] or [row["seconds"] for row in history if "seconds" in row][-1:]
        if epochs and epochs[0] > self.limit:
            raise UserError(f"time limit {self.limit:.0f} s cannot hold one epoch: an epoch took {epochs[0]:.0f} s "
                            "(last.pt keeps what was done; resume with a longer --time-limit)")
