"""``torch.compile`` for the pure pieces of an algorithm: one compiled copy per function, stable input layouts.

step = compile.compiled(_batched_step)            # cached: every sweep in the process shares it
step = compile.or_eager(fn)                        # torch.compile(fn), eager where this machine cannot compile
states = compile.standard_layout(states)           # row-major, unaliased: no recompiles on strides
"""

from __future__ import annotations

import functools
import warnings
from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

from imitation_fn.core import tree


@functools.cache
def compiled(fn: Callable[..., Any], vectorize: bool = True) -> Callable[..., Any]:
    """One compiled version of ``fn`` per process, shared by every sweep (guards tell configurations apart),
    eager where compiling fails (:func:`or_eager`).

    ``vectorize=False`` compiles scalar C++ loops (``cpp.simdlen=1``). Env flags used inside a compiled graph
    must be read through :func:`imitation_fn.envs.base.mask` (as ``TimeStep.done`` does), or inductor's
    vectorised code for them fails to build.

    ``size_asserts`` off: inductor's wrapper otherwise re-checks every input's size and stride in Python on
    each call and each ``while_loop`` iteration, which the guards (``dynamic=False``: every shape is static)
    and :func:`standard_layout` already ensure.
    """
    options: dict[str, Any] = {"size_asserts": False}
    if not vectorize:
        options["cpp.simdlen"] = 1
    return or_eager(fn, dynamic=False, options=options)


def or_eager(fn: Callable[..., Any], **compile_options: Any) -> Callable[..., Any]:
    """``torch.compile(fn, **compile_options)``, or ``fn`` itself for good once compiling fails (no C++
    compiler, an op inductor cannot lower): one warning says why, and the call is answered eagerly. ``fn`` is
    pure, so a failed compile changes nothing but speed."""
    compiled_fn = torch.compile(fn, **compile_options)
    use_eager = False

    def call(*args: Any, **kwargs: Any) -> Any:
        nonlocal use_eager
        if not use_eager:
            try:
                return compiled_fn(*args, **kwargs)
            except torch._dynamo.exc.BackendCompilerFailed as e:
                use_eager = True
                reason = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
                warnings.warn(f"torch.compile failed, running eagerly instead: {reason}", stacklevel=2)
        return fn(*args, **kwargs)

    return call


def contiguous_strides(shape: torch.Size) -> tuple[int, ...]:
    """The strides of a row-major tensor of ``shape``."""
    strides, step = [], 1
    for n in reversed(shape):
        strides.append(step)
        step *= n
    return tuple(reversed(strides))


def standard_layout(x: Any) -> Any:
    """``x`` with every tensor row-major and no tensor twice, as compiled code expects its inputs.

    Compiled code guards on strides (size-1 dims make them vary between producers) and on aliasing
    between arguments (``reset`` returns one tensor as ``obs`` and ``final_obs``): a mismatch recompiles.
    Tensors that already fit (all of them, after the first call) pass through uncopied.
    """
    seen: set[int] = set()

    def fix(t: Any) -> Any:
        if not isinstance(t, Tensor):
            return t
        if id(t) in seen or t.stride() != contiguous_strides(t.shape):
            t = t.clone(memory_format=torch.contiguous_format)
        seen.add(id(t))
        return t

    return tree.map(fix, x)


__all__ = ["compiled", "contiguous_strides", "or_eager", "standard_layout"]
