"""Cells of notebooks/seal.ipynb."""

from nbformat.v4 import new_code_cell, new_markdown_cell

CELLS = [
    new_markdown_cell(
        "# SEAL: thoughts, thought states, steering vector, steered decoding\n\n"
        "Every step of the study on the project's model organism, `reasoner`: smollm2-135m-instruct "
        "with a LoRA trained on chains of thought whose every thought has a known class and a "
        "known necessity (`interp.data.reasoning_traces`). It answers held-out word problems of "
        "that generator, sampled at temperature 1 as it was trained, so each of its reflections "
        "can be checked: needed (after a wrong step) or redundant (after a right one). This is a "
        "small subset (the README has the full run's numbers). For qwen set `MODEL = "
        "'qwen2.5-coder-0.5b-instruct'`, `DATASETS = ('math500', 'gsm8k')`, `SPAN = 'response'`; "
        "for a local DeepSeek-R1-Distill-Qwen-1.5B folder, its path and `SPAN = 'think'`."
    ),
    new_code_cell(
        "import tempfile\n"
        "from pathlib import Path\n\n"
        "import interp\n"
        "from interp.analyses import math_eval, steering, thought_states, thought_stats\n"
        "from interp.analyses.steering import response_from_row\n"
        "from interp.cli.seal import seal_splits\n"
        "from interp.data.reasoning_traces import N_HELD_OUT, held_out_problems\n"
        "from interp.models.reasoner import compare_rates\n"
        "from interp.text.thoughts import SEAL_KEYWORDS, classify_thought\n\n"
        "WORK = Path(tempfile.mkdtemp())\n"
        "MODEL, DATASETS, SPAN = 'reasoner', ('organism',), 'think'\n"
        "N_EXTRACT, N_EVAL, MAX_NEW_TOKENS, SAMPLE = 48, 24, 200, True\n"
        "MAIN_LAYER = 21  # about 70% of the 30 layers, where SEAL steers\n"
        "model = interp.load_model(MODEL)\n"
        "model.cfg.n_layers, model.cfg.d_model"
    ),
    new_markdown_cell(
        "## 1. Thoughts\n"
        "A thought starts after a boundary token (any token whose text holds a blank line) and is "
        "classified by SEAL's keywords, unchanged, reflection first:"
    ),
    new_code_cell(
        "[(text, classify_thought(text)) for text in (\n"
        "    'Wait, 3 + 4 is 7.', 'Let me check the sum.', 'Alternatively, factor it.',\n"
        "    'Alternatively, verify by substitution.', 'So x = 7.')]"
    ),
    new_markdown_cell(
        "Answers to split A (a seeded draw of the held-out problems; split B is disjoint), the "
        "organism's rates next to its generator's on the same problems, then thoughts per class "
        "by correctness:"
    ),
    new_code_cell(
        "split_a, split_b = seal_splits(DATASETS, n_extract=N_EXTRACT, n_eval=N_EVAL, seed=0)\n"
        "evaluation = math_eval.run(model, problems=split_a, max_new_tokens=MAX_NEW_TOKENS,\n"
        "                           batch_size=N_EXTRACT, do_sample=SAMPLE, progress=False)\n"
        "by_id = {p.id: p for p in split_a}\n"
        "responses = [response_from_row(row, by_id[row['id']]) for row in evaluation.rows]\n"
        "word_problems = {p.id: p for p in held_out_problems(N_HELD_OUT)}\n"
        "rates = compare_rates([row['output'] for row in evaluation.rows],\n"
        "                      [word_problems[row['id']] for row in evaluation.rows])\n"
        "print(evaluation.rows[0]['output'])\n"
        "rates.table()"
    ),
    new_code_cell(
        "stats = thought_stats.run(model, responses, span=SPAN, keywords=SEAL_KEYWORDS)\n"
        "print(stats.totals())\n"
        "stats.figure()"
    ),
    new_markdown_cell(
        "## 2. Thought states\n"
        "`blocks.L.hook_resid_pre` (Hugging Face `hidden_states[L]`) at every boundary inside the "
        "span, one forward per trace, stored in chunk files; t-SNE and a cross-validated linear "
        "classifier per layer (folds grouped by answer), against the majority baseline."
    ),
    new_code_cell(
        "states = thought_states.run(model, responses, span=SPAN, layers=tuple(range(0, 30, 3)),\n"
        "                            tsne_layers=(MAIN_LAYER,), store=WORK / 'chunks', progress=False)\n"
        "print(states.counts)\n"
        "states.figure()"
    ),
    new_markdown_cell(
        "## 3. Steering vector\n"
        "mean(execution) - mean(reflection + transition) per layer, pooled over samples as SEAL "
        "does, no normalization; a positive alpha steers toward execution. Sign, pooling and "
        "normalization are saved with it."
    ),
    new_code_cell(
        "vector = states.steering_vector('pooled')\nvector.save(WORK / 'vector')\nvector.describe()"
    ),
    new_markdown_cell(
        "## 4. Steered decoding on split B\n"
        "Base, the logits penalty (-3 on every token containing 'Wait' or 'Alternatively'), and "
        "alpha * vector added at the boundary tokens inside the span when each is fed back. On "
        "the organism's problems each arm also counts needed and redundant reflections."
    ),
    new_code_cell(
        "result = steering.run(model, states, split_b, layers=(MAIN_LAYER,), alphas=(0.5, 1.0, 2.0),\n"
        "                      main_layer=MAIN_LAYER, main_alpha=1.0, span=SPAN,\n"
        "                      max_new_tokens=MAX_NEW_TOKENS, batch_size=N_EVAL, do_sample=SAMPLE,\n"
        "                      progress=False)\n"
        "print(steering.comparison_markdown(result, result.tables['arms']))\n"
        "result.figure()"
    ),
    new_markdown_cell("Results save and load with their configs (seeds included):"),
    new_code_cell(
        "result.save(WORK / 'steering')\n"
        "steering.SteeringResult.load(WORK / 'steering').tables == result.tables"
    ),
]
