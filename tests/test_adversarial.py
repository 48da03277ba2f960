"""GAIL and AIRL: one round is pure (vmap ≡ loop, seed i independent of N), the discriminator's math and
metrics, the variable-horizon guard, saved reward nets, the driver, the CLI, and GAIL learning."""

import functools
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import torch
import torch.nn.functional as F

from imitation_fn import cli, envs, presets, rewards
from imitation_fn.algorithms import adversarial, airl, gail, protocol
from imitation_fn.cli import main
from imitation_fn.core import checks, random, tree
from imitation_fn.core.errors import InputError
from imitation_fn.data import flatten_trajectories, generate_trajectories, serialize
from imitation_fn.data.types import Transitions
from imitation_fn.envs.experts import cartpole_expert
from imitation_fn.envs.task import Task
from imitation_fn.nn import normalize as nn_normalize
from imitation_fn.policies import actor_critic
from imitation_fn.rl import ppo
from imitation_fn.train import adversarial as driver
from imitation_fn.train import loop

DEMOS = Path(__file__).parent / "data" / "experts" / "seals_CartPole-v0" / "demos"
ENV_ID = "seals/CartPole-v0"
GEN = ppo.Config(n_envs=4, n_steps=16, batch_size=32, n_epochs=2, lr=1e-3)
SMALL: dict[str, Any] = {"gen": GEN, "demo_batch_size": 32, "n_disc_updates_per_round": 2, "stagger_envs": False}
ALGOS = [pytest.param(gail, id="gail"), pytest.param(airl, id="airl")]


@functools.cache
def expert_trajectories(n: int = 4) -> list:
    # The scripted expert: fast, and exactly fixed-horizon on seals/CartPole-v0.
    return generate_trajectories(envs.make(ENV_ID, n_envs=n), cartpole_expert, random.key(0), min_episodes=n)[:n]


@functools.cache
def expert_transitions() -> Transitions:
    return flatten_trajectories(expert_trajectories())


def states_for(algo: ModuleType, cfg: Any, env: envs.Env, seeds: list[int]) -> Any:
    return loop.init_states(driver.SPECS[algo.__name__.rsplit(".", 1)[-1]], cfg, Task(env=env), seeds)


def task_for(env: envs.Env, demos: Any = None) -> Task:
    return Task(env=env, demos=expert_transitions() if demos is None else demos)


# --- one round: pure, vmappable, seed-independent ---------------------------------------------------------------------


@pytest.mark.parametrize("algo", ALGOS)
def test_vmapped_round_equals_a_loop_and_seed_i_does_not_depend_on_n(algo: ModuleType) -> None:
    cfg = algo.Config(**SMALL)
    env = envs.make(ENV_ID, n_envs=GEN.n_envs)
    task = task_for(env)
    states = states_for(algo, cfg, env, [0, 1, 2])
    batched, metrics = torch.func.vmap(lambda s: algo.train_round(s, task))(states)
    for i in range(3):
        alone, m = algo.train_round(tree.index(states, i), task)
        checks.assert_trees_allclose(tree.index(batched, i), alone, rtol=1e-5, atol=1e-6)
        assert torch.allclose(metrics["disc_loss"][i], m["disc_loss"], rtol=1e-5, atol=1e-6)
    # Seed 1 run alone (N=1) equals seed 1 in the sweep of 3, through the driver's batched round too.
    one = states_for(algo, cfg, env, [1])
    one, _ = driver.round_step(algo, cfg, task, torch.zeros(1, 2, dtype=torch.int64), False)(one, 0)
    checks.assert_trees_allclose(tree.index(one, 0), tree.index(batched, 1), rtol=1e-5, atol=1e-6)
    assert int(batched.rounds[0]) == 1 and int(batched.buffer.size[0]) == GEN.n_envs * GEN.n_steps
    assert not tree.allclose(tree.index(batched, 0).disc_params, tree.index(batched, 1).disc_params)


