"""Number-faithfulness probes: does the model keep the numbers of the question?

Each triple (question, restatement with the question's number, restatement with it changed; see
`interp.data.faithfulness`) gives texts "Q: {question}\\nA: {answer}" labelled 1 (correct) or 0.
One forward per batch reads, at the last real token of every text (never a pad, with left or right
padding), the residual stream after each block (`blocks.L.hook_resid_post`) and optionally each
head's output (`blocks.L.attn.hook_z`), plus the log-likelihood of the answer tokens given the
question. Then

    result = faithfulness.run(model)                      # logistic probe per layer (and head)
    edited = faithfulness.run(model, edit_list=red_edits)     # the same for an edited arm
    diff = faithfulness_difference.run(result, edited)    # heatmap: red where faithfulness rises
    trace = faithfulness_trace.run(model, result)         # the probe token by token along answers

Probes are held out by question (no question on both sides). The likelihood score is the share of
(correct, incorrect) pairs of a triple in which the model gives the correct restatement the higher
log-likelihood. `run` accepts an `interp.interventions.arms.Arm` in place of the model.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from jaxtyping import Float
from torch import Tensor

from interp.data.faithfulness import FaithfulnessTriple, gsm8k_triples, load_triples
from interp.figures.faithfulness import faithfulness_layers_figure
from interp.interventions import Edit
from interp.interventions.arms import Arm, describe_edit
from interp.models import model_name
from interp.probes.logistic import DEFAULT_CS, fit_logistic_probes
from interp.probes.readout import read_last_token
from interp.results import Result

PROMPT_FORMAT = "Q: {question}\nA:"
ANSWER_FORMAT = " {answer}"


# ---------------------------------------------------------------------------------------------
# Texts


@dataclass(frozen=True)
class ScoredText:
    """One "Q: ...\\nA: ..." text: its tokens, where the answer starts, its label and its triple."""

    tokens: tuple[int, ...]
    prompt_length: int  # tokens of "Q: {question}\nA:"; the rest is the answer
    label: int  # 1: the answer keeps the question's number; 0: it changes it
    triple: int  # index of the triple in the list given


def encode_triples(
    tokenizer,
    triples: Sequence[FaithfulnessTriple],
    prompt_format: str = PROMPT_FORMAT,
    answer_format: str = ANSWER_FORMAT,
) -> list[ScoredText]:
    """Token ids of every (question, answer) text; prompt and answer are tokenized separately
    and joined, so the answer's tokens are the same whatever precedes them."""
    if len(triples) == 0:
        raise ValueError("no triples given: nothing to probe")
    texts = []
    for index, triple in enumerate(triples):
        prompt = encode_question(tokenizer, triple.question, prompt_format)
        for label, answers in ((1, triple.correct_answers), (0, triple.incorrect_answers)):
            for answer in answers:
                own = encode_answer(tokenizer, answer, answer_format)
                texts.append(ScoredText(tuple(prompt + own), len(prompt), label, index))
    return texts


def encode_question(tokenizer, question: str, prompt_format: str = PROMPT_FORMAT) -> list[int]:
    """Token ids of the prompt "Q: {question}\\nA:" (no special tokens)."""
    return tokenizer.encode(
        prompt_format.format(question=question.strip()), add_special_tokens=False
    )


def encode_answer(tokenizer, answer: str, answer_format: str = ANSWER_FORMAT) -> list[int]:
    """Token ids of the answer " {answer}", tokenized apart from its prompt."""
    return tokenizer.encode(answer_format.format(answer=answer.strip()), add_special_tokens=False)


# ---------------------------------------------------------------------------------------------
# The analysis


@dataclass(frozen=True)
class FaithfulnessConfig:
    prompt_format: str = PROMPT_FORMAT
    answer_format: str = ANSWER_FORMAT
    n_triples: int = 1000
    facts_per_question: int = 1  # triples per GSM8K question (each restates a different number)
    seed: int = 0
    split: str = "train"  # GSM8K split the triples come from (when no triples file is given)
    triples_path: str | None = None
    max_prompt_tokens: int | None = None  # keep only questions this short (None: all)
    layers: tuple[int, ...] | None = None  # None: every layer
    heads: bool = False  # also a probe per attention head (blocks.L.attn.hook_z)
    padding_side: str = "left"
    test_fraction: float = 0.25
    Cs: tuple[float, ...] = DEFAULT_CS
    batch_size: int = 8
    arm: str = "base"
    edit_description: str = "none"


