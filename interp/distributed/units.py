"""Run units of work on one process or on Ray worker actors, and merge them in unit order.

    results = run_units(units, work, [arm], workers=4, on_result=save_rows)
    with WorkerPool.start(model, workers=4) as pool:    # one pool for many runs (every arm)
        run_units(units, work, [arm_a, arm_b], workers=pool)

`work(replica, unit)` computes one unit with a `Replica` (a model and its arms by name). With
`workers=1` it runs here, in unit order, on the arms given: the single-process path. With more,
each Ray actor of a `WorkerPool` loads the model once from its picklable `ModelSpec`, loads each
run's arms (their edits) once, and takes units from a Ray `ActorPool` as it finishes the last.
`on_result(index, result)` sees each result on the driver as it arrives (that is where analyses
stream rows to their `PartialRun`); the list returned is in unit order, so it is the same whichever
worker finished which unit first. A worker that dies is restarted by Ray and its unfinished unit
retried (`max_restarts`, `max_task_retries`); an exception raised by `work` itself is not retried
and reaches the caller.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any, TypeVar

from tqdm.auto import tqdm

from interp.distributed.cluster import connect, require_ray
from interp.distributed.replica import ArmSpecs, EditsSpec, ModelSpec, Replica, shared_model
from interp.interventions.arms import Arm
from interp.models.fingerprint import model_fingerprint

__all__ = ["ReplicaWorker", "WorkerPool", "check_workers", "pool_for", "run_units"]

Unit = TypeVar("Unit")
Output = TypeVar("Output")

DEFAULT_RETRIES = 3  # restarts of a dead worker, and retries of the unit it was running


class ReplicaWorker:
    """A Ray actor's body: loads the model once, each run's edits once, and computes units."""

    def __init__(self, spec: ModelSpec) -> None:
        self.model = spec.load()
        self.edits: dict[EditsSpec, list] = {}

    def run(
        self, work: Callable[[Replica, Any], Any], arms: ArmSpecs, index: int, unit: Any
    ) -> tuple[int, Any]:
        return index, work(arms.load(self.model, self.edits), unit)


class WorkerPool:
    """Ray actors that each hold one replica of a model; give it as `workers=` to reuse it across
    runs (arms, layers), and close it (or use `with`) to free the workers."""

    def __init__(self, ray: Any, spec: ModelSpec, actors: list[Any], retries: int) -> None:
        self.ray, self.spec, self.actors, self.retries = ray, spec, actors, retries

    @classmethod
    def start(
        cls,
        model: Any,
        workers: int,
        address: str | None = None,
        *,
        retries: int = DEFAULT_RETRIES,
        worker_options: dict[str, Any] | None = None,
    ) -> WorkerPool:
        """`workers` actors loading `model` (from `ModelSpec.of(model)`) on the cluster already
        joined, else `address`, else a local one. `worker_options` go to `.options()`."""
        check_workers(workers)
        spec = ModelSpec.of(model)
        ray = connect(workers, address)
        options = {
            "num_cpus": 1,
            "num_gpus": 1 if spec.needs_gpu else 0,
            "max_restarts": retries,
            "max_task_retries": retries,
            **(worker_options or {}),
        }
        _check_room(ray, workers, options)
        actor_class = ray.remote(ReplicaWorker)
        # The spec goes by value (small): a restarted actor rebuilds from it.
        actors = [actor_class.options(**options).remote(spec) for _ in range(workers)]
        return cls(ray, spec, actors, retries)

    def __enter__(self) -> WorkerPool:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def close(self) -> None:
        for actor in self.actors:
            self.ray.kill(actor)
        self.actors = []

    def map(
        self,
        units: list[Any],
        work: Callable[[Replica, Any], Any],
        arms: Sequence[Arm],
        finished: Callable[[int, Any], None],
    ) -> None:
        """Give the units to the actors as they come free; `finished(index, result)` on each."""
        from ray.util import ActorPool

        if not self.actors:
            raise RuntimeError("this WorkerPool is closed; start a new one")
        held = dict(self.spec.fingerprint)
        given = model_fingerprint(shared_model(arms))
        if held != given:
            raise ValueError(
                f"this pool's workers hold {held.get('model')!r} (weights {held.get('weights')}), "
                f"not the arms' model {given['model']!r} (weights {given['weights']}); start a "
                f"pool for that model"
            )
        ray = self.ray
        work_ref, arms_ref = ray.put(work), ray.put(ArmSpecs.of(arms))
        pool = ActorPool(self.actors)
        try:
            submitted = pool.map_unordered(
                lambda actor, item: actor.run.remote(work_ref, arms_ref, *item),
                list(enumerate(units)),
            )
            for index, value in submitted:
                finished(index, value)
        except ray.exceptions.RayActorError as error:
            raise RuntimeError(
                f"a Ray worker died more than {self.retries} times ({error}); the finished units "
                f"are kept (results that stream to disk resume): run the same call again, or "
                f"look at the worker's log (out of memory? a crash in the model?)"
            ) from error


def _check_room(ray: Any, workers: int, options: dict[str, Any]) -> None:
    """Refuse a pool the cluster cannot place (its actors would wait for ever), saying what fits."""
    have = ray.cluster_resources()
    for resource, option in (("CPU", "num_cpus"), ("GPU", "num_gpus")):
        need = float(options.get(option) or 0) * workers
        if need > have.get(resource, 0.0) + 1e-9:
            raise ValueError(
                f"{workers} workers need {need:g} {resource}s ({options.get(option)} each) but the "
                f"Ray cluster has {have.get(resource, 0.0):g}: ask for fewer workers, or share "
                f"devices (worker_options={{'{option}': {have.get(resource, 0.0) / workers:g}}}"
                f" puts several workers on one)"
            )


def check_workers(workers: int | WorkerPool) -> int | WorkerPool:
    """A whole number of at least 1 (more than 1 needs Ray, checked here) or a `WorkerPool`."""
    if isinstance(workers, WorkerPool):
        return workers
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise ValueError(
            f"workers must be a whole number of at least 1 or a WorkerPool, got {workers!r}"
        )
    if workers > 1:
        require_ray(workers)
    return workers


def run_units(
    units: Sequence[Unit],
    work: Callable[[Replica, Unit], Output],
    arms: Sequence[Arm],
    *,
    workers: int | WorkerPool = 1,
    address: str | None = None,
    on_result: Callable[[int, Output], None] | None = None,
    progress: bool = True,
    desc: str = "units",
) -> list[Output]:
    """`work(replica, unit)` for every unit, on this process (`workers=1`), on a `WorkerPool`, or
    on `workers` Ray actors started for this call (on the cluster already joined, else `address`,
    else a local one) and stopped after it; results in unit order."""
    check_workers(workers)
    units = list(units)
    bar = tqdm(total=len(units), desc=desc, disable=not progress or not units)
    results: list[Any] = [None] * len(units)

    def finished(index: int, value: Any) -> None:
        results[index] = value
        if on_result is not None:
            on_result(index, value)
        bar.update(1)

    try:
        if not units:
            pass
        elif isinstance(workers, WorkerPool):
            workers.map(units, work, arms, finished)
        elif workers == 1:
            replica = Replica.of_arms(arms)
            for index, unit in enumerate(units):
                finished(index, work(replica, unit))
        else:
            model = shared_model(arms)
            with WorkerPool.start(model, min(workers, len(units)), address) as pool:
                pool.map(units, work, arms, finished)
    finally:
        bar.close()
    return results


@contextmanager
def pool_for(
    model: Any, workers: int | WorkerPool, address: str | None = None
) -> Iterator[int | WorkerPool]:
    """`workers` as an analysis of several runs (arms, layers) passes it on: 1 or a given pool
    as they are; a number above 1 as one pool started here for all the runs and closed after."""
    check_workers(workers)
    if isinstance(workers, WorkerPool) or workers == 1:
        yield workers
        return
    with WorkerPool.start(model, workers, address) as pool:
        yield pool