def test_stagger_spreads_the_envs_over_the_episode_and_stays_pure() -> None:
    cfg = gail.Config(**{**SMALL, "stagger_envs": True})
    env = envs.make(ENV_ID, n_envs=GEN.n_envs, max_episode_steps=40)
    states = states_for(gail, cfg, env, [0, 1])
    assert states.gen.timestep.env_state.t.tolist() == [[0, 10, 20, 30]] * 2  # horizon 40 spread over 4 envs
    alone = states_for(gail, cfg, env, [1])
    checks.assert_trees_allclose(tree.index(alone, 0), tree.index(states, 1), rtol=0, atol=0)
    assert int(states.gen.timesteps.max()) == 0  # burn-in steps are not counted as training steps


def test_collect_then_update_is_one_round() -> None:
    cfg = gail.Config(**SMALL)
    task = task_for(envs.make(ENV_ID, n_envs=GEN.n_envs), expert_trajectories())  # demos as given: flattened
    state = gail.init(cfg, random.key(3), task)
    whole, _ = gail.train_round(state, task)
    s, batch = gail.collect(state, task)
    assert torch.equal(batch.demos.obs, expert_transitions().obs)
    s, metrics = gail.update(s, batch)
    checks.assert_trees_allclose(s, whole, rtol=0, atol=0)
    expected = {"disc_loss", "disc_acc", "disc_acc_expert", "disc_acc_gen", "disc_entropy"}
    expected |= {"disc_proportion_expert_pred", "n_expert", "n_generated", "gen/policy_gradient_loss"}
    assert expected <= set(metrics)
    assert float(metrics["n_expert"]) == float(metrics["n_generated"]) == cfg.demo_batch_size


@pytest.mark.parametrize("algo", ALGOS)
def test_the_protocol_and_the_loops_generic_step_equal_the_drivers_round(algo: ModuleType) -> None:
    assert isinstance(algo, protocol.Acting) and isinstance(algo, protocol.RewardLearner)
    cfg = algo.Config(**SMALL)
    env = envs.make(ENV_ID, n_envs=GEN.n_envs)
    task = task_for(env)
    states = states_for(algo, cfg, env, [0, 1])
    keys = torch.zeros(2, 2, dtype=torch.int64)
    generic, m = loop.acting_step(algo, cfg, task, keys, False)(states, 0)  # vmap(collect), then vmap(update)
    driven, md = driver.round_step(algo, cfg, task, keys, False)(states, 0)
    checks.assert_trees_allclose(generic, driven, rtol=1e-5, atol=1e-6)
    assert set(m) == set(md) and torch.allclose(m["disc_loss"], md["disc_loss"], rtol=1e-5, atol=1e-6)
    b = expert_transitions()
    exported = algo.reward(tree.index(driven, 0))(b.obs, b.acts, b.next_obs, b.dones)
    expected = (airl.reward_test if algo is airl else gail.reward_train)(tree.index(driven, 0))
    assert torch.equal(exported, expected(b.obs, b.acts, b.next_obs, b.dones))


def test_several_rollouts_per_round_and_a_larger_buffer() -> None:
    rollout = GEN.n_envs * GEN.n_steps
    cfg = gail.Config(**SMALL, gen_train_timesteps=2 * rollout, gen_replay_buffer_capacity=3 * rollout)
    task = task_for(envs.make(ENV_ID, n_envs=GEN.n_envs))
    state, _ = gail.train_round(gail.init(cfg, random.key(0), task), task)
    assert int(state.gen.n_updates) == 2 and int(state.gen.timesteps) == 2 * rollout
    assert int(state.buffer.size) == 2 * rollout and state.buffer.capacity == 3 * rollout
    with pytest.raises(ValueError, match="train_round"):
        gail.update(*gail.collect(state, task))
    with pytest.raises(ValueError, match="not a multiple"):
        gail.Config(**SMALL, gen_train_timesteps=rollout + 1)


