"""Warm starts: every seed of a run begins from a saved policy (ours, or a stable-baselines3 zip).

    policy = policies.load_policy("bc_run/policies/seed_0")          # or "ppo-CartPole-v1.zip"
    cfg = ppo.Config(**warm_start.architecture(policy, "ppo"))        # the networks the policy has
    result = train_rl(ppo, cfg, "CartPole-v1", total_timesteps=50_000, init_policy=policy)

What each learner takes from the policy (its optimiser starts afresh, as SB3's ``set_parameters``
leaves it when only the policy is loaded):

- **PPO** (``train-rl``, GAIL's and AIRL's generator, the agents of density and preference
  comparisons): the actor (``pi``, ``log_std``) of an actor-critic (PPO, A2C) or BC policy, its value
  net when it has one (a BC policy has none: the value net starts from ``init``), and its observation
  statistics (``normalize_obs`` must then be on, and off when the policy has none).
- **SAC**: an SAC actor, and its critics, target critics and entropy coefficient where the file holds
  them (SB3 SAC zips do; our policy files keep only the actor).
- **BC** and **DAgger**: the actor of a BC or actor-critic policy (BC normalises no observations).

Network sizes, activation and spaces must be the learner's own; :func:`architecture` gives the config
fields that make them so. A mismatch is one :class:`InputError` that names both.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

from imitation_fn.core import tree
from imitation_fn.core.errors import InputError
from imitation_fn.nn.mlp import mlp_sizes
from imitation_fn.nn.normalize import RunningMeanStd
from imitation_fn.policies.io import DEFAULT_OBS_NORM, LoadedPolicy
from imitation_fn.rl import sac

WarmStart = Callable[[Any, LoadedPolicy], Any]
"""``(stacked states, policy) -> states`` with the policy's parameters in every seed."""

_ACTORS = ("actor_critic", "mlp")  # kinds whose ``pi`` (+ ``log_std``) is a Gaussian/categorical actor


def _name(policy: LoadedPolicy) -> str:
    return f"--init-policy {policy.path}" if policy.path is not None else "init_policy"


def architecture(policy: LoadedPolicy, learner: str) -> dict[str, Any]:
    """The ``Config`` fields of ``learner`` (``"ppo"``, ``"sac"`` or ``"bc"``) that give ``policy``'s networks."""
    fields: dict[str, Any] = {"activation": policy.activation}
    if learner == "sac":
        if policy.kind == "sac_actor":
            fields["net_arch"] = tuple(mlp_sizes(policy.params["trunk"])[1:]) if policy.params["trunk"] else ()
        return fields
    if policy.kind not in _ACTORS:
        return fields
    pi = tuple(mlp_sizes(policy.params["pi"])[1:-1])
    if learner == "bc":
        fields["net_arch"] = pi
    elif learner == "ppo":
        vf = tuple(mlp_sizes(policy.params["vf"])[1:-1]) if "vf" in policy.params else pi
        fields["net_arch"] = pi if vf == pi else {"pi": pi, "vf": vf}
        fields["normalize_obs"] = policy.obs_norm is not None
    return fields


# ---------------------------------------------------------------------------------------------------------------------
# Copying parameters into stacked states
# ---------------------------------------------------------------------------------------------------------------------


def _shapes(params: Any, batched: bool) -> Any:
    return tree.map(lambda x: tuple(x.shape[1:] if batched else x.shape), params)


def _describe(params: dict[str, Any], batched: bool) -> str:
    """``pi [64, 64], vf [64, 64]``: the hidden widths of each network in ``params``."""
    parts = []
    for name, net in params.items():
        if isinstance(net, dict) and net:
            sizes = mlp_sizes(tree.map(lambda x: x[0], net) if batched else net)
            parts.append(f"{name} {sizes[1:-1]}")
    return ", ".join(parts)


def _into(
    target: dict[str, Any], source: dict[str, Any], names: tuple[str, ...], policy: LoadedPolicy, who: str
) -> Any:
    """``target`` (stacked over seeds) with ``source[name]`` broadcast into it for every ``name``."""
    mine = {n: target[n] for n in names if n in target}
    theirs = {n: source[n] for n in names if n in source}
    if mine.keys() != theirs.keys() or _shapes(mine, True) != _shapes(theirs, False):
        raise InputError(
            f"{_name(policy)}: the policy's networks are {_describe(theirs, False) or 'none'} "
            f"({policy.activation}), but {who}'s are {_describe(mine, True)}; give the learner the policy's "
            "net_arch (the CLI does unless --net-arch is given)"
        )
    return {**target, **tree.map(lambda old, new: _broadcast(new, old), mine, theirs)}


def _broadcast(x: Tensor, like: Tensor) -> Tensor:
    """``x`` repeated over ``like``'s leading (seed) axis, with ``like``'s dtype and device."""
    x = x.to(dtype=like.dtype, device=like.device)
    return x.expand(like.shape[0], *x.shape).clone()


