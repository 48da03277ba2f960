"""Where tensors live: one ``torch.device`` chosen per run, and every tensor placed on it explicitly.

    device = resolve("auto")          # cuda when torch sees a GPU, else cpu
    params = tree.to(params, device)

As in JAX, placement follows the inputs: a run's keys and task data are put on its device once
(``Task.to``), ``init`` builds the states there (with the run's device as torch's default, for the one
call), and every step creates its tensors ``like`` an input or with ``device=key.device``. The steps never
read torch's ambient default device: it would add a dispatch cost to every op, and a run on ``cuda:1``
beside one on the CPU needs no global setting.
"""

from __future__ import annotations

import torch

from imitation_fn.core.errors import InputError

DEVICE_CHOICES = "cpu, cuda, cuda:N or auto"


def resolve(device: str | torch.device | None = "auto") -> torch.device:
    """The ``torch.device`` that ``device`` names; ``"auto"``/None: ``cuda`` when a GPU is visible, else ``cpu``.

    Raises :class:`InputError` naming the problem for an unknown name, CUDA on a machine without it, or a
    CUDA index that does not exist.
    """
    if device is None or device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError) as e:
        raise InputError(f"device {device!r} is not a device name; use {DEVICE_CHOICES}") from e
    if dev.type == "cpu":
        return dev
    if dev.type != "cuda":
        raise InputError(f"device {device!r} is not supported; use {DEVICE_CHOICES}")
    if not torch.cuda.is_available():
        build = f"built for CUDA {torch.version.cuda}" if torch.version.cuda else "a CPU-only build"
        raise InputError(
            f"device {device!r}: torch sees no CUDA GPU on this machine (torch {torch.__version__} is {build}); "
            "use --device cpu, or install a CUDA build of torch on a machine with a GPU"
        )
    count = torch.cuda.device_count()
    if dev.index is not None and dev.index >= count:
        raise InputError(f"device {device!r}: this machine has {count} CUDA device(s), cuda:0 to cuda:{count - 1}")
    return dev


__all__ = ["DEVICE_CHOICES", "resolve"]
