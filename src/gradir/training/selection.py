"""Never hand back a worse model: choose among the base, each epoch and their interpolations.

Every candidate is scored on the held-out validation set (:mod:`gradir.training.validation`):
the base model before training, the model at the end of each epoch (and, with
``validate_every`` N, after every N optimiser steps), and then points on the line between
the base weights θ₀ and the best-scoring checkpoint's θ₁ (WiSE-FT, Wortsman et al.,
"Robust fine-tuning of zero-shot models", CVPR 2022; the same weight averaging as
FlagEmbedding's LM-Cocktail):

    θ_α = (1 − α)·θ₀ + α·θ₁,      α ∈ ALPHAS (α = 0 is the base, α = 1 the tuned model)

The α with the highest validation nDCG@10 wins; a tie goes to the smaller α (closer to
the base). When α = 0 wins the output is the base model and the run says so. When every
candidate scores exactly what the base scores (:func:`undecided`: a handful of held-out
queries, each ranking a few documents the base already orders as the teacher does), the
base is handed back by the tie rule rather than on evidence, and the run says that too.

With ``average_checkpoints`` k ≥ 2 (``EpochScores(keep=k)``), θ₁ may also be the uniform
average of the k best-scoring checkpoints of the run (a soup of one trajectory: Izmailov
et al., "Averaging Weights Leads to Wider Optima and Better Generalization", UAI 2018;
Wortsman et al., "Model soups", ICML 2022), when it scores higher on the validation set
than the best single checkpoint:

    θ̄ = 1/k Σ_{c ∈ top-k} θ_c

It costs one more validation score and k copies of the weights in memory.

An optional confirmation test (``confirm_level`` < 1) guards against handing back a model
whose held-out edge may be chance: the winner is kept only when it beats the base in a
one-sided paired randomisation test over the held-out queries' nDCG@10,

    H0: mean_q (nDCG@10_q(θ_α) − nDCG@10_q(θ₀)) ≤ 0,    kept when p < confirm_level,

else the output is the base and the run says why. The winner was chosen on the same
queries, so the p-value is optimistic; the test trades expected gain for fewer
regressions (benchmarks/selection_confirmation.py replays it on finished runs).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

from gradir.models import token_limit
from gradir.training.validation import ValidationSet

if TYPE_CHECKING:
    from gradir.evaluation.compare import PairedComparison


def snapshot(model) -> dict[str, Any]:
    """A detached CPU copy of a model's weights."""
    return {name: tensor.detach().to("cpu", copy=True) for name, tensor in model.state_dict().items()}


def interpolate(base: dict[str, Any], tuned: dict[str, Any], alpha: float) -> dict[str, Any]:
    """θ_α = (1 − α)·θ₀ + α·θ₁ for floating-point tensors; other tensors (e.g. position ids) from θ₁."""
    return {
        name: (base[name] + alpha * (value - base[name])) if value.is_floating_point() else value
        for name, value in tuned.items()
    }


@dataclass
class Selection:
    """What was scored on the validation set and what was chosen."""

    validation: dict[str, int]
    base: float
    epochs: list[dict[str, float]] = field(default_factory=list)  # {"epoch", "step", "ndcg@10"}
    interpolation: list[dict[str, float]] = field(default_factory=list)  # {"alpha", "ndcg@10"}
    chosen_epoch: float | None = None
    chosen_step: int | None = None  # the checkpoint interpolated with the base (the best-scoring one)
    average: dict[str, Any] = field(default_factory=dict)  # {"steps", "ndcg@10", "chosen"}: the top-k soup, when scored
    alpha: float = 1.0
    score: float = 0.0
    # The confirmation test of the winner against the base, when one was run:
    # {"level", "alpha", "ndcg@10", "gain", "wins", "losses", "p", "kept"}
    confirmation: dict[str, Any] = field(default_factory=dict)

    @property
    def output(self) -> str:
        return "base" if self.alpha == 0 else ("tuned" if self.alpha == 1 else "interpolated")

    def summary(self) -> dict[str, Any]:
        summary = {**asdict(self), "output": self.output}
        return {**summary, "undecided": undecided(summary)}

    def sentence(self) -> str:
        tuned = max((e["ndcg@10"] for e in self.epochs), default=self.base)
        if (summary := self.summary())["undecided"]:
            return f"validation: {undecided_sentence(summary)}"
        if rejected(summary):
            return f"validation: {rejected_sentence(summary)}"
        if self.output == "base":
            return (f"validation: the base model scored best (nDCG@10 {self.base:.4f}; tuned {tuned:.4f}); "
                    "the output is the base model, unchanged")
        soup = (f", average of steps {', '.join(map(str, self.average['steps']))} {self.average['ndcg@10']:.4f}"
                f"{' (interpolated from)' if self.average['chosen'] else ''}" if self.average else "")
        return (f"validation: nDCG@10 base {self.base:.4f}, tuned {tuned:.4f}{soup}, chosen α = {self.alpha:g} "
                f"({self.output}) {self.score:.4f}")


