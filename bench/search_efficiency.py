"""Search efficiency: hypervolume reached against training compute spent, per search method.

    python bench/search_efficiency.py [--space efficiency.yaml] [--workers 2]
        [--methods grid,random,nsga2,tpe,moasha] [--budget N] [--rungs 1,3,9] [--eta 3]
        [--seeds 30] [--record FILE] [--out results/search_efficiency]

The comparison is a replay (`dse replay`, dse/search/replay.py): each method, --seeds seeds,
simulated on a recorded grid with W virtual workers, as `dse run` would run it. With --record
(say bench/records/efficiency.json.gz) nothing trains: the replay alone, from the file. Without
it, each method also runs live once (below), as a check, and the replay runs on the live grid's
record. The claim is checked on the replay: moasha's mean hv share >= 95% with its 95% interval's
low end >= 90%, at a mean compute share <= 35%.

On one search space, runs each method with its own storage (OUT/METHOD.db):
- grid: every point in full, the ground truth;
- random, nsga2, tpe: --budget trials each (default: a third of the grid), in full;
- moasha: the grid's points with `--early-stop moasha` (stopped trials count their compute).

All hypervolumes use one reference point: the space's `reference_point` if it has one, else the
worst observed values of the grid (+ 10% of the range), so the numbers compare. Compute is the
sum of training seconds of every trial run (stopped and failed ones included). Prints a markdown
table and, on the last line, the same as JSON.

Training seconds move with the machine's load between methods run one after another (on a
shared CPU, by 2x and more). So each method is also replayed on the grid's measurements: its
trials take the grid's numbers for the same point (the grid runs every point; trials are
deterministic, so the accuracies match exactly), its hypervolume is that of its complete
points at the grid's values, and its compute the grid's training seconds up to the epoch it
stopped at. These "replayed" ratios compare selection alone, free of load noise.

Running it again resumes what is in OUT (delete the folder to start over).
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

from dse.progress import LineReporter
from dse.search.early_stop import EarlyStop, parse_rungs
from dse.search.options import RunOptions
from dse.search.pareto import hypervolume
from dse.search.record_checks import complete_grid
from dse.search.recording import Recording, load_record, record_study
from dse.search.records import StudyRecord, TrialRecord
from dse.search.replay import Grid
from dse.search.replay_summary import CI_METHOD, replay_methods
from dse.search.results import (
    StudyView,
    hypervolume_history,
    open_view,
    reference_point,
    worst_plus_margin,
)
from dse.search.runner import run_study
from dse.space import load_space

METHODS = ("grid", "random", "nsga2", "tpe", "moasha")
FRACTIONS = (0.1, 0.25, 0.35, 0.5, 1.0)  # of the grid's compute
CLAIM = (0.95, 0.35)  # moasha: >= 95% of grid's hypervolume with <= 35% of its compute
CLAIM_CI_LOW = 0.90  # and the replay's 95% interval of the hv share starts at 90% or more


def run_method(method: str, args: argparse.Namespace, budget: int) -> tuple[str, float]:
    """Run (or resume) one method; returns its storage URL and wall seconds."""
    space = load_space(args.space)
    storage = f"sqlite:///{args.out}/{method}.db"
    options = RunOptions(
        storage=storage,
        sampler="grid" if method in ("grid", "moasha") else method,
        n_trials=None if method in ("grid", "moasha") else budget,
        seed=args.seed,
        workers=args.workers,
        data_dir=args.data_dir,
        early_stop=early_stop_of(args) if method == "moasha" else None,
    )
    print(f"--- {method}", flush=True)
    summary = run_study(space, options, LineReporter())
    return storage, summary.elapsed_s


def reference_for(views: dict[str, StudyView]) -> list[float]:
    """The space's reference point, else derived from the grid (else from every method)."""
    if "grid" in views:
        return reference_point(views["grid"])  # the space's, when it gives one
    view = next(iter(views.values()))
    given = StudyRecord(view.study).reference_point
    if given:
        return [float(given[m]) for m in view.metric_names]
    values = [t.values for v in views.values() for t in v.trials() if t.state.name == "COMPLETE"]
    return worst_plus_margin(values, view.directions)


def replay(view: StudyView, grid_view: StudyView, ref: list[float]) -> tuple[float, float]:
    """(hypervolume, training seconds) of the method's trials at the grid's measurements."""
    by_point = {
        tuple(sorted(t.params.items())): t for t in grid_view.trials() if t.state.name == "COMPLETE"
    }
    front, compute = [], 0.0
    for t in view.trials():
        g = by_point.get(tuple(sorted(t.params.items())))
        curve = TrialRecord(t).curve
        if g is None or not curve:
            continue
        compute += TrialRecord(g).curve[len(curve) - 1].elapsed_train_s
        if t.state.name == "COMPLETE":
            front.append(g.values)
    return (hypervolume(front, view.directions, ref) if front else 0.0), compute


