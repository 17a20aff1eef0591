"""Cells of notebooks/reft_study.ipynb: the ReFT study's saved results, every figure, no recomputing."""

from nbformat.v4 import new_code_cell, new_markdown_cell

CELLS = [
    new_markdown_cell(
        "# The ReFT study: trained REDs, GSM8K, the number direction, prefix swap, faithfulness\n\n"
        "Loads what `python -m interp reft-study` saved (every phase under `STUDY/phases/`) and "
        "draws each figure from it; nothing is trained, decoded or probed here. Set the "
        "environment variable `REFT_STUDY` to another study folder. Where no study is saved (a "
        "fresh checkout, CI), the first cell runs the chain at toy sizes on smollm2 so that every "
        "cell has something to draw; smollm2 solves no GSM8K problem, so read those numbers as a "
        "check of the plumbing, not as findings. A study still under way shows the phases it has "
        "saved and says which are missing."
    ),
    new_code_cell(
        "import json\n"
        "import os\n"
        "from pathlib import Path\n\n"
        "from IPython.display import Markdown, display\n\n"
        "from interp.analyses import reft_study\n"
        "from interp.analyses.faithfulness_difference import FaithfulnessComparison\n"
        "from interp.analyses.math_eval import MathEvalResult\n"
        "from interp.analyses.prefix_swap import PrefixSwapResult\n"
        "from interp.figures import reft_study as figures\n"
        "from interp.storage import is_saved\n\n"
        "STUDY = Path(os.environ.get('REFT_STUDY', 'runs/reft_study/qwen2.5-coder-0.5b-instruct'))\n"
        "if not (STUDY / 'phases' / 'summary').is_dir():\n"
        "    import interp\n\n"
        "    STUDY = Path('runs/reft_study_tiny/smollm2-135m-instruct')\n"
        "    reft_study.run(interp.load_model('smollm2-135m-instruct'), STUDY, progress=False,\n"
        "                   **reft_study.TINY_SETTINGS)\n"
        "phases = reft_study.load(STUDY)  # every saved phase, no model needed\n"
        "print(STUDY, sorted(phases))\n\n\n"
        "def saved(phase: str) -> bool:\n"
        '    """Whether `phase` is saved; if not, say how to make it."""\n'
        "    if phase not in phases:\n"
        "        print(f'{phase!r} is not saved yet in {STUDY}: `python -m interp reft-study` '\n"
        "              'goes on where it stopped')\n"
        "    return phase in phases"
    ),
    new_markdown_cell(
        "## 0. The plan: measured step and decoding times, and the budget per phase\n"
        "Written to `plan.json` before anything else ran."
    ),
    new_code_cell(
        "plan = phases['plan'].meta['plan']\n"
        "print(json.dumps({k: plan[k] for k in ('model', 'dtype', 'steps_per_arm', 'test_problems')},"
        " indent=1))\n"
        "print(json.dumps(plan['timing'], indent=1))\n"
        "print(f\"estimated {plan['budget']['total_hours']:.1f} h; power: {plan['power']}\")\n"
        "phases['plan'].figure()"
    ),
    new_markdown_cell("## 1. The number direction: pushes and x*"),
    new_code_cell(
        "if saved('number'):\n"
        "    display(phases['number'].tables['x_star'], phases['number'].figure())"
    ),
    new_markdown_cell(
        "## 2. Training: the pilot's loss curve picks the steps; loss and bias norm of every arm"
    ),
    new_code_cell(
        "if saved('train'):\n"
        "    print(phases['train'].meta['steps_rule'])\n"
        "    display(phases['train'].figure())"
    ),
    new_markdown_cell(
        "## 3. GSM8K: accuracy (Wilson 95%) beside the research note's anchors, each arm minus "
        "base (paired bootstrap 95%), and where KL-budget decoding stopped editing"
    ),
    new_code_cell(
        "if saved('eval'):\n"
        "    display(phases['eval'].figure())\n"
        "    kl_arm = STUDY / 'eval' / reft_study.KL_ARM  # the KL arm's own answers\n"
        "    display(figures.kl_stops_figure(MathEvalResult.load(kl_arm)))"
    ),
    new_markdown_cell(
        "## 4. The trained RED-all on the sum direction, against x* and random REDs of the same "
        "bias norm; how many sums each breaks"
    ),
    new_code_cell(
        "if saved('projection'):\n"
        "    display(phases['projection'].tables['edits'], phases['projection'].figure())"
    ),
    new_markdown_cell("## 5. Prefix swap: the trained RED-all writes k tokens, the base continues"),
    new_code_cell(
        "# claim 1 again on each pool the swap decoded (RED-all against base, paired), from the\n"
        "# summary: it is there while the swap still runs, marked interim\n"
        "if len(phases['summary'].tables.get('swap_pool', [])) >= 2:\n"
        "    display(phases['summary'].pool_figure())\n"
        "if saved('swap'):\n"
        "    print(phases['swap'].meta)\n"
        "    # accuracy by k and variant; the control splits each cell by whether RED-all's first\n"
        "    # k tokens are the base model's own (dotted in the figure: the prefix differs)\n"
        "    display(phases['swap'].tables['accuracy'], phases['swap'].tables.get('own_prefix'),\n"
        "            phases['swap'].figure())\n"
        "    # how close each arm's prefix stays to the gold answer, judged by the unedited model\n"
        "    if is_saved(STUDY / 'swap' / 'run' / 'swap'):\n"
        "        display(PrefixSwapResult.load(STUDY / 'swap' / 'run' / 'swap').closeness_figure())"
    ),
    new_markdown_cell("## 6. Number faithfulness: base vs the trained arms"),
    new_code_cell(
        "if saved('faithfulness'):\n"
        "    arm = phases['faithfulness'].tables['likelihood'][0]['arm']\n"
        "    display(phases['faithfulness'].figure(),\n"
        "            FaithfulnessComparison.load(STUDY / 'faithfulness' / f'difference_{arm}').figure())"
    ),
    new_markdown_cell(
        "## 7. The summary table (of the phases saved when it was last made: "
        "`python -m interp reft-study --phases summary` makes it again)"
    ),
    new_code_cell("Markdown(phases['summary'].markdown())"),
]
