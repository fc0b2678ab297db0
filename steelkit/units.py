"""Figures in units that fit them: durations in s, min or h, sizes in kB, MB or GB (a message that says
"0.0 min" or "0.0 GB" says nothing)."""

from __future__ import annotations


def duration(seconds: float) -> str:
    """``42 s``, ``3.5 min``, ``11.50 h``."""
    if abs(seconds) < 90:
        return f"{seconds:.0f} s" if abs(seconds) >= 10 else f"{seconds:.1f} s"
    if abs(seconds) < 90 * 60:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.2f} h"


def size(n_bytes: float) -> str:
    """``512 kB``, ``38.4 MB``, ``2.1 GB``."""
    if abs(n_bytes) < 1e6:
        return f"{n_bytes / 1e3:.0f} kB"
    if abs(n_bytes) < 1e9:
        return f"{n_bytes / 1e6:.1f} MB"
    return f"{n_bytes / 1e9:.1f} GB"
