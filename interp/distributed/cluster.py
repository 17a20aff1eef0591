"""Finding Ray and a cluster to run on: an optional dependency, a clear error when it is missing.

`connect(address)` reuses a cluster the caller already joined (`ray.init(address=...)` in a
notebook), joins `address` when given, and otherwise starts a local one sized for the workers.
"""

from __future__ import annotations

import importlib.util
import os
from typing import Any

__all__ = ["RAY_INSTALL_HINT", "connect", "ray_available", "require_ray"]

RAY_INSTALL_HINT = 'pip install -e ".[ray]"  (or: pip install "ray>=2.40")'


def ray_available() -> bool:
    """Whether Ray can be imported here (without importing it, which takes a second)."""
    return importlib.util.find_spec("ray") is not None


def require_ray(workers: int) -> Any:
    """The `ray` module, or an ImportError saying how to install it (workers > 1 needs it)."""
    if not ray_available():
        raise ImportError(
            f"workers={workers} runs the units of work on Ray worker processes, but Ray is not "
            f"installed: {RAY_INSTALL_HINT}; or use workers=1 (one process, no Ray)"
        )
    import ray

    return ray


def connect(workers: int, address: str | None = None, num_cpus: int | None = None) -> Any:
    """The `ray` module, initialised: the cluster already joined, else `address`, else a local
    cluster with room for `workers` one-CPU actors (`num_cpus`, default max(workers, cores))."""
    ray = require_ray(workers)
    if ray.is_initialized():
        return ray
    env = {name: os.environ[name] for name in ("INTERP_CACHE",) if name in os.environ}
    runtime_env = {"env_vars": env} if env else None
    if address is not None:
        ray.init(address=address, runtime_env=runtime_env, log_to_driver=True)
    else:
        cpus = num_cpus if num_cpus is not None else max(workers, os.cpu_count() or 1)
        ray.init(num_cpus=cpus, include_dashboard=False, runtime_env=runtime_env)
    return ray
