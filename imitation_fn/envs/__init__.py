"""Pure, batched torch environments (gymnax-style ``reset`` / ``step``) and the registry that names them."""

from imitation_fn.envs.base import Env, TimeStep
from imitation_fn.envs.cartpole import CartPole, CartPoleState, FixedHorizonCartPole
from imitation_fn.envs.registry import make, register, registered_ids

__all__ = ["CartPole", "CartPoleState", "Env", "FixedHorizonCartPole", "TimeStep", "make", "register", "registered_ids"]
