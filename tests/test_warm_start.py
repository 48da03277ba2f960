"""Warm starts: every seed of every learner begins from a saved policy (ours or an SB3 zip), or one error says why not.

State level: each algorithm's spec puts the policy's networks where that algorithm keeps its policy, for every
seed, and nothing else. Behaviour: PPO started from a BC policy keeps BC's return through its first update
(a cold start does not have it). Errors: sizes, activation, kind, observation normalisation, spaces.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
from pathlib import Path
from typing import Any

import pytest
import torch

from imitation_fn import envs
from imitation_fn.algorithms import airl, bc, dagger, density, gail
from imitation_fn.algorithms import preference_comparisons as pc
from imitation_fn.cli.data import expert_demos
from imitation_fn.core import tree
from imitation_fn.core.errors import InputError
from imitation_fn.data import flatten_trajectories, serialize
from imitation_fn.envs.task import Task
from imitation_fn.policies import export_sb3, load_policy
from imitation_fn.policies.io import LoadedPolicy, check_spaces, save_policy
from imitation_fn.rl import ppo, sac
from imitation_fn.train import adversarial as tadv
from imitation_fn.train import dagger as tdagger
from imitation_fn.train import density as tdensity
from imitation_fn.train import driver, loop, warm_start
from imitation_fn.train import preference_comparisons as tpc
from imitation_fn.train import rl as trl
from imitation_fn.train import train as train_offline
from imitation_fn.train.rl import train_rl

EXPERTS = Path(__file__).resolve().parent / "data" / "experts"
SEEDS = [3, 4]


@pytest.fixture(scope="module")
def cartpole_expert() -> LoadedPolicy:
    return load_policy(EXPERTS / "CartPole-v1")  # PPO actor-critic, pi/vf 64x64, return 500


@pytest.fixture(scope="module")
def pendulum_expert() -> LoadedPolicy:
    return load_policy(EXPERTS / "Pendulum-v1")  # SAC actor, 64x64


def _started(spec: loop.Spec, cfg: Any, task: Any, policy: LoadedPolicy) -> Any:
    """The states a run with ``init_policy=policy`` starts from (what ``loop.train`` does before any step)."""
    states = loop.init_states(spec, cfg, task, SEEDS)
    check_spaces(policy, task.observation_space, task.action_space)
    assert spec.warm_start is not None
    return spec.warm_start(states, policy)


def _every_seed_has(params: dict[str, Any], policy_params: dict[str, Any], names: tuple[str, ...]) -> None:
    for name in names:
        for i in range(len(SEEDS)):
            assert tree.allclose(tree.index(params[name], i), policy_params[name], rtol=0, atol=0), (name, i)


# ---------------------------------------------------------------------------------------------------------------------
# Where each algorithm keeps its policy
# ---------------------------------------------------------------------------------------------------------------------


def test_ppo_takes_actor_value_net_and_nothing_else(cartpole_expert: LoadedPolicy) -> None:
    cfg = ppo.Config(n_envs=2, n_steps=8, batch_size=16)
    task = trl.make_task(cfg, "CartPole-v1", budget=16, n_eval_episodes=1)
    cold = loop.init_states(trl.PPO_SPEC, cfg, task, SEEDS)
    states = _started(trl.PPO_SPEC, cfg, task, cartpole_expert)
    _every_seed_has(states.params, cartpole_expert.params, ("pi", "vf"))
    assert tree.allclose(states.opt_state, cold.opt_state) and torch.equal(states.key, cold.key)


def test_ppo_from_bc_policy_keeps_its_own_value_net(tmp_path: Path) -> None:
    bc_params = bc.init(bc.Config(), torch.tensor([0, 7]), trl_task_spaces()).params
    save_policy(tmp_path / "bc", "mlp", bc_params, trl_spaces(), {"activation": "tanh"})
    policy = load_policy(tmp_path / "bc")
    cfg = ppo.Config(n_envs=2, n_steps=8, batch_size=16, **warm_start.architecture(policy, "ppo"))
    assert cfg.net_arch == (32, 32) and cfg.normalize_obs is False
    task = trl.make_task(cfg, "CartPole-v1", budget=16, n_eval_episodes=1)
    cold = loop.init_states(trl.PPO_SPEC, cfg, task, SEEDS)
    states = _started(trl.PPO_SPEC, cfg, task, policy)
    _every_seed_has(states.params, policy.params, ("pi",))
    assert tree.allclose(states.params["vf"], cold.params["vf"], rtol=0, atol=0)


def trl_spaces() -> tuple[Any, Any]:
    env = envs.make("CartPole-v1", n_envs=1)
    return env.observation_space, env.action_space


def trl_task_spaces() -> Any:
    return Task(spaces=trl_spaces())


def test_sac_takes_actor_and_an_sb3_zips_critics_and_entropy(tmp_path: Path) -> None:
    sb3 = pytest.importorskip("stable_baselines3")
    model = sb3.SAC("MlpPolicy", "Pendulum-v1", policy_kwargs={"net_arch": [32, 32]}, seed=0)
    model.save(tmp_path / "sac.zip")
    policy = load_policy(tmp_path / "sac.zip")
    cfg = sac.Config(**warm_start.architecture(policy, "sac"), learning_starts=10, buffer_size=100)
    assert cfg.net_arch == (32, 32)
    task = trl.make_task(cfg, "Pendulum-v1", budget=16, n_eval_episodes=1)
    states = _started(trl.SAC_SPEC, cfg, task, policy)
    for i in range(len(SEEDS)):
        assert tree.allclose(tree.index(states.actor, i), policy.params, rtol=0, atol=0)
        assert tree.allclose(tree.index(states.critic, i), policy.extras["critic"], rtol=0, atol=0)
        assert tree.allclose(tree.index(states.target_critic, i), policy.extras["critic_target"], rtol=0, atol=0)
    assert torch.allclose(states.log_alpha, torch.as_tensor(policy.extras["log_ent_coef"]).reshape(()).expand(2))


def test_bc_and_dagger_take_the_actor_of_an_actor_critic(cartpole_expert: LoadedPolicy) -> None:
    arch = warm_start.architecture(cartpole_expert, "bc")
    assert arch == {"activation": "tanh", "net_arch": (64, 64)}
    demos = flatten_trajectories(expert_demos("CartPole-v1", 2, 0))
    cfg = bc.Config(**arch)
    task = driver.make_task(cfg, "CartPole-v1", budget=1, n_eval_episodes=1, demos=demos)
    states = _started(driver.BC_SPEC, cfg, task, cartpole_expert)
    _every_seed_has(states.params, cartpole_expert.params, ("pi",))
    assert "vf" not in states.params

    dcfg = dagger.Config(**arch, n_envs=2, rollout_round_min_timesteps=8)
    dtask = tdagger.make_task(dcfg, "CartPole-v1", budget=16, n_eval_episodes=1, expert=cartpole_expert.policy_fn())
    dstates = _started(tdagger.SPEC, dcfg, dtask, cartpole_expert)
    _every_seed_has(dstates.bc.params, cartpole_expert.params, ("pi",))


def test_gail_airl_density_and_pc_start_their_ppo_agent(cartpole_expert: LoadedPolicy) -> None:
    arch = warm_start.architecture(cartpole_expert, "ppo")
    gen = ppo.Config(n_envs=2, n_steps=16, batch_size=32, **arch)
    demos = serialize.load(EXPERTS / "seals_CartPole-v0" / "demos")[:2]
    for spec, algo in ((tadv.GAIL_SPEC, gail), (tadv.AIRL_SPEC, airl)):
        gcfg = algo.Config(gen=gen, demo_batch_size=32)
        gtask = tadv.make_task(gcfg, "seals/CartPole-v0", budget=32, n_eval_episodes=1, demos=demos)
        _every_seed_has(_started(spec, gcfg, gtask, cartpole_expert).gen.params, cartpole_expert.params, ("pi", "vf"))

    dcfg = density.Config(rl=gen)
    dtask = tdensity.make_task(dcfg, "seals/CartPole-v0", budget=32, n_eval_episodes=1, demos=demos)
    _every_seed_has(_started(tdensity.SPEC, dcfg, dtask, cartpole_expert).rl.params, cartpole_expert.params, ("pi",))

    pcfg = pc.Config(
        agent="ppo", agent_config=gen.model_dump(), total_timesteps=64, total_comparisons=8, num_iterations=1
    )
    ptask = tpc.make_task(pcfg, "CartPole-v1", budget=2, n_eval_episodes=1)
    _every_seed_has(_started(tpc.SPEC, pcfg, ptask, cartpole_expert).agent.params, cartpole_expert.params, ("pi",))


def test_pc_starts_its_sac_agent(pendulum_expert: LoadedPolicy) -> None:
    agent = {**warm_start.architecture(pendulum_expert, "sac"), "learning_starts": 10, "buffer_size": 200}
    pcfg = pc.Config(agent="sac", agent_config=agent, total_timesteps=64, total_comparisons=8, num_iterations=1)
    ptask = tpc.make_task(pcfg, "Pendulum-v1", budget=2, n_eval_episodes=1)
    states = _started(tpc.SPEC, pcfg, ptask, pendulum_expert)
    for i in range(len(SEEDS)):
        assert tree.allclose(tree.index(states.agent.actor, i), pendulum_expert.params, rtol=0, atol=0)


# ---------------------------------------------------------------------------------------------------------------------
# Behaviour: the return is kept
# ---------------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("through", ["policy directory", "SB3 zip"])
def test_ppo_from_bc_keeps_the_return_through_its_first_update(tmp_path: Path, through: str) -> None:
    """BC -> (export to an SB3 zip ->) PPO: the first update keeps BC's return; a cold start has none of it."""
    demos = flatten_trajectories(expert_demos("CartPole-v1", 20, 0))
    env = envs.make("CartPole-v1", n_envs=5)
    cloned = train_offline(bc, bc.Config(), demos, env, seeds=[0], n_epochs=10, progress=False, log_dir=tmp_path / "bc")
    assert float(cloned.eval_returns.mean()) >= 475.0
    saved = tmp_path / "bc" / "policies" / "seed_0"
    policy = load_policy(saved if through == "policy directory" else export_sb3(saved, tmp_path / "bc.zip"))
    assert policy.kind == ("mlp" if through == "policy directory" else "actor_critic")
    cfg = ppo.Config(n_envs=4, n_steps=64, batch_size=64, n_epochs=4, **warm_start.architecture(policy, "ppo"))
    one_update = cfg.n_envs * cfg.n_steps
    run = dict(total_timesteps=one_update, seeds=SEEDS, progress=False)
    warm = train_rl(ppo, cfg, "CartPole-v1", **run, init_policy=policy)  # type: ignore[arg-type]
    cold = train_rl(ppo, cfg, "CartPole-v1", **run)  # type: ignore[arg-type]
    assert warm.steps == one_update
    assert bool((warm.eval_returns.mean(-1) >= 450.0).all()), warm.eval_returns.mean(-1)
    assert bool((cold.eval_returns.mean(-1) < 200.0).all()), cold.eval_returns.mean(-1)


