"""MCE IRL: ``imitation``'s own test criteria (the hand-built MDP, demonstration formats, learning), the tabular
policy, vmap ≡ loop, and the ``mce-irl`` command. The solvers it plans with: ``test_tabular_solvers.py``."""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

import pytest
import torch
from test_tabular_solvers import reasonable_mdp  # imitation's test MDP, shared with the solver tests
from torch.func import vmap

from imitation_fn.algorithms import mce_irl
from imitation_fn.core import optim, random, tree
from imitation_fn.data import flatten_trajectories
from imitation_fn.envs.tabular import TabularEnv, TabularMDP, cliff_world, random_mdp
from imitation_fn.envs.task import Task
from imitation_fn.policies.tabular import TabularPolicy, generate_trajectories, rollout
from imitation_fn.rl import tabular
from imitation_fn.train import loop
from imitation_fn.train import mce_irl as mce_training


def test_solvers_are_importable_from_mce_irl() -> None:
    """``imitation``'s users know the solvers as ``imitation.algorithms.mce_irl.mce_partition_fh`` etc."""
    names = ("mce_partition_fh", "mce_occupancy_measures", "sparse_transitions", "SparseTransitions", "expected_return")
    for name in names:
        assert getattr(mce_irl, name) is getattr(tabular, name) and name in mce_irl.__all__


# --------------------------------------------------------------------------------------------
# Tabular policy
# --------------------------------------------------------------------------------------------


def test_tabular_policy_is_time_indexed() -> None:
    """``imitation``'s ``test_tabular_policy_rollouts``: a policy that cycles through the actions every step."""
    mdp = reasonable_mdp()
    sub = torch.eye(3, dtype=torch.float64).unsqueeze(1).expand(3, 5, 3)  # pi[t % 3, s] = one-hot(t % 3)
    pi = sub.repeat(7, 1, 1)[: mdp.horizon]
    env = TabularEnv(mdp, n_envs=3, expose_state=True)
    batch, _ = rollout(env, TabularPolicy(pi), random.key(0), 2 * mdp.horizon)
    expected = (torch.arange(2 * mdp.horizon) % mdp.horizon) % 3  # restarts at 0 with each episode
    assert torch.equal(batch.acts, expected.unsqueeze(1).expand(-1, 3))
    trajs = generate_trajectories(env, TabularPolicy(pi), random.key(1), n_episodes=4)
    assert len(trajs) == 4 and all(len(t) == mdp.horizon and t.obs.dtype == torch.int64 for t in trajs)


def test_tabular_policy_sampling() -> None:
    """``imitation``'s ``test_tabular_policy_randomness``."""
    pi = torch.tensor([[[0.5, 0.5], [0.9, 0.1]]])
    policy = TabularPolicy(pi)
    t = torch.zeros(4000, dtype=torch.int64)
    zeros, ones = torch.zeros_like(t), torch.ones_like(t)
    assert 0.45 <= float(policy.act(zeros, t, random.key(0)).double().mean()) <= 0.55
    assert 0.07 <= float(policy.act(ones, t, random.key(1)).double().mean()) <= 0.13
    assert bool((policy.act(ones, t, random.key(2), deterministic=True) == 0).all())


# --------------------------------------------------------------------------------------------
# Demonstrations
# --------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def random_demo() -> tuple[TabularMDP, list]:
    """``imitation``'s ``test_mce_irl_demo_formats`` setup: random actions in a 5-state random MDP."""
    mdp = random_mdp(random.key(42), n_states=5, n_actions=3, branch_factor=2, horizon=10, random_obs=False)
    uniform = TabularPolicy(torch.full((10, 5, 3), 1 / 3))
    trajs = generate_trajectories(TabularEnv(mdp, 8, expose_state=True), uniform, random.key(0), n_episodes=11)
    return mdp, trajs


