"""The publishing gate: what an app requires of a version before it serves it, and the verdict on one
evaluation (against the live version's, for "no worse than live").

Checks of deterministic metrics block; those of LLM-judged ones (faithfulness, context relevance: judges vary
from run to run) only warn unless ``blocking_judged``. A failed or unscored case (a judge's unusable verdict
included) counts against the error budget, which always blocks: a version that fails cases does not pass by
scoring well on the rest.

Example::

    gate = Gate(test_set="faq", thresholds={"recall": 0.8}, max_drop={"mrr": 0.05}, error_budget=0.0)
    verdict(session, gate, candidate, live)["passed"]
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator
from sqlmodel import Session

from evaluations.compare import compare
from evaluations.metrics import JUDGED, METRICS, MetricSettings
from evaluations.models import Evaluation


class Gate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    test_set: str = Field(min_length=1, max_length=100, description="The test set a version must pass")
    revision: int | None = Field(default=None, ge=1, description="Its revision (default: the newest at each "
                                                                  "publish)")
    settings: MetricSettings = Field(default_factory=MetricSettings)
    thresholds: dict[str, float] = Field(default_factory=dict, description="Metric → the lowest mean that passes")
    max_drop: dict[str, float] = Field(default_factory=dict, description="Metric → how much below the live "
                                                                         "version's mean still passes")
    error_budget: float = Field(default=0.0, ge=0.0, le=1.0, description="The share of cases that may fail or go "
                                                                         "unscored")
    blocking_judged: bool = Field(default=False, description="LLM-judged checks block too (they only warn "
                                                             "otherwise)")

    @model_validator(mode="after")
    def _known(self) -> Gate:
        for where, named in (("thresholds", self.thresholds), ("max_drop", self.max_drop)):
            for metric, value in named.items():
                if metric not in self.settings.metrics:
                    raise ValueError(f"{where}.{metric}: not a metric this gate scores ({', '.join(self.settings.metrics)}"
                                     f"; all: {', '.join((*METRICS, *JUDGED))})")
                if not 0.0 <= value <= 1.0:
                    raise ValueError(f"{where}.{metric}: {value} is off the 0..1 scale every metric here has")
        return self


def verdict(session: Session, gate: Gate, candidate: Evaluation, live: Evaluation | None) -> dict[str, Any]:
    """The gate's checks on ``candidate`` (and against ``live``, the live version's evaluation on the same cases,
    when there is one); passed only when every check passes."""
    summary = candidate.summary
    metrics = summary.get("metrics", {})
    checks = []
    for metric, lowest in sorted(gate.thresholds.items()):
        value = (metrics.get(metric) or {}).get("mean")
        checks.append({"check": f"{metric} ≥ {lowest}", "metric": metric, "value": value, "limit": lowest,
                       "passed": value is not None and value >= lowest})
    if gate.max_drop:
        table = compare(session, live, candidate)["metrics"] if live is not None else {}
        for metric, drop in sorted(gate.max_drop.items()):
            row = table.get(metric)
            if live is None:
                checks.append({"check": f"{metric} no worse than live by more than {drop}", "metric": metric,
                               "value": None, "limit": -drop, "passed": True,
                               "note": "no live version evaluated on these cases: nothing to compare against"})
                continue
            delta = None if row is None else row["delta"]
            checks.append({"check": f"{metric} no worse than live by more than {drop}", "metric": metric,
                           "value": delta, "limit": -drop, "passed": delta is not None and delta >= -drop,
                           "live": row and row["a"], "candidate": row and row["b"]})
    cases = summary.get("cases") or 0
    gated = set(gate.thresholds) | set(gate.max_drop)
    unscored = max([(metrics.get(m) or {}).get("errors", 0) for m in gated] or [0])
    share = (max(summary.get("failed", 0), unscored) / cases) if cases else 1.0
    checks.append({"check": f"failed or unscored cases ≤ {gate.error_budget:.0%}", "metric": "errors",
                   "value": share, "limit": gate.error_budget, "passed": share <= gate.error_budget})
    for check in checks:
        check["blocking"] = check["metric"] not in JUDGED or gate.blocking_judged
    return {"evaluation": candidate.id, "version": candidate.version, "test_set": gate.test_set,
            "revision": candidate.revision, "live_evaluation": live.id if live else None,
            "passed": all(check["passed"] for check in checks if check["blocking"]),
            "warnings": [check["check"] for check in checks if not check["passed"] and not check["blocking"]],
            "checks": checks}
