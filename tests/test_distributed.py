"""Sharded analyses on a local Ray cluster of two CPU workers: the merged result equals the
one-process result whatever order the units finish in, a killed worker's unit is retried on a
restarted worker, and a killed driver resumes without redoing finished units.

Float tolerance: workers run torch on one thread and this process on two, so sums may round
apart; tokens, texts and grades must be equal, summed log-probabilities within 1e-4.
"""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from interp.analyses import math_eval
from interp.data.math_sets import MathProblem
from interp.distributed import ModelSpec, Replica, run_units, set_model_spec
from interp.distributed import cluster as cluster_module
from interp.interventions.arms import Arm
from interp.interventions.random_red import random_red_edits
from interp.testing import tiny_model

ray = pytest.importorskip("ray")
pytestmark = pytest.mark.ray

# Work functions defined here travel to the workers by value (this file is no importable module).
ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])

TINY = {"architecture": "qwen2", "n_layers": 2, "d_model": 32, "seed": 3}
PROBLEMS = [
    MathProblem(id=f"q{i}", question=f"what is {i} + {i + 1}?", answer=str(2 * i + 1))
    for i in range(6)
]
LOGPROB_TOLERANCE = 1e-4
TESTS = Path(__file__).parent


def spec_tiny():
    """The tiny model with a spec workers rebuild it from (it is not loaded by load_model)."""
    model = tiny_model(**TINY)
    return set_model_spec(
        model, ModelSpec(factory="interp.testing:tiny_model", factory_kwargs=tuple(TINY.items()))
    )


def evaluate(model, **kwargs):
    kwargs = {"max_new_tokens": 10, "batch_size": 2, "progress": False, **kwargs}
    return math_eval.run(model, problems=PROBLEMS, prompt_style="plain", **kwargs)


@pytest.fixture(scope="module")
def cluster():
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield ray
    ray.shutdown()


@pytest.fixture(scope="module")
def model():
    return spec_tiny()


def assert_same_rows(merged, single):
    assert [r["id"] for r in merged.rows] == [r["id"] for r in single.rows]
    for a, b in zip(merged.rows, single.rows):
        for key in ("output_tokens", "output", "extracted", "correct", "finish_reason", "index"):
            assert a[key] == b[key], (a["id"], key)
        assert a["sum_logprob"] == pytest.approx(b["sum_logprob"], abs=LOGPROB_TOLERANCE)


# ----------------------------------------------------------------------------------------------
# Units of work


def next_token(replica: Replica, unit):
    """Greedy next token and summed logits of a text (after `delay` seconds); dies at a marker."""
    text, delay, die_marker = unit
    if die_marker is not None and not os.path.exists(die_marker):
        Path(die_marker).write_text(str(os.getpid()))
        os._exit(1)  # the worker process dies mid-unit, as a crash or an OOM kill would
    time.sleep(delay)
    model = replica.model
    tokens = model.tokenizer(text, return_tensors="pt").input_ids
    with torch.no_grad():
        logits = model(tokens)
    return int(logits[0, -1].argmax()), float(logits.float().sum()), os.getpid()


def test_merged_in_unit_order_whatever_finishes_first(cluster, model):
    from interp.distributed import WorkerPool

    # Unit 0 sleeps longest, so on two ready workers another unit finishes before it.
    units = [(f"what is {i}?", 2.0 if i == 0 else 0.05, None) for i in range(6)]
    seen = []
    with WorkerPool.start(model, 2) as pool:
        ray.get([actor.__ray_ready__.remote() for actor in pool.actors])
        merged = run_units(
            units,
            next_token,
            [Arm.of(model)],
            workers=pool,
            progress=False,
            on_result=lambda index, _: seen.append(index),
        )
    single = run_units(units, next_token, [Arm.of(model)], workers=1, progress=False)
    assert sorted(seen) == list(range(6)) and seen[0] != 0
    assert [m[0] for m in merged] == [s[0] for s in single]
    assert [m[1] for m in merged] == pytest.approx([s[1] for s in single], rel=1e-5)
    assert len({m[2] for m in merged}) == 2 and os.getpid() not in {m[2] for m in merged}


def test_killed_worker_has_its_unit_retried(cluster, model, tmp_path):
    marker = tmp_path / "died"
    units = [(f"what is {i}?", 0.0, str(marker) if i == 2 else None) for i in range(5)]
    merged = run_units(units, next_token, [Arm.of(model)], workers=2, progress=False)
    single = run_units(
        [(t, 0.0, None) for t, _, _ in units], next_token, [Arm.of(model)], progress=False
    )
    dead_pid = int(marker.read_text())
    assert merged[2][2] != dead_pid  # unit 2 ran again, on the restarted worker
    assert [m[0] for m in merged] == [s[0] for s in single]
    assert [m[1] for m in merged] == pytest.approx([s[1] for s in single], rel=1e-5)


# ----------------------------------------------------------------------------------------------
# math_eval over two workers