def undecided(selection: dict[str, Any]) -> bool:
    """Whether every scored candidate (checkpoints, their average, interpolations) scored what the
    base scored: the validation set could not tell the models apart, so the base won a tie."""
    scores = [c["ndcg@10"] for c in selection.get("epochs", []) + selection.get("interpolation", [])]
    if selection.get("average"):
        scores.append(selection["average"]["ndcg@10"])
    if not scores:
        return False
    return all(math.isclose(score, selection["base"], rel_tol=0, abs_tol=1e-9) for score in scores)


def rejected(selection: dict[str, Any]) -> bool:
    """Whether a model that beat the base on the validation set was sent back by the confirmation test."""
    return bool(selection.get("confirmation")) and not selection["confirmation"]["kept"]


def rejected_sentence(selection: dict[str, Any]) -> str:
    """Why the base was handed back although a tuned model scored higher on the validation set."""
    test = selection["confirmation"]
    return (f"the best model (α = {test['alpha']:g}, nDCG@10 {test['ndcg@10']:.4f}) beat the base ({selection['base']:.4f}) "
            f"by {test['gain'] * 100:+.2f} points on {validation_source(selection['validation'])} "
            f"({test['wins']} queries better, {test['losses']} worse), which is not significant "
            f"(one-sided paired randomisation p = {test['p']:.3f}, level {test['level']:g}): "
            "the output is the base model, unchanged")


def validation_source(validation: dict[str, Any]) -> str:
    """Where the validation queries came from: held out of the training judgments, or a file of their own."""
    if validation.get("file"):
        queries = f"{validation['queries']} {'query' if validation['queries'] == 1 else 'queries'}"
        return f"{queries} of {validation['file']}, {validation['judged_pairs']} judged pairs"
    return f"{validation['queries']} held-out queries, {validation['judged_pairs']} teacher-graded pairs"


def undecided_sentence(selection: dict[str, Any]) -> str:
    """What an undecided selection means and what gives the validation set resolution."""
    remedy = ("More validation queries, or more judged documents per query, give it"
              if selection["validation"].get("file") else
              "More held-out queries or more graded candidates per held-out query "
              "(generate.passages, mine.validation_top_k) give it")
    return (f"every model scored what the base scored (nDCG@10 {selection['base']:.4f} on "
            f"{validation_source(selection['validation'])}), so the "
            f"validation set cannot tell them apart and the output is the base model, unchanged. {remedy} "
            "the resolution to choose.")


def average(states: list[dict[str, Any]]) -> dict[str, Any]:
    """The uniform mean of several state dicts (floating-point tensors; others from the first)."""
    first = states[0]
    return {
        name: (sum(state[name] for state in states) / len(states)) if value.is_floating_point() else value
        for name, value in first.items()
    }


def tuned_checkpoint(selection: dict[str, Any]) -> int | None:
    """The step of the checkpoint the interpolations start from, when more than one was scored and
    no average of checkpoints replaced it (else None)."""
    if selection.get("average", {}).get("chosen"):
        return None
    return selection.get("chosen_step") if len(selection.get("epochs", [])) > 1 else None


def average_label(steps: list[int]) -> str:
    """How tables name an average of checkpoints: ``avg(180,210,300)``."""
    return f"avg({','.join(map(str, steps))})"


def tuned_source(selection: dict[str, Any]) -> str | None:
    """What the interpolations start from, as tables name it: ``avg(steps)`` when the average of
    checkpoints was chosen, the checkpoint's step when more than one was scored, else None."""
    averaged = selection.get("average", {})
    if averaged.get("chosen"):
        return average_label(averaged["steps"])
    step = tuned_checkpoint(selection)
    return None if step is None else str(step)


def average_row(selection: dict[str, Any]) -> tuple[str, str, float] | None:
    """(label, weights, nDCG@10) of the scored average of checkpoints, for the model card and the report."""
    scored = selection.get("average")
    if not scored:
        return None
    return (f"average of steps {', '.join(map(str, scored['steps']))}", "θ_tuned" if scored["chosen"] else "",
            scored["ndcg@10"])


