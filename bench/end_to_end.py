"""End to end: a whole `dse run` with this checkout's code, optionally beside another commit's.

    python bench/end_to_end.py [--space efficiency.yaml] [--workers 2] [--set KEY=VALUE ...]
        [--against REF [--now-set KEY=VALUE ...]] [--rounds 1] [--out results/bench]

Each side runs `python -m dse run --space SPACE --workers W` into its own SQLite study in a
temporary folder (the space resolved here, so both sides train the same points), timed from
start to exit. Per side: wall seconds, training seconds (the sum of the trials' train_time_s),
trials complete. With --against REF, the other commit's code runs from a temporary git worktree,
sides alternating per round (REF first in odd rounds) so drift of the machine hits both; the
table gives the medians, their ratio, and for each grid point matched by its parameters the
largest difference in val_accuracy and test_accuracy between the sides (last round's runs).
`--now-set` overrides the base for this checkout's side only (`--now-set compile=true`: the
compiled trials against REF's eager ones; REF's code may not know the key).

Prints a markdown table and, on the last line, the same rows as JSON; with --out also writes
end_to_end.md and .json there.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from worktree import add_now_set, check_now_set, checkout_of, code_env

ROOT = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class SideRun:
    """One `dse run`: its wall time, and each complete trial's metrics by its parameters."""

    wall_s: float
    metrics: dict[str, dict[str, float]]  # json of the params -> metrics

    @property
    def train_s(self) -> float:
        return sum(m["train_time_s"] for m in self.metrics.values())


def read_study(url: str) -> dict[str, dict[str, float]]:
    """Each complete trial's metrics, keyed by its parameters (written by either side's code)."""
    import optuna

    from dse.search.records import TrialRecord

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    summaries = optuna.get_all_study_summaries(url)
    study = optuna.load_study(study_name=summaries[0].study_name, storage=url)
    complete = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
    return {json.dumps(t.params, sort_keys=True): TrialRecord(t).metrics for t in complete}


def space_with(space: str, sets: list[str], folder: Path) -> str:
    """The space to run: as given, or with `sets` (KEY=VALUE) applied to its base, written
    into `folder` (dse run takes no overrides)."""
    if not sets:
        return space
    from dse import yamlio
    from dse.config import parse_override
    from dse.space.parse import find_space_file

    data = yamlio.load_file(find_space_file(space))
    for key, value in map(parse_override, sets):
        *parents, last = key.split(".")
        node = data.setdefault("base", {})
        for part in parents:
            node = node.setdefault(part, {})
        node[last] = value
    path = folder / "space.yaml"
    path.write_text(yamlio.dumps(data))
    return str(path)


def run_side(
    tree: Path, space: str, args: argparse.Namespace, folder: Path, sets: list[str]
) -> SideRun:
    """`dse run` with `tree`'s code and the base overrides `sets`, in `folder`; exits the
    bench if the run fails."""
    url = f"sqlite:///{folder / 'study.db'}"
    command = [sys.executable, "-m", "dse", "run", "--space", space_with(space, sets, folder)]
    command += ["--workers", str(args.workers), "--storage", url]
    start = time.perf_counter()
    done = subprocess.run(command, cwd=folder, env=code_env(tree), capture_output=True, text=True)
    wall = time.perf_counter() - start
    if done.returncode != 0:
        tail = done.stderr[-2000:]
        sys.exit(f"dse run with the code at {tree} failed ({done.returncode}):\n{tail}")
    return SideRun(wall_s=wall, metrics=read_study(url))


def largest_difference(a: SideRun, b: SideRun, metric: str) -> float:
    """The largest |a - b| of `metric` over the grid points both completed."""
    shared = a.metrics.keys() & b.metrics.keys()
    return max((abs(a.metrics[k][metric] - b.metrics[k][metric]) for k in shared), default=0.0)


def resolve_space(space: str) -> str:
    """A space file's absolute path, or an embedded space's name as given."""
    path = Path(space)
    return str(path.resolve()) if path.exists() else space


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--space", default="efficiency.yaml")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--set", dest="sets", action="append", default=[], help="KEY=VALUE.")
    parser.add_argument("--against", metavar="REF", help="Also run git commit REF's code.")
    add_now_set(parser)
    parser.add_argument("--rounds", type=int, default=1, help="Alternating rounds.")
    parser.add_argument("--out", default=None, help="Folder for end_to_end.md/.json.")
    args = parser.parse_args()
    check_now_set(parser, args)
    from dse.output import print_table_and_json

    space = resolve_space(args.space)
    runs: dict[str, list[SideRun]] = {"ref": [], "now": []}
    with (
        tempfile.TemporaryDirectory(prefix="dse-e2e-") as scratch,
        checkout_of(ROOT, args.against) as ref_tree,
    ):
        now = ("now", ROOT, [*args.sets, *args.now_sets])
        sides = [("ref", ref_tree, args.sets), now] if ref_tree else [now]
        for round_ in range(args.rounds):
            for side, tree, sets in sides if round_ % 2 == 0 else sides[::-1]:
                folder = Path(scratch) / f"{side}-{round_}"
                folder.mkdir()
                runs[side].append(run_side(tree, space, args, folder, sets))
                last = runs[side][-1]
                print(f"round {round_ + 1} {side}: {last.wall_s:.1f} s", file=sys.stderr)

    def medians(side: str) -> tuple[float, float]:
        return (
            statistics.median(r.wall_s for r in runs[side]),
            statistics.median(r.train_s for r in runs[side]),
        )

    now_wall, now_train = medians("now")
    row = {
        "space": args.space,
        "workers": args.workers,
        "trials": len(runs["now"][-1].metrics),
        "now_wall_s": round(now_wall, 2),
        "now_train_s": round(now_train, 2),
    }
    if runs["ref"]:
        ref_wall, ref_train = medians("ref")
        ref, now = runs["ref"][-1], runs["now"][-1]
        row |= {
            f"{args.against}_wall_s": round(ref_wall, 2),
            f"{args.against}_train_s": round(ref_train, 2),
            "wall_speed_up": round(ref_wall / now_wall, 3),
            "train_speed_up": round(ref_train / now_train, 3),
            "max_val_accuracy_diff": round(largest_difference(ref, now, "val_accuracy"), 4),
            "max_test_accuracy_diff": round(largest_difference(ref, now, "test_accuracy"), 4),
        }
    print_table_and_json([row], args.out, "end_to_end")


if __name__ == "__main__":
    main()