def test_demonstration_formats_agree(random_demo: tuple[TabularMDP, list]) -> None:
    mdp, trajs = random_demo
    from_trajs = mce_irl.demo_occupancy(mdp, trajs)
    assert math.isclose(float(from_trajs.sum()), mdp.horizon + 1, rel_tol=1e-6)
    # seals/imitation record a fixed-horizon episode's end as done: flatten with the episode ends marked.
    transitions = flatten_trajectories([t.replace(terminal=True) for t in trajs])
    torch.testing.assert_close(mce_irl.demo_occupancy(mdp, transitions), from_trajs)
    # Observation rows identify states as well as state indices do.
    rows = [t.replace(obs=mdp.observation_matrix[t.obs]) for t in trajs]
    torch.testing.assert_close(mce_irl.demo_occupancy(mdp, rows), from_trajs)

    cfg = mce_irl.Config(net_arch=(), max_iter=5, log_interval=None)
    results = [mce_training.train(cfg, mdp, demo) for demo in (trajs, transitions, from_trajs)]
    finals = [mce_training.occupancies(r.states, mdp)[0] for r in results]
    for final in finals[1:]:
        torch.testing.assert_close(final, finals[0], atol=1e-3, rtol=1e-3)
    assert float(optim.global_norm(tree.index(results[0].states, 0).params)) < 1000

    discounted = mce_irl.demo_occupancy(mdp, trajs, discount=0.9)
    assert math.isclose(float(discounted.sum()), (1 - 0.9 ** (mdp.horizon + 1)) / 0.1, rel_tol=1e-6)


def test_demonstration_errors(random_demo: tuple[TabularMDP, list]) -> None:
    mdp, trajs = random_demo
    transitions = flatten_trajectories([t.replace(terminal=True) for t in trajs])
    with pytest.raises(ValueError, match="discounted occupancy measure from Transitions"):
        mce_irl.demo_occupancy(mdp, transitions, discount=0.9)
    with pytest.raises(ValueError, match="no dones"):
        mce_irl.demo_occupancy(mdp, flatten_trajectories(trajs))
    short = trajs[0].replace(obs=trajs[0].obs[:5], acts=trajs[0].acts[:4], rews=trajs[0].rews[:4])
    with pytest.raises(ValueError, match="exactly the MDP's horizon"):
        mce_irl.demo_occupancy(mdp, [short])
    with pytest.raises(ValueError, match=r"shape \(5,\)"):
        mce_irl.demo_occupancy(mdp, torch.ones(4))
    with pytest.raises(ValueError, match=r"in \[0, 5\)"):
        mce_irl.demo_occupancy(mdp, [trajs[0].replace(obs=trajs[0].obs + 5)])
    with pytest.raises(TypeError, match="demonstrations must be"):
        mce_irl.demo_occupancy(mdp, [1, 2])  # type: ignore[list-item]


# --------------------------------------------------------------------------------------------
# The algorithm
# --------------------------------------------------------------------------------------------


def test_config_validation() -> None:
    with pytest.raises(ValueError, match="discount"):
        mce_irl.Config(discount=1.5)
    with pytest.raises(ValueError, match="linf_eps"):
        mce_irl.Config(linf_eps=-1)
    cfg = mce_irl.Config(net_arch=(), discount=0.9)
    assert mce_irl.Config.from_json(cfg.to_json()) == cfg


