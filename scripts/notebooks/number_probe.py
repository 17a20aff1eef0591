"""Cells of notebooks/number_probe.ipynb."""

from nbformat.v4 import new_code_cell, new_markdown_cell

CELLS = [
    new_markdown_cell(
        "# Number probes, pushes along the number direction, and where an edit lands\n\n"
        "Runs on the toy adder the project trains (`scripts/train_adder.py`) so it executes in "
        "seconds in CI. Set `MODEL = 'qwen2.5-coder-0.5b-instruct'` (and `STYLE = None`) for the "
        "real study; that takes minutes on a CPU."
    ),
    new_code_cell(
        "import interp\n"
        "from interp.analyses import number_probe, perturbation, projection\n"
        "from interp.interventions import RED, Edit\n"
        "from interp.figures.number import combined_figure\n\n"
        "MODEL, STYLE = 'adder4', 'compact'\n"
        "model = interp.load_model(MODEL)\n"
        "model.cfg.n_layers, model.cfg.d_model"
    ),
    new_markdown_cell(
        "## 1. Linear probes of a, b and a+b at every layer\n"
        "Ridge regression of log2(value+1) from the residual stream after each block "
        "(`blocks.L.hook_resid_post`), held-out R²."
    ),
    new_code_cell("probe = number_probe.run(model, n_problems=800, style=STYLE)\nprobe.figure()"),
    new_code_cell(
        "[(row['position'], row['layer'], round(row['r2'], 3)) for row in probe.tables['per_layer']]"
    ),
    new_markdown_cell(
        "## 2. Push along the sum direction and count addition errors\n"
        "Only problems the unedited model gets right; strengths in probe units (one unit moves "
        "the probe's read-out of log2(sum) by one). x* is where 5 in 1,000 answers break."
    ),
    new_code_cell(
        "layer = probe.best_layer('last')\n"
        "sweep = perturbation.run(model, probe, layers=(layer,), n_problems=300, style=STYLE,\n"
        ")\n"
        "print(f'x* = {sweep.x_star():.3g}, 95% CI {sweep.x_star_interval()}')\n"
        "sweep.figure()"
    ),
    new_markdown_cell(
        "## 3. Where does an edit land on that direction?\n"
        "A random RED (bias of norm 0.54 at every MLP output) stands in for a trained one; "
        "pass any list of edits, e.g. `interp.load_edits('checkpoint', model)`."
    ),
    new_code_cell(
        "red = [Edit(f'blocks.{layer}.hook_mlp_out', RED.random(model.cfg.d_model, 0.54, seed=layer))\n"
        "       for layer in range(model.cfg.n_layers)]\n"
        "proj = projection.run(model, red, probe, perturbation=sweep, n_prompts=32)\n"
        "proj.share_beyond_threshold()"
    ),
    new_code_cell("combined_figure(sweep, proj, layer=layer)"),
    new_markdown_cell("Results save and load with their configs (seeds included):"),
    new_code_cell(
        "import tempfile\n\n"
        "folder = tempfile.mkdtemp()\n"
        "sweep.save(folder)\n"
        "perturbation.PerturbationResult.load(folder).x_star() == sweep.x_star()"
    ),
]
