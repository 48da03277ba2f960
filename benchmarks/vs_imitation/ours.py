"""imitation_fn's side of the side-by-side benchmark: one algorithm, N seeds in one vmapped run.

    python benchmarks/vs_imitation/ours.py --algo gail --seeds 8 --out ours.json [--quick] [--compile]

Trains with the public entry point of each algorithm (``imitation_fn.train.*``: ``driver.train``,
``train_dagger``, ``train_adversarial``, ``density.train_policy``, ``mce_irl.train``,
``preference_comparisons.train``, ``train_rl``) on the settings of ``configs.py``, translated into our
``Config`` fields by :func:`build`, and writes JSON: ``train_s`` (the seconds of that call, minus the
time it spends in its final evaluation), ``returns`` (each seed's mean return over
``configs.N_EVAL_EPISODES`` episodes of its final deterministic policy), the config, versions.

How evaluation is kept out of ``train_s``: the entry points run the loop (``loop.train``), which
evaluates at the end; this script wraps the ``evaluate`` of the spec each entry point hands to
``loop.train`` with a stopwatch (``_time_evaluations``) and subtracts what it measured. No evaluation
runs during training (``eval_every=None``), no run directory is written (``log_dir=None``), no progress
bar is drawn. One torch thread, CPU, eager unless ``--compile``.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import platform
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
sys.path.insert(0, str(HERE))

import configs  # noqa: E402  (beside this file: the settings both sides read)

Spec = dict[str, Any]


# --- Settings -> our Configs, and back ------------------------------------------------------------


def _ppo_config(p: Spec, n_envs: int) -> Any:
    """PPO with SB3's semantics: every field we have that SB3 lacks is pinned to what SB3 does."""
    from imitation_fn.rl import ppo

    return ppo.Config(
        n_envs=n_envs,
        n_steps=p["n_steps"],
        batch_size=p["batch_size"],
        n_epochs=p["n_epochs"],
        lr=p["learning_rate"],
        gamma=p["gamma"],
        gae_lambda=p["gae_lambda"],
        clip_range=p["clip_range"],
        ent_coef=p["ent_coef"],
        vf_coef=p["vf_coef"],
        max_grad_norm=p["max_grad_norm"],
        normalize_advantage=p["normalize_advantage"],
        net_arch=tuple(p["net_arch"]),
        activation=p["activation"],
        adam_eps=p["adam_eps"],
        # SB3 has no counterpart of these (or they are off there):
        lr_schedule="constant",
        clip_range_vf=None,
        target_kl=None,
        shared_network=False,
        normalize_obs=False,
        normalize_reward=False,
    )


def _ppo_spec(c: Any) -> Spec:
    return {
        "n_steps": c.n_steps,
        "batch_size": c.batch_size,
        "n_epochs": c.n_epochs,
        "learning_rate": c.lr,
        "gamma": c.gamma,
        "gae_lambda": c.gae_lambda,
        "clip_range": c.clip_range,
        "ent_coef": c.ent_coef,
        "vf_coef": c.vf_coef,
        "max_grad_norm": c.max_grad_norm,
        "normalize_advantage": c.normalize_advantage,
        "net_arch": list(c.net_arch),
        "activation": c.activation,
        "adam_eps": c.adam_eps,
    }


def _bc_fields(b: Spec) -> dict[str, Any]:
    return {
        "batch_size": b["batch_size"],
        "net_arch": tuple(b["net_arch"]),
        "activation": b["activation"],
        "lr": b["learning_rate"],
        "ent_weight": b["ent_weight"],
        "l2_weight": b["l2_weight"],
        "optimizer": "adam",
        "max_grad_norm": None,
    }


def _bc_spec(c: Any) -> Spec:
    return {
        "batch_size": c.batch_size,
        "net_arch": list(c.net_arch),
        "activation": c.activation,
        "learning_rate": c.lr,
        "ent_weight": c.ent_weight,
        "l2_weight": c.l2_weight,
    }


