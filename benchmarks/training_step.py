"""One training step with a RED edit on every layer vs a plain forward+backward of the frozen model.

Same model, same batch of GSM8K training pairs (chat prompt + worked answer), timed side by side in
one run (best of `--repeats`). "RED step" is interp's full step: forward through the runner with
a RED on every `blocks.L.mlp.hook_pre_linear` (token state published, edits as hooks), the
answer cross-entropy, backward into the RED parameters, clipping and the AdamW update. "plain" is
the Hugging Face model with nothing attached: the same loss (logits at the answer positions),
backward to the input embeddings so that the gradient runs through every layer as it must for
the edit (the weights stay frozen in both). Prints the ratio RED / plain; the target is at most
1.3x. "plain, all logits" is the plain step computing logits at every position, for reference.

    python benchmarks/training_step.py --model smollm2-135m-instruct --batch 4
"""

from __future__ import annotations

import argparse

import torch
from timing import best_of

from interp.interventions import RED, Edit
from interp.models import load_model
from interp.training.data import encode_pairs, gsm8k_pairs
from interp.training.masks import make_batch
from interp.training.trainer import answer_loss, attached, frozen


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model", default="smollm2-135m-instruct")
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--max-answer-tokens", type=int, default=128)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    torch.manual_seed(0)
    model = load_model(args.model)
    pairs = gsm8k_pairs(model.tokenizer, n=args.batch, seed=0)
    encoded = encode_pairs(pairs, model.tokenizer, max_answer_tokens=args.max_answer_tokens)
    batch = make_batch(encoded, [len(p.answer_ids) for p in encoded], model.tokenizer.pad_token_id)
    red = [
        Edit(f"blocks.{layer}.mlp.hook_pre_linear", RED(model.cfg.d_mlp))
        for layer in range(model.cfg.n_layers)
    ]
    params = [p for e in red for p in e.function.parameters()]
    optimizer = torch.optim.AdamW(params, lr=1e-4)
    hf = model.original_model
    keep = batch.loss_mask.any(0).nonzero()[:, 0]

    def red_step():
        optimizer.zero_grad(set_to_none=True)
        loss = answer_loss(model, batch)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        optimizer.step()

    def plain_step(all_logits: bool = False):
        embeds = hf.get_input_embeddings()(batch.tokens).detach().requires_grad_(True)
        out = hf(
            inputs_embeds=embeds,
            attention_mask=batch.attention_mask,
            logits_to_keep=0 if all_logits else keep,
        )
        logits = out.logits if all_logits else out.logits
        mask = batch.loss_mask if all_logits else batch.loss_mask[:, keep]
        targets = batch.targets if all_logits else batch.targets[:, keep]
        loss = torch.nn.functional.cross_entropy(logits[mask].float(), targets[mask])
        loss.backward()

    print(
        f"model {args.model}, batch {tuple(batch.tokens.shape)} (tokens), "
        f"{int(batch.loss_mask.sum())} answer tokens, best of {args.repeats}"
    )
    with frozen(model):
        plain = best_of(args.repeats, plain_step)
        naive = best_of(args.repeats, lambda: plain_step(all_logits=True))
        with attached(model, red):
            ours = best_of(args.repeats, red_step)
    print("RED step (s)  plain fwd+bwd (s)  ratio   plain, all logits (s)")
    print(f"{ours:12.2f}  {plain:17.2f}  {ours / plain:5.2f}x  {naive:21.2f}")


if __name__ == "__main__":
    main()
