"""Run analysis: final returns per algorithm × environment, with the statistics that make comparisons honest.

    records = load_runs(["runs/bc", "sweeps/bc"])        # run directories, sweeps, or folders of them
    rows = summarize(records, baseline="bc")              # mean, std, IQM + 95% CI, normalised, P(improvement), p
    print_table(rows); write_tables(rows, "analysis/")    # rich table; table.md, table.csv, table.tex
    plot_curves(records, "analysis/curves.png")           # return vs steps, mean ± std band over seeds

A *record* is one seed of one run: its algorithm label, environment, final evaluation return and
learning curve, read from the driver's files (``metrics.jsonl`` eval rows, ``checkpoint.safetensors``
metadata naming the algorithm) or from a sweep (``sweep.json`` + ``chunks/*/runs.json``: each sweep
point becomes its own "algorithm", e.g. ``bc[lr=0.001]``). Statistics come from :mod:`imitation_fn.stats`.
"""

from __future__ import annotations

import csv
import dataclasses
import functools
import json
import math
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import torch

from imitation_fn import stats
from imitation_fn.core import random, serialization
from imitation_fn.train.logger import read_metrics
from imitation_fn.train.run import CHECKPOINT, METRICS

UNKNOWN_ENV = "unknown"


@dataclasses.dataclass(frozen=True)
class RunRecord:
    """One seed of one run."""

    algorithm: str
    env: str
    seed: int
    final_return: float  # mean over the final evaluation's episodes
    steps: list[int]  # evaluation steps (env steps for RL, gradient steps for offline algorithms)
    returns: list[float]  # mean evaluation return at each of ``steps``
    source: str


def _eval_curves(path: Path) -> dict[int, tuple[list[int], list[float]]]:
    """``{seed: (steps, mean returns)}`` from the eval rows of a metrics file (a resumed run's repeats dropped)."""
    curves: dict[int, dict[int, float]] = {}
    for row in read_metrics(path):
        if row.get("kind") != "eval":
            continue
        value = row["returns"] if "returns" in row else row.get("return_mean")
        if value is None:
            continue
        mean = sum(value) / len(value) if isinstance(value, list) else float(value)
        curves.setdefault(int(row["seed"]), {})[int(row["step"])] = mean
    return {s: (sorted(c), [c[k] for k in sorted(c)]) for s, c in curves.items()}


def _records(
    curves: dict[int, tuple[list[int], list[float]]], name_of: Any, env_of: Any, seed_of: Any, source: Path
) -> list[RunRecord]:
    return [
        RunRecord(name_of(s), env_of(s), seed_of(s), r[-1], steps, r, str(source))
        for s, (steps, r) in sorted(curves.items())
        if r
    ]


def _load_sweep(path: Path) -> list[RunRecord]:
    from imitation_fn.train.sweep import CHUNKS, RUNS, SPEC, label, swept_fields

    spec = json.loads((path / SPEC).read_text())
    varying = swept_fields(spec)
    out: list[RunRecord] = []
    for chunk in sorted((path / CHUNKS).glob("chunk_*")):
        if not (chunk / RUNS).exists() or not (chunk / METRICS).exists():
            continue
        runs = {r["run_seed"]: r for r in json.loads((chunk / RUNS).read_text())}
        curves = {s: c for s, c in _eval_curves(chunk / METRICS).items() if s in runs}
        out += _records(
            curves,
            lambda s, runs=runs: label(spec["algorithm"], {k: v for k, v in runs[s]["params"].items() if k in varying}),
            lambda s: spec["env"],
            lambda s, runs=runs: runs[s]["seed"],
            chunk,
        )
    return out


