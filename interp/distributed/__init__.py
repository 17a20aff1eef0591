"""Scale-out: units of work on Ray worker actors (one model replica each), and data-parallel
training of edits with torch.distributed.

`run_units` shards analyses (math_eval, ...: `workers=N` or a `WorkerPool`, `ray_address=`);
`ModelSpec` and `ArmSpecs` are what a worker loads; `interp.distributed.data_parallel` holds the
training side.
"""

from interp.distributed.cluster import RAY_INSTALL_HINT, connect, ray_available, require_ray
from interp.distributed.replica import ArmSpecs, EditsSpec, ModelSpec, Replica, set_model_spec
from interp.distributed.units import (
    ReplicaWorker,
    WorkerPool,
    check_workers,
    pool_for,
    run_units,
)

__all__ = [
    "RAY_INSTALL_HINT",
    "ArmSpecs",
    "EditsSpec",
    "ModelSpec",
    "Replica",
    "ReplicaWorker",
    "WorkerPool",
    "check_workers",
    "connect",
    "pool_for",
    "ray_available",
    "require_ray",
    "run_units",
    "set_model_spec",
]