def test_a_resumed_run_continues_its_checkpoint_not_the_policy(tmp_path: Path, cartpole_expert: LoadedPolicy) -> None:
    cfg = ppo.Config(n_envs=2, n_steps=16, batch_size=32, n_epochs=1, **warm_start.architecture(cartpole_expert, "ppo"))
    first = train_rl(ppo, cfg, "CartPole-v1", total_timesteps=32, progress=False, log_dir=tmp_path, checkpoint_every=0)
    resumed = train_rl(
        ppo,
        cfg,
        "CartPole-v1",
        total_timesteps=64,
        progress=False,
        log_dir=tmp_path,
        resume=True,
        init_policy=cartpole_expert,
    )
    straight = train_rl(ppo, cfg, "CartPole-v1", total_timesteps=64, progress=False)
    assert tree.allclose(resumed.states.params, straight.states.params)
    assert not tree.allclose(first.states.params, resumed.states.params)


# ---------------------------------------------------------------------------------------------------------------------
# One clear error for what does not fit
# ---------------------------------------------------------------------------------------------------------------------


def test_mismatches_are_one_clear_error(cartpole_expert: LoadedPolicy, pendulum_expert: LoadedPolicy) -> None:
    task = trl.make_task(ppo.Config(n_envs=2), "CartPole-v1", budget=16, n_eval_episodes=1)

    def start(policy: LoadedPolicy, **fields: Any) -> None:
        cfg = ppo.Config(n_envs=2, n_steps=8, batch_size=16, **fields)
        _started(trl.PPO_SPEC, cfg, task, policy)

    with pytest.raises(InputError, match=r"networks are pi \[64, 64\], vf \[64, 64\] \(tanh\).*pi \[32\], vf \[32\]"):
        start(cartpole_expert, net_arch=(32,))
    with pytest.raises(InputError, match="activation is tanh, but PPO uses relu"):
        start(cartpole_expert, activation="relu")
    with pytest.raises(InputError, match="does not normalise observations, so PPO needs normalize_obs=False"):
        start(cartpole_expert, normalize_obs=True)
    small = ppo.Config(n_envs=2, n_steps=8, batch_size=16)
    pendulum = trl.make_task(small, "Pendulum-v1", budget=16, n_eval_episodes=1)
    with pytest.raises(InputError, match=r"PPO starts from an actor-critic .* 'sac_actor'"):
        warm_start.into_ppo(loop.init_states(trl.PPO_SPEC, small, pendulum, SEEDS), pendulum_expert)
    with pytest.raises(InputError, match=r"Box\(.*\) observations.*but ppo's environment has Box\(.*\(4,\)\)"):
        loop.train(trl.PPO_SPEC, ppo.Config(n_envs=2), task, budget=16, progress=False, init_policy=pendulum_expert)
    sac_cfg = sac.Config(buffer_size=10)
    sac_states = loop.init_states(
        trl.SAC_SPEC, sac_cfg, trl.make_task(sac_cfg, "Pendulum-v1", budget=16, n_eval_episodes=1), SEEDS
    )
    with pytest.raises(InputError, match="SAC starts from an SAC actor, but this policy is 'actor_critic'"):
        warm_start.into_sac(sac_states, cartpole_expert)


