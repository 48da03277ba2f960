"""imitation_fn side by side with ``imitation`` 1.0.1 (and stable-baselines3 2.2.1): the same work, timed alike.

    python benchmarks/vs_imitation/run.py                       # every algorithm: hours on 2 cores (README)
    python benchmarks/vs_imitation/run.py --only bc,gail --seeds 8
    python benchmarks/vs_imitation/run.py --quick               # tiny budgets, 2 seeds: a smoke test of everything
    python benchmarks/vs_imitation/run.py --compile --reuse-peer  # ours compiled (its own results file), the
                                                                  # peer's runs copied from the eager file

First it builds, once, a virtual environment with the peer (``.peer-venv/`` beside this file, or
``--peer-venv``; a marker file records a finished build, so later runs reuse it). If that install fails
the peer side is skipped and ours is still measured. Then for each algorithm, one after the other, as
subprocesses with one OpenMP/torch thread each:

1. ours, seed 0 alone (``ours.py --seeds 1``);
2. the peer, seed 0 (``peer.py --seed 0``, in the peer's venv);
3. ours, seeds 0..N-1 in one vmapped run (``ours.py --seeds N``, N = ``--seeds``, default 8);
4. the peer, seeds 0..N-1, one run each, one after the other (it trains one seed per run).

Both sides train on ``configs.py``'s settings (the test checks that each side's arguments read back to
them) and report ``train_s``: the seconds of the training call(s) alone — no imports, no environment or
trainer construction, no evaluation — and each seed's mean return over ``configs.N_EVAL_EPISODES``
deterministic episodes of the final policy. ``run.py`` also times each whole subprocess (imports,
setup, training, evaluation). After every algorithm it writes ``benchmarks/results/vs_imitation.json``
(atomically; ``--quick`` writes ``vs_imitation_quick.json``, ``--compile`` ``vs_imitation_compiled.json``):

    {algo: {"peer_s", "ours_s", "ratio_1": peer_s / ours_s,
            "ratio_8": (sum of the 8 peer runs' train_s) / (ours' 8 vmapped seeds' train_s),
            "peer_return", "ours_return" (means over the N seeds), per-seed returns, process times,
            the settings and both sides' configs, versions, ...}}

Algorithms already in that file are skipped (resume after an interruption) unless ``--force``; a record
whose peer side was skipped or failed is redone. A rich table of the file ends the run.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
RESULTS = ROOT / "benchmarks" / "results"
WORK = HERE / ".work"
sys.path.insert(0, str(HERE))

import configs  # noqa: E402  (beside this file)

PEER_VENV = HERE / ".peer-venv"
PEER_TORCH = "torch==2.13.0"  # first, alone: the CPU build on this machine's wheel directory
PEER_PACKAGES = [
    "imitation==1.0.1",
    "stable-baselines3==2.2.1",
    "gymnasium==0.29.1",
    "seals==0.2.1",
    "numpy==1.26.4",
    "datasets==2.21.0",
    "pyarrow==17.0.0",
    "pandas==2.2.3",
    "setuptools<81",  # sacred (imitation's dependency) imports pkg_resources
]
MARKER = "vs_imitation_peer.json"
"""Written into the venv once every package installed and imports; holds the pins and the build time."""
THREAD_ENV = {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1"}


def log(msg: str) -> None:
    print(f"[vs_imitation {time.strftime('%H:%M:%S')}] {msg}", flush=True)


# --- The peer's virtual environment ---------------------------------------------------------------


def venv_python(venv: Path) -> Path:
    return venv / ("Scripts/python.exe" if os.name == "nt" else "bin/python")


def peer_marker(venv: Path) -> dict[str, Any] | None:
    """The marker of a finished build with today's pins, or None."""
    try:
        marker = json.loads((venv / MARKER).read_text())
    except (OSError, ValueError):
        return None
    if marker.get("packages") != [PEER_TORCH, *PEER_PACKAGES] or not venv_python(venv).exists():
        return None
    return marker


