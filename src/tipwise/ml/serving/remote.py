"""A `Scorer` that asks a `tipwise ml-serve` process."""

from __future__ import annotations

from collections.abc import Sequence

import httpx

from tipwise.kernel.errors import TipwiseError
from tipwise.ml.serving.policies import Features
from tipwise.ml.serving.registry import RankedDecision
from tipwise.ml.serving.wire import ScoreRequest, ScoreResponse


class ScorerUnavailable(TipwiseError):
    status = 503
    code = "scorer_unavailable"


class HttpScorer:
    """Scores over HTTP with a pooled keep-alive client; fails fast with a 503 problem."""

    def __init__(self, base_url: str, *, timeout: float = 2.0, transport: httpx.BaseTransport | None = None) -> None:
        self._client = httpx.Client(base_url=base_url.rstrip("/"), timeout=timeout, transport=transport)

    def decide(
        self, *, context: Features, candidates: Sequence[Features], seed: int, explore: bool = True
    ) -> RankedDecision:
        request = ScoreRequest(
            context=dict(context), candidates=[dict(c) for c in candidates], seed=seed, explore=explore
        )
        try:
            response = self._client.post(
                "/v1/score", content=request.model_dump_json(), headers={"content-type": "application/json"}
            )
        except httpx.HTTPError as exc:
            raise ScorerUnavailable(f"the scoring service did not answer: {type(exc).__name__}") from exc
        if response.status_code != 200:
            raise ScorerUnavailable(f"the scoring service answered {response.status_code}")
        return ScoreResponse.model_validate_json(response.content).ranked()

    def close(self) -> None:
        self._client.close()