def test_update_matches_imitation_step_and_freezes_when_converged() -> None:
    """One step is Adam on (D_θ − D_E) · r_θ with D_θ fixed, as ``imitation``'s ``_train_step``."""
    mdp = reasonable_mdp()
    _, demo = mce_irl.mce_occupancy_measures(mdp, discount=0.99)
    state = mce_irl.init(mce_irl.Config(discount=0.99), random.key(0), Task(mdp=mdp))
    batch = mce_irl.Batch(demo, mdp)
    new, metrics = mce_irl.update(state, batch)

    modules = [
        torch.nn.Linear(8, 32),
        torch.nn.ReLU(),
        torch.nn.Linear(32, 32),
        torch.nn.ReLU(),
        torch.nn.Linear(32, 1),
    ]
    net = torch.nn.Sequential(*modules)
    net.load_state_dict(dict(_torch_layout(state.params)))
    opt = torch.optim.Adam(net.parameters(), lr=1e-2)
    r = net(mdp.observation_matrix).squeeze(-1)
    _, visits = mce_irl.mce_occupancy_measures(mdp, reward=r.detach(), discount=0.99)
    torch.dot((visits - demo).float(), r).backward()
    opt.step()
    for k, v in _torch_layout(new.params):
        torch.testing.assert_close(v, net.state_dict()[k], rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(metrics["linf_delta"], (visits - demo).abs().max())
    assert int(new.step) == 1 and not bool(new.converged)

    # A met criterion stops the step: the state is then frozen, bit for bit.
    done, _ = mce_irl.update(state.replace(linf_eps=torch.tensor(10.0, dtype=torch.float64)), batch)
    assert bool(done.converged) and int(done.step) == 0
    again, _ = mce_irl.update(done, batch)
    assert tree.allclose(again.params, state.params, rtol=0, atol=0) and int(again.step) == 0
    assert torch.equal(again.pi, state.pi)  # the policy of the frozen reward
    # The state's policy is the soft-optimal policy of its reward, after the step too.
    _, _, pi = mce_irl.mce_partition_fh(mdp, reward=mce_irl.reward(new)(mdp.observation_matrix), discount=0.99)
    torch.testing.assert_close(new.pi, pi, rtol=0, atol=0)


def _torch_layout(params: dict[str, torch.Tensor]) -> list[tuple[str, torch.Tensor]]:
    """``layers.{i}.weight`` -> ``nn.Sequential`` keys (linear layers at 0, 2, 4)."""
    return [(f"{2 * int(k.split('.')[1])}.{k.split('.')[2]}", v) for k, v in params.items()]


def test_vmap_over_16_seeds_equals_loop() -> None:
    mdp = cliff_world(horizon=10, use_xy_obs=True, dtype=torch.float64)
    _, demo = mce_irl.mce_occupancy_measures(mdp)
    # float64: in float32, Adam amplifies rounding noise in exactly-zero gradient directions to ~lr-sized steps.
    cfg = mce_irl.Config(linf_eps=0.0, grad_l2_eps=0.0, dtype="float64")
    keys, task, batch = loop.seed_keys(range(16))[0], Task(mdp=mdp), mce_irl.Batch(demo, mdp)
    states = vmap(lambda k: mce_irl.init(cfg, k, task))(keys)
    step = mce_irl.batched_update()
    singles = [mce_irl.init(cfg, keys[i], task) for i in (0, 7, 15)]
    for _ in range(3):
        states, metrics = step(states, batch)
        outs = [mce_irl.update(s, batch) for s in singles]
        singles = [o[0] for o in outs]
        for i, (_, m) in zip((0, 7, 15), outs, strict=True):
            for k in m:
                torch.testing.assert_close(metrics[k][i], m[k], rtol=1e-6, atol=1e-8)
    for i, single in zip((0, 7, 15), singles, strict=True):
        tree.map(lambda a, b: torch.testing.assert_close(a, b, rtol=1e-6, atol=1e-8), tree.index(states, i), single)
    # Seed 7's result does not depend on how many seeds share the run.
    alone = mce_training.train(cfg.model_copy(update={"max_iter": 3}), mdp, demo, seeds=[7])
    tree.map(
        lambda a, b: torch.testing.assert_close(a, b, rtol=1e-6, atol=1e-8),
        tree.index(alone.states, 0).params,
        tree.index(states, 7).params,
    )


@pytest.mark.parametrize("sparse", [False, True], ids=["dense", "sparse"])
def test_batched_update_equals_vmapped_update(sparse: bool, monkeypatch: pytest.MonkeyPatch) -> None:
    """batched_update (solvers on all seeds at once, seed axis innermost) ≡ vmap(update), dense and sparse, also
    when traced by torch.compile (the fused logsumexp path; aot_eager: the same graph without inductor's codegen)."""
    mdp = cliff_world(horizon=8, use_xy_obs=True, dtype=torch.float64)
    sp = mce_irl.sparse_transitions(mdp) if sparse else None
    _, demo = mce_irl.mce_occupancy_measures(mdp)
    cfg = mce_irl.Config(linf_eps=0.0, grad_l2_eps=0.0, dtype="float64", net_arch=(16,))
    # Different discounts per seed: the batched solvers broadcast them over the seed axis.
    discounts = [1.0, 0.99, 0.5, 0.0, 0.9]
    keys = torch.stack([random.key(s) for s in range(5)])
    states = tree.stack(
        [
            mce_irl.init(cfg.model_copy(update={"discount": g}), k, Task(mdp=mdp))
            for g, k in zip(discounts, keys, strict=True)
        ]
    )
    batch = mce_irl.Batch(demo, mdp, sp)
    expected = vmap(mce_irl.update, in_dims=(0, None))(states, batch)
    got = mce_irl.batched_update()(states, batch)
    # Occupancies agree to ~1e-16; Adam turns that into ~1e-10 in the output bias (its gradient Σ(D − D_E) is 0
    # in exact arithmetic, so rounding is all there is to normalise): tolerances as test_vmap_over_16_seeds.
    tree.map(lambda a, b: torch.testing.assert_close(a, b, rtol=1e-6, atol=1e-8), got, expected)

    real_compile = torch.compile
    monkeypatch.setattr(torch, "compile", lambda fn, **kw: real_compile(fn, backend="aot_eager", fullgraph=True))
    traced = mce_irl.batched_update.__wrapped__(compile=True)(states, batch)
    tree.map(lambda a, b: torch.testing.assert_close(a, b, rtol=1e-6, atol=1e-8), traced, expected)


def test_train_sparse_equals_dense() -> None:
    """train plans sparsely by default on CliffWorld (K = 2 ≤ S / 4): the same iterates as dense planning."""
    mdp = cliff_world(horizon=10, use_xy_obs=True, dtype=torch.float64)
    _, demo = mce_irl.mce_occupancy_measures(mdp)
    cfg = mce_irl.Config(max_iter=30, linf_eps=0.05, dtype="float64", log_interval=None)
    auto, dense = (mce_training.train(cfg, mdp, demo, seeds=[0, 3], sparse=s) for s in (None, False))
    assert auto.steps == dense.steps
    torch.testing.assert_close(auto.states.step, dense.states.step)
    torch.testing.assert_close(
        mce_training.occupancies(auto.states, mdp), mce_training.occupancies(dense.states, mdp), rtol=1e-7, atol=1e-9
    )
    # Rounding differences (~1e-16) in the occupancies grow through Adam along the output bias, whose gradient
    # is 0 in exact arithmetic (see Config.dtype): ~1e-8 after 30 steps.
    tree.map(
        lambda a, b: torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6), auto.states.params, dense.states.params
    )


