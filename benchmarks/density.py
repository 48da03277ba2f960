"""Density-based reward modelling: KDE reward throughput against scikit-learn, and PPO on the density reward
on seals/CartPole-v0 for 1 and 8 vmapped seeds (return reached, wall time).

    python benchmarks/density.py
    python benchmarks/density.py --iterations 40 --skip-sklearn

The reward benchmark scores one PPO-sized batch (16,384 visited (s, a) points) against 4,000 expert
(s, a) rows (8 episodes of 500 steps), d = 6: ours in float32, scikit-learn's ``KernelDensity.score_samples``
(exact, its default tolerances) in float64. Training uses the settings of the test that checks learning
(exponential kernel, bandwidth 2, unstandardised, rl-zoo's CartPole PPO). One torch thread: more
oversubscribe 2 cores with networks this small. Wall times are of a shared, loaded machine: compare ratios.
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import torch
from rich.console import Console
from rich.table import Table

from imitation_fn import envs
from imitation_fn.algorithms import density
from imitation_fn.core import random
from imitation_fn.data import rollout
from imitation_fn.envs.experts import cartpole_expert
from imitation_fn.policies.simple import random_policy
from imitation_fn.rl import ppo
from imitation_fn.train import density as density_training

ENV = "seals/CartPole-v0"
RL = ppo.Config(
    n_envs=8, n_steps=32, batch_size=256, n_epochs=20, lr=1e-3, lr_schedule="linear", gamma=0.98, gae_lambda=0.8
)
CFG = density.Config(kernel="exponential", kernel_bandwidth=2.0, standardise_inputs=False, rl=RL)


def reward_throughput(expert: list, skip_sklearn: bool) -> dict[str, float | None]:
    env = envs.make(ENV, n_envs=512)
    batch, _ = rollout.rollout(env, random_policy(env.action_space), random.key(3), 32)  # 16,384 visited points
    obs, acts, next_obs, dones = (x.flatten(0, 1) for x in (batch.obs, batch.acts, batch.next_obs, batch.dones))
    cfg = density.Config()  # gaussian, standardised: the kernel does not change the cost
    demos = density.demo_points(cfg, expert, env.observation_space, env.action_space)
    model = density.fit(cfg, demos)
    reward = density.reward_fn(model)
    reward(obs[:256], acts[:256], next_obs[:256], dones[:256])  # warm-up
    t0 = time.perf_counter()
    reward(obs, acts, next_obs, dones)
    ours_s = time.perf_counter() - t0
    sk_s = None
    if not skip_sklearn:
        from sklearn.neighbors import KernelDensity

        feats = density.features(cfg.density_type, None, (2, 0), obs, acts, next_obs, torch.float64)
        x = ((feats - model.mean.double()) / model.scale.double()).numpy()
        kde = KernelDensity(bandwidth=0.5).fit(model.points[0].double().numpy())
        t0 = time.perf_counter()
        kde.score_samples(x)
        sk_s = time.perf_counter() - t0
    return {
        "queries": float(obs.shape[0]),
        "demo_rows": float(demos.points.shape[1]),
        "ours_s": ours_s,
        "sklearn_s": sk_s,
    }


def train(expert: list, n_seeds: int, iterations: int) -> dict[str, object]:
    t0 = time.perf_counter()
    result = density_training.train_policy(
        CFG, ENV, expert, seeds=range(n_seeds), total_timesteps=iterations * 256, n_eval_episodes=10, progress=False
    )
    wall = time.perf_counter() - t0
    return {
        "n_seeds": n_seeds,
        "wall_s": wall,
        "env_steps": result.steps,
        "true_return_per_seed": result.eval_returns.mean(-1).tolist(),
        "imitation_return_per_seed": result.evaluation["imitation_returns"].mean(-1).tolist(),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--iterations", type=int, default=40, help="PPO iterations of 256 env steps per seed")
    parser.add_argument("--skip-sklearn", action="store_true")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", default=str(Path(__file__).parent / "results" / "density.json"))
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    console = Console(width=120)
    env = envs.make(ENV, n_envs=8)
    expert = rollout.generate_trajectories(env, cartpole_expert, random.key(0), min_episodes=8)[:8]

    kde = reward_throughput(expert, args.skip_sklearn)
    line = f"reward of {kde['queries']:.0f} points against {kde['demo_rows']:.0f} demo rows: ours {kde['ours_s']:.3f} s"
    sk_s, ours_s = kde["sklearn_s"], kde["ours_s"]
    if sk_s is not None and ours_s is not None:
        line += f", scikit-learn {sk_s:.3f} s (scikit-learn time / ours = {sk_s / ours_s:.2f}×)"
    console.print(line)

    runs = [train(expert, n, args.iterations) for n in (1, 8)]
    table = Table(title=f"PPO on the density reward, {ENV}, {args.iterations * 256} env steps per seed")
    for col in ("seeds", "wall s", "s per seed", "true return (mean over seeds)", "per seed", "imitation return"):
        table.add_column(col, justify="right")
    for r in runs:
        true = r["true_return_per_seed"]
        imit = r["imitation_return_per_seed"]
        assert isinstance(true, list) and isinstance(imit, list)
        n = int(r["n_seeds"])  # type: ignore[call-overload]
        wall = float(r["wall_s"])  # type: ignore[arg-type]
        table.add_row(
            str(n),
            f"{wall:.1f}",
            f"{wall / n:.1f}",
            f"{sum(true) / n:.1f}",
            " ".join(f"{x:.0f}" for x in true),
            f"{sum(imit) / n:.4g}",
        )
    console.print(table)
    ratio = float(runs[1]["wall_s"]) / float(runs[0]["wall_s"])  # type: ignore[arg-type]
    console.print(f"8 seeds vmapped / 1 seed wall time: {ratio:.2f}× (8× would be a loop)")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    meta = {"date": time.strftime("%Y-%m-%d"), "machine": platform.platform(), "threads": args.threads}
    meta.update(torch=torch.__version__, density=json.loads(CFG.to_json()), ppo=json.loads(RL.to_json()))
    out.write_text(json.dumps({"meta": meta, "reward": kde, "train": runs}, indent=2))
    console.print(f"saved {out}")


if __name__ == "__main__":
    main()