@dataclass
class FaithfulnessResult(Result):
    config_class = FaithfulnessConfig

    @property
    def has_heads(self) -> bool:
        return "head_accuracy" in self.tensors

    def probe(self, layer: int) -> tuple[Float[Tensor, " d"], float]:
        """The probe at `layer`: weight vector and intercept on raw residual activations."""
        if layer not in self.layers:
            raise ValueError(f"no probe at layer {layer}; probed layers: {self.layers}")
        i = self.layers.index(layer)
        return self.tensors["weights"][i], float(self.tensors["intercepts"][i])

    def best_layer(self) -> int:
        return self.layers[int(self.tensors["auc"].nan_to_num(-1).argmax())]

    def likelihood_margin(self) -> float:
        """Mean over triples of log p(correct) - log p(incorrect) (each averaged over its answers)."""
        logprob, labels = self.tensors["answer_logprob"], self.tensors["labels"]
        triple = self.tensors["triple_index"]
        margins = []
        for t in torch.unique(triple):
            rows = triple == t
            good, bad = logprob[rows & (labels == 1)], logprob[rows & (labels == 0)]
            margins.append(float(good.mean() - bad.mean()))
        return float(np.mean(margins))

    def likelihood_accuracy(self, held_out_only: bool = False) -> float:
        """Share of (correct, incorrect) pairs where the correct restatement is more likely."""
        key = "likelihood_accuracy_test" if held_out_only else "likelihood_accuracy"
        return float(self.meta[key])

    def figure(self):
        return faithfulness_layers_figure(self)


def _triples_for(config: FaithfulnessConfig, triples, tokenizer) -> list[FaithfulnessTriple]:
    """The configured triples: given, from a JSONL file, or built from GSM8K; with
    `max_prompt_tokens`, only those whose "Q: ...\nA:" prompt fits, the first `n_triples` of them."""
    if triples is not None:
        return list(triples)
    capped = config.max_prompt_tokens is not None
    if config.triples_path is not None:
        pool = load_triples(config.triples_path)
    else:
        pool = gsm8k_triples(
            None if capped else config.n_triples,
            seed=config.seed,
            split=config.split,
            facts_per_question=config.facts_per_question,
        )
    if capped:
        pool = [
            t
            for t in pool
            if len(encode_question(tokenizer, t.question, config.prompt_format))
            <= config.max_prompt_tokens
        ]
    if config.n_triples and len(pool) < config.n_triples:
        raise ValueError(
            f"only {len(pool)} triples are available (max_prompt_tokens={config.max_prompt_tokens}); "
            f"asked for {config.n_triples}: lower n_triples or raise the cap"
        )
    return pool[: config.n_triples] if config.n_triples else pool


def _pair_accuracy(
    scores: Float[Tensor, "probe n"], labels: np.ndarray, triple_of: np.ndarray, rows: np.ndarray
) -> Float[Tensor, " probe"]:
    """Share of (correct, incorrect) pairs of one triple, among `rows`, scored correct-higher."""
    wins, total = torch.zeros(scores.shape[0]), 0
    rows_of: dict[int, list[int]] = {}
    for r in rows.tolist():
        rows_of.setdefault(int(triple_of[r]), []).append(r)
    for members in rows_of.values():
        good = [r for r in members if labels[r] == 1]
        bad = [r for r in members if labels[r] == 0]
        for g in good:
            for b in bad:
                wins += (scores[:, g] > scores[:, b]).float() + 0.5 * (
                    scores[:, g] == scores[:, b]
                ).float()
                total += 1
    return wins / max(total, 1)


