"""Shared fixtures: tiny random models of real architectures (structure tests), and the device
that tests/test_device.py runs on (`--interp-device cuda` or INTERP_TEST_DEVICE=cuda; cpu by
default, so CI runs them on the CPU)."""

import os

import pytest
import torch

from interp.testing import tiny_model

torch.set_num_threads(2)

DEVICE_VARIABLE = "INTERP_TEST_DEVICE"


def pytest_addoption(parser):
    parser.addoption(
        "--interp-device",
        default=None,
        help=f"device for tests/test_device.py: cpu, cuda or cuda:N (default: ${DEVICE_VARIABLE}, else cpu)",
    )


@pytest.fixture(scope="session")
def device_under_test(request) -> torch.device:
    """The device the device-sensitive tests run on; a device this torch cannot use fails them
    with the reason (asking for cuda where there is none must not pass quietly on the CPU)."""
    from interp.models.errors import ModelLoadError
    from interp.models.loading import check_device

    name = request.config.getoption("--interp-device") or os.environ.get(DEVICE_VARIABLE) or "cpu"
    try:
        check_device(name)
    except ModelLoadError as error:
        pytest.fail(f"--interp-device / {DEVICE_VARIABLE}={name!r}: {error}", pytrace=False)
    return torch.device(name)


@pytest.fixture
def bfloat16_products():
    """Float32 matrix products in bfloat16 (where the CPU or GPU has bf16 units), restored after."""
    before = torch.get_float32_matmul_precision()
    torch.set_float32_matmul_precision("medium")
    yield
    torch.set_float32_matmul_precision(before)


@pytest.fixture(scope="session")
def tiny():
    """A 2-layer Qwen2-architecture model with a character tokenizer, booted as a bridge."""
    return tiny_model("qwen2", n_layers=2, d_model=32, seed=1)


@pytest.fixture(scope="session")
def tiny_llama():
    return tiny_model("llama", n_layers=3, d_model=32, seed=2)


class ForceText:
    """A logit processor that makes the loop emit a fixed text, whatever the model prefers.

    Lets tests put boundary tokens and span markers exactly where they want them.
    """

    def __init__(self, tokenizer, texts):
        self.targets = [tokenizer.encode(t, add_special_tokens=False) for t in texts]

    def __call__(self, logits, state):
        forced = torch.full_like(logits, float("-inf"))
        for row, target in enumerate(self.targets):
            step = int(state.n_generated[row])
            token = target[step] if step < len(target) else target[-1]
            forced[row, token] = 0.0
        return forced


@pytest.fixture
def force_text():
    return ForceText


@pytest.fixture(scope="session")
def smollm2():
    """The shipped SmolLM2-135M-Instruct (dequantized from its GGUF package on first use)."""
    from interp.models import load_model

    return load_model("smollm2-135m-instruct")