def ensure_peer_venv(venv: Path, work: Path = WORK) -> tuple[Path | None, dict[str, Any]]:
    """The peer venv's python, built if needed; ``(None, info)`` with the reason when it cannot be had."""
    marker = peer_marker(venv)
    if marker is not None:
        log(f"peer venv: {venv} (built {marker.get('built')}, in {marker.get('build_s', 0):.0f} s)")
        return venv_python(venv), marker
    work.mkdir(parents=True, exist_ok=True)
    build_log = work / "peer-venv-build.log"
    log(f"peer venv: building {venv} (pip output: {build_log}); this takes a few minutes, once")
    t0 = time.perf_counter()
    python = venv_python(venv)
    steps = [
        [sys.executable, "-m", "venv", "--clear", str(venv)],
        [str(python), "-m", "pip", "install", PEER_TORCH],
        [str(python), "-m", "pip", "install", *PEER_PACKAGES],
        [
            str(python),
            "-c",
            "import imitation, seals, stable_baselines3, datasets, torch; print(imitation.__version__)",
        ],
    ]
    with build_log.open("w") as out:
        for cmd in steps:
            out.write(f"$ {' '.join(cmd)}\n")
            out.flush()
            rc = subprocess.call(cmd, stdout=out, stderr=subprocess.STDOUT, cwd=ROOT)
            if rc != 0:
                tail = build_log.read_text().splitlines()[-15:]
                reason = f"`{' '.join(cmd[-3:])}` failed (exit {rc}); see {build_log}"
                log("peer venv: INSTALL FAILED — the peer side is skipped, ours is still measured.")
                log(f"peer venv: {reason}; last lines:\n    " + "\n    ".join(tail))
                return None, {"error": reason}
    marker = {
        "packages": [PEER_TORCH, *PEER_PACKAGES],
        "built": datetime.datetime.now().isoformat(timespec="seconds"),
        "build_s": time.perf_counter() - t0,
        "python": sys.version.split()[0],
    }
    (venv / MARKER).write_text(json.dumps(marker, indent=1))
    log(f"peer venv: built in {marker['build_s']:.0f} s")
    return python, marker


# --- Shared inputs: the expert as an SB3 zip, the demonstrations as imitation's .npz ------------------


def cli(*args: str) -> None:
    """``imitation-fn ARGS`` with this interpreter (the library's public CLI)."""
    code = "import sys; from imitation_fn.cli import main; sys.exit(main())"
    subprocess.run([sys.executable, "-c", code, *args], check=True, cwd=ROOT, env={**os.environ, **THREAD_ENV})


def expert_zip(s: dict[str, Any], work: Path) -> Path:
    """The shipped expert as the SB3 zip both sides load (``imitation-fn export-sb3``), made once."""
    path = work / f"{Path(s['expert']).name}_expert.zip"
    if not path.exists():
        cli("export-sb3", "--policy", str(ROOT / s["expert"]), "--out", str(path))
    return path


def demos_npz(s: dict[str, Any], work: Path) -> Path:
    """The demonstrations as ``imitation``'s ``.npz`` (``imitation-fn convert``), made once: the shipped
    directories were written by ``datasets`` >= 4, whose ``List`` features ``datasets`` 2.21 cannot read."""
    name = Path(s["demos"]).parent.name
    path = work / f"{name}_demos.npz"
    if not path.exists():
        cli("convert", str(ROOT / s["demos"]), str(path))
    return path


# --- One subprocess -------------------------------------------------------------------------------


def launch(cmd: list[str], out_json: Path, log_file: Path, timeout: float) -> dict[str, Any]:
    """Run ``cmd`` with one thread; its JSON (or the error), plus ``process_s``, the whole subprocess's wall time."""
    out_json.unlink(missing_ok=True)
    env = {**os.environ, **THREAD_ENV, "PYTHONUNBUFFERED": "1"}
    env.pop("PYTHONPATH", None)  # the peer must not see this environment's packages
    t0 = time.perf_counter()
    with log_file.open("w") as out:
        try:
            rc = subprocess.call(cmd, stdout=out, stderr=subprocess.STDOUT, cwd=ROOT, env=env, timeout=timeout)
        except subprocess.TimeoutExpired:
            rc = -1
    process_s = time.perf_counter() - t0
    if rc != 0 or not out_json.exists():
        tail = log_file.read_text(errors="replace").splitlines()[-6:] if log_file.exists() else []
        what = "timed out" if rc == -1 else f"exit {rc}"
        return {"error": f"{what}; log {log_file}: " + " | ".join(tail), "process_s": process_s}
    result = json.loads(out_json.read_text())
    result["process_s"] = process_s
    return result


