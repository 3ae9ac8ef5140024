"""Care-plan rules: a JSON document validated on load, compiled into frozen rule objects.

The shipped rules are ``attach_fhir/data/careplan-rules.json``; a clinic passes its own file to
``load_rules(path)``. Every problem is reported at once, each naming the key it is about.
"""

from __future__ import annotations

import string
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from fnmatch import fnmatchcase
from functools import cache
from pathlib import Path
from typing import Any

from jsonschema import Draft202012Validator

from attach_fhir.canonical import BASE
from attach_fhir.errors import AttachError
from attach_fhir.goal_target import ReliableChange
from attach_fhir.lifestage import LifeStage, Role
from attach_fhir.rule_files import read_clinic_file, read_shipped

ACTIVITIES_SYSTEM = f"{BASE}/CodeSystem/attach-activities"
SCHEMA_RESOURCE = "schema/careplan-rules.schema.json"
SHIPPED_RULES = "data/careplan-rules.json"

_UNITS = {"d": ("day", "days"), "wk": ("week", "weeks"), "mo": ("month", "months")}
_GOAL_FIELDS = frozenset({"measure", "baseline", "target", "due"})
_ACTIVITY_FIELDS = frozenset({"timing"})


class InvalidCarePlanRules(AttachError):
    """The rules document breaks the schema or refers to something it does not define."""

    code = "invalid_careplan_rules"
    description = "The care-plan rules are invalid."
    status_code = 500

    def __init__(self, problems: list[str], source: str) -> None:
        super().__init__(
            f"Invalid care-plan rules in {source}: " + "; ".join(problems), problems=problems
        )
        self.problems = problems


@dataclass(frozen=True, slots=True)
class Condition:
    """When a rule applies: every given key must hold; ``any_of`` needs one branch to hold."""

    life_stages: frozenset[LifeStage] | None = None
    roles: frozenset[Role] | None = None
    focuses: frozenset[str] | None = None
    scores_any: tuple[str, ...] | None = None
    any_of: tuple[Condition, ...] | None = None

    def holds(
        self,
        stage: LifeStage | None,
        roles: frozenset[Role],
        focuses: frozenset[str],
        scores: Iterable[str],
    ) -> bool:
        """Whether the condition holds for this patient, focus and set of available scores."""
        codes = tuple(scores)
        if self.life_stages is not None and stage not in self.life_stages:
            return False
        if self.roles is not None and not self.roles & roles:
            return False
        if self.focuses is not None and not self.focuses & focuses:
            return False
        if self.scores_any is not None and not any(matches(c, self.scores_any) for c in codes):
            return False
        return self.any_of is None or any(
            c.holds(stage, roles, focuses, codes) for c in self.any_of
        )


ALWAYS = Condition()


@dataclass(frozen=True, slots=True)
class Timing:
    """A FHIR ``Timing.repeat``: ``frequency`` times per ``period`` ``period_unit``."""

    frequency: int
    period: int
    period_unit: str
    count: int | None = None
    duration_minutes: int | None = None

    def phrase(self) -> str:
        """The timing in plain words, e.g. ``every 8 weeks`` or ``twice a week``."""
        one, many = _UNITS[self.period_unit]
        if self.frequency == 1:
            text = f"every {one}" if self.period == 1 else f"every {self.period} {many}"
        else:
            times = "twice" if self.frequency == 2 else f"{self.frequency} times"
            text = f"{times} a {one}" if self.period == 1 else f"{times} every {self.period} {many}"
        if self.count is not None:
            text += f", {self.count} times in all"
        if self.duration_minutes is not None:
            text += f", about {self.duration_minutes} minutes each time"
        return text


@dataclass(frozen=True, slots=True)
class ActivityRule:
    """One activity the proposal may contain, and when."""

    id: str
    code: str
    system: str
    display: str
    description: str
    performers: tuple[str, ...]
    timing: Timing
    when: Condition
    goal_scores: tuple[str, ...]
    instantiates_assessments: bool


@dataclass(frozen=True, slots=True)
class CarePlanRules:
    """The compiled rules document."""

    version: str
    horizon_weeks: int
    target_method: str
    fraction: float
    decimals: int
    target_form: str
    default_scores: tuple[str, ...]
    goal_text: Mapping[str, str]
    focuses: Mapping[str, tuple[str, tuple[str, ...]]]
    reliable_change: Mapping[str, ReliableChange]
    activities: tuple[ActivityRule, ...]

    def focus_display(self, focus: str) -> str:
        """The human name of a focus code."""
        return self.focuses[focus][0]


def matches(code: str, patterns: Iterable[str]) -> bool:
    """Whether a score code matches any of the shell-style patterns (``ecr-rs-*``)."""
    return any(fnmatchcase(code, p) for p in patterns)


