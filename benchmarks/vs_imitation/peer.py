"""The peer's side of the side-by-side benchmark: ``imitation`` 1.0.1 and stable-baselines3 2.2.1, one seed.

    .peer-venv/bin/python benchmarks/vs_imitation/peer.py --algo gail --seed 0 --out peer.json [--quick]

Runs inside the peer's virtual environment (``run.py`` builds it) and imports nothing from
``imitation_fn``: only ``configs.py`` beside it (standard library). :func:`settings` turns the
algorithm's settings into the keyword arguments this script passes to ``imitation`` and SB3 (classes by
name, so the test can read them without either installed), :func:`describe` reads those back into
``configs``' shape, and :func:`run` builds the trainer, times its training call(s) only — ``BC.train``,
``SimpleDAggerTrainer.train``, ``GAIL/AIRL.train``, ``DensityAlgorithm.train`` + ``train_policy``,
``MCEIRL.train``, ``PreferenceComparisons.train``, ``PPO/SAC.learn`` — and evaluates the final policy
with SB3's ``evaluate_policy`` (``deterministic=True``) on ``configs.N_EVAL_EPISODES`` episodes of a
fresh environment. MCE IRL's return is the exact expected return of the soft-optimal policy of the
learned reward under the true one. Vectorised environments are ``DummyVecEnv`` (one process, like ours);
logging goes nowhere (an ``imitation`` logger without outputs); CPU; one torch thread.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
sys.path.insert(0, str(HERE))

import configs  # noqa: E402  (beside this file: the settings both sides read)

Spec = dict[str, Any]


# --- Settings -> imitation / SB3 keyword arguments, and back --------------------------------------


def _ppo_kwargs(p: Spec) -> dict[str, Any]:
    """SB3 PPO's keyword arguments (``policy_kwargs`` with activation and optimiser by name)."""
    return {
        "policy": "MlpPolicy",
        "policy_kwargs": {
            "net_arch": {"pi": list(p["net_arch"]), "vf": list(p["net_arch"])},
            "activation_fn": {"tanh": "Tanh", "relu": "ReLU"}[p["activation"]],
            "optimizer_kwargs": {"eps": p["adam_eps"]},
        },
        "n_steps": p["n_steps"],
        "batch_size": p["batch_size"],
        "n_epochs": p["n_epochs"],
        "learning_rate": p["learning_rate"],
        "gamma": p["gamma"],
        "gae_lambda": p["gae_lambda"],
        "clip_range": p["clip_range"],
        "ent_coef": p["ent_coef"],
        "vf_coef": p["vf_coef"],
        "max_grad_norm": p["max_grad_norm"],
        "normalize_advantage": p["normalize_advantage"],
    }


def _ppo_spec(k: dict[str, Any]) -> Spec:
    pk = k["policy_kwargs"]
    assert pk["net_arch"]["pi"] == pk["net_arch"]["vf"], "the spec has one net_arch for both networks"
    return {
        **{key: k[key] for key in k if key not in ("policy", "policy_kwargs")},
        "net_arch": list(pk["net_arch"]["pi"]),
        "activation": {"Tanh": "tanh", "ReLU": "relu"}[pk["activation_fn"]],
        "adam_eps": pk["optimizer_kwargs"]["eps"],
    }


def _bc_kwargs(b: Spec) -> dict[str, Any]:
    """``bc.BC``'s keyword arguments; the policy is FeedForward32Policy's (an ActorCriticPolicy) spelled out."""
    return {
        "batch_size": b["batch_size"],
        "optimizer_cls": "Adam",
        "optimizer_kwargs": {"lr": b["learning_rate"]},
        "ent_weight": b["ent_weight"],
        "l2_weight": b["l2_weight"],
        "policy": {"net_arch": list(b["net_arch"]), "activation_fn": {"tanh": "Tanh", "relu": "ReLU"}[b["activation"]]},
    }


def _bc_spec(k: dict[str, Any]) -> Spec:
    return {
        "batch_size": k["batch_size"],
        "net_arch": list(k["policy"]["net_arch"]),
        "activation": {"Tanh": "tanh", "ReLU": "relu"}[k["policy"]["activation_fn"]],
        "learning_rate": k["optimizer_kwargs"]["lr"],
        "ent_weight": k["ent_weight"],
        "l2_weight": k["l2_weight"],
    }