def test_algorithms_without_a_policy_refuse_init_policy(cartpole_expert: LoadedPolicy) -> None:
    from imitation_fn.algorithms import mce_irl
    from imitation_fn.train import mce_irl as tmce

    assert tmce.SPEC.warm_start is None
    with pytest.raises(InputError, match="mce_irl has no policy to start from a saved one"):
        loop.train(tmce.SPEC, mce_irl.Config(), Task(spaces=trl_spaces()), budget=1, init_policy=cartpole_expert)


# ---------------------------------------------------------------------------------------------------------------------
# The CLI: --init-policy on every command that trains a policy
# ---------------------------------------------------------------------------------------------------------------------

CARTPOLE_EXPERT = str(EXPERTS / "CartPole-v1")
TINY_PPO = "--n-envs 2 --n-steps 32 --batch-size 64 --n-epochs 1"
SEALS = f"--env seals/CartPole-v0 --demos {EXPERTS / 'seals_CartPole-v0' / 'demos'}"
COMMANDS: dict[str, str] = {
    "train-rl": f"train-rl --env CartPole-v1 --total-steps 64 {TINY_PPO}",
    "bc": f"bc --env CartPole-v1 --demos {EXPERTS / 'CartPole-v1' / 'demos'} --n-epochs 1",
    "dagger": f"dagger --env CartPole-v1 --expert {CARTPOLE_EXPERT} --total-timesteps 64 --n-envs 2 "
    "--rollout-round-min-timesteps 32 --n-batches 1",
    "gail": f"gail {SEALS} --n-demos 2 --no-preset --total-timesteps 64 --demo-batch-size 32 {TINY_PPO}",
    "airl": f"airl {SEALS} --n-demos 2 --no-preset --total-timesteps 64 --demo-batch-size 32 {TINY_PPO}",
    "density": f"density {SEALS} --total-timesteps 64 {TINY_PPO}",
    "preference-comparisons": "preference-comparisons --env CartPole-v1 --no-preset --agent ppo --agent-config "
    '\'{"n_envs": 2, "n_steps": 32, "batch_size": 64, "n_epochs": 1}\' --total-timesteps 128 '
    "--total-comparisons 8 --num-iterations 1 --fragment-length 4",
}


