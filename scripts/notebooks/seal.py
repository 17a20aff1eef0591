"""Cells of notebooks/seal.ipynb."""

from nbformat.v4 import new_code_cell, new_markdown_cell

CELLS = [
    new_markdown_cell(
        "# SEAL: thoughts, thought states, steering vector, steered decoding\n\n"
        "Every step of the study on a small subset. In CI it runs on a tiny random Qwen2 model "
        "with a character tokenizer and R1's prompt ending (`<think>\\n`), sampling so that blank "
        "lines occur, with keyword lists widened so random text holds every class: that shows "
        "the machinery, not a result. For the real study set `MODEL = "
        "'qwen2.5-coder-0.5b-instruct'` (no think span: `SPAN = 'response'`) or a local "
        "DeepSeek-R1-Distill-Qwen-1.5B folder (`SPAN = 'think'`), `KEYWORDS = SEAL_KEYWORDS`, "
        "`SAMPLE = False`; measured numbers are in docs/sections/seal.md."
    ),
    new_code_cell(
        "import tempfile\n"
        "from pathlib import Path\n\n"
        "import torch\n"
        "from transformers import Qwen2Config, Qwen2ForCausalLM\n\n"
        "import interp\n"
        "from interp.analyses import math_eval, steering, thought_states, thought_stats\n"
        "from interp.cli.seal import seal_splits\n"
        "from interp.analyses.steering import response_from_row\n"
        "from interp.text.thoughts import ThoughtKeywords, classify_thought\n"
        "from interp.testing import char_tokenizer\n\n"
        "WORK = Path(tempfile.mkdtemp())\n\n\n"
        "def tiny_reasoner(folder):\n"
        "    tokenizer = char_tokenizer(list('abcw 0123456789\\n'))\n"
        "    tokenizer.chat_template = (\"{% for m in messages %}{{ m['content'] }}\\n{% endfor %}\"\n"
        "                               '{% if add_generation_prompt %}<think>\\n{% endif %}')\n"
        "    torch.manual_seed(0)\n"
        "    config = Qwen2Config(vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64,\n"
        "                         num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,\n"
        "                         max_position_embeddings=2048, pad_token_id=tokenizer.pad_token_id,\n"
        "                         eos_token_id=tokenizer.eos_token_id, tie_word_embeddings=False)\n"
        "    model = Qwen2ForCausalLM(config)\n"
        "    with torch.no_grad():\n"
        "        model.lm_head.weight.mul_(3.0)  # peakier next-token distributions than random init\n"
        "    model.save_pretrained(folder)\n"
        "    tokenizer.save_pretrained(folder)\n"
        "    return str(folder)\n\n\n"
        "MODEL = tiny_reasoner(WORK / 'tiny_reasoner')  # or 'qwen2.5-coder-0.5b-instruct'\n"
        "SPAN = 'think'\n"
        "KEYWORDS = ThoughtKeywords(reflection_prefixes=tuple('abcw'), transition_prefixes=tuple('0123'))\n"
        "SAMPLE, MAX_NEW_TOKENS, NORMALIZATION = True, 48, 'unit'\n"
        "model = interp.load_model(MODEL)\n"
        "model.cfg.n_layers, model.cfg.d_model"
    ),
    new_markdown_cell(
        "## 1. Thoughts\n"
        "A thought starts after a boundary token (any token whose text holds a blank line) and is "
        "classified by SEAL's keywords, reflection first:"
    ),
    new_code_cell(
        "[(text, classify_thought(text)) for text in (\n"
        "    'Wait, 3 + 4 is 7.', 'Let me check the sum.', 'Alternatively, factor it.',\n"
        "    'Alternatively, verify by substitution.', 'So x = 7.')]"
    ),
    new_markdown_cell(
        "Responses to split A (seeded MATH500 + GSM8K draws; split B is disjoint), then thoughts "
        "per class by correctness and difficulty:"
    ),
    new_code_cell(
        "split_a, split_b = seal_splits(('math500', 'gsm8k'), n_extract=6, n_eval=2, seed=0)\n"
        "evaluation = math_eval.run(model, problems=split_a, max_new_tokens=MAX_NEW_TOKENS,\n"
        "                           batch_size=12, do_sample=SAMPLE, progress=False)\n"
        "by_id = {p.id: p for p in split_a}\n"
        "responses = [response_from_row(row, by_id[row['id']]) for row in evaluation.rows]\n"
        "stats = thought_stats.run(model, responses, span=SPAN, keywords=KEYWORDS)\n"
        "print(stats.totals())\n"
        "stats.figure()"
    ),
    new_markdown_cell(
        "## 2. Thought states\n"
        "`blocks.L.hook_resid_pre` (Hugging Face `hidden_states[L]`) at every boundary inside the "
        "span, one forward per trace, stored in chunk files; t-SNE and a cross-validated linear "
        "classifier per layer."
    ),
    new_code_cell(
        "states = thought_states.run(model, responses, span=SPAN, keywords=KEYWORDS,\n"
        "                            store=WORK / 'chunks', progress=False)\n"
        "print(states.counts)\n"
        "states.figure()"
    ),
    new_markdown_cell(
        "## 3. Steering vector\n"
        "mean(execution) - mean(reflection + transition) per layer, pooled over samples as SEAL "
        "does; a positive alpha steers toward execution. Sign, pooling and normalization are "
        "saved with it. SEAL uses the raw difference (`NORMALIZATION = 'none'`); the tiny random "
        "model's states barely differ between classes, so here the vector is made unit length "
        "and alpha is a length in the residual stream."
    ),
    new_code_cell(
        "vector = states.steering_vector('pooled', normalization=NORMALIZATION)\n"
        "vector.save(WORK / 'vector')\n"
        "vector.describe()"
    ),
    new_markdown_cell(
        "## 4. Steered decoding on split B\n"
        "Base, the logits penalty (here on 'w', since this vocabulary has no 'Wait'), and "
        "alpha * vector added at the boundary tokens inside the span when each is fed back."
    ),
    new_code_cell(
        "result = steering.run(model, states, split_b, layers=(1,), alphas=(1.0, 4.0), main_layer=1,\n"
        "                      main_alpha=4.0, span=SPAN, keywords=KEYWORDS, penalty_strings=('w',),\n"
        "                      normalization=NORMALIZATION,\n"
        "                      max_new_tokens=MAX_NEW_TOKENS, batch_size=4, do_sample=SAMPLE,\n"
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