# --- the math ---------------------------------------------------------------------------------------------------------


def test_gail_reward_is_minus_log_one_minus_d_and_logits_come_from_the_net() -> None:
    env = envs.make(ENV_ID, n_envs=GEN.n_envs)
    state = gail.init(gail.Config(**SMALL), random.key(1), Task(env=env))
    batch = tree.index(expert_transitions(), slice(0, 8))
    net_params = adversarial.disc_net_params(state, state.disc_params)  # input normalisation folded in
    logit = state.net.apply(net_params, batch.obs, batch.acts, batch.next_obs, batch.dones)
    assert torch.equal(gail.logits(state.disc_params, state, batch), logit)
    d = torch.sigmoid(logit.double())
    reward = gail.reward_train(state)(batch.obs, batch.acts, batch.next_obs, batch.dones)
    assert torch.allclose(reward.double(), -torch.log1p(-d), atol=1e-5)


def test_gail_gradient_penalty_adds_a_differentiable_term() -> None:
    env = envs.make(ENV_ID, n_envs=GEN.n_envs)
    plain = gail.init(gail.Config(**SMALL), random.key(1), Task(env=env))
    penalised = gail.init(gail.Config(**SMALL, grad_penalty=10.0), random.key(1), Task(env=env))
    expert, gen = tree.index(expert_transitions(), slice(0, 16)), tree.index(expert_transitions(), slice(16, 32))
    gen = gen.replace(obs=gen.obs + 1.0)
    base, _ = gail.loss(plain.disc_params, plain, expert, gen, random.key(0))
    total, _ = gail.loss(penalised.disc_params, penalised, expert, gen, random.key(0))
    gp = gail.gradient_penalty(plain.disc_params, plain, expert, gen, random.key(0))
    assert gp > 0 and torch.allclose(total, base + 10.0 * gp)
    grads = torch.func.grad(lambda p: gail.loss(p, penalised, expert, gen, random.key(0))[0])(penalised.disc_params)
    assert all(torch.isfinite(g).all() for g in tree.leaves(grads))


def test_gail_gradient_penalty_of_a_linear_discriminator_is_lambda_times_norm_w_minus_one_squared() -> None:
    # logit(x) = w·x + b has ∇_x logit = w at every interpolate x̂, so the penalty is λ·(‖w‖ − 1)² exactly.
    env = envs.make(ENV_ID, n_envs=GEN.n_envs)
    cfg = gail.Config(**SMALL, reward_hid_sizes=(), normalize_disc_inputs=False, grad_penalty=10.0)
    state = gail.init(cfg, random.key(1), Task(env=env))
    assert set(state.disc_params["mlp"]) == {"layers.0.weight", "layers.0.bias"}  # one linear layer
    w = torch.tensor([[2.0, -1.0, 1.0, -1.0, 1.0, 1.0]])  # x = (4 observations, one-hot action of 2): ‖w‖ = 3
    b = torch.tensor([0.5])
    params = {"mlp": {"layers.0.weight": w, "layers.0.bias": b}}
    expert, gen = tree.index(expert_transitions(), slice(0, 16)), tree.index(expert_transitions(), slice(16, 32))
    gen = gen.replace(obs=gen.obs + 1.0)

    for seed in range(3):  # whatever the interpolation points
        gp = gail.gradient_penalty(params, state, expert, gen, random.key(seed))
        torch.testing.assert_close(gp, torch.tensor((3.0 - 1.0) ** 2))
    x = torch.cat([torch.cat([t.obs, F.one_hot(t.acts, 2).float()], dim=1) for t in (expert, gen)])
    labels = torch.cat([torch.ones(16), torch.zeros(16)])  # expert = 1
    bce = F.binary_cross_entropy_with_logits(x @ w[0] + b, labels)
    total, _ = gail.loss(params, state, expert, gen, random.key(0))
    torch.testing.assert_close(total, bce + 10.0 * (3.0 - 1.0) ** 2)


