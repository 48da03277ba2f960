"""Wall time of one update round against the number of vmapped seeds N = 1, 2, 4, ... for BC, PPO, GAIL, AIRL.

    python benchmarks/vmap_scaling.py                           # every algorithm, eager and compiled, auto device
    python benchmarks/vmap_scaling.py --device cuda --max-seeds 1024
    python benchmarks/vmap_scaling.py --algos bc ppo --modes eager --max-seeds 64
    python benchmarks/vmap_scaling.py --resume                  # keep the measurements already in the JSON

One round is what the training loop does per iteration (``Spec.make_step``, the step ``loop.train`` runs):
BC one minibatch of 50 CartPole-v1 expert episodes; PPO one rollout and update (the CartPole-v1 preset);
GAIL/AIRL one round on seals/CartPole-v0 (the preset: generator rollout, discriminator updates, PPO update).
Every size gets two warm-up rounds (compilation, and a recompile for the states' layout after a first step,
with ``compiled``) before ``--rounds`` timed ones, all from the states ``init`` made for N seeds. Each
compiled size compiles anew (1–2 min for PPO, GAIL and AIRL on a CPU): ``--compiled-sizes`` limits which.
Sizes stop doubling when a round takes longer than ``--max-round-s``, when the states of the next size
would not fit in ``--memory-fraction`` of the free memory, or at an out-of-memory error. Results go to
``results/vmap_scaling[_<device>].json`` after every measurement (so a killed run resumes with ``--resume``)
and a plot beside it: time per round and seeds·rounds per second against N. One torch thread on the CPU
(see benchmarks/README.md).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from rich.console import Console
from rich.table import Table

from imitation_fn import envs, presets
from imitation_fn.algorithms import airl, bc, gail
from imitation_fn.core import device as device_lib
from imitation_fn.core import tree
from imitation_fn.data import flatten_trajectories, serialize
from imitation_fn.envs.task import Task
from imitation_fn.rl import ppo
from imitation_fn.train import adversarial as train_adversarial
from imitation_fn.train import driver, loop
from imitation_fn.train.rl import PPO_SPEC

ROOT = Path(__file__).resolve().parent.parent
EXPERTS = ROOT / "tests" / "data" / "experts"
RESULTS = Path(__file__).resolve().parent / "results"
ALGOS = ("bc", "ppo", "gail", "airl")
MODES = ("eager", "compiled")
console = Console()


@dataclasses.dataclass(frozen=True)
class Setup:
    """One algorithm's round: its spec, config and task (on the benchmark's device), and what a round is."""

    spec: loop.Spec
    cfg: Any
    task: Task
    round: str


def setup(name: str, device: torch.device) -> Setup:
    if name == "bc":
        data = flatten_trajectories(serialize.load(EXPERTS / "CartPole-v1" / "demos"))
        bc_cfg = bc.Config()
        task = Task(env=envs.make("CartPole-v1", 1), demos=data, total=10**6)
        return Setup(driver.offline_spec(bc), bc_cfg, task.to(device), f"one minibatch of {bc_cfg.batch_size}")
    if name == "ppo":
        preset = presets.get("ppo", "CartPole-v1")
        assert preset is not None
        cfg = ppo.Config(**preset.config)
        task = Task(env=envs.make("CartPole-v1", cfg.n_envs), total=preset.total_timesteps)
        what = f"{cfg.n_envs}×{cfg.n_steps} env steps + {cfg.n_epochs} epochs"
        return Setup(PPO_SPEC, cfg, task.to(device), what)
    algo = {"gail": gail, "airl": airl}[name]
    preset = presets.get(name, "seals/CartPole-v0")
    assert preset is not None
    cfg = algo.Config(**preset.config)
    demos = serialize.load(EXPERTS / "seals_CartPole-v0" / "demos")
    task = train_adversarial.make_task(cfg, "seals/CartPole-v0", budget=10**7, n_eval_episodes=1, demos=demos)
    what = f"{cfg.round_timesteps} env steps + {cfg.n_disc_updates_per_round} disc. updates"
    return Setup(train_adversarial.SPECS[name], cfg, task.to(device), what)


def state_bytes(states: Any) -> int:
    return sum(x.numel() * x.element_size() for x in tree.leaves(states))


def free_bytes(device: torch.device) -> int:
    if device.type == "cuda":
        return torch.cuda.mem_get_info(device)[0]
    return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def is_oom(e: BaseException) -> bool:
    return isinstance(e, torch.OutOfMemoryError | MemoryError) or "out of memory" in str(e).lower()


def measure(s: Setup, n_seeds: int, compiled: bool, rounds: int, device: torch.device) -> dict[str, Any]:
    """Seconds per round for ``n_seeds`` vmapped seeds (after a warm-up round), and the states' size."""
    seeds = list(range(n_seeds))
    _, data_keys, _ = loop.seed_keys(seeds, device)
    states = loop.init_states(s.spec, s.cfg, s.task, seeds, device)
    step: Callable[[Any, int], Any] = s.spec.make_step(s.spec.algo, s.cfg, s.task, data_keys, compiled)
    done = s.spec.progress(states)
    t0 = time.perf_counter()
    states = tree.contiguous(states)
    for _ in range(2):
        states, _ = step(states, done)
        done = s.spec.progress(states)
    sync(device)
    warmup_s = time.perf_counter() - t0
    times = []
    for _ in range(rounds):
        done = s.spec.progress(states)
        t0 = time.perf_counter()
        states, _ = step(states, done)
        sync(device)
        times.append(time.perf_counter() - t0)
    times.sort()
    return {"round_s": times[len(times) // 2], "warmup_s": warmup_s, "state_mb": state_bytes(states) / 2**20}


def sizes(max_seeds: int) -> list[int]:
    out = [1]
    while out[-1] * 2 <= max_seeds:
        out.append(out[-1] * 2)
    return out


def table(results: dict[str, Any]) -> Table:
    t = Table(title=f"one round vs vmapped seeds on {results['device_name']}")
    for col in ("algorithm", "mode", "N", "s / round", "× one seed", "seeds·rounds / s", "states MB", "stopped"):
        t.add_column(col, justify="left" if col in ("algorithm", "mode", "stopped") else "right")
    for key, entry in results["runs"].items():
        algo, mode = key.split("/")
        one = entry["sizes"].get("1", {}).get("round_s")
        for n, m in sorted(entry["sizes"].items(), key=lambda kv: int(kv[0])):
            ratio = f"{m['round_s'] / one:.2f}" if one else "-"
            stopped = entry.get("stopped", "") if int(n) == max(map(int, entry["sizes"])) else ""
            t.add_row(
                algo, mode, n, f"{m['round_s']:.4f}", ratio, f"{int(n) / m['round_s']:.1f}", f"{m['state_mb']:.1f}",
                stopped,
            )  # fmt: skip
    return t


def plot(results: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax_t, ax_p) = plt.subplots(1, 2, figsize=(11, 4.2))
    for key, entry in results["runs"].items():
        pts = sorted((int(n), m["round_s"]) for n, m in entry["sizes"].items())
        if not pts:
            continue
        ns, ts = zip(*pts, strict=True)
        style = "-" if key.endswith("compiled") else "--"
        ax_t.plot(ns, ts, style, marker="o", label=key)
        ax_p.plot(ns, [n / t for n, t in pts], style, marker="o", label=key)
    for ax, ylabel in ((ax_t, "seconds per round"), (ax_p, "seeds × rounds per second")):
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        ax.set_xlabel("vmapped seeds N")
        ax.set_ylabel(ylabel)
        ax.grid(True, which="both", alpha=0.3)
    ax_t.legend(fontsize=8)
    fig.suptitle(f"vmap scaling on {results['device_name']} ({results['date']})")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--algos", nargs="+", choices=ALGOS, default=list(ALGOS))
    p.add_argument("--modes", nargs="+", choices=MODES, default=list(MODES))
    p.add_argument("--device", default="auto", help=f"{device_lib.DEVICE_CHOICES}")
    p.add_argument("--max-seeds", type=int, default=1024)
    p.add_argument("--rounds", type=int, default=3, help="timed rounds per size (the median is reported)")
    p.add_argument("--compiled-sizes", type=int, nargs="+", default=None, help="compile only these N (default: all)")
    p.add_argument("--max-round-s", type=float, default=30.0, help="stop doubling once a round takes longer")
    p.add_argument("--memory-fraction", type=float, default=0.5, help="of the free memory the next size may use")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--resume", action="store_true", help="keep the sizes already measured in the JSON")
    p.add_argument("--out", type=Path, default=None, help="JSON path (default: results/vmap_scaling[_cuda].json)")
    args = p.parse_args()
    warnings.filterwarnings("ignore", message=".*lru_cache.*")  # dynamo's note on the optimisers' cache
    torch.set_num_threads(args.threads)
    device = device_lib.resolve(args.device)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else f"{platform.processor() or 'CPU'}"
    out = args.out or RESULTS / ("vmap_scaling.json" if device.type == "cpu" else f"vmap_scaling_{device.type}.json")
    results: dict[str, Any] = {"runs": {}}
    if args.resume and out.is_file():
        results = json.loads(out.read_text())
    results.update(
        device=str(device),
        device_name=name if device.type == "cuda" else f"{name}, {os.cpu_count()} cores, {args.threads} thread(s)",
        torch=torch.__version__,
        date=time.strftime("%Y-%m-%d"),
    )
    for algo in args.algos:
        s = setup(algo, device)
        for mode in args.modes:
            key = f"{algo}/{mode}"
            entry = results["runs"].setdefault(key, {"round": s.round, "sizes": {}})
            for n in sizes(args.max_seeds):
                if str(n) in entry["sizes"] or (mode == "compiled" and n not in (args.compiled_sizes or [n])):
                    continue
                if entry.get("stopped"):
                    break
                measured = max(((int(k), v) for k, v in entry["sizes"].items()), default=(0, None))[1]
                if measured is not None:
                    need = measured["state_mb"] * 2**20 * n / max(map(int, entry["sizes"]))
                    if need > args.memory_fraction * free_bytes(device):
                        entry["stopped"] = f"memory: N={n} needs ~{need / 2**30:.1f} GiB of states"
                        break
                try:
                    m = measure(s, n, mode == "compiled", args.rounds, device)
                except (RuntimeError, MemoryError) as e:
                    if not is_oom(e):
                        raise
                    entry["stopped"] = f"out of memory at N={n}"
                    break
                finally:
                    torch._dynamo.reset()  # each size compiles anew; keep the caches from growing
                entry["sizes"][str(n)] = m
                console.print(f"{key:16} N={n:5}  {m['round_s']:.4f} s/round  (warm-up {m['warmup_s']:.1f} s)")
                if m["round_s"] > args.max_round_s:
                    entry["stopped"] = f"time: a round took {m['round_s']:.0f} s > {args.max_round_s:.0f} s"
                out.parent.mkdir(parents=True, exist_ok=True)
                out.write_text(json.dumps(results, indent=1))
    out.write_text(json.dumps(results, indent=1))
    console.print(table(results))
    plot(results, out.with_suffix(".png"))
    console.print(f"wrote {out} and {out.with_suffix('.png')}")


if __name__ == "__main__":
    main()
