"""`dse run --early-stop moasha [--rungs 1,3,9] [--eta 3]`: where MO-ASHA decides (its rungs,
each run's successive-halving ones by default) and how many it keeps there (eta). The rule
itself is moasha.py's."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from dse.errors import ConfigError, option
from dse.search.estimates import ESTIMABLE

DEFAULT_ETA = 3.0


def halving_rungs(epochs: int, eta: float) -> tuple[int, ...]:
    """Successive halving's rungs for a run of `epochs`: 1, eta, eta^2, ... (whole epochs), each
    while eta times it still fits in the run, so the trials a rung lets on run eta times as
    long before the next decision (Hyperband's largest bracket, Li et al. 2018): 1,3 for runs of
    9 to 26 epochs with eta 3, 1,3,9 for 27 to 80, 1 for 3 to 8."""
    rungs: list[int] = []
    k = 0
    while eta > 1:
        rung = math.floor(eta**k + 1e-9)
        if rung * eta > epochs + 1e-9:
            break
        rungs.append(rung)
        # the next power that reaches a new whole epoch (an eta close to 1 has many per epoch)
        k = max(k + 1, math.ceil(math.log(rung + 1) / math.log(eta) - 1e-9))
    return tuple(rungs)


@dataclass(frozen=True)
class EarlyStop:
    """`dse run --early-stop moasha [--rungs 1,3,9] [--eta 3]`; rungs None: each run's
    successive-halving rungs (halving_rungs)."""

    rungs: tuple[int, ...] | None = None
    eta: float = DEFAULT_ETA

    def rungs_for(self, epochs: int) -> tuple[int, ...]:
        """The rungs a run of `epochs` epochs waits at (none at its last epoch)."""
        rungs = halving_rungs(epochs, self.eta) if self.rungs is None else self.rungs
        return tuple(r for r in rungs if r < epochs)

    def decides_at(self, epoch: int, epochs: int) -> bool:
        """A rung decides only before the last epoch (a finished trial has nothing to stop)."""
        return epoch in self.rungs_for(epochs)

    def describe(self, epochs: int | None = None) -> str:
        """'1,3,9', or the rungs of a run of `epochs` (if known) and where they come from."""
        if self.rungs is not None:
            return ",".join(map(str, self.rungs))
        if epochs is None:
            return "successive halving's for each run"
        rungs = ",".join(map(str, self.rungs_for(epochs))) or "none"
        return f"{rungs} (successive halving's for {epochs} epochs)"

    def late(self, rung: int, epochs: int) -> bool:
        """Stopping at `rung` saves less than a 1/eta share of the run's epochs."""
        return rung < epochs and (epochs - rung) * self.eta < epochs

    def last(self, rung: int, epochs: int) -> bool:
        """`rung` is the last decision a run of `epochs` epochs meets before its end."""
        rungs = self.rungs_for(epochs)
        return bool(rungs) and rung == rungs[-1]

    def idle_rungs_note(self, last: int, longest: bool = False) -> str | None:
        """A note naming the given rungs at or past the trials' last epoch (`longest`: of
        the longest trials), where MO-ASHA decides nothing; None when every rung may decide."""
        idle = [rung for rung in self.rungs or () if rung >= last]
        if not idle:
            return None
        return (
            f"{option('rungs')} {','.join(map(str, idle))}: at or past the "
            f"{'longest ' if longest else ''}trials' last epoch ({last}), so MO-ASHA decides "
            "nothing there"
        )

    def check(self, metric_names: Sequence[str], source: str) -> None:
        for metric in metric_names:
            if metric not in ESTIMABLE:
                raise ConfigError(
                    f"{source}: objectives.{metric}: {option('early_stop')} moasha cannot "
                    f"estimate it at a rung; use objectives among {', '.join(ESTIMABLE)}"
                )


def parse_rungs(text: str) -> tuple[int, ...]:
    """'1,3,9' -> (1, 3, 9): positive epoch counts, increasing."""
    try:
        rungs = tuple(int(part) for part in text.split(","))
    except ValueError:
        raise ConfigError(f"{option('rungs')} {text}: expected epoch counts like 1,3,9") from None
    if any(r < 1 for r in rungs) or list(rungs) != sorted(set(rungs)):
        raise ConfigError(f"{option('rungs')} {text}: epoch counts must be >= 1 and increasing")
    return rungs


def check_eta(eta: float) -> float:
    if not eta > 1:
        raise ConfigError(f"{option('eta')} {eta}: must be greater than 1")
    return eta
