"""Training time as the reports write it: a study of tiny trials must not read as 0."""

from __future__ import annotations


def seconds_text(seconds: float) -> str:
    """Whole seconds from 10 on, a tenth below: a study of tiny trials reads 0.4, not 0."""
    return f"{seconds:.0f}" if round(seconds, 1) >= 10 else f"{seconds:.1f}"


def gpu_hours_text(seconds: float) -> str:
    """GPU-hours to 3 decimals; under 0.01 two significant digits and the seconds too, so a
    study of short GPU trials reads 0.00011 GPU-hours (0.4 s), not 0.000."""
    hours = seconds / 3600
    if round(hours, 3) >= 0.01:
        return f"{hours:.3f} GPU-hours"
    return f"{hours:.2g} GPU-hours ({seconds_text(seconds)} s)"