def _load_run(path: Path, env: str) -> list[RunRecord]:
    from imitation_fn.train.sweep import label
    from imitation_fn.train.tune import PARAMS

    meta = serialization.load_metadata(path / CHECKPOINT) if (path / CHECKPOINT).exists() else {}
    algorithm = str(meta.get("algorithm", path.name))
    if (path / PARAMS).exists():  # a Tune trial: labelled by its searched values, like a sweep point
        algorithm = label(algorithm, json.loads((path / PARAMS).read_text()))
    env_id = str(meta.get("env", env))
    return _records(_eval_curves(path / METRICS), lambda s: algorithm, lambda s: env_id, lambda s: s, path)


def load_runs(paths: Iterable[str | Path], env: str = UNKNOWN_ENV) -> list[RunRecord]:
    """Records of every run under ``paths``: run directories, sweep directories, or folders holding them.

    A run's environment is the one its checkpoint records; ``env`` names it for runs whose checkpoint does not
    (a run trained through ``training.train`` without ``env_id``).
    Raises ``FileNotFoundError`` for a path with no runs under it.
    """
    records: list[RunRecord] = []
    for p in map(Path, paths):
        found = _find(p, env, depth=2)
        if not found:
            raise FileNotFoundError(f"{p}: no run directories (metrics.jsonl with eval rows) or sweeps found")
        records += found
    return records


def _find(p: Path, env: str, depth: int) -> list[RunRecord]:
    from imitation_fn.train.sweep import SPEC

    if (p / SPEC).exists():
        return _load_sweep(p)
    if (p / METRICS).exists():
        return _load_run(p, env)
    if depth == 0 or not p.is_dir():
        return []
    return [r for child in sorted(p.iterdir()) if child.is_dir() for r in _find(child, env, depth - 1)]


# --- Reference returns -------------------------------------------------------------------------


@functools.cache
def reference_returns(env_id: str, n_episodes: int = 100) -> tuple[float, float] | None:
    """``(random, expert)`` returns of ``env_id``: the shipped expert's (``policies.zoo``) and a uniformly
    random policy's over ``n_episodes`` episodes (key 0). None when there is no expert or no torch env."""
    from imitation_fn import envs
    from imitation_fn.envs.gym import GymEnv
    from imitation_fn.evaluation import evaluate_policy
    from imitation_fn.policies import zoo
    from imitation_fn.policies.simple import random_policy

    try:
        expert = float(zoo.summary(env_id)["return_mean"])
        env = envs.make(env_id, n_envs=n_episodes)
    except (FileNotFoundError, KeyError, ValueError):
        return None
    if isinstance(env, GymEnv):
        return None
    rnd = float(evaluate_policy(env, random_policy(env.action_space), random.key(0)).returns.mean())
    return (rnd, expert) if expert != rnd else None


# --- Summary -----------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Summary:
    """Final-return statistics of one algorithm on one environment over its seeds."""

    algorithm: str
    env: str
    n: int
    mean: float
    std: float
    worst: float  # the lowest seed's final return: an algorithm that fails on some seeds shows it here
    iqm: stats.Interval  # with its 95% stratified-bootstrap CI
    normalized: float | None  # mean of (return - random) / (expert - random)
    baseline: str | None  # the algorithm compared against on this env
    prob_improvement: float | None  # P(this run > a baseline run)
    p_value: float | None  # one-sided permutation test: this algorithm's mean > the baseline's


