"""The agent of preference comparisons (imitation_fn.rl.agent_trainer): the batched sampler and trainer equal the
vmapped single-seed functions, the compiled sampling step is one graph, and relabelling the replay buffer."""

import functools
from typing import Any

import pytest
import torch
from preference_setup import SHORT, SMALL

from imitation_fn import envs
from imitation_fn.algorithms import preference_comparisons as pc
from imitation_fn.core import checks, random
from imitation_fn.core import compile as compile_lib
from imitation_fn.envs.task import Task
from imitation_fn.rl import agent_trainer, sac
from imitation_fn.train import preference_comparisons as tpc


def test_batched_train_agent_equals_vmapped_train_agent(monkeypatch: pytest.MonkeyPatch) -> None:
    """The driver's agent phase (SAC's sweep path, torch.compile replaced by the identity) is vmap(train_agent)."""
    monkeypatch.setattr(compile_lib, "compiled", lambda fn, vectorize=True: fn)
    env = envs.make(SHORT, n_envs=2)
    task = Task(env=env)
    rnd = pc.task_plan(SMALL, task)[0]
    keys = random.split(random.key(3), 2)
    states = torch.func.vmap(lambda k: pc.init(SMALL, k, task))(keys)
    # A trained reward and fitted statistics, different per seed: the agent must see each seed's own.
    states, _ = torch.func.vmap(lambda s: pc.learn_reward(*pc.collect_round(s, task, rnd)))(states)
    assert not torch.allclose(states.reward_norm.mean[0], states.reward_norm.mean[1])
    n_calls = 12  # learning starts after 16 steps = 8 calls: both phases of SAC's update
    expected, expected_m = torch.func.vmap(lambda s: pc.train_agent(s, env, n_calls))(states)
    reward = functools.partial(pc.agent_reward, states.net, SMALL.normalize_reward)
    for compiled in (False, True):
        run = agent_trainer.batched_train_agent("sac", env, reward, compile=compiled)
        got, got_m = run(states.agent, (states.reward_params, states.reward_norm), n_calls)
        checks.assert_trees_allclose(got, expected.agent, rtol=1e-6, atol=1e-6, name="agents")
        checks.assert_trees_allclose(got_m, expected_m, rtol=1e-5, atol=1e-6, name="metrics")
    assert got.n_updates.tolist() == [4, 4]


