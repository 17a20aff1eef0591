"""Cells of notebooks/faithfulness.ipynb."""

from nbformat.v4 import new_code_cell, new_markdown_cell

CELLS = [
    new_markdown_cell(
        "# Number faithfulness: does the model keep the numbers of the question?\n\n"
        "Each GSM8K question gets a restatement of one of its facts with the question's number "
        "(correct) and with that number changed (incorrect). A logistic probe per layer reads the "
        "residual stream at the last real token of `Q: {question}\\nA: {answer}` and tells the two "
        "apart on held-out questions; a likelihood score asks whether the model finds the correct "
        "restatement more likely. Runs on smollm2 with a few triples and layers so it executes in "
        "CI; for the study use `MODEL = 'qwen2.5-coder-0.5b-instruct'`, `N_TRIPLES = 1000`, "
        "`LAYERS = None` (all), and drop `max_prompt_tokens`."
    ),
    new_code_cell(
        "import interp\n"
        "from interp.analyses import faithfulness, faithfulness_difference, faithfulness_trace\n"
        "from interp.interventions.random_red import random_red_edits\n"
        "from interp.interventions.arms import Arm\n\n"
        "MODEL, N_TRIPLES, LAYERS, HEADS = 'smollm2-135m-instruct', 16, (4, 8, 12, 16), True\n"
        "# two facts per question, questions of at most 56 prompt tokens (fast for CI)\n"
        "SETTINGS = dict(n_triples=N_TRIPLES, facts_per_question=2, max_prompt_tokens=56,\n"
        "                layers=LAYERS, heads=HEADS)\n"
        "model = interp.load_model(MODEL)"
    ),
    new_markdown_cell(
        "## 1. Probes for the base model\n"
        "Held out by question (no question on both sides); accuracy, AUC, and pair accuracy (the "
        "probe scores the correct restatement above the incorrect one of the same fact)."
    ),
    new_code_cell(
        "base = faithfulness.run(Arm.plain(model, 'base'), **SETTINGS)\n"
        "print(base.tables['triples'][0])\n"
        "print('likelihood score:', round(base.likelihood_accuracy(), 3))\n"
        "base.figure()"
    ),
    new_markdown_cell(
        "## 2. An edited arm and the difference\n"
        "A random RED (bias of norm 0.54 on every `hook_mlp_out`) stands in for a trained one; "
        "`interp.load_edits('checkpoint', model)` gives a trained one. Red: faithfulness rises "
        "under the edit; blue: it falls."
    ),
    new_code_cell(
        "red = Arm.edited(model, random_red_edits(model, 0.54), 'random RED')\n"
        "edited = faithfulness.run(red, reference=base, **SETTINGS)\n"
        "comparison = faithfulness_difference.run(base, edited)\n"
        "comparison.figure()"
    ),
    new_code_cell(
        "[(row['layer'], round(row['delta_accuracy'], 3), round(row['delta_auc'], 3))\n"
        " for row in comparison.tables['per_layer']]"
    ),
    new_markdown_cell(
        "## 3. The probe token by token\n"
        "Answers decoded from `Q: {question}\\nA:` (greedy), and the triples' own restatements, "
        "scored at every token by the probe of the best layer."
    ),
    new_code_cell(
        "trace = faithfulness_trace.run(red, base, n_answers=2, max_new_tokens=8)\ntrace.figure()"
    ),
    new_markdown_cell("Results save and load with their configs (seeds included):"),
    new_code_cell(
        "import tempfile\n\n"
        "folder = tempfile.mkdtemp()\n"
        "base.save(folder)\n"
        "faithfulness.FaithfulnessResult.load(folder).config == base.config"
    ),
]