RUN_FIELDS = ("train_s", "eval_s", "setup_s", "process_s", "return", "returns", "seeds", "seed", "error")
"""What a record keeps of each subprocess's JSON (the whole JSON stays in the runs directory)."""


def _summary(result: dict[str, Any]) -> dict[str, Any]:
    return {k: result[k] for k in RUN_FIELDS if k in result} | {
        k: result[k] for k in ("it_per_s", "iterations", "expert_return", "linf") if k in result
    }


def reusable_peer(algo: str, args: argparse.Namespace, n_seeds: int) -> tuple[dict[str, Any], Path] | None:
    """``--reuse-peer``: the peer's runs of ``algo`` from the other results file (eager <-> compiled), when
    they exist, are complete and were made with the same settings and seeds."""
    other = results_path(args.quick, not args.compile)
    try:
        record = json.loads(other.read_text()).get(algo)
    except (OSError, ValueError):
        return None
    if not record or record.get("n_seeds") != n_seeds or "runs" not in record:
        return None
    runs = record["runs"]
    peer_runs = [runs.get("peer_1"), *runs.get(f"peer_{n_seeds}", [])]
    if len(peer_runs) != n_seeds + 1 or any(r is None or "error" in r for r in peer_runs):
        return None
    if record.get("config", {}).get("settings") != configs.spec(algo, quick=args.quick):
        return None
    return record, other