def test_airl_logits_are_f_minus_log_pi_and_test_reward_is_unshaped() -> None:
    env = envs.make(ENV_ID, n_envs=GEN.n_envs)
    state = airl.init(airl.Config(**SMALL), random.key(2), Task(env=env))
    b = tree.index(expert_transitions(), slice(0, 8))
    net_params = adversarial.disc_net_params(state, state.disc_params)
    f = state.net.apply(net_params, b.obs, b.acts, b.next_obs, b.dones)
    lp = actor_critic.log_prob(state.gen.params, b.obs, b.acts)  # the generator's log π(a|s)
    assert torch.allclose(airl.logits(state.disc_params, state, b), f - lp)
    assert torch.allclose(airl.reward_train(state)(b.obs, b.acts, b.next_obs, b.dones), f)
    assert isinstance(state.net, rewards.ShapedRewardNet)
    g = state.net.base.apply(net_params["base"], b.obs, b.acts, b.next_obs, b.dones)
    assert torch.allclose(airl.reward_test(state)(b.obs, b.acts, b.next_obs, b.dones), g)
    assert not torch.allclose(f, g)


@pytest.mark.parametrize("algo", ALGOS)
def test_input_normalisation_folded_into_the_first_layer_equals_normalising_the_inputs(algo: ModuleType) -> None:
    env = envs.make(ENV_ID, n_envs=GEN.n_envs)
    state = algo.init(algo.Config(**SMALL, use_next_state=True), random.key(4), Task(env=env))
    b = tree.index(expert_transitions(), slice(0, 64))
    obs = torch.cat([b.obs, b.obs * 3.0 + 1.0])
    norm = nn_normalize.update(state.disc_input_norm, obs)
    state = state.replace(disc_input_norm=norm)
    std = torch.sqrt(norm.var + 1e-5)
    folded = state.net.apply(adversarial.disc_net_params(state, state.disc_params), b.obs, b.acts, b.next_obs, b.dones)
    explicit = state.net.apply(
        state.disc_params, (b.obs - norm.mean) / std, b.acts, (b.next_obs - norm.mean) / std, b.dones
    )
    assert torch.allclose(folded, explicit, atol=1e-5)
    plain = state.replace(normalize_disc_inputs=False)
    assert adversarial.disc_net_params(plain, state.disc_params) is state.disc_params


def test_discriminator_metrics_are_imitations() -> None:
    logits = torch.tensor([2.0, -1.0, 0.5, -3.0, 1.0, -0.5])  # 3 expert rows then 3 generated
    labels = adversarial.labels_expert_is_one(3, 3, logits)
    loss = adversarial.bce_with_logits(logits, labels)
    m = adversarial.disc_metrics(logits, labels, loss)
    assert torch.allclose(loss, F.binary_cross_entropy_with_logits(logits, labels))
    assert float(m["disc_acc"]) == pytest.approx(4 / 6)  # expert: 2 of 3 right; generated: 2 of 3 right
    assert float(m["disc_acc_expert"]) == pytest.approx(2 / 3)
    assert float(m["disc_acc_gen"]) == pytest.approx(2 / 3)
    assert float(m["disc_proportion_expert_pred"]) == pytest.approx(3 / 6)
    assert float(m["n_expert"]) == float(m["n_generated"]) == 3
    p = torch.sigmoid(logits)
    assert float(m["disc_entropy"]) == pytest.approx(float((-(p * p.log()) - (1 - p) * (1 - p).log()).mean()), 1e-5)


