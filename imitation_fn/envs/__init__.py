"""Environments: pure, batched torch versions (gymnax-style ``reset`` / ``step``) of gymnasium's and
seals' tasks, tabular MDPs, any other gymnasium environment through :class:`GymEnv`, and the
registry that names them all: ``make("CartPole-v1", n_envs=8)``."""

from imitation_fn.envs.acrobot import Acrobot
from imitation_fn.envs.base import Env, PolicyFn, TimeStep
from imitation_fn.envs.cartpole import CartPole, CartPoleState, FixedHorizonCartPole
from imitation_fn.envs.gym import GymEnv, make_gym
from imitation_fn.envs.mountain_car import FixedHorizonMountainCar, MountainCar, MountainCarContinuous
from imitation_fn.envs.pendulum import Pendulum
from imitation_fn.envs.registry import make, register, registered_ids
from imitation_fn.envs.tabular import CliffWorld, RandomMDP, TabularEnv, TabularMDP, cliff_world, random_mdp

__all__ = [
    "Acrobot",
    "CartPole",
    "CartPoleState",
    "CliffWorld",
    "Env",
    "FixedHorizonCartPole",
    "FixedHorizonMountainCar",
    "GymEnv",
    "MountainCar",
    "MountainCarContinuous",
    "Pendulum",
    "PolicyFn",
    "RandomMDP",
    "TabularEnv",
    "TabularMDP",
    "TimeStep",
    "cliff_world",
    "make",
    "make_gym",
    "random_mdp",
    "register",
    "registered_ids",
]
