"""Train the expert zoo with our own PPO/SAC and save it into the repository (tests/data/experts/).

    python benchmarks/expert_zoo.py                       # every env below
    python benchmarks/expert_zoo.py --env CartPole-v1     # one env
    python benchmarks/expert_zoo.py --env Pendulum-v1 --overwrite
    python benchmarks/expert_zoo.py --env seals/Hopper-v1   # SAC, 1e6 steps: hours; stop it, run again to continue

For each env: train the preset of ``imitation_fn/presets.py`` for a few seeds at once (one vmapped
``train_rl``), evaluate every seed's saved-and-reloaded deterministic policy on 50 episodes of our
env (key 0) and on 50 held-out episodes (key 1), keep the seed with the best worse-of-the-two
mean, and write ``<out>/<env_id with / replaced by _>/``:

- ``policy.safetensors`` + ``policy.json`` (``policies.save_policy``; 64x64 networks, a few tens of kB),
- ``demos/``: 50 expert episodes (deterministic policy) as an ``imitation``-compatible dataset,
- ``summary.json``: return mean/std over the 50 key-0 episodes, held-out mean, seed, steps, wall time, date.

``demo_envs`` also gets the same policy and 50 demos on another env id (CartPole-v1's expert on
``seals/CartPole-v0``, which GAIL/AIRL train on). Nothing is written for an env whose best seed misses
its bar on either evaluation; the script then exits non-zero. Existing experts are kept unless
``--overwrite``. One torch thread (networks this small only oversubscribe 2 cores with more).

Resumable: each env trains in a run directory under ``--work`` (checkpoints every ``--checkpoint-every``
seconds, not in the repository: a MuJoCo replay buffer is hundreds of MB). Stop the script at any time; the same
command continues from the last checkpoint (host environments restart their episodes there, see README
"Your own environment"). The seals MuJoCo tasks are host (gymnasium) environments stepped by the one loop.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import platform
import shutil
import sys
import tempfile
import time
from pathlib import Path
from types import ModuleType
from typing import Any

import torch

from imitation_fn import envs, presets
from imitation_fn.core import random, tree
from imitation_fn.data import generate_trajectories, rollout_stats, serialize
from imitation_fn.envs.gym import GymEnv
from imitation_fn.evaluation import evaluate_policy
from imitation_fn.evaluation_gym import evaluate_gym_policy
from imitation_fn.policies import load_policy, save_policy, zoo
from imitation_fn.rl import ppo, sac
from imitation_fn.train.rl import policy_for_saving, train_rl
from imitation_fn.train.run import CHECKPOINT

N_EPISODES = 50
EVAL_KEY, HELDOUT_KEY = 0, 1  # tests/test_experts.py re-evaluates with EVAL_KEY
DEFAULT_OUT = Path(__file__).resolve().parents[1] / "tests" / "data" / "experts"
DEFAULT_WORK = Path.home() / ".cache" / "imitation_fn" / "expert_zoo"


@dataclasses.dataclass(frozen=True)
class Spec:
    algo: str  # "ppo" or "sac": the preset (algo, env_id) in imitation_fn/presets.py
    seeds: tuple[int, ...]  # trained together (vmapped); the best one is shipped
    demo_envs: tuple[str, ...] = ()  # more env ids that get the same policy and 50 demos


SPECS: dict[str, Spec] = {
    "CartPole-v1": Spec("ppo", (0, 1, 2, 3), demo_envs=("seals/CartPole-v0",)),
    "Pendulum-v1": Spec("sac", (0, 1, 2, 3)),
    "Acrobot-v1": Spec("ppo", (0, 1)),
    "MountainCar-v0": Spec("ppo", (0, 1, 2, 3)),
    # imitation's MuJoCo benchmark tasks: one seed each (SAC at 256x256 is hours per seed on 2 cores).
    **{f"seals/{name}-v1": Spec("sac", (0,)) for name in ("HalfCheetah", "Hopper", "Swimmer", "Walker2d", "Ant")},
}
ALGOS: dict[str, ModuleType] = {"ppo": ppo, "sac": sac}


def evaluate(policy_dir: Path, env_id: str, key: int) -> torch.Tensor:
    """Returns ``(N_EPISODES,)`` of the saved policy (deterministic) on our env (torch, or gymnasium on the host)."""
    policy, env = load_policy(policy_dir).policy_fn(True), envs.make(env_id, n_envs=N_EPISODES)
    with torch.no_grad():
        if isinstance(env, GymEnv):
            return evaluate_gym_policy(env, policy, random.key(key), N_EPISODES).returns
        return evaluate_policy(env, policy, random.key(key)).returns


def save_expert(
    out: Path, env_id: str, state: Any, algo: ModuleType, seed: int, summary: dict[str, Any]
) -> dict[str, Any]:
    """Write policy, demos and summary for ``env_id`` into ``out`` (a fresh directory); returns the summary."""
    env = envs.make(env_id, n_envs=N_EPISODES)
    kind, params, config, obs_norm = policy_for_saving(algo, state)
    config = {**config, "source": f"benchmarks/expert_zoo.py ({algo.__name__.rsplit('.', 1)[-1]}, seed {seed})"}
    save_policy(out, kind, params, (env.observation_space, env.action_space), config, obs_norm)  # type: ignore[arg-type]
    returns = evaluate(out, env_id, EVAL_KEY)
    policy = load_policy(out).policy_fn(True)
    with torch.no_grad():
        trajs = generate_trajectories(env, policy, random.key(seed), min_episodes=N_EPISODES)[:N_EPISODES]
    serialize.save(out / "demos", trajs)
    stats = rollout_stats(trajs)
    summary = {
        **summary,
        "env_id": env_id,
        "return_mean": float(returns.mean()),
        "return_std": float(returns.std(correction=0)),
        "n_episodes": N_EPISODES,
        "eval_key": EVAL_KEY,
        "deterministic": True,
        "demos": {
            "n_episodes": len(trajs),
            "return_mean": stats["return_mean"],
            "return_std": stats["return_std"],
            "len_mean": stats["len_mean"],
        },
    }
    (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    return summary


def train_expert(
    env_id: str,
    out_root: Path,
    work: Path,
    compile: bool,
    progress: bool,
    checkpoint_every: float,
    total_timesteps: int | None = None,
) -> bool:
    spec = SPECS[env_id]
    algo = ALGOS[spec.algo]
    preset = presets.get(spec.algo, env_id)
    if preset is None:
        raise SystemExit(f"no preset ({spec.algo!r}, {env_id!r}) in imitation_fn/presets.py")
    cfg = algo.Config(**preset.config)
    total = total_timesteps or preset.total_timesteps
    t0 = time.perf_counter()
    run_dir = work / zoo.env_dir_name(env_id)
    resume = (run_dir / CHECKPOINT).exists()
    print(f"{env_id}: {'resuming' if resume else 'training'} in {run_dir}")
    result = train_rl(
        algo,
        cfg,
        env_id,
        seeds=spec.seeds,
        total_timesteps=total,
        compile=compile,
        progress=progress,
        log_dir=run_dir,
        resume=resume,
        checkpoint_every=checkpoint_every,
    )
    wall = time.perf_counter() - t0
    states = tree.unstack(result.states)
    env = envs.make(env_id, n_envs=N_EPISODES)
    scores: list[tuple[float, float, int]] = []
    with tempfile.TemporaryDirectory() as tmp:
        for seed, state in zip(result.seeds, states, strict=True):
            kind, params, config, obs_norm = policy_for_saving(algo, state)
            path = Path(tmp) / f"seed_{seed}"
            save_policy(path, kind, params, (env.observation_space, env.action_space), config, obs_norm)  # type: ignore[arg-type]
            main_mean = float(evaluate(path, env_id, EVAL_KEY).mean())
            heldout_mean = float(evaluate(path, env_id, HELDOUT_KEY).mean())
            scores.append((main_mean, heldout_mean, seed))
            print(f"  {env_id} seed {seed}: mean return {main_mean:.1f} (held-out {heldout_mean:.1f})")
    best = max(scores, key=lambda s: min(s[0], s[1]))
    if min(best[0], best[1]) < preset.target_return:
        print(
            f"FAILED {env_id}: best seed {best[2]} has mean returns {best[0]:.1f} / {best[1]:.1f} "
            f"< bar {preset.target_return}; nothing written"
        )
        return False
    seed = best[2]
    state = states[result.seeds.index(seed)]
    summary = {
        "algo": spec.algo,
        "seed": seed,
        "trained_seeds": list(spec.seeds),
        "seed_returns": {str(s): {"eval": m, "heldout": h} for m, h, s in scores},
        "heldout_return_mean": best[1],
        "target_return": preset.target_return,
        "total_timesteps": total,
        "preset_total_timesteps": preset.total_timesteps,
        "steps": result.steps,
        "wall_time_s": round(wall, 1),
        "wall_time_note": f"all {len(spec.seeds)} seeds vmapped together, {'compiled' if compile else 'eager'}, "
        f"1 torch thread, shared 2-core machine{'; this session only (resumed)' if resume else ''}",
        "config": json.loads(cfg.to_json()),
        "date": time.strftime("%Y-%m-%d"),
        "torch": torch.__version__,
        "machine": platform.platform(),
    }
    for target in (env_id, *spec.demo_envs):
        final = out_root / zoo.env_dir_name(target)
        staging = out_root / f".{zoo.env_dir_name(target)}.tmp"
        shutil.rmtree(staging, ignore_errors=True)
        staging.mkdir(parents=True)
        written = save_expert(staging, target, state, algo, seed, {**summary, "trained_on": env_id})
        shutil.rmtree(final, ignore_errors=True)
        staging.rename(final)
        print(
            f"saved {final}: return {written['return_mean']:.1f} ± {written['return_std']:.1f} "
            f"over {N_EPISODES} episodes, demos {written['demos']['return_mean']:.1f}"
        )
    return True


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--env", choices=sorted(SPECS), action="append", help="env id (repeatable); default: all")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="experts directory (default: %(default)s)")
    parser.add_argument("--overwrite", action="store_true", help="replace experts that already exist")
    parser.add_argument("--compile", action="store_true", help="torch.compile the update (slower for short runs)")
    parser.add_argument("--work", type=Path, default=DEFAULT_WORK, help="run directories (default: %(default)s)")
    parser.add_argument("--checkpoint-every", type=float, default=300.0, metavar="SECONDS")
    parser.add_argument(
        "--total-timesteps", type=int, metavar="N", help="env steps per seed instead of the preset's (said in summary)"
    )
    parser.add_argument("--no-progress", action="store_true")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    env_ids = args.env or list(SPECS)
    existing = [
        e
        for e in env_ids
        for target in (e, *SPECS[e].demo_envs)
        if (args.out / zoo.env_dir_name(target)).exists() and not args.overwrite
    ]
    if existing:
        raise SystemExit(f"experts exist for {', '.join(sorted(set(existing)))} in {args.out}; pass --overwrite")
    args.out.mkdir(parents=True, exist_ok=True)
    ok = [
        train_expert(
            e, args.out, args.work, args.compile, not args.no_progress, args.checkpoint_every, args.total_timesteps
        )
        for e in env_ids
    ]
    sys.exit(0 if all(ok) else 1)


if __name__ == "__main__":
    main()