def _cli(args: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "COLUMNS": "200", "TERM": "dumb"}
    return subprocess.run(["imitation-fn", *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=300)


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_every_policy_learner_starts_from_init_policy(command: str, tmp_path: Path) -> None:
    args = [
        *shlex.split(COMMANDS[command]),
        "--init-policy",
        CARTPOLE_EXPERT,
        "--n-eval-episodes",
        "2",
        "--no-progress",
    ]
    proc = _cli([*args, "--out", str(tmp_path / "run")], tmp_path)
    assert proc.returncode == 0 and "Traceback" not in proc.stderr, proc.stdout[-2000:] + proc.stderr[-3000:]
    # One tiny update from the 500-return expert keeps a good policy (a cold start returns ~20).
    returns = [float(x) for x in re.findall(r"│\s*\d+\s*│\s*([\d.]+)\s*│", proc.stdout)]
    assert returns and min(returns) >= 150.0, proc.stdout[-2000:]


def test_init_policy_mistakes_are_one_clear_line(tmp_path: Path) -> None:
    base = shlex.split(f"{COMMANDS['train-rl']} --no-progress")
    cases = {
        "Pendulum-v1 policy": (["--init-policy", str(EXPERTS / "Pendulum-v1")], "observations and"),
        "flag over the policy": (["--init-policy", CARTPOLE_EXPERT, "--net-arch", "16"], "networks are pi [64, 64]"),
        "missing file": (["--init-policy", str(tmp_path / "nothing")], "--init-policy"),
    }
    for name, (extra, expected) in cases.items():
        proc = _cli([*base, *extra], tmp_path)
        output = proc.stdout + proc.stderr
        assert proc.returncode == 2 and "Traceback" not in output, (name, output[-2000:])
        assert expected in re.sub(r"\s+", " ", output), (name, output[-2000:])
