"""Reward nets as pure functions of a params pytree (``imitation``'s ``rewards`` package).

    net = rewards.BasicRewardNet(env.observation_space, env.action_space)   # or BasicShapedRewardNet, CnnRewardNet
    params = net.init(key)                                                  # dict of tensors; vmap over keys
    rews = net.apply(params, obs, acts, next_obs, dones)                    # (N,); vmap / grad freely
    norm = rewards.normalize.update(rewards.normalize.init(), rews)         # NormalizedRewardNet's statistics
    rewards.save("runs/r", net, params, norm)
    reward_fn = rewards.load_reward("normalized", "runs/r", env)           # for ppo.collect_env(..., reward_fn=)

A net is a frozen, hashable spec (spaces, flags, widths) whose methods are pure: ``init(key)``,
``preprocess`` (one-hot Discrete, images / 255), ``forward`` (preprocessed inputs, what losses
differentiate), ``apply`` (raw transitions). Ensembles stack member params on a leading axis.
"""

from imitation_fn.rewards import cnn, ensemble, io, nets, normalize
from imitation_fn.rewards.cnn import BasicPotentialCNN, CnnRewardNet, cnn_transpose
from imitation_fn.rewards.ensemble import AddSTDRewardWrapper, RewardEnsemble, add_std
from imitation_fn.rewards.io import KINDS, LoadedReward, RewardFn, load, load_reward, net_from_json, save, zero_reward
from imitation_fn.rewards.nets import (
    BasicPotentialMLP,
    BasicRewardNet,
    BasicShapedRewardNet,
    Params,
    Potential,
    RewardNet,
    ShapedRewardNet,
    SpaceSpec,
    preprocess,
)

__all__ = [
    "KINDS",
    "AddSTDRewardWrapper",
    "BasicPotentialCNN",
    "BasicPotentialMLP",
    "BasicRewardNet",
    "BasicShapedRewardNet",
    "CnnRewardNet",
    "LoadedReward",
    "Params",
    "Potential",
    "RewardEnsemble",
    "RewardFn",
    "RewardNet",
    "ShapedRewardNet",
    "SpaceSpec",
    "add_std",
    "cnn",
    "cnn_transpose",
    "ensemble",
    "io",
    "load",
    "load_reward",
    "net_from_json",
    "nets",
    "normalize",
    "preprocess",
    "save",
    "zero_reward",
]