def _reward_kwargs(r: Spec) -> dict[str, Any]:
    """A reward net: its class, keyword arguments and output normalisation (``NormalizedRewardNet``)."""
    kwargs: dict[str, Any] = {k: r[k] for k in ("use_state", "use_action", "use_next_state", "use_done") if k in r}
    if r["net"] == "BasicShapedRewardNet":
        kwargs.update(
            reward_hid_sizes=list(r["reward_hid_sizes"]),
            potential_hid_sizes=list(r["potential_hid_sizes"]),
            discount_factor=r["discount_factor"],
        )
    else:
        kwargs["hid_sizes"] = list(r["hid_sizes"])
    kwargs["activation"] = {"relu": "ReLU", "tanh": "Tanh"}[r["activation"]]
    kwargs["normalize_input_layer"] = "RunningNorm" if r["normalize_input"] else None
    return {
        "cls": r["net"],
        "kwargs": kwargs,
        "normalize_output_layer": "RunningNorm" if r["normalize_output"] else None,
    }


def _reward_spec(k: dict[str, Any]) -> Spec:
    kw = dict(k["kwargs"])
    out: Spec = {"net": k["cls"]}
    out.update({key: kw.pop(key) for key in list(kw) if key.startswith("use_")})
    out["activation"] = {"ReLU": "relu", "Tanh": "tanh"}[kw.pop("activation")]
    out["normalize_input"] = kw.pop("normalize_input_layer") == "RunningNorm"
    out["normalize_output"] = k["normalize_output_layer"] == "RunningNorm"
    out.update(kw)
    return out