def run(
    model,
    edit_list: Sequence[Edit] | None = None,
    *,
    triples: Sequence[FaithfulnessTriple] | None = None,
    reference: FaithfulnessResult | None = None,
    progress: bool = True,
    **overrides,
) -> FaithfulnessResult:
    """Probe faithfulness at every layer (and head) for one arm: `model` with `edit_list` (or an Arm).

    `triples` overrides the configured source (GSM8K train, or `triples_path`). With `reference`
    (the base arm's result), its probes are also scored on this arm's held-out states ("transfer").
    """
    if isinstance(model, Arm) and edit_list is not None:
        raise ValueError("pass edits either in the Arm or as `edit_list`, not both")
    arm = Arm.of(model, edit_list or (), name="edited" if edit_list else "base")
    model, edit_list = arm.model, list(arm.edit_list)
    overrides.setdefault("arm", arm.name)
    if edit_list:
        overrides.setdefault("edit_description", f"{len(edit_list)} edits")
    if triples is not None:
        overrides.update(n_triples=len(triples), triples_path=None)
    config = FaithfulnessConfig(**overrides)
    triple_list = _triples_for(config, triples, model.tokenizer)
    texts = encode_triples(model.tokenizer, triple_list, config.prompt_format, config.answer_format)
    layers = list(range(model.cfg.n_layers)) if config.layers is None else list(config.layers)
    resid_hooks = [f"blocks.{layer}.hook_resid_post" for layer in layers]
    head_hooks = [f"blocks.{layer}.attn.hook_z" for layer in layers] if config.heads else []
    readout = read_last_token(
        model,
        [t.tokens for t in texts],
        [t.prompt_length for t in texts],
        resid_hooks + head_hooks,
        edit_list,
        padding_side=config.padding_side,
        batch_size=config.batch_size,
        progress=progress,
    )
    labels = np.array([t.label for t in texts])
    triple_of = np.array([t.triple for t in texts])
    groups = np.array([" ".join(triple_list[t.triple].question.split()) for t in texts])
    resid = torch.stack([readout.states[h] for h in resid_hooks])  # [layer, n, d]
    fit = fit_logistic_probes(
        resid, labels, groups, seed=config.seed, test_fraction=config.test_fraction, Cs=config.Cs
    )
    all_scores = fit.decision(resid)
    tensors = {
        "layers": torch.tensor(layers),
        "accuracy": fit.accuracy,
        "auc": fit.auc,
        "pair_accuracy": _pair_accuracy(all_scores, labels, triple_of, fit.test),
        "train_accuracy": fit.train_accuracy,
        "C": fit.C,
        "weights": fit.weights,
        "intercepts": fit.intercepts,
        "labels": torch.from_numpy(labels),
        "triple_index": torch.from_numpy(triple_of),
        "is_test": torch.from_numpy(np.isin(np.arange(len(labels)), fit.test)),
        "answer_logprob": readout.answer_logprob,
        "answer_tokens": readout.answer_tokens,
    }
    if reference is not None:
        if reference.layers != layers:
            raise ValueError(
                f"the base arm's result probed layers {reference.layers}, this run {layers}: "
                f"run both with the same layers"
            )
        transfer = torch.einsum("lnd,ld->ln", resid, reference.tensors["weights"])
        transfer = transfer + reference.tensors["intercepts"][:, None]
        test = fit.test
        predicted = (transfer[:, test] > 0).long().numpy()
        tensors["transfer_accuracy"] = torch.tensor((predicted == labels[test]).mean(axis=1))
        tensors["transfer_pair_accuracy"] = _pair_accuracy(transfer, labels, triple_of, test)
    if head_hooks:
        z = torch.stack([readout.states[h] for h in head_hooks])  # [layer, n, head, d_head]
        n_heads = z.shape[2]
        per_head = z.permute(0, 2, 1, 3).reshape(len(layers) * n_heads, z.shape[1], z.shape[3])
        head_fit = fit_logistic_probes(
            per_head,
            labels,
            groups,
            seed=config.seed,
            test_fraction=config.test_fraction,
            Cs=config.Cs,
        )
        tensors["head_accuracy"] = head_fit.accuracy.reshape(len(layers), n_heads)
        tensors["head_auc"] = head_fit.auc.reshape(len(layers), n_heads)
        tensors["head_weights"] = head_fit.weights.reshape(len(layers), n_heads, -1)
        tensors["head_intercepts"] = head_fit.intercepts.reshape(len(layers), n_heads)
    likelihood = _likelihood_scores(readout.answer_logprob, labels, triple_of, fit.test)
    rows = [
        {
            "layer": layer,
            "accuracy": float(tensors["accuracy"][i]),
            "auc": float(tensors["auc"][i]),
            "pair_accuracy": float(tensors["pair_accuracy"][i]),
            "train_accuracy": float(tensors["train_accuracy"][i]),
            "C": float(tensors["C"][i]),
            **(
                {"transfer_accuracy": float(tensors["transfer_accuracy"][i])}
                if "transfer_accuracy" in tensors
                else {}
            ),
        }
        for i, layer in enumerate(layers)
    ]
    tables = {
        "per_layer": rows,
        "triples": [
            {
                "id": t.id,
                "question": t.question,
                "correct_answers": list(t.correct_answers),
                "incorrect_answers": list(t.incorrect_answers),
            }
            for t in triple_list
        ],
    }
    meta = {
        "model": model_name(model),
        "arm": config.arm,
        "triples_source": "given"
        if triples is not None
        else config.triples_path or f"gsm8k/{config.split}",
        "n_triples": len(triple_list),
        "n_texts": len(texts),
        "n_train": len(fit.train),
        "n_test": len(fit.test),
        "mean_tokens": float(np.mean([len(t.tokens) for t in texts])),
        "edits": [describe_edit(e) for e in edit_list],
        **likelihood,
    }
    return FaithfulnessResult(config=config, tensors=tensors, tables=tables, meta=meta)


def _likelihood_scores(
    logprob: Float[Tensor, " n"], labels: np.ndarray, triple_of: np.ndarray, test: np.ndarray
) -> dict[str, float]:
    everything = np.arange(len(labels))
    scores = logprob[None, :]
    return {
        "likelihood_accuracy": float(_pair_accuracy(scores, labels, triple_of, everything)[0]),
        "likelihood_accuracy_test": float(_pair_accuracy(scores, labels, triple_of, test)[0]),
        "mean_logprob_correct": float(logprob[torch.from_numpy(labels == 1)].mean()),
        "mean_logprob_incorrect": float(logprob[torch.from_numpy(labels == 0)].mean()),
    }