def _check_activation(policy: LoadedPolicy, activation: str, who: str) -> None:
    if policy.activation != activation:
        raise InputError(
            f"{_name(policy)}: the policy's activation is {policy.activation}, but {who} uses {activation}; "
            f"give the learner activation={policy.activation!r} (the CLI does unless --activation is given)"
        )


def _require_actor(policy: LoadedPolicy, who: str) -> None:
    if policy.kind not in _ACTORS:
        raise InputError(
            f"{_name(policy)}: {who} starts from an actor-critic (PPO, A2C) or BC policy, but this one is "
            f"{policy.kind!r}"
        )


def into_ppo(states: Any, policy: LoadedPolicy) -> Any:
    """PPO states (stacked over seeds) whose actor, value net and observation statistics are ``policy``'s."""
    who = "PPO"
    _require_actor(policy, who)
    _check_activation(policy, states.activation, who)
    if "shared" in policy.params or "shared" in states.params:
        names: tuple[str, ...] = ("shared", "pi", "vf", "log_std")
    else:
        names = ("pi", "vf", "log_std") if "vf" in policy.params else ("pi", "log_std")
    params = _into(states.params, policy.params, names, policy, who)
    obs_norm = states.obs_norm
    if (policy.obs_norm is not None) != states.normalize_obs:
        has = "normalises" if policy.obs_norm is not None else "does not normalise"
        raise InputError(
            f"{_name(policy)}: the policy {has} observations, so PPO needs normalize_obs="
            f"{policy.obs_norm is not None} (the CLI sets it unless --normalize-obs is given)"
        )
    if policy.obs_norm is not None:
        for field in ("clip", "eps"):
            saved = policy.config.get(f"obs_norm_{field}", DEFAULT_OBS_NORM[field])
            if saved != DEFAULT_OBS_NORM[field]:
                raise InputError(
                    f"{_name(policy)}: observation normalisation with {field}={saved}; PPO uses "
                    f"{DEFAULT_OBS_NORM[field]}"
                )
        obs_norm = RunningMeanStd(
            *(_broadcast(getattr(policy.obs_norm, f), getattr(states.obs_norm, f)) for f in ("mean", "var", "count"))
        )
    return states.replace(params=params, obs_norm=obs_norm)


def into_sac(states: Any, policy: LoadedPolicy) -> Any:
    """SAC states (stacked over seeds) whose actor (and critics, where ``policy`` has them) are ``policy``'s."""
    who = "SAC"
    if policy.kind != "sac_actor":
        raise InputError(f"{_name(policy)}: SAC starts from an SAC actor, but this policy is {policy.kind!r}")
    _check_activation(policy, states.activation, who)
    actor = _into(states.actor, policy.params, ("trunk", "mu", "log_std"), policy, who)
    changes: dict[str, Any] = {"actor": actor}
    for mine, theirs in (("critic", "critic"), ("target_critic", "critic_target")):
        if theirs in policy.extras:
            changes[mine] = _into(getattr(states, mine), policy.extras[theirs], ("q0", "q1"), policy, f"{who} {mine}")
    if "log_ent_coef" in policy.extras:
        log_alpha = torch.as_tensor(policy.extras["log_ent_coef"]).reshape(())
        changes["log_alpha"] = _broadcast(log_alpha, states.log_alpha)
    return states.replace(**changes)


def into_bc(states: Any, policy: LoadedPolicy) -> Any:
    """BC states (stacked over seeds) whose policy is ``policy``'s actor."""
    who = "BC"
    _require_actor(policy, who)
    if "shared" in policy.params:
        raise InputError(f"{_name(policy)}: BC's policy has no shared trunk, so it cannot start from this one")
    if policy.obs_norm is not None:
        raise InputError(f"{_name(policy)}: the policy normalises observations; BC trains on raw observations")
    _check_activation(policy, states.activation, who)
    return states.replace(params=_into(states.params, policy.params, ("pi", "log_std"), policy, who))


def into_agent(states: Any, policy: LoadedPolicy) -> Any:
    """PPO or SAC states, by which of the two ``states`` are (an RL agent inside another algorithm)."""
    if isinstance(states, dict):  # preference comparisons without an agent (human feedback on given data)
        raise InputError(f"{_name(policy)}: this run trains no agent, so there is no policy to start from")
    return into_sac(states, policy) if isinstance(states, sac.State) else into_ppo(states, policy)


def inside(field: str, into: WarmStart) -> WarmStart:
    """A warm start of the learner in ``states.<field>`` (GAIL's ``gen``, DAgger's ``bc``, ...)."""

    def warm_start(states: Any, policy: LoadedPolicy) -> Any:
        return states.replace(**{field: into(getattr(states, field), policy)})

    return warm_start


__all__ = [
    "WarmStart",
    "architecture",
    "inside",
    "into_agent",
    "into_bc",
    "into_ppo",
    "into_sac",
]