@pytest.mark.slow
@pytest.mark.parametrize("net_arch", [(), (32, 32)], ids=["linear", "mlp"])
def test_learns_reasonable_mdp(net_arch: tuple[int, ...]) -> None:
    """``imitation``'s ``test_mce_irl_reasonable_mdp`` (its defaults: lr 1e-2, linf_eps 1e-3, 1000 iterations),
    the three discounts swept in one vmapped run. Like ``imitation``'s test it fixes the seed: within 1000
    iterations about 60% of initialisations converge for each configuration."""
    mdp = reasonable_mdp()
    discounts = [0.0, 0.99, 1.0]
    pis, demos, states = [], [], []
    for g in discounts:
        _, _, pi = mce_irl.mce_partition_fh(mdp, discount=g)
        pis.append(pi)
        demos.append(mce_irl.mce_occupancy_measures(mdp, pi=pi, discount=g)[1])
        states.append(mce_irl.init(mce_irl.Config(net_arch=net_arch, discount=g), random.key(2), Task(mdp=mdp)))
    state, demo = tree.stack(states), torch.stack(demos)
    step = vmap(lambda s, d: mce_irl.update(s, mce_irl.Batch(d, mdp)))
    for _ in range(1000):
        state, metrics = step(state, demo)
        if bool(state.converged.all()):
            break
    assert bool(state.converged.all()), metrics["linf_delta"]
    for i, g in enumerate(discounts):
        s = tree.index(state, i)
        _, final = mce_irl.occupancy(s, mdp)
        torch.testing.assert_close(final, demos[i], atol=1e-3, rtol=1e-3)
        assert float(optim.global_norm(s.params)) < 1000
        learned, expert = mce_irl.expected_return(mdp, mce_irl.policy(s).pi), mce_irl.expected_return(mdp, pis[i])
        if g > 0:  # at discount 0 every reward gives the uniform policy (imitation skips this check too)
            torch.testing.assert_close(learned, expert, rtol=1e-2, atol=0.0)
            # imitation's check on sampled episodes: return >= 80% of collecting 2 per step
            env = TabularEnv(mdp, n_envs=5, expose_state=True)
            batch, _ = rollout(env, mce_irl.policy(s), random.key(i), mdp.horizon)
            assert float(batch.rews.sum(0).mean()) >= (mdp.horizon - 1) * 2 * 0.8