@cache
def _validator() -> Draft202012Validator:
    return Draft202012Validator(read_shipped(SCHEMA_RESOURCE))


def _where(path: Iterable[Any]) -> str:
    return "/".join(str(p) for p in path) or "(root)"


def _placeholders(text: str) -> set[str]:
    return {field for _, field, _, _ in string.Formatter().parse(text) if field is not None}


def _semantic_problems(doc: Mapping[str, Any]) -> list[str]:
    problems = []
    for key, text in doc["goals"]["text"].items():
        unknown = _placeholders(text) - _GOAL_FIELDS
        if unknown:
            problems.append(f"goals/text/{key}: unknown placeholder(s) {sorted(unknown)}")
    seen: set[str] = set()
    for i, activity in enumerate(doc["activities"]):
        if activity["id"] in seen:
            problems.append(f"activities/{i}/id: {activity['id']!r} is used twice")
        seen.add(activity["id"])
        unknown = _placeholders(activity["description"]) - _ACTIVITY_FIELDS
        if unknown:
            problems.append(f"activities/{i}/description: unknown placeholder(s) {sorted(unknown)}")
        problems.extend(_undefined_focuses(activity.get("when"), f"activities/{i}/when", doc))
    return problems


def _undefined_focuses(
    when: Mapping[str, Any] | None, where: str, doc: Mapping[str, Any]
) -> list[str]:
    if when is None:
        return []
    problems = [
        f"{where}/focuses: focus {focus!r} is not defined under focuses"
        for focus in when.get("focuses", ())
        if focus not in doc["focuses"]
    ]
    for j, branch in enumerate(when.get("anyOf", ())):
        problems.extend(_undefined_focuses(branch, f"{where}/anyOf/{j}", doc))
    return problems


def _condition(when: Mapping[str, Any] | None) -> Condition:
    if when is None:
        return ALWAYS
    stages, roles, focuses = when.get("lifeStages"), when.get("roles"), when.get("focuses")
    return Condition(
        life_stages=frozenset(LifeStage(s) for s in stages) if stages else None,
        roles=frozenset(Role(r) for r in roles) if roles else None,
        focuses=frozenset(focuses) if focuses else None,
        scores_any=tuple(when["scoresAny"]) if "scoresAny" in when else None,
        any_of=tuple(_condition(b) for b in when["anyOf"]) if "anyOf" in when else None,
    )


def parse_rules(document: Mapping[str, Any], source: str = "care-plan rules") -> CarePlanRules:
    """Validate a rules document against the schema and compile it."""
    errors = sorted(
        _validator().iter_errors(document), key=lambda e: list(map(str, e.absolute_path))
    )
    problems = [f"{_where(e.absolute_path)}: {e.message}" for e in errors]
    if problems:
        raise InvalidCarePlanRules(problems, source)
    problems = _semantic_problems(document)
    if problems:
        raise InvalidCarePlanRules(problems, source)
    goals, target = document["goals"], document["goals"]["target"]
    activities = tuple(
        ActivityRule(
            id=a["id"],
            code=a["code"],
            system=a.get("system", ACTIVITIES_SYSTEM),
            display=a["display"],
            description=a["description"],
            performers=tuple(a["performers"]),
            timing=Timing(
                frequency=a["timing"]["frequency"],
                period=a["timing"]["period"],
                period_unit=a["timing"]["periodUnit"],
                count=a["timing"].get("count"),
                duration_minutes=a["timing"].get("durationMinutes"),
            ),
            when=_condition(a.get("when")),
            goal_scores=tuple(a.get("goalScores", ())),
            instantiates_assessments=bool(a.get("instantiatesAssessments", False)),
        )
        for a in document["activities"]
    )
    return CarePlanRules(
        version=document["version"],
        horizon_weeks=goals["horizonWeeks"],
        target_method=target["method"],
        fraction=float(target["fraction"]),
        decimals=target["decimals"],
        target_form=target["form"],
        default_scores=tuple(goals["defaultScores"]),
        goal_text=dict(goals["text"]),
        focuses={k: (v["display"], tuple(v["goalScores"])) for k, v in document["focuses"].items()},
        reliable_change={
            code: ReliableChange(amount=float(v["amount"]), citation=v["citation"])
            for code, v in document.get("reliableChange", {}).items()
        },
        activities=activities,
    )


def load_rules(path: str | Path | None = None) -> CarePlanRules:
    """The rules from a clinic's own file, or the shipped rules when ``path`` is None."""
    if path is None:
        return shipped_rules()
    document, source = read_clinic_file(path, InvalidCarePlanRules)
    return parse_rules(document, source)


@cache
def shipped_rules() -> CarePlanRules:
    """The rules shipped with attach-fhir (read once)."""
    return parse_rules(read_shipped(SHIPPED_RULES), SHIPPED_RULES)