def build(algo: str, s: Spec) -> Any:
    """Our ``Config`` for ``algo`` with the settings ``s`` (a ``configs.spec``)."""
    from imitation_fn.algorithms import airl, bc, dagger, density, gail, mce_irl
    from imitation_fn.algorithms import preference_comparisons as pc
    from imitation_fn.rl import sac

    if algo == "bc":
        return bc.Config(**_bc_fields(s["bc"]))
    if algo == "dagger":
        return dagger.Config(
            **_bc_fields(s["bc"]),
            n_envs=s["n_envs"],
            beta_schedule="linear",
            rampdown_rounds=s["beta_rampdown_rounds"],
            rollout_round_min_timesteps=s["rollout_round_min_timesteps"],
            rollout_round_min_episodes=s["rollout_round_min_episodes"],
            n_epochs=s["bc_epochs_per_round"],
            n_batches=None,
        )
    if algo in ("gail", "airl"):
        r = s["reward"]
        common: dict[str, Any] = {
            "gen": _ppo_config(s["ppo"], s["n_envs"]),
            "demo_batch_size": s["demo_batch_size"],
            "n_disc_updates_per_round": s["n_disc_updates_per_round"],
            "gen_train_timesteps": None,  # imitation's default: n_steps * n_envs
            "gen_replay_buffer_capacity": s["gen_replay_buffer_capacity"],
            "disc_lr": s["disc_lr"],
            "disc_adam_eps": 1e-8,  # torch's Adam default (imitation's disc_opt_cls)
            "normalize_reward": r["normalize_output"],
            "normalize_disc_inputs": r["normalize_input"],
            "stagger_envs": False,  # imitation starts every env at its reset
            "use_state": r["use_state"],
            "use_action": r["use_action"],
            "use_next_state": r["use_next_state"],
            "use_done": r["use_done"],
            "reward_activation": r["activation"],
        }
        if algo == "gail":
            return gail.Config(**common, reward_hid_sizes=tuple(r["hid_sizes"]), grad_penalty=0.0)
        return airl.Config(
            **common,
            reward_hid_sizes=tuple(r["reward_hid_sizes"]),
            potential_hid_sizes=tuple(r["potential_hid_sizes"]),
            discount_factor=r["discount_factor"],
        )
    if algo == "density":
        return density.Config(
            density_type=density.DensityType(s["density_type"]),
            kernel=s["kernel"],
            kernel_bandwidth=s["kernel_bandwidth"],
            is_stationary=s["is_stationary"],
            standardise_inputs=s["standardise_inputs"],
            rl=_ppo_config(s["ppo"], s["n_envs"]),
        )
    if algo == "mce_irl":
        return mce_irl.Config(
            net_arch=tuple(s["hid_sizes"]),
            activation=s["activation"],
            init="torch_default",
            dtype="float32",
            optimizer="adam",
            lr=s["learning_rate"],
            discount=s["discount"],
            linf_eps=s["linf_eps"],
            grad_l2_eps=s["grad_l2_eps"],
            max_iter=s["max_iter"],
            log_interval=s["log_interval"],
        )
    if algo == "preference_comparisons":
        g, m, t, r, p = s["gatherer"], s["preference_model"], s["reward_trainer"], s["reward"], s["ppo"]
        if r["normalize_input"] or r["activation"] != "relu":
            raise ValueError("imitation_fn's preference comparisons: no input normalisation, a ReLU reward net only")
        agent = _ppo_config(p, s["n_envs"]).model_dump(mode="json")
        return pc.Config(
            total_timesteps=s["total_timesteps"],
            total_comparisons=s["total_comparisons"],
            num_iterations=s["num_iterations"],
            fragment_length=s["fragment_length"],
            transition_oversampling=s["transition_oversampling"],
            initial_comparison_frac=s["initial_comparison_frac"],
            initial_epoch_multiplier=s["initial_epoch_multiplier"],
            query_schedule=s["query_schedule"],
            comparison_queue_size=s["comparison_queue_size"],
            fragmenter="random",
            warning_threshold=s["fragmenter_warning_threshold"],
            exploration_frac=s["exploration_frac"],
            switch_prob=s["switch_prob"],
            random_prob=s["random_prob"],
            gatherer_temperature=g["temperature"],
            gatherer_discount_factor=g["discount_factor"],
            gatherer_sample=g["sample"],
            gatherer_threshold=g["threshold"],
            noise_prob=m["noise_prob"],
            discount_factor=m["discount_factor"],
            threshold=m["threshold"],
            reward_hid_sizes=tuple(r["hid_sizes"]),
            reward_use_state=r["use_state"],
            reward_use_action=r["use_action"],
            reward_use_next_state=r["use_next_state"],
            reward_use_done=r["use_done"],
            ensemble_size=None,
            normalize_reward=r["normalize_output"],
            epochs=t["epochs"],
            batch_size=t["batch_size"],
            minibatch_size=t["minibatch_size"],
            lr=t["lr"],
            weight_decay=t["weight_decay"],
            regularizer="none",
            val_split=None,
            agent="ppo",
            agent_config=agent,
        )
    if algo == "ppo":
        return _ppo_config(s["ppo"], s["n_envs"])
    if algo == "sac":
        c = s["sac"]
        return sac.Config(
            n_envs=s["n_envs"],
            buffer_size=c["buffer_size"],
            learning_starts=c["learning_starts"],
            batch_size=c["batch_size"],
            tau=c["tau"],
            gamma=c["gamma"],
            train_freq=c["train_freq"],
            gradient_steps=c["gradient_steps"],
            ent_coef=c["ent_coef"],
            ent_coef_init=1.0,  # SB3's "auto" starts at 1.0
            target_entropy=c["target_entropy"],
            lr=c["learning_rate"],
            net_arch=tuple(c["net_arch"]),
            activation=c["activation"],
        )
    raise KeyError(algo)