def run_algo(
    algo: str, args: argparse.Namespace, n_seeds: int, peer_python: Path | None, peer_info: dict[str, Any]
) -> dict[str, Any]:
    """The four steps of the module docstring for ``algo``; its record."""
    s = configs.spec(algo, quick=args.quick)
    work = args.work / "runs" / ("quick" if args.quick else "full") / algo
    work.mkdir(parents=True, exist_ok=True)
    inputs: list[str] = []
    peer_inputs: list[str] = []
    if "expert" in s:
        inputs = ["--expert-zip", str(expert_zip(s, args.work))]
        peer_inputs = list(inputs)
    if "demos" in s:
        peer_inputs += ["--demos-file", str(demos_npz(s, args.work))]
    flags = ["--quick"] if args.quick else []
    reused = reusable_peer(algo, args, n_seeds) if args.reuse_peer else None

    def ours(n: int) -> dict[str, Any]:
        cmd = [sys.executable, str(HERE / "ours.py"), "--algo", algo, "--seeds", str(n), *flags, *inputs]
        if args.compile:
            cmd.append("--compile")
        out = work / f"ours_{n}{'_compiled' if args.compile else ''}.json"
        log(f"{algo}: ours, {n} seed{'s' if n > 1 else ''}{' vmapped' if n > 1 else ''}")
        return launch([*cmd, "--out", str(out)], out, out.with_suffix(".log"), args.timeout)

    def peer(seed: int, tag: str) -> dict[str, Any]:
        if reused is not None:
            runs = reused[0]["runs"]
            return dict(runs["peer_1"] if tag == "1" else runs[f"peer_{n_seeds}"][seed])
        if peer_python is None:
            return {"error": f"peer venv unavailable: {peer_info.get('error')}", "process_s": 0.0}
        out = work / f"peer_{tag}.json"
        cmd = [str(peer_python), str(HERE / "peer.py"), "--algo", algo, "--seed", str(seed), *flags, *peer_inputs]
        log(f"{algo}: peer, seed {seed}")
        return launch([*cmd, "--out", str(out)], out, out.with_suffix(".log"), args.timeout)

    load_before = os.getloadavg()[0] if hasattr(os, "getloadavg") else None
    t0 = time.perf_counter()
    ours_1 = ours(1)
    peer_1 = peer(0, "1")
    ours_n = ours(n_seeds)
    peer_n = [peer(seed, f"{n_seeds}_seed{seed}") for seed in range(n_seeds)]
    wall = time.perf_counter() - t0

    runs = {
        "ours_1": _summary(ours_1),
        "peer_1": _summary(peer_1),
        f"ours_{n_seeds}": _summary(ours_n),
        f"peer_{n_seeds}": [_summary(r) for r in peer_n],
    }
    errors = {
        name: r["error"]
        for name, r in [("ours_1", ours_1), ("peer_1", peer_1), (f"ours_{n_seeds}", ours_n)]
        + [(f"peer_{n_seeds}_seed{i}", r) for i, r in enumerate(peer_n)]
        if "error" in r
    }

    def ratio(a: float | None, b: float | None) -> float | None:
        return a / b if a is not None and b else None

    def mean(xs: list[float] | None) -> float | None:
        return sum(xs) / len(xs) if xs else None

    peer_n_ok = all("error" not in r for r in peer_n)
    peer_s, ours_s, ours_n_s = peer_1.get("train_s"), ours_1.get("train_s"), ours_n.get("train_s")
    peer_n_s = sum(r["train_s"] for r in peer_n) if peer_n_ok else None
    peer_returns = [r["return"] for r in peer_n] if peer_n_ok else None
    ours_returns = ours_n.get("returns")
    peer_n_process = sum(r["process_s"] for r in peer_n) if peer_n_ok else None
    record: dict[str, Any] = {
        "description": describe_task(algo, s),
        "n_seeds": n_seeds,
        "compile": args.compile,
        "quick": args.quick,
        "peer_s": peer_s,
        "ours_s": ours_s,
        "ratio_1": ratio(peer_s, ours_s),
        f"peer_{n_seeds}_s": peer_n_s,
        f"ours_{n_seeds}_s": ours_n_s,
        f"ratio_{n_seeds}": ratio(peer_n_s, ours_n_s),
        "peer_return": mean(peer_returns),
        "ours_return": mean(ours_returns),
        "peer_returns": peer_returns,
        "ours_returns": ours_returns,
        "peer_return_1": peer_1.get("return"),
        "ours_return_1": ours_1.get("return"),
        "process_ratio_1": ratio(peer_1["process_s"], ours_1["process_s"]),
        f"process_ratio_{n_seeds}": ratio(peer_n_process, ours_n["process_s"]),
        "runs": runs,
    }
    if algo == "mce_irl":
        record["ours_it_per_s"] = ours_1.get("it_per_s")
        record["peer_it_per_s"] = peer_1.get("it_per_s")
        record[f"ours_{n_seeds}_it_per_s"] = ours_n.get("it_per_s")
        record["return_is"] = "exact expected return of the learned reward's soft-optimal policy (true reward)"
    if algo == "dagger":
        record["expert_return_peer"] = peer_1.get("expert_return")
    if algo == "density":
        record["ours_imitation_returns"] = ours_n.get("imitation_returns")
    record["config"] = {
        "settings": s,
        "ours": ours_n.get("config", ours_1.get("config")),
        "peer": peer_1.get("settings", next((r.get("settings") for r in peer_n if "settings" in r), None)),
    }
    if reused is not None:
        record["config"]["peer"] = reused[0]["config"]["peer"]
        record["peer_reused_from"] = f"{reused[1].name} ({reused[0].get('date')})"
    record["versions"] = {
        "ours": next((r["versions"] for r in (ours_1, ours_n) if "versions" in r), None),
        "peer": next((r["versions"] for r in (peer_1, *peer_n) if "versions" in r), None),
    }
    if reused is not None:
        record["versions"]["peer"] = reused[0]["versions"]["peer"]
    record.update(
        date=datetime.datetime.now().isoformat(timespec="seconds"),
        commit=git_commit(),
        machine=f"{platform.machine()}, {os.cpu_count()} cores, {platform.system()}",
        load_average_before=load_before,
        wall_s=wall,
        runs_dir=str(work.relative_to(ROOT) if work.is_relative_to(ROOT) else work),
    )
    if errors:
        record["errors"] = errors
        record["incomplete"] = True
    return record