def settings(algo: str, s: Spec) -> dict[str, Any]:
    """Everything this script passes to ``imitation`` and SB3 for ``algo`` with the settings ``s``."""
    env = {"id": s["env"], "n_envs": s.get("n_envs", 1)}
    demos = {"path": s["demos"], "n": s["n_demos"]} if "demos" in s else None
    if algo == "bc":
        return {"env": env, "demos": demos, "bc": _bc_kwargs(s["bc"]), "train": {"n_epochs": s["n_epochs"]}}
    if algo == "dagger":
        return {
            "env": env,
            "expert": s["expert"],
            "bc": _bc_kwargs(s["bc"]),
            "beta_schedule": {"cls": "LinearBetaSchedule", "rampdown_rounds": s["beta_rampdown_rounds"]},
            "train": {
                "total_timesteps": s["total_timesteps"],
                "rollout_round_min_episodes": s["rollout_round_min_episodes"],
                "rollout_round_min_timesteps": s["rollout_round_min_timesteps"],
                "bc_train_kwargs": {"n_epochs": s["bc_epochs_per_round"], "progress_bar": False},
            },
        }
    if algo in ("gail", "airl"):
        return {
            "env": env,
            "demos": demos,
            "ppo": _ppo_kwargs(s["ppo"]),
            "reward_net": _reward_kwargs(s["reward"]),
            "trainer": {
                "demo_batch_size": s["demo_batch_size"],
                "n_disc_updates_per_round": s["n_disc_updates_per_round"],
                "gen_replay_buffer_capacity": s["gen_replay_buffer_capacity"],
                "disc_opt_cls": "Adam",
                "disc_opt_kwargs": {"lr": s["disc_lr"]},
            },
            "train": {"total_timesteps": s["total_timesteps"]},
        }
    if algo == "density":
        return {
            "env": env,
            "demos": demos,
            "ppo": _ppo_kwargs(s["ppo"]),
            "density": {
                "density_type": {"state_action": "STATE_ACTION_DENSITY", "state": "STATE_DENSITY"}[s["density_type"]],
                "kernel": s["kernel"],
                "kernel_bandwidth": s["kernel_bandwidth"],
                "is_stationary": s["is_stationary"],
                "standardise_inputs": s["standardise_inputs"],
            },
            "train": {"total_timesteps": s["total_timesteps"]},
        }
    if algo == "mce_irl":
        return {
            "env": {
                "cls": "seals.diagnostics.cliff_world.CliffWorldEnv",
                "name": s["env"],
                "kwargs": {k: s[k] for k in ("width", "height", "horizon", "use_xy_obs")},
            },
            "reward_net": {
                "cls": "BasicRewardNet",
                "kwargs": {
                    "hid_sizes": list(s["hid_sizes"]),
                    "activation": {"relu": "ReLU", "tanh": "Tanh"}[s["activation"]],
                    "use_state": True,
                    "use_action": False,
                    "use_next_state": False,
                    "use_done": False,
                },
            },
            "mce": {
                "optimizer_cls": "Adam",
                "optimizer_kwargs": {"lr": s["learning_rate"]},
                "discount": s["discount"],
                "linf_eps": s["linf_eps"],
                "grad_l2_eps": s["grad_l2_eps"],
                "log_interval": s["log_interval"],
            },
            "train": {"max_iter": s["max_iter"]},
        }
    if algo == "preference_comparisons":
        return {
            "env": env,
            "ppo": _ppo_kwargs(s["ppo"]),
            "reward_net": _reward_kwargs(s["reward"]),
            "agent_trainer": {k: s[k] for k in ("exploration_frac", "switch_prob", "random_prob")},
            "fragmenter": {"cls": "RandomFragmenter", "warning_threshold": s["fragmenter_warning_threshold"]},
            "gatherer": {"cls": "SyntheticGatherer", **s["gatherer"]},
            "preference_model": dict(s["preference_model"]),
            "reward_trainer": {
                "cls": "BasicRewardTrainer",
                "loss": "CrossEntropyRewardLoss",
                **{k: v for k, v in s["reward_trainer"].items() if k != "weight_decay"},
            },
            "pc": {
                k: s[k]
                for k in (
                    "num_iterations",
                    "fragment_length",
                    "transition_oversampling",
                    "initial_comparison_frac",
                    "initial_epoch_multiplier",
                    "query_schedule",
                    "comparison_queue_size",
                )
            },
            "train": {"total_timesteps": s["total_timesteps"], "total_comparisons": s["total_comparisons"]},
        }
    if algo == "ppo":
        return {"env": env, "ppo": _ppo_kwargs(s["ppo"]), "train": {"total_timesteps": s["total_timesteps"]}}
    if algo == "sac":
        c = s["sac"]
        return {
            "env": env,
            "sac": {
                "policy": "MlpPolicy",
                "policy_kwargs": {
                    "net_arch": list(c["net_arch"]),
                    "activation_fn": {"relu": "ReLU", "tanh": "Tanh"}[c["activation"]],
                },
                **{k: v for k, v in c.items() if k not in ("net_arch", "activation")},
            },
            "train": {"total_timesteps": s["total_timesteps"]},
        }
    raise KeyError(algo)


# BasicRewardTrainer's optimiser is torch.optim.AdamW(params, lr=lr): torch's default weight decay.
ADAMW_DEFAULT_WEIGHT_DECAY = 0.01