def describe(algo: str, cfg: Any, s: Spec) -> Spec:
    """``cfg`` (our Config) read back into ``configs``' shape; run-level entries (env, demos, budgets) from ``s``.

    Every hyperparameter comes from ``cfg``'s fields, so this equals ``s`` only if :func:`build` put each
    setting where it belongs (``tests/test_vs_imitation.py``).
    """
    run_level: Spec = {k: s[k] for k in ("env", "demos", "n_demos", "expert", "n_epochs") if k in s}
    if algo == "bc":
        return {**run_level, "bc": _bc_spec(cfg)}
    if algo == "dagger":
        return {
            **run_level,
            "n_envs": cfg.n_envs,
            "total_timesteps": s["total_timesteps"],
            "beta_rampdown_rounds": cfg.rampdown_rounds,
            "rollout_round_min_timesteps": cfg.rollout_round_min_timesteps,
            "rollout_round_min_episodes": cfg.rollout_round_min_episodes,
            "bc_epochs_per_round": cfg.n_epochs,
            "bc": _bc_spec(cfg),
        }
    if algo in ("gail", "airl"):
        reward: Spec = {"net": "BasicRewardNet" if algo == "gail" else "BasicShapedRewardNet"}
        if algo == "gail":
            reward["hid_sizes"] = list(cfg.reward_hid_sizes)
            reward["activation"] = cfg.reward_activation
        else:
            reward["reward_hid_sizes"] = list(cfg.reward_hid_sizes)
            reward["potential_hid_sizes"] = list(cfg.potential_hid_sizes)
            reward["activation"] = cfg.reward_activation
            reward["discount_factor"] = cfg.discount_factor if cfg.discount_factor is not None else cfg.gen.gamma
        reward.update(
            use_state=cfg.use_state,
            use_action=cfg.use_action,
            use_next_state=cfg.use_next_state,
            use_done=cfg.use_done,
            normalize_input=cfg.normalize_disc_inputs,
            normalize_output=cfg.normalize_reward,
        )
        return {
            **run_level,
            "n_envs": cfg.gen.n_envs,
            "total_timesteps": s["total_timesteps"],
            "ppo": _ppo_spec(cfg.gen),
            "demo_batch_size": cfg.demo_batch_size,
            "n_disc_updates_per_round": cfg.n_disc_updates_per_round,
            "gen_replay_buffer_capacity": cfg.gen_replay_buffer_capacity,
            "disc_lr": cfg.disc_lr,
            "reward": reward,
        }
    if algo == "density":
        return {
            **run_level,
            "n_envs": cfg.rl.n_envs,
            "total_timesteps": s["total_timesteps"],
            "ppo": _ppo_spec(cfg.rl),
            "density_type": cfg.density_type.value,
            "kernel": cfg.kernel,
            "kernel_bandwidth": cfg.kernel_bandwidth,
            "standardise_inputs": cfg.standardise_inputs,
            "is_stationary": cfg.is_stationary,
        }
    if algo == "mce_irl":
        return {
            **{k: s[k] for k in ("env", "width", "height", "horizon", "use_xy_obs")},
            "hid_sizes": list(cfg.net_arch),
            "activation": cfg.activation,
            "learning_rate": cfg.lr,
            "discount": cfg.discount,
            "linf_eps": cfg.linf_eps,
            "grad_l2_eps": cfg.grad_l2_eps,
            "max_iter": cfg.max_iter,
            "log_interval": cfg.log_interval,
        }
    if algo == "preference_comparisons":
        agent = cfg.agent_cfg()
        return {
            **run_level,
            "n_envs": agent.n_envs,
            "total_timesteps": cfg.total_timesteps,
            "total_comparisons": cfg.total_comparisons,
            "num_iterations": cfg.num_iterations,
            "fragment_length": cfg.fragment_length,
            "transition_oversampling": cfg.transition_oversampling,
            "initial_comparison_frac": cfg.initial_comparison_frac,
            "initial_epoch_multiplier": cfg.initial_epoch_multiplier,
            "query_schedule": cfg.query_schedule,
            "comparison_queue_size": cfg.comparison_queue_size,
            "fragmenter_warning_threshold": cfg.warning_threshold,
            "exploration_frac": cfg.exploration_frac,
            "switch_prob": cfg.switch_prob,
            "random_prob": cfg.random_prob,
            "gatherer": {
                "temperature": cfg.gatherer_temperature,
                "discount_factor": cfg.gatherer_discount_factor,
                "sample": cfg.gatherer_sample,
                "threshold": cfg.gatherer_threshold,
            },
            "preference_model": {
                "noise_prob": cfg.noise_prob,
                "discount_factor": cfg.discount_factor,
                "threshold": cfg.threshold,
            },
            "reward_trainer": {
                "epochs": cfg.epochs,
                "batch_size": cfg.batch_size,
                "minibatch_size": cfg.minibatch_size,
                "lr": cfg.lr,
                "weight_decay": cfg.weight_decay,
            },
            "reward": {
                "net": "BasicRewardNet",
                "hid_sizes": list(cfg.reward_hid_sizes),
                "activation": "relu",  # pc.Config has no field for it: rewards.BasicRewardNet's default
                "use_state": cfg.reward_use_state,
                "use_action": cfg.reward_use_action,
                "use_next_state": cfg.reward_use_next_state,
                "use_done": cfg.reward_use_done,
                "normalize_input": False,
                "normalize_output": cfg.normalize_reward,
            },
            "ppo": _ppo_spec(agent),
        }
    if algo == "ppo":
        return {**run_level, "n_envs": cfg.n_envs, "total_timesteps": s["total_timesteps"], "ppo": _ppo_spec(cfg)}
    if algo == "sac":
        return {
            **run_level,
            "n_envs": cfg.n_envs,
            "total_timesteps": s["total_timesteps"],
            "sac": {
                "buffer_size": cfg.buffer_size,
                "learning_starts": cfg.learning_starts,
                "batch_size": cfg.batch_size,
                "tau": cfg.tau,
                "gamma": cfg.gamma,
                "train_freq": cfg.train_freq,
                "gradient_steps": cfg.gradient_steps,
                "ent_coef": cfg.ent_coef,
                "target_entropy": cfg.target_entropy,
                "learning_rate": cfg.lr,
                "net_arch": list(cfg.net_arch),
                "activation": cfg.activation,
            },
        }
    raise KeyError(algo)