def test_discriminator_steps_separate_expert_from_generated() -> None:
    cfg = gail.Config(**{**SMALL, "n_disc_updates_per_round": 30, "demo_batch_size": 64, "disc_lr": 3e-3})
    demos = expert_transitions()
    task = task_for(envs.make(ENV_ID, n_envs=GEN.n_envs))
    state = gail.init(cfg, random.key(0), task)
    for _ in range(8):  # after ~100 steps a random policy's poles have fallen: nothing like the expert's states
        state, batch = gail.collect(state, task)
    state = adversarial.store(state, batch.rollout)
    _, first = adversarial.disc_step(state, demos, gail.loss)
    state, _ = gail.update_discriminator(state, demos)
    _, last = adversarial.disc_step(state, demos, gail.loss)
    assert float(last["disc_loss"]) < 0.6 * float(first["disc_loss"]) and float(last["disc_acc"]) > 0.85


# --- the variable-horizon guard ---------------------------------------------------------------------------------------


def test_variable_horizon_is_refused_unless_allowed() -> None:
    cfg = gail.Config(**SMALL)
    task = task_for(envs.make("CartPole-v1", n_envs=GEN.n_envs))  # terminates when the pole falls
    state = gail.init(cfg, random.key(0), task)
    with pytest.raises(ValueError, match="allow_variable_horizon=True"):
        for _ in range(5):  # a random policy drops the pole within 5 × 16 steps
            state, _ = gail.collect(state, task)
    with pytest.raises(ValueError, match=r"different length.*allow_variable_horizon"):
        driver.train_adversarial(gail, cfg, "CartPole-v1", expert_trajectories(), total_timesteps=320, progress=False)
    allowed = gail.Config(**SMALL, allow_variable_horizon=True)
    result = driver.train_adversarial(
        gail, allowed, "CartPole-v1", expert_trajectories(), total_timesteps=64, n_eval_episodes=2, progress=False
    )
    assert result.steps == 64
    fixed = driver.train_adversarial(
        gail, cfg, ENV_ID, expert_trajectories(), total_timesteps=127, n_eval_episodes=2, progress=False
    )
    assert fixed.steps == 64  # total_timesteps // gen_train_timesteps rounds, as imitation


def test_expert_episodes_of_different_lengths_are_refused() -> None:
    trajs = expert_trajectories()
    short = trajs[0].replace(obs=trajs[0].obs[:101], acts=trajs[0].acts[:100], rews=trajs[0].rews[:100])
    with pytest.raises(ValueError, match=r"lengths \[100, 500\].*allow_variable_horizon"):
        driver.train_adversarial(gail, gail.Config(**SMALL), ENV_ID, [short, *trajs[1:]], total_timesteps=64)
    with pytest.raises(ValueError, match="no rounds"):
        driver.train_adversarial(gail, gail.Config(**SMALL), ENV_ID, trajs, total_timesteps=63)
    few = flatten_trajectories(trajs[:1])  # 500 transitions
    with pytest.raises(InputError, match=r"demo_batch_size=512 is larger than the 500 expert transitions"):
        driver.train_adversarial(
            gail, gail.Config(**{**SMALL, "demo_batch_size": 512}), ENV_ID, few, total_timesteps=64
        )


# --- the driver: resume, saved policies and reward nets ---------------------------------------------------------------