@pytest.mark.slow
def test_learns_cliff_world_exactly() -> None:
    """CliffWorld 4×7, horizon 40, (x, y) observations, [32, 32] MLP: L∞ ≤ 1e-3 and the expert's exact return."""
    mdp = cliff_world(width=7, height=4, horizon=40, use_xy_obs=True, dtype=torch.float64)
    _, _, pi = mce_irl.mce_partition_fh(mdp)
    _, demo = mce_irl.mce_occupancy_measures(mdp, pi=pi)
    result = mce_training.train(mce_irl.Config(max_iter=1000, log_interval=None), mdp, demo, seeds=[1])
    assert bool(result.states.converged[0])
    assert float((mce_training.occupancies(result.states, mdp)[0] - demo).abs().max()) <= 1e-3
    learned = mce_irl.expected_return(mdp, mce_irl.policy(tree.index(result.states, 0)).pi)
    torch.testing.assert_close(learned, mce_irl.expected_return(mdp, pi), rtol=1e-4, atol=0.0)


# --------------------------------------------------------------------------------------------
# CLI
# --------------------------------------------------------------------------------------------


def _run_cli(argv: list[str]) -> None:
    from imitation_fn.cli import mce_irl as cli

    parser = argparse.ArgumentParser(prog="imitation-fn")
    cli.register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    args.func(args)


def test_cli_cliff_world(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("matplotlib")
    out = tmp_path / "run"
    _run_cli(
        ["mce-irl", "--env", "CliffWorld", "--horizon", "6", "--use-xy-obs", "--seeds", "2", "--max-iter", "20",
         "--net-arch", "8", "--log-interval", "10", "--n-eval-episodes", "10", "--out", str(out)]
    )  # fmt: skip
    text = capsys.readouterr().out
    assert "MCE IRL on CliffWorld" in text and "expert return" in text and "final L∞" in text
    results = json.loads((out / "results.json").read_text())
    assert [s["seed"] for s in results["seeds"]] == [0, 1]
    assert all(s["iterations"] <= 20 for s in results["seeds"])
    assert (out / "cliff_world.png").stat().st_size > 1000
    assert mce_irl.Config.load(out / "config.json").net_arch == (8,)


def test_cli_random_mdp_with_sampled_demos(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _run_cli(
        ["mce-irl", "--env", "RandomMDP", "--n-states", "6", "--n-actions", "2", "--horizon", "5", "--net-arch",
         "--n-demos", "20", "--max-iter", "10", "--discount", "0.9", "--out", str(tmp_path)]
    )  # fmt: skip
    assert "MCE IRL on RandomMDP" in capsys.readouterr().out
    assert not (tmp_path / "cliff_world.png").exists()
    assert json.loads((tmp_path / "results.json").read_text())["mdp"]["n_states"] == 6


def test_cli_errors() -> None:
    from imitation_fn.cli.common import CLIError

    with pytest.raises(CLIError, match="branch_factor"):
        _run_cli(["mce-irl", "--env", "RandomMDP", "--n-states", "3", "--branch-factor", "5", "--max-iter", "1"])
    with pytest.raises(CLIError, match="--discount"):
        _run_cli(["mce-irl", "--discount", "2"])