# --- Running -------------------------------------------------------------------------------------


@contextmanager
def _time_evaluations() -> Iterator[list[float]]:
    """While open, every ``loop.train`` call times its spec's ``evaluate``; yields the list of those seconds."""
    from imitation_fn.train import loop

    seconds: list[float] = []
    original = loop.train

    def timed_train(spec: Any, *args: Any, **kwargs: Any) -> Any:
        inner: Callable[..., Any] | None = spec.evaluate
        if inner is not None:

            def evaluate(*a: Any, **kw: Any) -> Any:
                t0 = time.perf_counter()
                out = inner(*a, **kw)
                seconds.append(time.perf_counter() - t0)
                return out

            spec = dataclasses.replace(spec, evaluate=evaluate)
        return original(spec, *args, **kwargs)

    loop.train = timed_train  # the entry points call loop.train through the module
    try:
        yield seconds
    finally:
        loop.train = original


def _demos(s: Spec) -> list[Any]:
    from imitation_fn.data import serialize

    trajs = serialize.load(ROOT / s["demos"])
    if len(trajs) < s["n_demos"]:
        raise ValueError(f"{s['demos']} holds {len(trajs)} episodes, fewer than {s['n_demos']}")
    return list(trajs[: s["n_demos"]])


def run(
    algo: str, s: Spec, seeds: list[int], *, compile: bool = False, expert_zip: str | None = None
) -> dict[str, Any]:
    """Train ``algo`` for ``seeds`` (one vmapped run); the timings, each seed's mean return and the config."""
    import torch

    from imitation_fn.algorithms import airl, bc, gail
    from imitation_fn.policies.io import load_policy
    from imitation_fn.rl import ppo, sac
    from imitation_fn.train import adversarial, dagger, density, driver, mce_irl, preference_comparisons, rl

    torch.set_num_threads(1)
    cfg = build(algo, s)
    n_eval = configs.N_EVAL_EPISODES
    common: dict[str, Any] = {"seeds": seeds, "compile": compile, "progress": False, "device": "cpu"}
    extra: dict[str, Any] = {}

    t_setup = time.perf_counter()
    if algo == "bc":
        from imitation_fn import envs
        from imitation_fn.data.rollout import flatten_trajectories

        data, env = flatten_trajectories(_demos(s)), envs.make(s["env"], n_envs=n_eval)

        def call() -> Any:
            return driver.train(
                bc,
                cfg,
                data,
                env,
                n_epochs=s["n_epochs"],
                eval_every=None,
                log_dir=None,
                env_id=s["env"],
                **common,
            )

    elif algo == "dagger":
        if expert_zip is None:
            raise ValueError("dagger needs --expert-zip (the SB3 zip both sides query)")
        expert = load_policy(expert_zip).policy_fn()

        def call() -> Any:
            return dagger.train_dagger(
                cfg,
                s["env"],
                expert,
                total_timesteps=s["total_timesteps"],
                n_eval_episodes=n_eval,
                eval_every=None,
                scratch_dir=None,
                **common,
            )

    elif algo in ("gail", "airl"):
        demos = _demos(s)

        def call() -> Any:
            return adversarial.train_adversarial(
                gail if algo == "gail" else airl,
                cfg,
                s["env"],
                demos,
                total_timesteps=s["total_timesteps"],
                n_eval_episodes=n_eval,
                eval_every=None,
                log_dir=None,
                **common,
            )

    elif algo == "density":
        demos = _demos(s)

        def call() -> Any:
            return density.train_policy(
                cfg,
                s["env"],
                demos,
                total_timesteps=s["total_timesteps"],
                n_eval_episodes=n_eval,
                eval_every=None,
                log_dir=None,
                **common,
            )

    elif algo == "mce_irl":
        mdp = mce_irl.make_mdp(
            "CliffWorld", horizon=s["horizon"], width=s["width"], height=s["height"], use_xy_obs=s["use_xy_obs"]
        )

        def call() -> Any:
            return mce_irl.train(cfg, mdp, None, n_eval_episodes=n_eval, eval_every=None, log_dir=None, **common)

    elif algo == "preference_comparisons":

        def call() -> Any:
            return preference_comparisons.train(
                cfg, s["env"], n_eval_episodes=n_eval, eval_every=None, log_dir=None, **common
            )

    elif algo in ("ppo", "sac"):

        def call() -> Any:
            return rl.train_rl(
                ppo if algo == "ppo" else sac,
                cfg,
                s["env"],
                total_timesteps=s["total_timesteps"],
                n_eval_episodes=n_eval,
                eval_every=None,
                log_dir=None,
                **common,
            )

    else:
        raise KeyError(algo)
    setup_s = time.perf_counter() - t_setup

    with _time_evaluations() as eval_seconds:
        t0 = time.perf_counter()
        result = call()
        call_s = time.perf_counter() - t0
    eval_s = sum(eval_seconds)
    evaluation = result.evaluation
    returns = evaluation["returns"].to(torch.float64).mean(-1)  # (n_seeds,) mean over the episodes
    if algo == "mce_irl":
        # The exact expected return of each seed's soft-optimal policy under the true reward (no sampling noise);
        # the sampled returns stay beside it.
        extra["sampled_returns"] = returns.tolist()
        extra["iterations"] = int(result.steps)
        extra["it_per_s"] = result.steps / (call_s - eval_s)
        extra["linf"] = evaluation["linf"].tolist()
        returns = evaluation["expected_return"].to(torch.float64)
    if algo == "density":
        extra["imitation_returns"] = evaluation["imitation_returns"].to(torch.float64).mean(-1).tolist()
    extra["steps"] = int(result.steps)
    return {
        "side": "ours",
        "algo": algo,
        "seeds": seeds,
        "train_s": call_s - eval_s,
        "call_s": call_s,
        "eval_s": eval_s,
        "n_evaluations": len(eval_seconds),
        "setup_s": setup_s,
        "returns": [float(r) for r in returns],
        "return": float(returns.mean()),
        "n_eval_episodes": n_eval,
        "compile": compile,
        "config": cfg.model_dump(mode="json"),
        "settings": s,
        **extra,
        "versions": versions(),
    }