def test_math_eval_two_workers_equals_one_process(cluster, model):
    single = evaluate(model)
    merged = evaluate(model, workers=2)
    assert_same_rows(merged, single)
    assert merged.config == single.config and merged.accuracy == single.accuracy


def test_edits_travel_to_the_workers(cluster, model):
    edited = Arm.of(model, random_red_edits(model, 4.0, seed=1), name="red")
    single = evaluate(edited)
    merged = evaluate(edited, workers=2)
    assert_same_rows(merged, single)
    plain = evaluate(model)
    assert [r["output_tokens"] for r in merged.rows] != [r["output_tokens"] for r in plain.rows]


KILLED_DRIVER = """
import os, signal, sys
sys.path.insert(0, {tests!r})
import ray
from interp.results import PartialRun
import test_distributed as t

ray.init(address={address!r}, log_to_driver=False)
append = PartialRun.append

def append_then_die(self, rows):
    append(self, rows)
    if len(self.rows) >= 2:  # two units saved: the driver is killed with no chance to clean up
        os.kill(os.getpid(), signal.SIGKILL)

PartialRun.append = append_then_die
t.evaluate(t.spec_tiny(), out={out!r}, workers=2, batch_size=1)
"""


def test_killed_driver_resumes_without_redoing_finished_units(
    cluster, model, tmp_path, monkeypatch
):
    out = tmp_path / "math"
    address = ray.get_runtime_context().gcs_address
    script = KILLED_DRIVER.format(tests=str(TESTS), address=address, out=str(out))
    killed = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=300
    )
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-2000:]
    partial = Path(f"{out}.partial.jsonl")
    saved_ids = [
        __import__("json").loads(line)["id"] for line in partial.read_text().splitlines()[1:]
    ]
    assert len(saved_ids) >= 2 and not out.exists()

    submitted = []

    def spy(units, work, arms, **kwargs):
        submitted.extend(problem.id for unit in units for _, problem, _ in unit)
        return run_units(units, work, arms, **kwargs)

    monkeypatch.setattr(math_eval, "run_units", spy)
    resumed = evaluate(model, out=out, workers=2, batch_size=1)
    assert sorted(submitted) == sorted(set(p.id for p in PROBLEMS) - set(saved_ids))
    assert out.is_dir() and not partial.exists()
    assert_same_rows(resumed, evaluate(model, batch_size=1))


# ----------------------------------------------------------------------------------------------
# The other sharded analyses: steering arms, thought states, prefix swap, the push sweep


def test_steering_arms_on_one_pool_equal_one_process(cluster, model):
    from interp.analyses import steering
    from interp.interventions.steering_vector import SteeringVector

    torch.manual_seed(0)
    vector = SteeringVector(
        torch.randn(2, model.cfg.d_model) * 4, (0, 1), counts={"execution": 1, "reflection": 1}
    )
    kwargs = dict(
        layers=(0, 1),
        alphas=(1.0, 3.0),
        main_layer=1,
        span="response",
        penalty_strings=("w",),  # a character of this vocabulary
        prompt_style="plain",
        max_new_tokens=10,
        batch_size=2,
        progress=False,
    )
    single = steering.run(model, vector, PROBLEMS[:4], **kwargs)
    merged = steering.run(model, vector, PROBLEMS[:4], workers=2, **kwargs)
    assert merged.tables == single.tables


def seal_responses(tokenizer):
    from interp.text.thoughts import Response

    def encode(text):
        return tokenizer.encode(text, add_special_tokens=False)

    return [
        Response("a", encode("q\n\n<think>"), encode("x=1\n\nwait y\n\nso z\n\nk</think>ok")),
        Response("b", encode("<think>"), encode("ab\n\nc\n\nverify d\n\ne")),
        Response("c", encode("<think>1+1"), encode("=2\n\nwait, 2\n\n3")),
        Response("d", encode("<think>hi"), encode("so\n\nthen\n\nwait\n\nno")),
    ]


def test_thought_states_chunks_on_workers_equal_one_process(cluster, model, tmp_path):
    from interp.analyses import thought_states
    from interp.probes import state_chunks

    responses = seal_responses(model.tokenizer)
    options = dict(span="think", chunk_size=1, progress=False, tsne_layers=())
    single = thought_states.run(model, responses, store=tmp_path / "one", **options)
    merged = thought_states.run(model, responses, store=tmp_path / "two", workers=2, **options)
    assert state_chunks.load_rows(tmp_path / "two") == state_chunks.load_rows(tmp_path / "one")
    for layer_index in range(2):
        torch.testing.assert_close(
            state_chunks.load_states(tmp_path / "two", layer_index),
            state_chunks.load_states(tmp_path / "one", layer_index),
            rtol=1e-5,
            atol=1e-5,
        )
    torch.testing.assert_close(
        merged.tensors["class_sums"], single.tensors["class_sums"], rtol=1e-5, atol=1e-5
    )


