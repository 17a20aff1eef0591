"""The ReFT study's phase results: small and self-contained, so the notebook draws every figure
from them alone (`reft_study.load(out)`), with no model and nothing recomputed."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from interp.analyses.reft_study_config import ReftStudyConfig
from interp.results import Result


@dataclass
class StudyPlan(Result):
    """Phase 0: the measured timing and the budget (also in `out/plan.json`)."""

    config_class = ReftStudyConfig

    def figure(self):
        from interp.figures.reft_study import budget_figure

        return budget_figure(self)


@dataclass
class StudyTiming(Result):
    """The plan's measurements: RED steps (whole answers, prefix-K) and decoding, wall and CPU."""

    config_class = ReftStudyConfig

    def figure(self):
        import plotly.graph_objects as go

        from interp.figures.common import TEMPLATE

        parts = ("train_full", "train_prefix")
        return go.Figure(
            go.Bar(x=list(parts), y=[self.meta["timing"][p]["seconds_per_step"] for p in parts]),
            layout=dict(title="seconds per RED training step", template=TEMPLATE),
        )


@dataclass
class NumberPhase(Result):
    """Phase 1: where the probe and the sweep are, and x* per swept layer."""

    config_class = ReftStudyConfig

    def figure(self):
        from interp.figures.reft_study import x_star_figure

        return x_star_figure(self)


@dataclass
class TrainingPhase(Result):
    """Phase 2: the pilot curve and the chosen step count, each arm's loss and bias-norm curve."""

    config_class = ReftStudyConfig

    @property
    def steps(self) -> int:
        return int(self.meta["steps"])

    def figure(self):
        from interp.figures.reft_study import loss_curves_figure

        return loss_curves_figure(self)


@dataclass
class EvaluationPhase(Result):
    """Phase 3: GSM8K accuracy (Wilson 95%), length, cap share per arm; paired differences vs base."""

    config_class = ReftStudyConfig

    @property
    def rows(self) -> list[dict[str, Any]]:
        return self.tables["arms"]

    def figure(self):
        from interp.figures.reft_study import accuracy_figure

        return accuracy_figure(self)


@dataclass
class ProjectionPhase(Result):
    """Phase 4: each edit's projection on the sum direction vs x*, and how many sums it breaks."""

    config_class = ReftStudyConfig

    def figure(self):
        from interp.figures.reft_study import projection_figure

        return projection_figure(self)


@dataclass
class SwapPhase(Result):
    """Phase 5: the problem pool, the selection, and the prefix swap's accuracy by k and variant."""

    config_class = ReftStudyConfig

    def figure(self):
        from interp.figures.reft_study import swap_figure

        return swap_figure(self)


@dataclass
class FaithfulnessPhase(Result):
    """Phase 6: per-layer faithfulness of base and each arm, and their differences."""

    config_class = ReftStudyConfig

    def figure(self):
        from interp.figures.reft_study import faithfulness_figure

        return faithfulness_figure(self)


@dataclass
class StudySummary(Result):
    """Phase 7: one table per claim, our numbers with intervals beside the research note's."""

    config_class = ReftStudyConfig

    def markdown(self) -> str:
        from interp.analyses.reft_study_report import summary_markdown

        return summary_markdown(self)

    def figure(self):
        from interp.figures.reft_study import accuracy_figure_from_rows

        return accuracy_figure_from_rows(
            self.tables.get("accuracy", []),
            self.meta.get("model", ""),
            interim="eval_interim_arms" in self.meta,
        )

    def pool_figure(self):
        """Claim 1 on each of the swap's pools against n, beside the research note's RED-all drop
        (from the summary's anchors); interim while the swap runs."""
        from interp.figures.reft_study import pool_figure

        anchors = self.meta["anchors"]
        return pool_figure(
            self.tables["swap_pool"],
            (anchors["red_all"] - anchors["base"]) / 100,
            interim="swap_interim_pools" in self.meta,
        )


PHASE_RESULTS: dict[str, type[Result]] = {
    "plan": StudyPlan,
    "number": NumberPhase,
    "train": TrainingPhase,
    "eval": EvaluationPhase,
    "projection": ProjectionPhase,
    "swap": SwapPhase,
    "faithfulness": FaithfulnessPhase,
    "summary": StudySummary,
}
