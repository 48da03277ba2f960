"""Network building blocks as pure functions: MLPs over flat parameter dicts, action
distributions as pytrees, running mean/variance normalisation."""

from imitation_fn.nn import distributions, mlp, normalize
from imitation_fn.nn.distributions import Categorical, DiagGaussian, Distribution, TanhGaussian
from imitation_fn.nn.mlp import ACTIVATIONS, Params, get_activation, l2_norm, mlp_apply, mlp_init, param_count
from imitation_fn.nn.normalize import RunningMeanStd

__all__ = [
    "ACTIVATIONS",
    "Categorical",
    "DiagGaussian",
    "Distribution",
    "Params",
    "RunningMeanStd",
    "TanhGaussian",
    "distributions",
    "get_activation",
    "l2_norm",
    "mlp",
    "mlp_apply",
    "mlp_init",
    "normalize",
    "param_count",
]
