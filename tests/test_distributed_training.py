"""Data-parallel training of edits over two CPU processes (gloo): the final edit equals the
one-process run, and every rank logs, clips and controls the same values.

Tolerance: the ranks pad their slices to their own longest example, so the forwards differ in
shape and the sums round apart; after 8 Adam steps the edits agree to 1e-5.
"""

from dataclasses import replace

import pytest
import torch

from interp.distributed.data_parallel import rank_slice, spawn
from interp.interventions import RED, Edit, LoReFT
from interp.interventions.lora import LoRA
from interp.testing import tiny_model
from interp.training.data import Pair
from interp.training.pid import BiasControl
from interp.training.trainer import TrainConfig, train

# Sums of different lengths, so the two ranks' slices pad differently.
PAIRS = [Pair(f"{a}+{b}=", f"{a + b}") for a in (1, 7, 12, 55, 310) for b in (2, 9, 40)]
CONFIG = TrainConfig(
    learning_rate=5e-2,
    batch_size=3,  # uneven: two examples on rank 0, one on rank 1
    grad_accum=2,
    max_steps=8,
    bias_control=BiasControl(form="penalty", target=0.05, interval=1),
    group_by_length=True,
    seed=4,
)
TOLERANCE = 1e-5


KINDS = ("red", "loreft", "lora")


def train_tiny(kind: str = "red") -> dict:
    """One training run on this process's tiny model: the trained parameters and the history.
    The edit (or LoRA) is initialised from a fixed seed; the ranks also start from rank 0's."""
    model = tiny_model("qwen2", n_layers=2, d_model=32, seed=5)
    torch.manual_seed(11)
    edit_list, lora = [], None
    if kind == "red":
        edit_list = [
            Edit(f"blocks.{layer}.mlp.hook_pre_linear", RED(model.cfg.d_mlp)) for layer in (0, 1)
        ]
    elif kind == "loreft":
        edit_list = [Edit(f"blocks.{layer}.hook_resid_post", LoReFT(32, 2)) for layer in (0, 1)]
    else:
        lora = LoRA.for_model(model, modules=("q_proj", "down_proj"), rank=2, seed=3)
    config = CONFIG if kind == "red" else replace(CONFIG, bias_control=None)
    result = train(model, PAIRS, edit_list=edit_list, lora=lora, config=config, progress=False)
    modules = [e.function for e in edit_list] + ([lora] if lora is not None else [])
    state = {
        f"{i}.{k}": v.detach().clone()
        for i, module in enumerate(modules)
        for k, v in module.state_dict().items()
    }
    return {"state": state, "history": result.history, "world": result.meta["world_size"]}


@pytest.fixture(scope="module", params=KINDS)
def runs(request):
    return request.param, train_tiny(request.param), spawn(train_tiny, 2, request.param)


def test_two_ranks_train_the_one_process_edit(runs):
    kind, single, (first, second) = runs
    assert single["world"] == 1 and first["world"] == second["world"] == 2
    assert single["state"].keys() == first["state"].keys()
    initial = train_tiny_initial(kind)
    moved = max(float((v - initial[k]).abs().max()) for k, v in single["state"].items())
    assert moved > 0.01, kind  # the parameters really trained
    for name, value in single["state"].items():
        assert torch.allclose(first["state"][name], value, atol=TOLERANCE), (kind, name)
    keys = ("loss", "grad_norm", "bias_norm", "penalty", "control_weight")
    for row, other in zip(single["history"], first["history"]):
        for key in keys if kind == "red" else ("loss", "grad_norm"):
            assert row[key] == pytest.approx(other[key], rel=1e-4, abs=1e-6), (row["step"], key)


def train_tiny_initial(kind: str) -> dict:
    """The parameters `train_tiny(kind)` starts from (no step taken)."""
    model = tiny_model("qwen2", n_layers=2, d_model=32, seed=5)
    torch.manual_seed(11)
    if kind == "red":
        modules = [RED(model.cfg.d_mlp) for _ in (0, 1)]
    elif kind == "loreft":
        modules = [LoReFT(32, 2) for _ in (0, 1)]
    else:
        modules = [LoRA.for_model(model, modules=("q_proj", "down_proj"), rank=2, seed=3)]
    return {
        f"{i}.{k}": v.detach().clone()
        for i, m in enumerate(modules)
        for k, v in m.state_dict().items()
    }


def test_every_rank_sees_the_same_values(runs):
    kind, _, (first, second) = runs
    assert first["history"] == second["history"]  # losses, norms, PID weights: bit for bit
    for name, value in first["state"].items():
        assert torch.equal(second["state"][name], value), (kind, name)
    if kind == "red":
        assert any(row["control_updated"] for row in first["history"])


def test_slices_cover_the_global_batch_once():
    # outside a process group the one rank takes everything
    assert rank_slice([3, 1, 4]) == [3, 1, 4]
