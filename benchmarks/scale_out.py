"""What Ray workers cost: math_eval on smollm2 in one process against two workers, same problems.

On two cores two workers cannot be faster; this measures the machinery (Ray's start, each worker
loading the model, the dispatch of a unit) and checks that the tokens are the same.

    cd benchmarks && ../.venv/bin/python scale_out.py --problems 8 --max-new-tokens 48 --threads 1
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import interp  # noqa: E402
from interp.analyses import math_eval  # noqa: E402
from interp.distributed import WorkerPool, run_units  # noqa: E402
from interp.interventions.arms import Arm  # noqa: E402


def timed(function):
    start = time.perf_counter()
    value = function()
    return value, round(time.perf_counter() - start, 1)


def echo(replica, unit):
    """A unit that does nothing: what is left is Ray's dispatch."""
    return unit


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--problems", type=int, default=8)
    parser.add_argument("--max-new-tokens", type=int, default=48)
    parser.add_argument("--threads", type=int, default=1, help="the driver's (each worker runs 1)")
    args = parser.parse_args()
    import ray

    torch.set_num_threads(args.threads)
    options = dict(
        dataset="gsm8k",
        n_problems=args.problems,
        max_new_tokens=args.max_new_tokens,
        batch_size=2,
        progress=False,
    )
    model, load = timed(lambda: interp.load_model("smollm2-135m-instruct"))
    single, one = timed(lambda: math_eval.run(model, **options))
    _, ray_start = timed(lambda: ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False))
    merged, two_cold = timed(lambda: math_eval.run(model, workers=2, **options))

    def start_pool():
        pool = WorkerPool.start(model, 2)
        ray.get([actor.__ray_ready__.remote() for actor in pool.actors])
        return pool

    pool, pool_start = timed(start_pool)
    warm, two_warm = timed(lambda: math_eval.run(model, workers=pool, **options))
    _, dispatch = timed(
        lambda: run_units(list(range(200)), echo, [Arm.of(model)], workers=pool, progress=False)
    )
    pool.close()
    tokens = [[row["output_tokens"] for row in result.rows] for result in (single, merged, warm)]
    print(
        json.dumps(
            dict(
                problems=args.problems,
                max_new_tokens=args.max_new_tokens,
                driver_threads=torch.get_num_threads(),
                model_load_s=load,
                one_process_s=one,
                ray_init_s=ray_start,
                two_workers_with_start_s=two_cold,
                worker_start_s=pool_start,
                two_started_workers_s=two_warm,
                dispatch_ms_per_unit=round(dispatch / 200 * 1000, 2),
                same_tokens=tokens[0] == tokens[1] == tokens[2],
            )
        )
    )


if __name__ == "__main__":
    main()