def summarize(
    records: Sequence[RunRecord],
    baseline: str | None = None,
    *,
    references: dict[str, tuple[float, float] | None] | None = None,
    n_resamples: int = 2000,
    key: random.Key | None = None,
) -> list[Summary]:
    """One :class:`Summary` per (algorithm, environment), sorted by environment then mean return.

    ``baseline`` (an algorithm label, or a prefix like ``"bc"`` matching exactly one label per env)
    adds P(improvement) and the permutation-test p-value of every other algorithm against it.
    ``references`` maps env → ``(random, expert)`` returns (default: :func:`reference_returns`).
    """
    groups: dict[tuple[str, str], list[float]] = {}
    for r in records:
        groups.setdefault((r.env, r.algorithm), []).append(r.final_return)
    k = random.key(0) if key is None else key
    rows = []
    for i, ((env, algo), finals) in enumerate(sorted(groups.items())):
        x = torch.tensor(finals, dtype=torch.float64)
        refs = (references or {}).get(env) if references is not None else reference_returns(env)
        base = _baseline_of(baseline, env, [a for e, a in groups if e == env])
        prob = pval = None
        if base is not None and base != algo:
            y = torch.tensor(groups[(env, base)], dtype=torch.float64)
            prob = float(stats.probability_of_improvement(x, y))
            pval = stats.permutation_test(x, y, alternative="greater", key=random.fold_in(k, i)).pvalue
        rows.append(
            Summary(
                algorithm=algo,
                env=env,
                n=len(finals),
                mean=float(x.mean()),
                std=float(x.std(correction=0)),
                worst=float(x.min()),
                iqm=stats.bootstrap_ci(x, "iqm", n_resamples=n_resamples, key=random.fold_in(k, 10_000 + i)),
                normalized=float(stats.normalized_return(x, *refs).mean()) if refs else None,
                baseline=base if base != algo else None,
                prob_improvement=prob,
                p_value=pval,
            )
        )
    return sorted(rows, key=lambda s: (s.env, -s.mean))


def _baseline_of(baseline: str | None, env: str, algos: list[str]) -> str | None:
    if baseline is None:
        return None
    if baseline in algos:
        return baseline
    matches = [a for a in algos if a.startswith(baseline)]
    return matches[0] if len(matches) == 1 else None


# --- Output ------------------------------------------------------------------------------------

COLUMNS = (
    "env", "algorithm", "n", "mean", "std", "worst seed", "IQM", "IQM 95% CI", "normalised", "P(> baseline)", "p-value"
)  # fmt: skip


def _fmt(x: float | None, spec: str = ".1f") -> str:
    return "-" if x is None or (isinstance(x, float) and math.isnan(x)) else format(x, spec)


def table_rows(rows: Sequence[Summary]) -> list[list[str]]:
    """The table as strings, one list per :class:`Summary` (columns: :data:`COLUMNS`)."""
    return [
        [
            s.env,
            s.algorithm,
            str(s.n),
            _fmt(s.mean),
            _fmt(s.std),
            _fmt(s.worst),
            _fmt(s.iqm.estimate),
            f"[{s.iqm.low:.1f}, {s.iqm.high:.1f}]",
            _fmt(s.normalized, ".3f"),
            _fmt(s.prob_improvement, ".2f"),
            _fmt(s.p_value, ".3g"),
        ]
        for s in rows
    ]


def rich_table(rows: Sequence[Summary], title: str = "Final return over seeds") -> Any:
    """A compact ``rich`` table (mean ± std and IQM [95% CI] share a column each, to fit 80 columns)."""
    from rich.markup import escape
    from rich.table import Table

    table = Table(title=title)
    for c in ("env", "algorithm", "n", "mean ± std", "worst", "IQM [95% CI]", "norm.", "P(>base)", "p"):
        left = c in ("env", "algorithm")
        table.add_column(c, justify="left" if left else "right", overflow="fold")
    for r in table_rows(rows):
        env, algo, n, mean, std, worst, iqm, ci, norm, prob, p = r
        table.add_row(escape(env), escape(algo), n, f"{mean} ± {std}", worst, f"{iqm} {ci}", norm, prob, p)
    return table


def to_markdown(rows: Sequence[Summary]) -> str:
    lines = ["| " + " | ".join(COLUMNS) + " |", "|" + "|".join("---" for _ in COLUMNS) + "|"]
    lines += ["| " + " | ".join(c.replace("|", "\\|") for c in r) + " |" for r in table_rows(rows)]
    return "\n".join(lines) + "\n"