def method_row(
    method: str,
    view: StudyView,
    ref: list[float],
    wall_s: float,
    grid: dict | None,
    grid_view: StudyView | None = None,
) -> dict:
    history = hypervolume_history(view, ref)
    trials = view.trials()
    row = {
        "method": method,
        "trials": len(history),
        "complete": sum(t.state.name == "COMPLETE" for t in trials),
        "stopped": sum(t.state.name == "PRUNED" for t in trials),
        "compute_s": history[-1].compute_s if history else 0.0,
        "wall_s": wall_s,
        "hypervolume": history[-1].hypervolume if history else 0.0,
        "history": [
            {"number": p.number, "compute_s": p.compute_s, "hypervolume": p.hypervolume}
            for p in history
        ],
    }
    if grid:
        row["hv_ratio"] = row["hypervolume"] / grid["hypervolume"]
        row["compute_ratio"] = row["compute_s"] / grid["compute_s"]
        row["hv_at"] = {
            f"{f:.0%}": max(
                [p.hypervolume for p in history if p.compute_s <= f * grid["compute_s"]] or [0.0]
            )
            / grid["hypervolume"]
            for f in FRACTIONS
        }
        reach = [p.compute_s for p in history if p.hypervolume >= 0.95 * grid["hypervolume"]]
        row["compute_to_95"] = reach[0] / grid["compute_s"] if reach else None
    if grid and grid_view is not None:
        hv, compute = replay(view, grid_view, ref)
        _, grid_compute = replay(grid_view, grid_view, ref)
        row["replayed_hv_ratio"] = hv / grid["hypervolume"]
        row["replayed_compute_ratio"] = compute / grid_compute
    return row


def early_stop_of(args) -> EarlyStop:
    """--rungs and --eta; no --rungs: successive halving's for each run."""
    return EarlyStop(parse_rungs(args.rungs) if args.rungs else None, args.eta)


