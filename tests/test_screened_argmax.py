"""The bf16-screened argmax is the float32 argmax, near ties included."""

import torch
from torch import nn

from interp.core.screened_argmax import ScreenedUnembed


def _head(vocab=5000, width=64, bias=True, seed=0):
    torch.manual_seed(seed)
    head = nn.Linear(width, vocab, bias=bias)
    with torch.no_grad():
        head.weight.normal_(0, 0.5)
        if bias:
            head.bias.normal_(0, 2.0)
    return head


def test_matches_the_float32_argmax_on_random_states():
    head = _head()
    hidden = torch.randn(700, 64) * 40  # more rows than one chunk
    screen = ScreenedUnembed(head, rows_per_chunk=256)
    assert torch.equal(screen.argmax(hidden), head(hidden).argmax(-1))


def test_near_ties_are_decided_in_float32():
    """A twin token 0.01 above or below the best logit (of ~100s): far inside bf16 rounding, far
    outside float32 rounding, so only the float32 pass orders the two right."""
    head = _head(bias=False)
    hidden = torch.randn(100, 64) * 40
    best = head(hidden).argmax(-1)
    for row in range(100):
        h = hidden[row]
        gap = 0.01 if row % 2 == 0 else -0.01
        twin = 7 if int(best[row]) != 7 else 8
        with torch.no_grad():
            head.weight[twin] = head.weight[best[row]] + gap * h / h.dot(h)
        want = twin if gap > 0 else int(best[row])
        assert int(head(h[None]).argmax(-1)) == want  # the float32 reference orders them
        assert int(ScreenedUnembed(head).argmax(h[None])) == want, row


def test_a_head_without_bias_and_a_bridge_head(tiny):
    head = _head(bias=False)
    hidden = torch.randn(50, 64) * 10
    assert torch.equal(ScreenedUnembed(head).argmax(hidden), head(hidden).argmax(-1))
    screen = ScreenedUnembed.of(tiny)
    assert screen is not None and screen.weight.shape[0] == tiny.cfg.d_vocab