def _latex_escape(s: str) -> str:
    for a, b in (("\\", r"\textbackslash{}"), ("_", r"\_"), ("%", r"\%"), ("&", r"\&"), ("#", r"\#"), ("$", r"\$")):
        s = s.replace(a, b)
    return s


def to_latex(rows: Sequence[Summary]) -> str:
    head = " & ".join(_latex_escape(c) for c in COLUMNS) + r" \\"
    body = [" & ".join(_latex_escape(c) for c in r) + r" \\" for r in table_rows(rows)]
    spec = "ll" + "r" * (len(COLUMNS) - 2)
    return (
        "\n".join(
            [rf"\begin{{tabular}}{{{spec}}}", r"\toprule", head, r"\midrule", *body, r"\bottomrule", r"\end{tabular}"]
        )
        + "\n"
    )


def write_tables(rows: Sequence[Summary], out: str | Path) -> dict[str, Path]:
    """``table.md``, ``table.csv`` (full precision) and ``table.tex`` in ``out``; returns their paths."""
    d = Path(out)
    d.mkdir(parents=True, exist_ok=True)
    paths = {"markdown": d / "table.md", "csv": d / "table.csv", "latex": d / "table.tex"}
    paths["markdown"].write_text(to_markdown(rows))
    paths["latex"].write_text(to_latex(rows))
    with paths["csv"].open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["env", "algorithm", "n", "mean", "std", "worst", "iqm", "iqm_low", "iqm_high", "normalized",
                    "baseline", "prob_improvement", "p_value"])  # fmt: skip
        for s in rows:
            stats_ = [s.mean, s.std, s.worst, s.iqm.estimate, s.iqm.low, s.iqm.high, _blank(s.normalized)]
            w.writerow(
                [s.env, s.algorithm, s.n, *stats_, s.baseline or "", _blank(s.prob_improvement), _blank(s.p_value)]
            )
    return paths


def _blank(x: float | None) -> Any:
    return "" if x is None else x


def plot_curves(records: Sequence[RunRecord], path: str | Path) -> Path:
    """Learning curves as a PNG: per environment, mean evaluation return against steps for each
    algorithm, with a band of ± one standard deviation over seeds (needs matplotlib: the ``plot`` extra)."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as e:
        raise ImportError("plot_curves needs matplotlib: pip install 'imitation-fn[plot]'") from e
    env_ids = sorted({r.env for r in records})
    if not env_ids:
        raise ValueError("plot_curves: no records")
    fig, axes = plt.subplots(1, len(env_ids), figsize=(5.5 * len(env_ids), 4), squeeze=False)
    for ax, env in zip(axes[0], env_ids, strict=True):
        by_algo: dict[str, list[RunRecord]] = {}
        for r in records:
            if r.env == env:
                by_algo.setdefault(r.algorithm, []).append(r)
        for algo, runs in sorted(by_algo.items()):
            steps = sorted(set.intersection(*(set(r.steps) for r in runs)))  # steps every seed evaluated at
            if not steps:
                continue
            curves = torch.tensor([[dict(zip(r.steps, r.returns, strict=True))[s] for s in steps] for r in runs])
            mean, std = curves.mean(0), curves.std(0, correction=0)
            (line,) = ax.plot(steps, mean, label=f"{algo} (n={len(runs)})")
            ax.fill_between(steps, mean - std, mean + std, alpha=0.2, color=line.get_color())
        ax.set_title(env)
        ax.set_xlabel("steps (env steps for RL, gradient steps for offline)")
        ax.set_ylabel("evaluation return")
        ax.legend(fontsize="small")
    fig.tight_layout()
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=100)
    plt.close(fig)
    return out


__all__ = [
    "COLUMNS",
    "RunRecord",
    "Summary",
    "load_runs",
    "plot_curves",
    "reference_returns",
    "rich_table",
    "summarize",
    "table_rows",
    "to_latex",
    "to_markdown",
    "write_tables",
]
