"""Review sample design: every flagged conversation, plus a stratified sample of the rest.

The flagged conversations (any category) form a census stratum, inclusion probability 1.
The unflagged ones are split into bands of the screen's highest score (conversations just
under the threshold are where misses hide, so they are sampled more densely) and a simple
random sample without replacement is drawn in each band. Every selected conversation carries
its stratum and inclusion probability; the review order interleaves all strata at random so
a reviewer cannot tell flagged from unflagged by position.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np
import pandas as pd

FLAGGED_STRATUM = "flagged"


@dataclass(frozen=True)
class Band:
    """Unflagged conversations whose highest screen score is at least ``min_score``."""

    name: str
    min_score: float
    rate: float


@dataclass(frozen=True)
class SamplingPlan:
    """How the unflagged conversations are sampled for review."""

    bands: tuple[Band, ...] = field(
        default_factory=lambda: (
            Band("unflagged-elevated", 0.15, 0.10),
            Band("unflagged-low", 0.0, 0.02),
        )
    )
    min_per_stratum: int = 30
    seed: int = 20260105

    def __post_init__(self) -> None:
        if not self.bands:
            raise ValueError("a sampling plan needs at least one band")
        names = [b.name for b in self.bands]
        if len(set(names)) != len(names) or FLAGGED_STRATUM in names:
            raise ValueError(f"band names must be unique and not {FLAGGED_STRATUM!r}: {names}")
        for band in self.bands:
            if not 0.0 <= band.rate <= 1.0:
                raise ValueError(f"band {band.name}: rate {band.rate} is not in [0, 1]")
        scores = [b.min_score for b in self.bands]
        if len(set(scores)) != len(scores):
            raise ValueError(f"two bands start at the same score: {sorted(scores)}")
        if min(scores) > 0.0:
            raise ValueError("the lowest band must start at min_score 0 so every unit has one")

    def to_dict(self) -> dict[str, object]:
        """JSON-ready form (part of the run configuration)."""
        return asdict(self)

    @classmethod
    def from_rates(cls, spec: str, *, seed: int, min_per_stratum: int = 30) -> SamplingPlan:
        """Parse ``"name:min_score:rate,..."`` (the CLI form)."""
        bands = []
        for part in spec.split(","):
            try:
                name, min_score, rate = part.split(":")
                bands.append(Band(name.strip(), float(min_score), float(rate)))
            except ValueError:
                raise ValueError(
                    f"bad stratum {part!r}: expected name:min_score:rate, e.g. low:0:0.02"
                ) from None
        return cls(tuple(bands), min_per_stratum, seed)


def assign_strata(frame: pd.DataFrame, plan: SamplingPlan) -> pd.Series:
    """The stratum of every conversation (``frame`` has ``flagged`` and ``max_score``)."""
    strata = pd.Series(FLAGGED_STRATUM, index=frame.index, dtype="object")
    unassigned = ~frame["flagged"].astype(bool)
    for band in sorted(plan.bands, key=lambda b: -b.min_score):
        here = unassigned & (frame["max_score"] >= band.min_score)
        strata[here] = band.name
        unassigned &= ~here
    return strata


def draw_review_sample(
    frame: pd.DataFrame, plan: SamplingPlan
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Select conversations for review.

    Args:
        frame: One row per screened conversation with columns ``id``, ``flagged`` (any
            category) and ``max_score`` (highest category score).
        plan: The sampling plan.

    Returns:
        ``(queue, strata)``: the selected conversations with ``id``, ``stratum``,
        ``inclusion_prob`` and ``review_order``; and per stratum ``population``, ``sampled``,
        ``rate`` and ``census``.
    """
    rng = np.random.default_rng(plan.seed)
    strata = assign_strata(frame, plan)
    chosen: list[pd.DataFrame] = []
    summary = []
    rates = {b.name: b.rate for b in plan.bands} | {FLAGGED_STRATUM: 1.0}
    for name in [FLAGGED_STRATUM, *[b.name for b in plan.bands]]:
        members = frame.loc[strata == name, ["id"]]
        population = len(members)
        if name == FLAGGED_STRATUM:
            size = population
        else:
            wanted = round(rates[name] * population)
            if rates[name] > 0:  # a zero rate means "do not sample this band"
                wanted = max(plan.min_per_stratum, wanted)
            size = min(population, wanted)
        picked = rng.choice(population, size=size, replace=False) if size else np.empty(0, int)
        selection = members.iloc[np.sort(np.asarray(picked, dtype=int))].copy()
        selection["stratum"] = name
        selection["inclusion_prob"] = size / population if population else 1.0
        chosen.append(selection)
        summary.append(
            {
                "stratum": name,
                "population": population,
                "sampled": size,
                "rate": rates[name],
                "census": size == population,
            }
        )
    queue = pd.concat(chosen, ignore_index=True)
    queue["review_order"] = rng.permutation(len(queue)) + 1
    queue = queue.sort_values("review_order", ignore_index=True)
    return queue, pd.DataFrame(summary)