def describe(algo: str, st: dict[str, Any]) -> Spec:
    """The keyword arguments of :func:`settings` read back into ``configs``' shape (the test compares)."""
    env = st["env"]
    run_level: Spec = {}
    if algo != "mce_irl":
        run_level["env"] = env["id"]
    if st.get("demos") is not None:
        run_level.update(demos=st["demos"]["path"], n_demos=st["demos"]["n"])
    if algo == "bc":
        return {**run_level, "n_epochs": st["train"]["n_epochs"], "bc": _bc_spec(st["bc"])}
    if algo == "dagger":
        t = st["train"]
        return {
            **run_level,
            "expert": st["expert"],
            "n_envs": env["n_envs"],
            "total_timesteps": t["total_timesteps"],
            "beta_rampdown_rounds": st["beta_schedule"]["rampdown_rounds"],
            "rollout_round_min_timesteps": t["rollout_round_min_timesteps"],
            "rollout_round_min_episodes": t["rollout_round_min_episodes"],
            "bc_epochs_per_round": t["bc_train_kwargs"]["n_epochs"],
            "bc": _bc_spec(st["bc"]),
        }
    if algo in ("gail", "airl"):
        tr = st["trainer"]
        return {
            **run_level,
            "n_envs": env["n_envs"],
            "total_timesteps": st["train"]["total_timesteps"],
            "ppo": _ppo_spec(st["ppo"]),
            "demo_batch_size": tr["demo_batch_size"],
            "n_disc_updates_per_round": tr["n_disc_updates_per_round"],
            "gen_replay_buffer_capacity": tr["gen_replay_buffer_capacity"],
            "disc_lr": tr["disc_opt_kwargs"]["lr"],
            "reward": _reward_spec(st["reward_net"]),
        }
    if algo == "density":
        d = st["density"]
        return {
            **run_level,
            "n_envs": env["n_envs"],
            "total_timesteps": st["train"]["total_timesteps"],
            "ppo": _ppo_spec(st["ppo"]),
            "density_type": {"STATE_ACTION_DENSITY": "state_action", "STATE_DENSITY": "state"}[d["density_type"]],
            **{k: d[k] for k in ("kernel", "kernel_bandwidth", "standardise_inputs", "is_stationary")},
        }
    if algo == "mce_irl":
        rk, m = st["reward_net"]["kwargs"], st["mce"]
        return {
            "env": env["name"],
            **env["kwargs"],
            "hid_sizes": list(rk["hid_sizes"]),
            "activation": {"ReLU": "relu", "Tanh": "tanh"}[rk["activation"]],
            "learning_rate": m["optimizer_kwargs"]["lr"],
            **{k: m[k] for k in ("discount", "linf_eps", "grad_l2_eps", "log_interval")},
            "max_iter": st["train"]["max_iter"],
        }
    if algo == "preference_comparisons":
        rt = {k: v for k, v in st["reward_trainer"].items() if k not in ("cls", "loss")}
        return {
            **run_level,
            "n_envs": env["n_envs"],
            **st["train"],
            **st["pc"],
            "fragmenter_warning_threshold": st["fragmenter"]["warning_threshold"],
            **st["agent_trainer"],
            "gatherer": {k: v for k, v in st["gatherer"].items() if k != "cls"},
            "preference_model": dict(st["preference_model"]),
            "reward_trainer": {**rt, "weight_decay": ADAMW_DEFAULT_WEIGHT_DECAY},
            "reward": _reward_spec(st["reward_net"]),
            "ppo": _ppo_spec(st["ppo"]),
        }
    if algo == "ppo":
        return {
            **run_level,
            "n_envs": env["n_envs"],
            "total_timesteps": st["train"]["total_timesteps"],
            "ppo": _ppo_spec(st["ppo"]),
        }
    if algo == "sac":
        k = st["sac"]
        pk = k["policy_kwargs"]
        return {
            **run_level,
            "n_envs": env["n_envs"],
            "total_timesteps": st["train"]["total_timesteps"],
            "sac": {
                **{key: v for key, v in k.items() if key not in ("policy", "policy_kwargs")},
                "net_arch": list(pk["net_arch"]),
                "activation": {"ReLU": "relu", "Tanh": "tanh"}[pk["activation_fn"]],
            },
        }
    raise KeyError(algo)


# --- Running (imitation and SB3 are imported only here) -------------------------------------------


