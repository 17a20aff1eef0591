"""A RED on `mlp.hook_pre_linear` in every layer (where the ReFT study's arms sit): greedy decoding
on the fast path (`interp.core.direct`) against the bridge's wrappers, side by side in turns,
bfloat16, 8 GSM8K chat prompts, 48 new tokens; prints both times, the ratio (best of 2) and how
many token rows agree.

    cd benchmarks && ../.venv/bin/python red_decoding.py
"""

import time

import torch

import interp
from interp.core.direct import bridge_forwards
from interp.core.positions import AllPositions
from interp.data.math_sets import load_problems, subset
from interp.decoding import generate
from interp.interventions import RED, Edit

model = interp.load_model("qwen2.5-coder-0.5b-instruct", dtype="bfloat16")
torch.manual_seed(0)
edits = [
    Edit(
        f"blocks.{layer}.mlp.hook_pre_linear",
        RED.random(model.cfg.d_mlp, bias_norm=0.77),
        AllPositions(),
    )
    for layer in range(model.cfg.n_layers)
]
probs = subset(load_problems("gsm8k", "test"), 8, 0)
prompts = [
    model.tokenizer.apply_chat_template(
        [{"role": "user", "content": p.question}], tokenize=False, add_generation_prompt=True
    )
    for p in probs
]
times = {"direct": [], "bridge": []}
outs = {}
for _turn in range(2):
    for path in ("direct", "bridge"):
        t = time.perf_counter()
        if path == "bridge":
            with bridge_forwards():
                out = generate(
                    model, prompts, edit_list=edits, max_new_tokens=48, stop_at_eos=False
                )
        else:
            out = generate(model, prompts, edit_list=edits, max_new_tokens=48, stop_at_eos=False)
        times[path].append(time.perf_counter() - t)
        outs[path] = out.tokens
print({k: [round(v, 1) for v in vs] for k, vs in times.items()})
print("bridge / direct (best of 2):", round(min(times["bridge"]) / min(times["direct"]), 2))
same = sum(a == b for a, b in zip(outs["direct"], outs["bridge"]))
print("identical token rows:", same, "of", len(prompts))
