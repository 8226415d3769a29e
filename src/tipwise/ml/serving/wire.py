"""The scoring protocol between the recommender and `tipwise ml-serve` (JSON over HTTP).

Floats travel as JSON numbers, which round-trip exactly in Python, so a remote
decision is bit-for-bit the decision the same model makes in process.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from tipwise.ml.serving.policies import Decision
from tipwise.ml.serving.registry import PolicyChoice, RankedDecision


class ScoreRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    context: dict[str, float]
    candidates: list[dict[str, float]] = Field(min_length=1)
    seed: int = Field(ge=0, lt=2**63)
    explore: bool = True


class ChoiceOut(BaseModel):
    policy: str
    policy_version: str
    model_version: int
    index: int
    probabilities: list[float]
    confidence: float
    explored: bool

    @classmethod
    def of(cls, choice: PolicyChoice) -> ChoiceOut:
        return cls(
            policy=choice.policy,
            policy_version=choice.policy_version,
            model_version=choice.model_version,
            index=choice.decision.index,
            probabilities=list(choice.decision.probabilities),
            confidence=choice.decision.confidence,
            explored=choice.decision.explored,
        )

    def choice(self) -> PolicyChoice:
        return PolicyChoice(
            policy=self.policy,
            policy_version=self.policy_version,
            model_version=self.model_version,
            decision=Decision(
                index=self.index,
                probabilities=tuple(self.probabilities),
                confidence=self.confidence,
                explored=self.explored,
            ),
        )


class ScoreResponse(BaseModel):
    live: ChoiceOut
    shadows: list[ChoiceOut]

    @classmethod
    def of(cls, ranked: RankedDecision) -> ScoreResponse:
        return cls(live=ChoiceOut.of(ranked.live), shadows=[ChoiceOut.of(s) for s in ranked.shadows])

    def ranked(self) -> RankedDecision:
        return RankedDecision(live=self.live.choice(), shadows=tuple(s.choice() for s in self.shadows))


class ModelOut(BaseModel):
    name: str
    live: bool
    policy_version: str
    model_version: int