def replay_report(recording: Recording, methods: list[str], args, budget: int) -> dict:
    """Each method replayed with --seeds seeds on the record (a complete grid, else refused): a
    markdown table, and the rows."""
    grid = Grid(complete_grid(recording))
    early_stop = early_stop_of(args)
    result = replay_methods(grid, methods, args.seeds, args.workers, budget, early_stop)
    rows = [s.row() for s in result.summaries]
    print(
        f"\nreplay of {recording.study} ({len(grid.grid)} points, {grid.compute_s:.0f} training "
        f"seconds), {args.workers} virtual workers, {args.seeds} seeds, in {result.wall_s:.1f} s; "
        f"mean [95% interval, {CI_METHOD}]\n"
    )
    print("| method | seeds | trials | stopped | hv share | compute share |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        hv, cs = r["hv_share_ci"], r["compute_share_ci"]
        print(
            f"| {r['method']} | {r['seeds']} | {r['trials']:.1f} | {r['stopped']:.1f} | "
            f"{r['hv_share']:.3f} [{hv[0]:.3f}, {hv[1]:.3f}] | "
            f"{r['compute_share']:.3f} [{cs[0]:.3f}, {cs[1]:.3f}] |"
        )
    claim = None
    moasha = next((r for r in rows if r["method"] == "moasha"), None)
    if moasha is not None:
        claim = (
            moasha["hv_share"] >= CLAIM[0]
            and moasha["hv_share_ci"][0] >= CLAIM_CI_LOW
            and moasha["compute_share"] <= CLAIM[1]
        )
        print(
            f"\nclaim (replayed: moasha mean hv share >= {CLAIM[0]:.0%}, interval low >= "
            f"{CLAIM_CI_LOW:.0%}, mean compute share <= {CLAIM[1]:.0%}): "
            f"{'holds' if claim else 'does not hold'} ({moasha['hv_share']:.1%} "
            f"[{moasha['hv_share_ci'][0]:.1%}, {moasha['hv_share_ci'][1]:.1%}] with "
            f"{moasha['compute_share']:.1%})"
        )
    return {"rows": rows, "wall_s": result.wall_s, "claim_holds": claim}


def replay_only(args, methods: list[str]) -> None:
    """--record: the replay alone, nothing trains."""
    recording = complete_grid(load_record(args.record))
    budget = args.budget or math.ceil(len(Grid(recording).grid) / 3)
    report = replay_report(recording, methods, args, budget)
    summary = {"record": args.record, "study": recording.study, "workers": args.workers}
    summary |= {"budget": budget, "rungs": args.rungs, "eta": args.eta, "seeds": args.seeds}
    print(json.dumps({**summary, "replay": report}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--space", default="efficiency.yaml")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--methods", default=",".join(METHODS))
    parser.add_argument("--budget", type=int, default=None, help="trials of random/nsga2/tpe")
    parser.add_argument("--rungs", default=None, help="default: successive halving's")
    parser.add_argument("--eta", type=float, default=3.0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--out", default="results/search_efficiency")
    parser.add_argument("--seeds", type=int, default=30, help="replay seeds per method")
    parser.add_argument("--record", default=None, help="replay this record only (no training)")
    args = parser.parse_args()
    methods = [m for m in args.methods.split(",") if m]
    unknown = set(methods) - set(METHODS)
    if unknown:
        parser.error(f"--methods: unknown {', '.join(sorted(unknown))}; choose from {METHODS}")
    if args.record is not None:
        replay_only(args, methods)
        return
    space = load_space(args.space)
    if not space.finite:
        parser.error(f"--space {args.space}: the benchmark needs a finite space (a grid)")
    budget = args.budget or math.ceil((space.grid_size() or 0) / 3)
    Path(args.out).mkdir(parents=True, exist_ok=True)

    walls, views = {}, {}
    for method in methods:
        storage, walls[method] = run_method(method, args, budget)
        views[method] = open_view(storage, space.name)
    ref = reference_for(views)
    grid = method_row("grid", views["grid"], ref, walls["grid"], None) if "grid" in views else None
    rows = [method_row(m, views[m], ref, walls[m], grid, views.get("grid")) for m in methods]

    names = views[methods[0]].metric_names
    print(
        f"\nspace {space.name}: grid of {space.grid_size()}, {args.workers} workers; budget "
        f"{budget} trials for random/nsga2/tpe; moasha rungs "
        f"{early_stop_of(args).describe()}, eta {args.eta:g}"
    )
    print(
        "reference point: "
        + ", ".join(f"{n}={v:.4g}" for n, v in zip(names, ref, strict=True))
        + "\n"
    )
    head = "| method | trials | complete | stopped | compute s | wall s | hypervolume |"
    sep = "|---|---|---|---|---|---|---|"
    if grid:
        head += (
            " HV / grid | compute / grid | "
            + " | ".join(f"HV@{f:.0%}" for f in FRACTIONS)
            + " | compute to 95% | replayed: HV / grid | compute / grid |"
        )
        sep += "---|---|" + "---|" * len(FRACTIONS) + "---|---|---|"
    print(head)
    print(sep)
    for r in rows:
        line = (
            f"| {r['method']} | {r['trials']} | {r['complete']} | {r['stopped']} | "
            f"{r['compute_s']:.0f} | {r['wall_s']:.0f} | {r['hypervolume']:.5g} |"
        )
        if grid:
            to95 = f"{r['compute_to_95']:.0%}" if r["compute_to_95"] is not None else "never"
            line += (
                f" {r['hv_ratio']:.1%} | {r['compute_ratio']:.1%} | "
                + " | ".join(f"{v:.1%}" for v in r["hv_at"].values())
                + f" | {to95} | {r['replayed_hv_ratio']:.1%} | "
                + f"{r['replayed_compute_ratio']:.1%} |"
            )
        print(line)
    claim = None
    if grid and "moasha" in methods:
        moasha = next(r for r in rows if r["method"] == "moasha")
        claim = moasha["hv_ratio"] >= CLAIM[0] and moasha["compute_ratio"] <= CLAIM[1]
        replayed = (
            moasha["replayed_hv_ratio"] >= CLAIM[0] and moasha["replayed_compute_ratio"] <= CLAIM[1]
        )
        print(
            f"\nclaim (moasha >= {CLAIM[0]:.0%} of the grid's hypervolume with <= {CLAIM[1]:.0%} "
            f"of its training seconds): {'holds' if claim else 'does not hold'} as measured "
            f"({moasha['hv_ratio']:.1%} with {moasha['compute_ratio']:.1%}); "
            f"{'holds' if replayed else 'does not hold'} replayed on the grid's measurements "
            f"({moasha['replayed_hv_ratio']:.1%} with {moasha['replayed_compute_ratio']:.1%})"
        )
    replayed = None
    if "grid" in views:
        grid_storage = f"sqlite:///{args.out}/grid.db"
        replayed = replay_report(record_study(grid_storage, space.name), methods, args, budget)
    print(
        json.dumps(
            {
                "space": space.name,
                "workers": args.workers,
                "budget": budget,
                "rungs": args.rungs,
                "eta": args.eta,
                "reference_point": dict(zip(names, ref, strict=True)),
                "claim_holds": claim,
                "methods": rows,
                "replay": replayed,
            }
        )
    )


if __name__ == "__main__":
    main()