def test_resume_and_saved_reward_nets_give_the_same_rewards(tmp_path: Path) -> None:
    cfg = airl.Config(**SMALL)
    run = functools.partial(
        driver.train_adversarial, airl, cfg, ENV_ID, expert_trajectories(), n_eval_episodes=2, progress=False
    )
    full = run(seeds=[0, 1], total_timesteps=192)
    run(seeds=[0, 1], total_timesteps=128, log_dir=tmp_path)  # stopped after 2 of 3 rounds
    resumed = run(seeds=[0, 1], total_timesteps=192, log_dir=tmp_path, resume=True)
    checks.assert_trees_allclose(resumed.states, full.states, rtol=0, atol=0)

    b = expert_transitions()
    env = envs.make(ENV_ID, n_envs=1)
    for i, seed in enumerate([0, 1]):
        state = tree.index(resumed.states, i)
        path = tmp_path / "rewards" / f"seed_{seed}"
        shaped = rewards.load_reward("shaped", path, env)(b.obs, b.acts, b.next_obs, b.dones)
        assert torch.equal(shaped, airl.reward_train(state)(b.obs, b.acts, b.next_obs, b.dones))
        unshaped = rewards.load_reward("unshaped", path, env)(b.obs, b.acts, b.next_obs, b.dones)
        assert torch.equal(unshaped, airl.reward_test(state)(b.obs, b.acts, b.next_obs, b.dones))
        normalized = rewards.load_reward("normalized", path, env)(b.obs, b.acts, b.next_obs, b.dones)
        assert torch.allclose(normalized, rewards.normalize.apply(state.reward_norm, shaped))
        assert (tmp_path / "policies" / f"seed_{seed}" / "policy.safetensors").is_file()


def test_gail_saved_discriminator_gives_the_training_reward(tmp_path: Path) -> None:
    result = driver.train_adversarial(
        gail,
        gail.Config(**SMALL),
        ENV_ID,
        expert_trajectories(),
        total_timesteps=64,
        log_dir=tmp_path,
        n_eval_episodes=2,
        progress=False,
    )
    b = expert_transitions()
    logit = rewards.load_reward("unnormalized", tmp_path / "rewards" / "seed_0")(b.obs, b.acts, b.next_obs, b.dones)
    expected = gail.reward_train(tree.index(result.states, 0))(b.obs, b.acts, b.next_obs, b.dones)
    assert torch.equal(F.softplus(logit), expected)


# --- CLI --------------------------------------------------------------------------------------------------------------


def test_cli_trains_saves_and_rejects_bad_input(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    if "adversarial" not in cli.COMMANDS:  # until the command group is listed in imitation_fn/cli/__init__.py
        monkeypatch.setattr(cli, "COMMANDS", (*cli.COMMANDS, "adversarial"))
    out = tmp_path / "run"
    flags = (
        f"--demos {DEMOS} --n-demos 5 --no-preset --n-envs 4 --n-steps 16 --batch-size 32 --n-epochs 2 "
        "--demo-batch-size 32 --total-timesteps 128 --seeds 2 --n-eval-episodes 2 --no-progress"
    )
    assert main(["airl", "--out", str(out), *flags.split()]) == 0
    assert "airl on seals/CartPole-v0" in capsys.readouterr().out
    assert (out / "rewards" / "seed_1" / "reward.json").is_file() and (out / "policies" / "seed_0").is_dir()
    assert '"n_envs": 4' in (out / "config.json").read_text()
    assert main(["gail", "--env", "CartPole-v1", *flags.split()]) == 2  # variable horizon: refused, explained
    assert "allow_variable_horizon" in capsys.readouterr().out
    assert main(["gail", "--grad-penalty", "-1", *flags.split()]) == 2
    assert "--grad-penalty" in capsys.readouterr().out


# --- learning ---------------------------------------------------------------------------------------------------------


@pytest.mark.slow
def test_gail_learns_fixed_horizon_cartpole() -> None:
    """The preset on a reduced budget (60 rounds, 123k of its 300k steps), one seed: from a policy that drops the
    pole within ~10 steps to the expert's 500 (benchmarks/adversarial.py checks 8 seeds on the full budget)."""
    preset = presets.get("gail", ENV_ID)
    assert preset is not None
    cfg = gail.Config(**preset.config)
    trajs = serialize.load(DEMOS)[:50]
    result = driver.train_adversarial(
        gail,
        cfg,
        ENV_ID,
        trajs,
        seeds=[0],
        total_timesteps=60 * cfg.round_timesteps,
        n_eval_episodes=20,
        progress=False,
    )
    assert result.eval_returns.mean() >= 450, result.eval_returns
