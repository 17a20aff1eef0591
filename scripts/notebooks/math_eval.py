"""Cells of notebooks/math_eval.ipynb."""

from nbformat.v4 import new_code_cell, new_markdown_cell

CELLS = [
    new_markdown_cell(
        "# Math evaluation and prefix-swap continuations\n\n"
        "Runs on `smollm2-135m-instruct` with a handful of GSM8K problems and short answers so it "
        "executes in about a minute in CI (smollm2 cannot do the arithmetic: expect accuracy near "
        "zero). For the real study set `MODEL = 'qwen2.5-coder-0.5b-instruct'`, `N = 100`, "
        "`MAX_NEW = 384` (hours on a busy CPU; every run resumes from `out`)."
    ),
    new_code_cell(
        "import interp\n"
        "from interp.analyses import math_eval, prefix_swap\n"
        "from interp.interventions.random_red import random_red_edits\n"
        "from interp.interventions.arms import Arm\n\n"
        "MODEL, N, MAX_NEW = 'smollm2-135m-instruct', 3, 32\n"
        "model = interp.load_model(MODEL)"
    ),
    new_markdown_cell(
        "## 1. GSM8K accuracy\n"
        "A seeded subset of the test split, the chat prompt of SEAL (arXiv 2504.07986; answer in "
        "`\\boxed{}`), greedy "
        "decoding through `interp.decoding.loop.generate`, graded by the last `\\boxed{}` / `####` / "
        "final number with numeric and symbolic equivalence."
    ),
    new_code_cell(
        "plain = math_eval.run(model, dataset='gsm8k', n_problems=N, seed=0,\n"
        "                      max_new_tokens=MAX_NEW, batch_size=4, progress=False)\n"
        "print(plain.summary())\n"
        "plain.figure()"
    ),
    new_code_cell(
        "row = plain.rows[0]\n"
        "print(row['prompt'][-200:])\n"
        "print('->', row['output'][:300])\n"
        "{k: row[k] for k in ('gold', 'extracted', 'correct', 'n_tokens', 'hit_cap')}"
    ),
    new_markdown_cell(
        "## 2. Prefix swap\n"
        "The donor (a random RED: bias of norm 0.54 at every `hook_mlp_out`) writes the first k "
        "answer tokens, the plain model goes on, either from the donor's KV cache or recomputing "
        "prompt + prefix itself. The donor's answer is decoded once; every k reuses its prefix. "
        "`reuse=[plain]` takes the plain model's own answers from the run above."
    ),
    new_code_cell(
        "donor = Arm.of(model, random_red_edits(model, 0.54), name='random RED 0.54')\n"
        "swap = prefix_swap.run(model, donor=donor, continuer=Arm.of(model),\n"
        "                       ks=(0, 4, 16), pool_size=N, n_problems=2, only_donor_wrong=False,\n"
        "                       max_new_tokens=MAX_NEW, batch_size=6, reuse=[plain], progress=False)\n"
        "swap.figure()"
    ),
    new_markdown_cell(
        "## 3. Trajectory closeness\n"
        "For the donor's prefix and the plain model's own prefix at each k: the unedited model's "
        "log-probability of the gold answer right after the prefix and a cue "
        "(`The final answer is $\\boxed{`), and how many of the donor's first k tokens equal the "
        "plain model's."
    ),
    new_code_cell("swap.closeness_figure()"),
    new_code_cell(
        "import tempfile\n\n"
        "folder = tempfile.mkdtemp()\n"
        "swap.save(folder)\n"
        "prefix_swap.PrefixSwapResult.load(folder).tables['accuracy'] == swap.tables['accuracy']"
    ),
]