def test_batched_sample_pool_equals_vmapped_sample_pool_and_the_compiled_driver_runs(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The sweep's trajectory sampler (torch.compile replaced by the identity) is vmap(sample_pool); the driver's
    compiled path (one pool size for all rounds) trains every seed, 1 or 2 of them, as the uncompiled one does."""
    monkeypatch.setattr(compile_lib, "compiled", lambda fn, vectorize=True: fn)
    cfg = SMALL.model_copy(update={"exploration_frac": 0.5, "random_prob": 0.5, "switch_prob": 0.3})
    env, pool_env = envs.make(SHORT, n_envs=2), envs.make(SHORT, n_envs=4)
    keys = random.split(random.key(4), 2)
    states = torch.func.vmap(lambda k: pc.init(cfg, k, Task(env=env)))(keys)
    pool_keys = random.split(random.key(5), 2)
    expected = torch.func.vmap(lambda s, k: pc.sample_pool(s, pool_env, 20, k))(states, pool_keys)
    sampler = agent_trainer.batched_sample_pool("sac", pool_env, pc.exploration(cfg), compile=True)
    got = sampler(states.agent, pool_keys, 20)
    checks.assert_trees_allclose(got, expected, rtol=0, atol=0, name="pool")
    assert bool(got[0].valid.all()) and got[0].obs.shape == (2, 4, 20, 3)
    rounds = pc.plan(SMALL, 20)
    n_pool = max(r.pool_envs for r in rounds)
    assert len({r.pool_envs for r in rounds}) > 1  # the plan's rounds differ: the compiled path pads them
    for seeds in ([0], [0, 1]):
        result = tpc.train(SMALL, SHORT, seeds=seeds, n_eval_episodes=2, progress=False, compile=True)
        # Every round sampled n_pool streams of 20 steps (no round of the plan has more).
        assert result.states.sample_steps.tolist() == [n_pool * 20 * len(rounds)] * len(seeds)
        assert result.states.round.tolist() == [2] * len(seeds) and result.eval_returns is not None
        assert result.states.agent.timesteps.tolist() == [64] * len(seeds)


@pytest.mark.parametrize(
    ("env_id", "agent_config"),
    [(SHORT, SMALL.agent_config), ("seals/CartPole-v0", {"n_envs": 2, "n_steps": 8, "batch_size": 16})],
    ids=["box", "discrete"],
)
def test_compiled_sampler_step_traces_as_one_graph(
    env_id: str, agent_config: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The compiled sampling step is one graph with no tensor-to-Python reads (inductor cannot compile those, and
    the step then falls back to eager), for Box and Discrete actions: the exploration's random policy reads the
    action space's numpy bounds, so it must be built outside the traced code."""
    targets: list[str] = []

    def backend(gm: torch.fx.GraphModule, example_inputs: list[torch.Tensor]) -> Any:
        targets.extend(str(node.target) for node in gm.graph.nodes)
        return gm.forward

    monkeypatch.setattr(
        compile_lib, "compiled", lambda fn, vectorize=True: torch.compile(fn, backend=backend, fullgraph=True)
    )
    agent = "sac" if env_id == SHORT else "ppo"
    cfg = SMALL.model_copy(update={"agent": agent, "agent_config": agent_config})
    env, pool_env = envs.make(env_id, n_envs=2), envs.make(env_id, n_envs=4)
    states = torch.func.vmap(lambda k: pc.init(cfg, k, Task(env=env)))(random.split(random.key(0), 2))
    sampler = agent_trainer.batched_sample_pool(agent, pool_env, pc.exploration(cfg), compile=True)
    pool, _ = sampler(states.agent, random.split(random.key(1), 2), 3)
    assert pool.obs.shape[:3] == (2, 4, 3) and targets
    assert not [t for t in targets if "getitem" not in t and "item" in t]


def test_relabel_replay_recomputes_the_stored_rewards_in_env_units() -> None:
    """Relabelling with the reward the agent collected under changes nothing; with another, every filled slot holds
    that reward of its own (obs, env-unit action, next_obs): the buffer's [-1, 1] actions are rescaled first."""
    env = envs.make(SHORT, n_envs=2)
    cfg = sac.Config(**{**SMALL.agent_config, "buffer_size": 64})

    def reward(obs: torch.Tensor, acts: torch.Tensor, next_obs: torch.Tensor, dones: torch.Tensor) -> torch.Tensor:
        return (obs * next_obs).sum(-1) + 10.0 * acts[:, 0]

    agent = agent_trainer.init_agent("sac", cfg, random.key(0), env, total_timesteps=40)
    agent, _ = agent_trainer.train_agent(agent, "sac", env, reward, n_calls=20)
    size, items = int(agent.buffer.size), agent.buffer.storage
    assert size == 40 and float(items.acts[:size].abs().max()) <= 1.0
    same = agent_trainer.relabel_replay(agent, reward).buffer.storage
    torch.testing.assert_close(same.rews[:size], items.rews[:size], rtol=0, atol=1e-5)
    assert torch.equal(same.obs, items.obs) and torch.equal(same.acts, items.acts)
    env_acts = items.acts[:size, 0] * 2.0  # Pendulum's actions are in [-2, 2]
    other = agent_trainer.relabel_replay(agent, lambda o, a, n, d: a[:, 0] - o[:, 2]).buffer.storage
    torch.testing.assert_close(other.rews[:size], env_acts - items.obs[:size, 2], rtol=0, atol=1e-5)


def test_no_agent_trains_to_itself_and_steps_per_call() -> None:
    assert not agent_trainer.has_agent({})
    assert agent_trainer.train_agent({}, "sac", envs.make(SHORT, n_envs=2), lambda *a: a[0], 5) == ({}, {})
    ppo_cfg = pc.Config(agent="ppo", agent_config={"n_envs": 4, "n_steps": 16}).agent_cfg()
    assert agent_trainer.steps_per_call("ppo", ppo_cfg) == 64
    assert agent_trainer.steps_per_call("sac", sac.Config(n_envs=3, train_freq=2)) == 6


def test_env_copies_is_the_same_env_with_more_sub_environments() -> None:
    """A round samples in as many copies of the agent's env as it needs: a copy equals a freshly made env."""
    env = envs.make(SHORT, n_envs=2)
    copies = agent_trainer.env_copies(env, 5)
    assert copies is agent_trainer.env_copies(env, 5) and agent_trainer.env_copies(env, 2) is env and env.n_envs == 2
    fresh = envs.make(SHORT, n_envs=5)
    key = random.key(0)
    got, expected = copies.reset(key), fresh.reset(key)
    checks.assert_trees_allclose(got, expected, rtol=0, atol=0, name="reset")
    for t in range(25):  # past the 20-step time limit: auto-resets too
        action, k = torch.full((5, 1), 0.5), random.fold_in(key, t)
        got, expected = copies.step(got.env_state, action, k), fresh.step(expected.env_state, action, k)
        checks.assert_trees_allclose(got, expected, rtol=0, atol=0, name="step")
    host = envs.GymEnv("CartPole-v1", 1, max_episode_steps=7)  # a gymnasium env: a new vector env of 3 copies
    host_copies = agent_trainer.env_copies(host, 3)
    assert isinstance(host_copies, envs.GymEnv) and host_copies is not host
    assert (host_copies.n_envs, host_copies.max_episode_steps, host.n_envs) == (3, 7, 1)