def run(
    algo: str, s: Spec, seed: int, *, expert_zip: str | None = None, demos_file: str | None = None
) -> dict[str, Any]:
    """Train ``algo`` for one ``seed`` with ``imitation``/SB3; the training time, the mean return, the settings.

    ``demos_file``: where to read ``s["demos"]`` from instead (``run.py`` passes the same episodes as
    ``imitation``'s ``.npz``: ``datasets`` 2.21 cannot read directories written by ``datasets`` >= 4).
    """
    import numpy as np
    import seals  # noqa: F401  (registers the seals/ environment ids)
    import stable_baselines3 as sb3
    import torch as th
    from imitation.util import logger as imit_logger
    from imitation.util.util import make_vec_env
    from stable_baselines3.common.evaluation import evaluate_policy

    th.set_num_threads(1)
    th.manual_seed(seed)
    st = settings(algo, s)
    rng = np.random.default_rng(seed)
    tmp = tempfile.TemporaryDirectory(prefix="vs_imitation_peer_")
    log = imit_logger.configure(tmp.name, format_strs=[])  # no output: neither side logs while timed
    torch_cls = {"Tanh": th.nn.Tanh, "ReLU": th.nn.ReLU, "Adam": th.optim.Adam}
    extra: dict[str, Any] = {}

    def venv(n_envs: int, env_rng: np.random.Generator) -> Any:
        from imitation.data.wrappers import RolloutInfoWrapper

        return make_vec_env(
            env_id,
            n_envs=n_envs,
            rng=env_rng,
            parallel=False,
            post_wrappers=[lambda env, _: RolloutInfoWrapper(env)],
        )

    def ppo(env: Any) -> Any:
        k = dict(st["ppo"])
        pk = dict(k.pop("policy_kwargs"))
        pk["activation_fn"] = torch_cls[pk["activation_fn"]]
        return sb3.PPO(env=env, policy_kwargs=pk, seed=seed, device="cpu", verbose=0, **k)

    def reward_net(space_env: Any) -> Any:
        from imitation.rewards import reward_nets
        from imitation.util.networks import RunningNorm

        r = st["reward_net"]
        kw = dict(r["kwargs"])
        kw["activation"] = torch_cls[kw["activation"]]
        kw["normalize_input_layer"] = RunningNorm if kw["normalize_input_layer"] else None
        net = getattr(reward_nets, r["cls"])(space_env.observation_space, space_env.action_space, **kw)
        if r.get("normalize_output_layer"):
            net = reward_nets.NormalizedRewardNet(net, RunningNorm)
        return net

    def demos() -> Any:
        from imitation.data import serialize

        path = Path(demos_file) if demos_file is not None else ROOT / st["demos"]["path"]
        trajs = serialize.load(path)
        if len(trajs) < st["demos"]["n"]:
            raise ValueError(f"{path} holds {len(trajs)} episodes, fewer than {st['demos']['n']}")
        extra["demos_file"] = str(path)
        return list(trajs[: st["demos"]["n"]])

    def bc_trainer(env: Any, data: Any = None) -> Any:
        from imitation.algorithms import bc
        from stable_baselines3.common.policies import ActorCriticPolicy

        k = dict(st["bc"])
        pol = k.pop("policy")
        policy = ActorCriticPolicy(
            observation_space=env.observation_space,
            action_space=env.action_space,
            lr_schedule=lambda _: th.finfo(th.float32).max,  # as BC builds its FeedForward32Policy
            net_arch=pol["net_arch"],
            activation_fn=torch_cls[pol["activation_fn"]],
        )
        k["optimizer_cls"] = torch_cls[k["optimizer_cls"]]
        return bc.BC(
            observation_space=env.observation_space,
            action_space=env.action_space,
            rng=rng,
            policy=policy,
            demonstrations=data,
            device="cpu",
            custom_logger=log,
            **k,
        )

    env_id = st["env"].get("id")
    t_setup = time.perf_counter()
    if algo == "bc":
        from imitation.data import rollout

        env = venv(1, np.random.default_rng(seed))
        trainer = bc_trainer(env, rollout.flatten_trajectories(demos()))

        def train() -> None:
            trainer.train(n_epochs=st["train"]["n_epochs"], progress_bar=False)

        policy = trainer.policy
    elif algo == "dagger":
        from imitation.algorithms import dagger

        if expert_zip is None:
            raise ValueError("dagger needs --expert-zip (the SB3 zip both sides query)")
        env = venv(st["env"]["n_envs"], rng)
        # The zip's pickled spaces were written under numpy 2 and do not unpickle under this venv's numpy 1.26
        # (SB3 then gives Box(None, None) and DAgger refuses the expert): SB3's custom_objects supplies the env's
        # own spaces; the network weights still come from the zip.
        spaces = {"observation_space": env.observation_space, "action_space": env.action_space}
        expert = sb3.PPO.load(expert_zip, device="cpu", custom_objects=spaces).policy
        expert_returns, _ = evaluate_policy(
            expert, venv(1, np.random.default_rng(20_000 + seed)), n_eval_episodes=2, deterministic=True
        )
        extra["expert_return"] = float(np.mean(expert_returns))
        trainer = dagger.SimpleDAggerTrainer(
            venv=env,
            scratch_dir=Path(tmp.name) / "dagger",
            expert_policy=expert,
            rng=rng,
            bc_trainer=bc_trainer(env),
            beta_schedule=dagger.LinearBetaSchedule(st["beta_schedule"]["rampdown_rounds"]),
            custom_logger=log,
        )

        def train() -> None:
            trainer.train(**st["train"])

        policy = trainer.policy
    elif algo in ("gail", "airl"):
        from imitation.algorithms.adversarial.airl import AIRL
        from imitation.algorithms.adversarial.gail import GAIL

        env = venv(st["env"]["n_envs"], rng)
        learner = ppo(env)
        k = dict(st["trainer"])
        k["disc_opt_cls"] = torch_cls[k["disc_opt_cls"]]
        trainer = (GAIL if algo == "gail" else AIRL)(
            demonstrations=demos(),
            venv=env,
            gen_algo=learner,
            reward_net=reward_net(env),
            custom_logger=log,
            **k,
        )

        def train() -> None:
            trainer.train(st["train"]["total_timesteps"])

        policy = learner.policy
    elif algo == "density":
        from imitation.algorithms import density

        env = venv(st["env"]["n_envs"], rng)
        learner = ppo(env)
        d = dict(st["density"])
        d["density_type"] = density.DensityType[d["density_type"]]
        trainer = density.DensityAlgorithm(
            demonstrations=demos(), venv=env, rng=rng, rl_algo=learner, custom_logger=log, **d
        )

        def train() -> None:
            trainer.train()  # fits the density model
            trainer.train_policy(st["train"]["total_timesteps"])

        policy = learner.policy
    elif algo == "mce_irl":
        from imitation.algorithms import mce_irl
        from imitation.rewards import reward_nets
        from seals.diagnostics.cliff_world import CliffWorldEnv

        mdp = CliffWorldEnv(**st["env"]["kwargs"])
        m = dict(st["mce"])
        discount = m["discount"]
        _, _, expert_pi = mce_irl.mce_partition_fh(mdp, discount=discount)
        _, expert_om = mce_irl.mce_occupancy_measures(mdp, pi=expert_pi, discount=discount)
        rk = dict(st["reward_net"]["kwargs"])
        rk["activation"] = torch_cls[rk["activation"]]
        net = getattr(reward_nets, st["reward_net"]["cls"])(mdp.observation_space, mdp.action_space, **rk)
        m["optimizer_cls"] = torch_cls[m["optimizer_cls"]]
        trainer = mce_irl.MCEIRL(expert_om, mdp, net, rng, custom_logger=log, **m)

        def train() -> None:
            trainer.train(**st["train"])

        policy = None
    elif algo == "preference_comparisons":
        from imitation.algorithms import preference_comparisons as pc

        env = venv(st["env"]["n_envs"], rng)
        agent = ppo(env)
        net = reward_net(env)
        agent_trainer = pc.AgentTrainer(
            algorithm=agent, reward_fn=net, venv=env, rng=rng, custom_logger=log, **st["agent_trainer"]
        )
        fragmenter = pc.RandomFragmenter(
            rng=rng, warning_threshold=st["fragmenter"]["warning_threshold"], custom_logger=log
        )
        gatherer = pc.SyntheticGatherer(
            rng=rng, custom_logger=log, **{k: v for k, v in st["gatherer"].items() if k != "cls"}
        )
        model = pc.PreferenceModel(net, **st["preference_model"])
        rt = {k: v for k, v in st["reward_trainer"].items() if k not in ("cls", "loss")}
        reward_trainer = pc.BasicRewardTrainer(
            preference_model=model, loss=pc.CrossEntropyRewardLoss(), rng=rng, custom_logger=log, **rt
        )
        trainer = pc.PreferenceComparisons(
            agent_trainer,
            net,
            fragmenter=fragmenter,
            preference_gatherer=gatherer,
            reward_trainer=reward_trainer,
            custom_logger=log,
            allow_variable_horizon=False,
            **st["pc"],  # no rng: every component that draws got its own above (imitation insists)
        )

        def train() -> None:
            trainer.train(**st["train"])

        policy = agent.policy
    elif algo in ("ppo", "sac"):
        env = venv(st["env"]["n_envs"], rng)
        if algo == "ppo":
            model = ppo(env)
        else:
            k = dict(st["sac"])
            pk = dict(k.pop("policy_kwargs"))
            pk["activation_fn"] = torch_cls[pk["activation_fn"]]
            model = sb3.SAC(env=env, policy_kwargs=pk, seed=seed, device="cpu", verbose=0, **k)

        def train() -> None:
            model.learn(st["train"]["total_timesteps"])

        policy = model.policy
    else:
        raise KeyError(algo)
    setup_s = time.perf_counter() - t_setup

    t0 = time.perf_counter()
    train()
    train_s = time.perf_counter() - t0

    t1 = time.perf_counter()
    n_eval = configs.N_EVAL_EPISODES
    episode_returns: Any
    if algo == "mce_irl":
        # The learned reward's soft-optimal policy, scored exactly under the true reward (what ours reports).
        with th.no_grad():
            obs = th.as_tensor(mdp.observation_matrix, dtype=th.float32)
            learned = trainer.reward_net(obs, None, None, None).squeeze().numpy().astype(np.float64)
        _, _, pi = mce_irl.mce_partition_fh(mdp, reward=learned, discount=discount)
        _, occupancy = mce_irl.mce_occupancy_measures(mdp, pi=pi, discount=discount)
        episode_returns = [float(occupancy @ mdp.reward_matrix)]
        extra["linf"] = float(np.max(np.abs(occupancy - expert_om)))
        extra["iterations"] = st["train"]["max_iter"]
        extra["it_per_s"] = st["train"]["max_iter"] / train_s
    else:
        eval_env = venv(1, np.random.default_rng(10_000 + seed))
        episode_returns, _ = evaluate_policy(
            policy, eval_env, n_eval_episodes=n_eval, deterministic=True, return_episode_rewards=True
        )
    eval_s = time.perf_counter() - t1
    tmp.cleanup()
    return {
        "side": "peer",
        "algo": algo,
        "seed": seed,
        "train_s": train_s,
        "eval_s": eval_s,
        "setup_s": setup_s,
        "return": float(np.mean(episode_returns)),
        "episode_returns": [float(r) for r in episode_returns],
        "n_eval_episodes": n_eval,
        "settings": st,
        **extra,
        "versions": versions(),
    }