def test_prefix_swap_on_workers_equals_one_process(cluster, model):
    from interp.analyses import prefix_swap

    donor = Arm.of(model, random_red_edits(model, 3.0, seed=2), name="red donor")
    kwargs = dict(
        donor=donor,
        continuer=None,
        ks=(0, 1, 3),
        problems=PROBLEMS[:4],
        prompt_style="plain",
        max_new_tokens=8,
        batch_size=2,
        only_donor_wrong=False,
        n_problems=4,
        progress=False,
        closeness=False,
    )
    single = prefix_swap.run(model, **kwargs)
    merged = prefix_swap.run(model, workers=2, **kwargs)
    assert merged.tables == single.tables


def test_push_sweep_layers_on_workers_equal_one_process(cluster):
    from interp import load_model
    from interp.analyses import number_probe, perturbation

    adder = load_model("adder4")
    probe = number_probe.run(adder, n_problems=200, style="compact", batch_size=100)
    kwargs = dict(
        layers=(1, 2), strengths=(8.0, 128.0, 2048.0), n_problems=40, style="compact", batch_size=40
    )
    single = perturbation.run(adder, probe, **kwargs)
    merged = perturbation.run(adder, probe, workers=2, **kwargs)
    for name, value in single.tensors.items():
        assert torch.equal(merged.tensors[name], value), name
    assert merged.tables == single.tables
    assert single.tensors["error_rate"].max() > 0  # the pushes really broke answers


# ----------------------------------------------------------------------------------------------
# Without Ray, and the CLI's flags


def test_workers_without_ray_say_how_to_install(monkeypatch, model):
    monkeypatch.setattr(cluster_module, "ray_available", lambda: False)
    with pytest.raises(ImportError, match=r'pip install -e "\.\[ray\]"'):
        evaluate(model, workers=2)
    from interp.cli.common import check_workers

    with pytest.raises(ValueError, match=r'pip install -e "\.\[ray\]"'):
        check_workers("2")
    assert check_workers("1") == 1  # one worker needs no Ray
    assert evaluate(model, workers=1).n == len(PROBLEMS)


def test_bad_workers_and_lone_ray_address_are_clear_errors(model, tmp_path, capsys):
    with pytest.raises(ValueError, match="at least 1"):
        evaluate(model, workers=0)
    from interp.cli import main

    out = str(tmp_path / "never")
    assert main(["math-eval", "--model", "adder4", "--ray-address", "auto", "--out", out]) == 2
    assert "--workers 2 or more" in capsys.readouterr().err
    assert not (tmp_path / "never").exists()


def test_more_workers_than_the_cluster_holds_is_a_clear_error(cluster, model):
    from interp.distributed import WorkerPool

    with pytest.raises(ValueError, match="3 workers need 3 CPUs .* the Ray cluster has 2"):
        WorkerPool.start(model, 3)
    with pytest.raises(ValueError, match="GPU"):
        WorkerPool.start(model, 2, worker_options={"num_gpus": 1})


@pytest.mark.slow
def test_math_eval_command_on_smollm2_two_workers_equals_one_process(cluster, smollm2, tmp_path):
    from interp.cli import main

    single = math_eval.run(
        smollm2, dataset="gsm8k", n_problems=2, max_new_tokens=16, batch_size=1, progress=False
    )
    out = tmp_path / "gsm8k"
    flags = [
        "--n-problems",
        "2",
        "--max-new-tokens",
        "16",
        "--batch-size",
        "1",
        "--dtype",
        "float32",
    ]
    command = ["math-eval", "--model", "smollm2-135m-instruct", *flags, "--workers", "2"]
    assert main([*command, "--out", str(out)]) == 0
    merged = math_eval.MathEvalResult.load(out)
    assert_same_rows(merged, single)
    assert merged.config == single.config


@pytest.mark.slow
def test_reft_compare_arms_on_workers_equal_one_process(cluster, smollm2, tmp_path):
    """Edit arms decode on the workers, the LoRA arm (it changes weights the workers do not hold)
    and all training in the driver: the table is the one-process table."""
    from interp.analyses import reft_compare

    settings = dict(
        n_train=4,
        max_answer_tokens=8,
        prefix_tokens=4,
        n_eval=2,
        max_new_tokens=6,
        eval_batch_size=1,
        eval_arms=("base", "red_prefix_pid", "red_prefix_pid_kl", "lora", "loreft"),
        trained_arms=("red_prefix_pid", "lora", "loreft"),
        progress=False,
    )
    single = reft_compare.run(smollm2, out=tmp_path / "single", **settings)
    merged = reft_compare.run(smollm2, out=tmp_path / "merged", workers=2, **settings)
    assert [r["arm"] for r in merged.rows] == list(settings["eval_arms"])
    for a, b in zip(merged.rows, single.rows, strict=True):
        timing = {k for k in a if "second" in k}
        assert {k: v for k, v in a.items() if k not in timing} == {
            k: v for k, v in b.items() if k not in timing
        }, a["arm"]
    for arm in ("base", "red_prefix_pid"):
        rows_single = math_eval.MathEvalResult.load(tmp_path / "single" / "eval" / arm)
        rows_merged = math_eval.MathEvalResult.load(tmp_path / "merged" / "eval" / arm)
        assert_same_rows(rows_merged, rows_single)