def versions() -> dict[str, str]:
    from importlib.metadata import version as _version

    import gymnasium
    import numpy
    import torch

    return {
        "python": platform.python_version(),
        "imitation_fn": _version("imitation-fn"),
        "torch": torch.__version__,
        "gymnasium": gymnasium.__version__,
        "numpy": numpy.__version__,
        "torch_threads": str(torch.get_num_threads()),
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--algo", required=True, choices=list(configs.ALGOS))
    parser.add_argument("--seeds", type=int, default=1, help="N: seeds 0..N-1 in one vmapped run")
    parser.add_argument("--out", type=Path, help="write the JSON here (default: stdout only)")
    parser.add_argument("--quick", action="store_true", help="configs.QUICK's tiny budgets")
    parser.add_argument("--compile", action="store_true", help="torch.compile the steps (compile=True)")
    parser.add_argument("--expert-zip", help="dagger: the SB3 zip of the expert (run.py exports it)")
    args = parser.parse_args(argv)
    s = configs.spec(args.algo, quick=args.quick)
    out = run(args.algo, s, list(range(args.seeds)), compile=args.compile, expert_zip=args.expert_zip)
    text = json.dumps(out, indent=1)
    if args.out is not None:
        args.out.write_text(text)
    print(json.dumps({k: out[k] for k in ("algo", "seeds", "train_s", "eval_s", "return")}))


if __name__ == "__main__":
    main()
