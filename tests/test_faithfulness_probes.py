"""Logistic probes held out by group, and the last-real-token readout with left and right padding."""

import numpy as np
import pytest
import torch

from interp.core.positions import PromptAndFirstGenerated, TokenState, token_state
from interp.interventions import RED, Edit
from interp.probes.logistic import fit_logistic_probes, group_split
from interp.probes.readout import pad_batch, read_last_token

# ---------------------------------------------------------------------------------------------
# Probes


def _planted(n=600, d=32, seed=0):
    """Two 'layers': in layer 1 the label is a direction plus noise; layer 0 is noise alone."""
    g = torch.Generator().manual_seed(seed)
    labels = np.arange(n) % 2
    direction = torch.randn(d, generator=g)
    offset = torch.randn(d, generator=g) * 20  # a large mean and uneven scales, as residuals have
    scales = torch.rand(d, generator=g) * 5 + 0.1
    noise = torch.randn(2, n, d, generator=g) * scales
    signal = torch.tensor(labels * 2.0 - 1)[:, None].float() * direction
    features = noise + offset
    features[1] += signal
    groups = np.arange(n) // 2  # pairs share a group, as a question's two answers do
    return features, labels, groups


def test_group_split_keeps_every_group_on_one_side():
    groups = np.repeat(np.arange(40), 3)
    train, test = group_split(groups, 0.25, seed=0)
    assert set(groups[train]).isdisjoint(groups[test])
    assert len(train) + len(test) == len(groups) and len(set(groups[test])) == 10
    assert np.array_equal(group_split(groups, 0.25, seed=0)[1], test)
    assert not np.array_equal(group_split(groups, 0.25, seed=1)[1], test)


def test_probe_finds_the_planted_direction_and_only_there():
    features, labels, groups = _planted()
    fit = fit_logistic_probes(features, labels, groups, seed=0)
    assert fit.accuracy[1] > 0.9 and fit.auc[1] > 0.95
    assert fit.accuracy[0] < 0.65 and fit.auc[0] < 0.7
    assert set(groups[fit.train]).isdisjoint(groups[fit.test])
    # The standardisation is folded in: the probe is an affine map of the raw features.
    assert torch.allclose(fit.decision(features)[:, fit.test], fit.test_scores, atol=1e-3)
    predicted = (fit.decision(features)[1, fit.test] > 0).numpy().astype(int)
    assert (predicted == labels[fit.test]).mean() == pytest.approx(float(fit.accuracy[1]))


def test_probe_handles_more_than_two_labels():
    g = torch.Generator().manual_seed(1)
    labels = np.arange(450) % 3
    centres = torch.randn(3, 16, generator=g) * 2
    features = (centres[labels] + torch.randn(450, 16, generator=g))[None]
    fit = fit_logistic_probes(features, labels, seed=0, Cs=(1.0,))
    assert fit.weights.shape == (1, 3, 16) and fit.accuracy[0] > 0.8 and fit.auc[0] > 0.9
    assert fit.decision(features).shape == (1, 450, 3)


def test_probe_input_errors():
    features, labels, groups = _planted(n=40)
    with pytest.raises(ValueError, match=r"\[probe, n, d\]"):
        fit_logistic_probes(features[0], labels, groups)
    with pytest.raises(ValueError, match="one label per sample"):
        fit_logistic_probes(features, labels[:-1], groups)
    with pytest.raises(ValueError, match="needs two labels"):
        fit_logistic_probes(features, np.zeros(40, dtype=int), groups)
    with pytest.raises(ValueError, match="at least two groups"):
        fit_logistic_probes(features, labels, np.zeros(40, dtype=int))


# ---------------------------------------------------------------------------------------------
# Reading the last real token


def _texts(seed=0):
    """Four 'questions' with two answers each, of different lengths (so batches need padding)."""
    g = torch.Generator().manual_seed(seed)
    sequences, prompt_lengths = [], []
    for q in range(4):
        question = torch.randint(5, 40, (5 + 3 * q,), generator=g).tolist()
        for a in range(2):
            answer = torch.randint(5, 40, (2 + q + 2 * a,), generator=g).tolist()
            sequences.append(question + answer)
            prompt_lengths.append(len(question))
    return sequences, prompt_lengths


HOOKS = ["blocks.0.hook_resid_post", "blocks.1.hook_resid_post", "blocks.1.attn.hook_z"]