def git_commit() -> str | None:
    """HEAD, with ``+dirty`` when the working tree has changes (the measured code may not be HEAD's)."""
    try:
        head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True, check=True)
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=ROOT, capture_output=True)
    except (OSError, subprocess.CalledProcessError):
        return None
    return head.stdout.strip() + ("+dirty" if dirty.stdout.strip() else "")


def describe_task(algo: str, s: dict[str, Any]) -> str:
    """One line: the task and budget of ``algo`` (the full settings are in the record's ``config``)."""
    demos = f", {s['n_demos']} expert episodes" if "n_demos" in s else ""
    if algo == "bc":
        b = s["bc"]
        return f"{s['env']}{demos}, {s['n_epochs']} epochs, batch {b['batch_size']}, lr {b['learning_rate']}"
    if algo == "dagger":
        return (
            f"{s['env']}, {s['total_timesteps']} env steps ({s['n_envs']} envs), shipped expert (SB3 zip), "
            f"BC batch {s['bc']['batch_size']}, {s['bc_epochs_per_round']} epochs per round"
        )
    if algo in ("gail", "airl"):
        p = s["ppo"]
        return (
            f"{s['env']}{demos}, {s['total_timesteps']} generator steps, PPO {s['n_envs']}x{p['n_steps']} "
            f"batch {p['batch_size']}, demo_batch {s['demo_batch_size']}, {s['n_disc_updates_per_round']} disc "
            f"updates/round"
        )
    if algo == "density":
        return f"{s['env']}{demos}, KDE {s['kernel']} bw {s['kernel_bandwidth']}, PPO {s['total_timesteps']} steps"
    if algo == "mce_irl":
        return (
            f"CliffWorld {s['width']}x{s['height']}, horizon {s['horizon']}, reward MLP {s['hid_sizes']}, "
            f"{s['max_iter']} iterations"
        )
    if algo == "preference_comparisons":
        return f"{s['env']}, {s['total_comparisons']} comparisons, {s['total_timesteps']} PPO steps"
    p = s.get("ppo") or s["sac"]
    return f"{s['env']}, SB3 defaults, {s['n_envs']} env, {s['total_timesteps']} steps, batch {p['batch_size']}"


# --- Results --------------------------------------------------------------------------------------


def results_path(quick: bool, compile: bool) -> Path:
    return RESULTS / f"vs_imitation{'_quick' if quick else ''}{'_compiled' if compile else ''}.json"


def write_atomic(path: Path, data: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data, indent=1) + "\n")
    os.replace(tmp, path)


def _fmt(x: float | None, spec: str = ".2f", suffix: str = "") -> str:
    if x is None:
        return "—"
    if spec == "ratio":  # two decimals, or two significant digits below 0.1
        return f"{x:.2f}×" if x >= 0.1 else f"{x:.2g}×"
    return f"{x:{spec}}{suffix}"