def versions() -> dict[str, str]:
    import gymnasium
    import imitation
    import numpy
    import seals
    import stable_baselines3
    import torch

    return {
        "python": platform.python_version(),
        "imitation": imitation.__version__,
        "stable_baselines3": stable_baselines3.__version__,
        "seals": getattr(seals, "__version__", "?"),
        "gymnasium": gymnasium.__version__,
        "torch": torch.__version__,
        "numpy": numpy.__version__,
        "torch_threads": str(torch.get_num_threads()),
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--algo", required=True, choices=list(configs.ALGOS))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, help="write the JSON here (default: stdout only)")
    parser.add_argument("--quick", action="store_true", help="configs.QUICK's tiny budgets")
    parser.add_argument("--expert-zip", help="dagger: the SB3 zip of the expert (run.py exports it)")
    parser.add_argument("--demos-file", help="read the demonstrations from here (run.py: an .npz copy)")
    args = parser.parse_args(argv)
    s = configs.spec(args.algo, quick=args.quick)
    out = run(args.algo, s, args.seed, expert_zip=args.expert_zip, demos_file=args.demos_file)
    if args.out is not None:
        args.out.write_text(json.dumps(out, indent=1))
    print(json.dumps({k: out[k] for k in ("algo", "seed", "train_s", "eval_s", "return")}))


if __name__ == "__main__":
    main()