@torch.no_grad()
def _one_by_one(model, sequences, prompt_lengths, edit_list=()):
    """Reference: each sequence alone, whole, no padding, no shared prefix."""
    from interp.interventions import edits

    states, logprobs = [], []
    for seq, p in zip(sequences, prompt_lengths):
        tokens = torch.tensor([seq])
        with edits(model, edit_list), token_state(TokenState.for_tokens(tokens, None, [p])):
            logits, cache = model.run_with_cache(tokens, names_filter=lambda n: n in HOOKS)
        states.append({h: cache[h][0, -1] for h in HOOKS})
        log_probs = torch.log_softmax(logits[0, p - 1 : -1], -1)
        logprobs.append(float(log_probs.gather(-1, torch.tensor(seq[p:])[:, None]).sum()))
    return states, logprobs


@pytest.fixture(scope="module")
def plain_reference(tiny):
    sequences, prompt_lengths = _texts()
    return sequences, prompt_lengths, *_one_by_one(tiny, sequences, prompt_lengths)


@pytest.mark.parametrize(("side", "batch_size"), [("left", 3), ("right", 3), ("right", 1)])
def test_last_token_states_match_unpadded_runs(tiny, plain_reference, side, batch_size):
    sequences, prompt_lengths, reference, logprobs = plain_reference
    readout = read_last_token(
        tiny, sequences, prompt_lengths, HOOKS, padding_side=side, batch_size=batch_size
    )
    for i in range(len(sequences)):
        for hook in HOOKS:
            torch.testing.assert_close(
                readout.states[hook][i], reference[i][hook], atol=1e-5, rtol=1e-4
            )
    torch.testing.assert_close(readout.answer_logprob, torch.tensor(logprobs), atol=1e-4, rtol=1e-5)
    assert readout.answer_tokens.tolist() == [len(s) - p for s, p in zip(sequences, prompt_lengths)]


def test_position_minus_one_of_right_padding_is_a_pad(tiny, plain_reference):
    """The reference code's fault: reading column -1 of a right-padded batch reads a pad for
    every row shorter than the longest, and its state differs from the last real token's."""
    sequences, _, reference, _ = plain_reference
    tokens, mask = pad_batch(sequences, 0, "right")
    shorter = [i for i, s in enumerate(sequences) if len(s) < tokens.shape[1]]
    assert shorter and all(mask[i, -1] == 0 for i in shorter)
    with torch.no_grad():
        _, cache = tiny.run_with_cache(
            tokens, attention_mask=mask, names_filter=lambda n: n == HOOKS[1]
        )
    wrong = cache[HOOKS[1]][shorter, -1]
    right = torch.stack([reference[i][HOOKS[1]] for i in shorter])
    assert (wrong - right).abs().amax(-1).min() > 1e-3


@pytest.mark.parametrize("side", ["left", "right"])
def test_readout_with_edits_matches_unpadded_runs(tiny, side):
    """Edits land where they would on each text alone: a RED on every position and a rule that
    counts prompt tokens (touches the prompt and the first answer token)."""
    d = tiny.cfg.d_model
    edit_list = [
        Edit("blocks.0.hook_mlp_out", RED.random(d, 0.5, seed=0)),
        Edit("blocks.1.hook_resid_pre", RED.random(d, 2.0, seed=1), PromptAndFirstGenerated(k=1)),
    ]
    sequences, prompt_lengths = _texts(seed=1)
    reference, logprobs = _one_by_one(tiny, sequences, prompt_lengths, edit_list)
    plain, _ = _one_by_one(tiny, sequences, prompt_lengths)
    readout = read_last_token(
        tiny, sequences, prompt_lengths, HOOKS, edit_list, padding_side=side, batch_size=3
    )
    for i in range(len(sequences)):
        torch.testing.assert_close(
            readout.states[HOOKS[1]][i], reference[i][HOOKS[1]], atol=1e-5, rtol=1e-4
        )
        assert not torch.allclose(readout.states[HOOKS[1]][i], plain[i][HOOKS[1]], atol=1e-3)
    torch.testing.assert_close(readout.answer_logprob, torch.tensor(logprobs), atol=1e-4, rtol=1e-5)


def test_readout_input_errors(tiny):
    sequences, prompt_lengths = _texts()
    with pytest.raises(ValueError, match="no sequences"):
        read_last_token(tiny, [], [], HOOKS)
    with pytest.raises(ValueError, match="answer at least one"):
        read_last_token(tiny, [sequences[0]], [len(sequences[0])], HOOKS)
    with pytest.raises(ValueError, match="context"):
        read_last_token(tiny, [[5] * (tiny.cfg.n_ctx + 1)], [4], HOOKS)
    with pytest.raises(Exception, match="hook_resid_postt"):
        read_last_token(tiny, sequences, prompt_lengths, ["blocks.0.hook_resid_postt"])
    with pytest.raises(ValueError, match="padding side"):
        read_last_token(tiny, sequences, prompt_lengths, HOOKS, padding_side="middle")
