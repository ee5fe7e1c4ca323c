"""The integers torch takes, and why a config's value is not one of them: seeds (torch's
manual_seed: 0 .. 2**64 - 1) and counts and sizes (a signed 64-bit integer)."""

from __future__ import annotations

from typing import Any

SEED_MIN, SEED_MAX = 0, 2**64 - 1  # torch reads -1 as 2**64-1: one run, two seeds
SEED_FIELDS = ("seed", "split_seed")  # checked as seeds, not as counts
# A larger count failed its trial as a bug (an overflow inside torch: a width), or was trained
# on without end (a loop count: routing iterations, epochs).
COUNT_MAX = 2**63 - 1


def seeds_overflow(seed: int, count: int = 1) -> str | None:
    """Why seeds seed .. seed+count-1 (repeats, calibration runs, fused models) do not all fit
    SEED_MIN .. SEED_MAX, or None when they do."""
    last = seed + count - 1
    if seed < SEED_MIN or (count == 1 and last > SEED_MAX):
        return f"{seed} is outside {SEED_MIN} .. {SEED_MAX}, the seeds torch takes"
    if last > SEED_MAX:
        return f"the last seed {last} is above {SEED_MAX}, the largest torch takes"
    return None


def count_overflow(value: Any) -> str | None:
    """Why an integer value, or one in a tuple of them (milestones: (epoch, batch size)
    pairs), is past the counts torch takes, or None (none is, or no integer)."""
    if isinstance(value, tuple):
        return next((why for item in value if (why := count_overflow(item))), None)
    if type(value) is int and value > COUNT_MAX:
        return f"{value} is more than {COUNT_MAX}, the largest count torch takes"
    return None