class EpochScores:
    """Scores the model at the end of each epoch (and every ``every`` steps; 0: epochs only) and
    keeps a copy of the weights of the ``keep`` best-scoring ones (at least the best).

    ``output_limit``: the token limit the output model keeps. A run may train under a lower
    limit (``max_seq_length``); each checkpoint is scored under the output's limit, as the
    base and the interpolations are, so that all candidates are compared reading the same
    text. Scores kept in memory: a resumed run scores only the checkpoints it reaches itself.
    """

    def __init__(self, model, validation: ValidationSet, selection: Selection, every: int = 0,
                 output_limit: int | None = None, keep: int = 1):
        self.model, self.validation, self.selection = model, validation, selection
        self.every, self.output_limit, self.keep = every, output_limit, max(1, keep)
        self.kept: list[tuple[float, int, dict[str, Any]]] = []  # (score, step, weights), best first
        self.scored_steps: set[int] = set()

    @property
    def best_state(self) -> dict[str, Any] | None:
        return self.kept[0][2] if self.kept else None

    @property
    def best_score(self) -> float:
        return self.kept[0][0] if self.kept else float("-inf")

    def score(self, epoch: float, step: int) -> None:
        if step in self.scored_steps:
            return
        self.scored_steps.add(step)
        with token_limit(self.model, self.output_limit):
            value = self.validation.score(self.model)
        self.selection.epochs.append({"epoch": round(epoch, 3), "step": step, "ndcg@10": value})
        if value > self.best_score:
            self.selection.chosen_epoch, self.selection.chosen_step = round(epoch, 3), step
        if len(self.kept) < self.keep or value > self.kept[-1][0]:
            self.kept.append((value, step, snapshot(self.model)))
            self.kept.sort(key=lambda kept: -kept[0])  # stable: an earlier checkpoint keeps its place in a tie
            del self.kept[self.keep:]

    def callback(self):
        from transformers import TrainerCallback

        scores = self

        class ScoreCheckpoints(TrainerCallback):
            def on_step_end(self, args, state, control, **kwargs):
                if scores.every and state.global_step % scores.every == 0:
                    scores.score(state.epoch or 0.0, state.global_step)

            def on_epoch_end(self, args, state, control, **kwargs):
                scores.score(state.epoch or 0.0, state.global_step)

        return ScoreCheckpoints()


def choose(model, base_state: dict[str, Any], epochs: EpochScores, alphas: tuple[float, ...],
           confirm_level: float = 1.0) -> Selection:
    """Score the interpolations between the base and the best checkpoint (or the average of the
    kept ones, when it scores higher), load the winner into ``model``; with ``confirm_level`` < 1,
    the base instead when the winner's gain over it fails the confirmation test."""
    selection = epochs.selection
    tuned_state = epochs.best_state if epochs.best_state is not None else snapshot(model)
    tuned_score = epochs.best_score if epochs.best_state is not None else None
    if len(epochs.kept) >= 2:
        soup = average([state for _, _, state in epochs.kept])
        model.load_state_dict(soup)
        soup_score = epochs.validation.score(model)
        chosen = soup_score > epochs.best_score
        selection.average = {"steps": sorted(step for _, step, _ in epochs.kept), "ndcg@10": soup_score, "chosen": chosen}
        if chosen:
            tuned_state, tuned_score = soup, soup_score
    curve = {0.0: selection.base, 1.0: tuned_score}
    for alpha in sorted({0.0, 1.0, *alphas}):
        if curve.get(alpha) is None:
            model.load_state_dict(interpolate(base_state, tuned_state, alpha))
            curve[alpha] = epochs.validation.score(model)
    selection.interpolation = [{"alpha": a, "ndcg@10": curve[a]} for a in sorted(curve)]
    best = max(sorted(curve), key=lambda a: (curve[a], -a))
    selection.alpha, selection.score = best, curve[best]
    model.load_state_dict(interpolate(base_state, tuned_state, best))
    if best > 0 and confirm_level < 1:
        selection.confirmation = confirm(model, base_state, epochs.validation, confirm_level) | {"alpha": best}
        if not selection.confirmation["kept"]:
            selection.alpha, selection.score = 0.0, selection.base
        model.load_state_dict(interpolate(base_state, tuned_state, selection.alpha))
    return selection


def confirmation_test(base: dict[str, float], tuned: dict[str, float]) -> PairedComparison:
    """The one-sided paired randomisation test of the tuned model's per-query validation nDCG@10
    over the base's (H1: the tuned mean is higher)."""
    from gradir.evaluation.compare import compare_per_query

    return compare_per_query({q: {"ndcg@10": s} for q, s in base.items()}, {q: {"ndcg@10": s} for q, s in tuned.items()},
                             alternative="greater")


def confirm(model, base_state: dict[str, Any], validation: ValidationSet, level: float) -> dict[str, Any]:
    """:func:`confirmation_test` of ``model`` (as loaded) against the base weights on the validation
    queries (this loads the base weights into ``model``)."""
    tuned = validation.per_query(model)
    model.load_state_dict(base_state)
    test = confirmation_test(validation.per_query(model), tuned)
    return {"level": level, "ndcg@10": test.mean_b, "gain": test.delta, "wins": test.wins, "losses": test.losses,
            "p": test.p_randomization, "kept": test.p_randomization < level}