def print_table(results: dict[str, Any], title: str) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=title)
    for col in (
        "algorithm",
        "seeds",
        "ours 1 (s)",
        "peer 1 (s)",
        "× 1",
        "ours N vmapped (s)",
        "peer N runs (s)",
        "× N",
        "ours return",
        "peer return",
        "note",
    ):
        table.add_column(col, justify="left" if col in ("algorithm", "note") else "right")
    for algo in configs.ALGOS:
        r = results.get(algo)
        if r is None:
            continue
        n = r["n_seeds"]
        note = "incomplete" if r.get("incomplete") else ""
        if algo == "mce_irl" and r.get("ours_it_per_s"):
            note = f"it/s: ours {r['ours_it_per_s']:.3g}, peer {_fmt(r.get('peer_it_per_s'), '.3g')}" + (
                f"; {note}" if note else ""
            )
        table.add_row(
            algo,
            str(n),
            _fmt(r.get("ours_s"), ".1f"),
            _fmt(r.get("peer_s"), ".1f"),
            _fmt(r.get("ratio_1"), "ratio"),
            _fmt(r.get(f"ours_{n}_s"), ".1f"),
            _fmt(r.get(f"peer_{n}_s"), ".1f"),
            _fmt(r.get(f"ratio_{n}"), "ratio"),
            _fmt(r.get("ours_return"), ".1f"),
            _fmt(r.get("peer_return"), ".1f"),
            note,
        )
    Console(width=200).print(table)
    print(
        "seconds: training calls only (train_s); × = peer / ours (> 1: ours faster); N seeds: ours in one vmapped "
        "run, the peer's N runs summed; returns: mean over seeds of each seed's mean over "
        f"{configs.N_EVAL_EPISODES} deterministic episodes."
    )


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="imitation_fn side by side with imitation 1.0.1: the same work on both, timed alike.",
        epilog="Results: benchmarks/results/vs_imitation.json (--quick: vs_imitation_quick.json; --compile: "
        "vs_imitation_compiled.json). Runs' logs and JSON: benchmarks/vs_imitation/.work/runs/.",
    )
    parser.add_argument("--only", help=f"comma-separated algorithms (default: all of {','.join(configs.ALGOS)})")
    parser.add_argument("--seeds", type=int, help="N for the vmapped run and the peer's runs (default 8; --quick 2)")
    parser.add_argument("--quick", action="store_true", help="tiny budgets (configs.QUICK), a smoke test")
    parser.add_argument("--force", action="store_true", help="redo algorithms already in the results file")
    parser.add_argument("--compile", action="store_true", help="ours with compile=True")
    parser.add_argument("--peer-venv", type=Path, default=PEER_VENV, help=f"the peer's venv (default {PEER_VENV})")
    parser.add_argument("--no-peer", action="store_true", help="measure ours only (no venv is built)")
    parser.add_argument(
        "--reuse-peer",
        action="store_true",
        help="take the peer's runs from the other results file (eager <-> --compile) where it has them with the "
        "same settings and seeds, instead of running them again (the peer does not change with --compile)",
    )
    parser.add_argument("--timeout", type=float, default=4 * 3600, help="seconds per subprocess (default 4 h)")
    parser.add_argument("--out", type=Path, help="results file (default: benchmarks/results/vs_imitation*.json)")
    parser.add_argument("--work", type=Path, default=WORK, help=f"runs' logs and JSON, shared inputs (default {WORK})")
    args = parser.parse_args(argv)
    algos = [a.strip() for a in args.only.split(",") if a.strip()] if args.only else list(configs.ALGOS)
    unknown = [a for a in algos if a not in configs.ALGOS]
    if unknown:
        parser.error(f"unknown algorithm(s) {', '.join(unknown)}; expected some of {', '.join(configs.ALGOS)}")
    if args.seeds is not None and args.seeds < 1:
        parser.error("--seeds must be >= 1")
    args.algos = algos
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    n_seeds = args.seeds if args.seeds is not None else (2 if args.quick else 8)
    path = args.out or results_path(args.quick, args.compile)
    results: dict[str, Any] = json.loads(path.read_text()) if path.exists() else {}
    todo = [a for a in args.algos if args.force or a not in results or results[a].get("incomplete")]
    for a in args.algos:
        if a not in todo:
            log(f"{a}: already in {path.relative_to(ROOT) if path.is_relative_to(ROOT) else path} (--force redoes it)")
    peer_python: Path | None = None
    peer_info: dict[str, Any] = {"error": "--no-peer"}
    if todo and not args.no_peer:
        peer_python, peer_info = ensure_peer_venv(args.peer_venv.resolve(), args.work)
    args.work.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    for algo in todo:
        record = run_algo(algo, args, n_seeds, peer_python, peer_info)
        record["peer_venv"] = {k: v for k, v in peer_info.items() if k in ("built", "build_s", "error")}
        results[algo] = record
        write_atomic(path, results)
        log(
            f"{algo}: ratio_1 {_fmt(record['ratio_1'], 'ratio')}, ratio_{n_seeds} "
            f"{_fmt(record[f'ratio_{n_seeds}'], 'ratio')}, "
            f"returns ours {_fmt(record['ours_return'], '.1f')} / peer {_fmt(record['peer_return'], '.1f')}"
            + (f"; errors: {record['errors']}" if record.get("errors") else "")
            + f" → {path.name}"
        )
    if todo:
        log(f"done in {time.perf_counter() - t0:.0f} s")
    print_table(results, f"imitation_fn vs imitation 1.0.1 ({path.name})")


if __name__ == "__main__":
    main()
