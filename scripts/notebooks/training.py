"""Cells of notebooks/training.ipynb."""

from nbformat.v4 import new_code_cell, new_markdown_cell

CELLS = [
    new_markdown_cell(
        "# Training representation edits: RED, prefix loss, bias-norm control, KL-budget decoding\n\n"
        "Runs on the toy adder (`adder4`) so it executes in seconds in CI: the task is to write "
        "each sum followed by `=`, a format the adder was never trained on, so a RED has "
        "something to learn. The GSM8K comparison of all arms on a real model is "
        "`python -m interp reft-compare` (see docs/training.md)."
    ),
    new_code_cell(
        "import interp\n"
        "from interp.interventions import RED, Edit\n"
        "from interp.interventions.lora import LoRA\n"
        "from interp.models.adder import sample_problems\n"
        "from interp.training import checkpoints\n"
        "from interp.training.data import Pair\n"
        "from interp.figures.training import bias_control_figure\n"
        "from interp.training.pid import BiasControl\n"
        "from interp.training.trainer import held_out_loss, train\n\n"
        "model = interp.load_model('adder4')\n\n\n"
        "def pairs(seed, n):\n"
        "    return [Pair(f'{a}+{b}=', f'{a + b}=') for a, b in sample_problems(n, seed)]\n\n\n"
        "def reds():\n"
        "    return [Edit(f'blocks.{i}.hook_mlp_out', RED(model.cfg.d_model))\n"
        "            for i in range(model.cfg.n_layers)]\n\n\n"
        "train_pairs, test_pairs = pairs(0, 48), pairs(1, 32)"
    ),
    new_markdown_cell(
        "## 1. Train a RED (scale and bias at every MLP output); the model stays frozen\n"
        "Loss on the whole answer; AdamW with warm-up and cosine decay; one row per step."
    ),
    new_code_cell(
        "red = reds()\n"
        "before = held_out_loss(model, test_pairs, edit_list=red)\n"
        "result = train(model, train_pairs, edit_list=red, learning_rate=2e-2, batch_size=8,\n"
        "               epochs=3, progress=False)\n"
        "print(f'held-out loss {before:.3f} -> {held_out_loss(model, test_pairs, edit_list=red):.3f}')\n"
        "result.figure()"
    ),
    new_markdown_cell(
        "## 2. Prefix-only loss\n"
        "The loss covers only the first K answer tokens (here K=2), with a share of full-answer "
        "examples kept, as the reference does."
    ),
    new_code_cell(
        "prefix = train(model, train_pairs, edit_list=reds(), learning_rate=2e-2, batch_size=8,\n"
        "               epochs=3, prefix_tokens=2, full_share=0.1, progress=False)\n"
        "prefix.meta['n_loss_tokens'], result.meta['n_loss_tokens']"
    ),
    new_markdown_cell(
        "## 3. Holding the bias norm with a PID controller\n"
        "The reference form scales the cross-entropy by the controlled weight; under Adam that "
        "barely changes the updates. The penalty form controls the weight of a norm penalty "
        "instead."
    ),
    new_code_cell(
        "runs = {'no control': train(model, train_pairs, edit_list=reds(), learning_rate=2e-2,\n"
        "                            batch_size=8, epochs=6, progress=False)}\n"
        "for form in ('loss_scale', 'penalty'):\n"
        "    control = BiasControl(form=form, target=0.5)\n"
        "    runs[form] = train(model, train_pairs, edit_list=reds(), learning_rate=2e-2,\n"
        "                       batch_size=8, epochs=6, bias_control=control, progress=False)\n"
        "{name: round(run.history[-1]['bias_norm'], 3) for name, run in runs.items()}"
    ),
    new_code_cell("bias_control_figure(runs, target=0.5)"),
    new_markdown_cell(
        "## 4. KL-budget decoding\n"
        "Each step decodes with and without the edit in one doubled batch; once a sequence's "
        "summed KL(edited || unedited) passes the budget, its later tokens are not edited."
    ),
    new_code_cell(
        "prompts = [p.prompt for p in test_pairs[:4]]\n"
        "out = interp.generate(model, prompts, edit_list=red, max_new_tokens=6, kl_budget=0.02)\n"
        "list(zip(out.texts, out.edit_stops, [round(k, 3) for k in out.kl_spent]))"
    ),
    new_markdown_cell("## 5. A LoRA baseline, and checkpoints that refuse what does not fit"),
    new_code_cell(
        "import tempfile\n\n"
        "lora = LoRA.for_model(model, modules=('q_proj', 'v_proj'), rank=4)\n"
        "train(model, train_pairs, lora=lora, learning_rate=5e-3, batch_size=8, epochs=2,\n"
        "      progress=False)\n"
        "folder = tempfile.mkdtemp()\n"
        "checkpoints.save(f'{folder}/red', model, edit_list=red, result=result)\n"
        "checkpoints.save(f'{folder}/lora', model, lora=lora)\n"
        "loaded = checkpoints.load(f'{folder}/red', model, kind='red')\n"
        "try:\n"
        "    checkpoints.load(f'{folder}/red', model, kind='lora')\n"
        "except ValueError as error:\n"
        "    print(error)"
    ),
]
