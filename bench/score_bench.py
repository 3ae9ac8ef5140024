"""Responses per second: the Python scorer vs fhirpathpy evaluating the same SDC expressions.

Run: ``.venv/bin/python bench/score_bench.py [--responses 10000] [--peer-subset 300]``.

Both sides score the same seeded, complete ECR-R QuestionnaireResponses (dicts, already parsed)
on one core, timed in CPU seconds of this single-threaded process. The Python side is
``Scorer.score`` (input checks included) on all of them; the peer is fhirpathpy evaluating the
Questionnaire's own root ``variable``s and ``calculatedExpression``s as an SDC renderer does,
each expression compiled once up front. fhirpathpy is slow, so it runs on the first
``--peer-subset`` responses and its rate is per response on that subset. The two must agree on
every response of the subset.
"""

from __future__ import annotations

import argparse
import gc
import random
import statistics
import sys
import time
from collections.abc import Callable
from decimal import Decimal
from typing import Any

from fhirpathpy import compile as fhirpath_compile
from fhirpathpy.models import models

from attach_fhir.canonical import questionnaire_url
from attach_fhir.expressions import calculated_items, root_variables
from attach_fhir.instruments import library
from attach_fhir.scoring import Scorer

Json = dict[str, Any]
TARGET_RATE = 20_000
TARGET_RATIO = 100


def generate(questionnaire: Json, count: int, seed: int) -> list[Json]:
    """``count`` complete responses, every answer drawn uniformly from the item's options."""
    rng = random.Random(seed)
    canonical = f"{questionnaire['url']}|{questionnaire['version']}"
    items = [i for i in questionnaire["item"] if i["type"] == "choice" and not i.get("readOnly")]
    return [
        {
            "resourceType": "QuestionnaireResponse",
            "questionnaire": canonical,
            "status": "completed",
            "item": [
                {
                    "linkId": item["linkId"],
                    "answer": [
                        {"valueCoding": dict(rng.choice(item["answerOption"])["valueCoding"])}
                    ],
                }
                for item in items
            ],
        }
        for _ in range(count)
    ]


class FhirpathPeer:
    """The Questionnaire's SDC expressions, compiled once, evaluated in renderer order."""

    def __init__(self, questionnaire: Json) -> None:
        model = models["r4"]
        self.variables = [
            (name, fhirpath_compile(expr, model)) for name, expr in root_variables(questionnaire)
        ]
        self.items = [
            (item["linkId"], fhirpath_compile(expr, model))
            for item, expr in calculated_items(questionnaire)
        ]

    def score(self, response: Json) -> dict[str, Any]:
        """linkId of each score item -> its value collection."""
        env: dict[str, Any] = {"resource": response}
        for name, fn in self.variables:
            env[name] = fn(response, dict(env))
        return {link_id: fn(response, dict(env)) for link_id, fn in self.items}


def rate(run: Callable[[], object], count: int, repeat: int) -> tuple[float, float]:
    """(best, median) responses per CPU-second over ``repeat`` runs of ``count`` responses.

    CPU time of this process (one thread, so one core), not wall time: on a shared machine
    other processes' time slices would otherwise count against whichever side runs then.
    """
    seconds = []
    for _ in range(repeat):
        gc.collect()
        start = time.process_time()
        run()
        seconds.append(time.process_time() - start)
    return count / min(seconds), count / statistics.median(seconds)


def agree(python: Any, peer: dict[str, Any], scorer: Scorer) -> bool:
    """The two scorers give the same value for every score of one response."""
    for spec in scorer.model.scores:
        ours = python.scores[spec.code].value
        theirs = peer[spec.link_id]
        if ours is None or len(theirs) != 1:
            return ours is None and not theirs
        value = theirs[0]
        if isinstance(value, int | float | Decimal):
            if abs(float(value) - ours) > 1e-9:
                return False
        elif value != ours:
            return False
    return True


def main(argv: list[str] | None = None) -> int:
    """Print both rates and their ratio."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--responses", type=int, default=10_000)
    parser.add_argument("--peer-subset", type=int, default=300)
    parser.add_argument("--repeat", type=int, default=7, help="timed runs of the Python scorer")
    parser.add_argument("--seed", type=int, default=20_000)
    args = parser.parse_args(argv)

    questionnaire = library().questionnaire(questionnaire_url("ecr-r"))
    responses = generate(questionnaire, args.responses, args.seed)
    subset = responses[: args.peer_subset]
    # The 10,000 parsed responses are long-lived input, not the scorers' garbage: keep the
    # collector from re-scanning them on every full collection (both sides benefit alike).
    gc.freeze()
    scorer = Scorer(questionnaire)
    peer = FhirpathPeer(questionnaire)

    peer_results: list[dict[str, Any]] = []
    peer_best, _ = rate(lambda: peer_results.extend(peer.score(r) for r in subset), len(subset), 1)
    disagreements = sum(
        not agree(scorer.score(r), theirs, scorer)
        for r, theirs in zip(subset, peer_results, strict=True)
    )
    ours_best, ours_median = rate(
        lambda: [scorer.score(r) for r in responses], len(responses), args.repeat
    )
    ratio = ours_median / peer_best

    print(
        f"ECR-R, {len(responses):,} generated responses (seed {args.seed}), one core, "
        f"Python {sys.version.split()[0]}"
    )
    print(
        f"  Python scorer (checks + scores), all {len(responses):,} responses, "
        f"{args.repeat} runs: median {ours_median:,.0f} responses per CPU-second "
        f"({1e6 / ours_median:.1f} us each), best {ours_best:,.0f}/s"
    )
    print(
        f"  fhirpathpy, same expressions compiled once, on the first {len(subset)} responses "
        f"only (it is slow): {peer_best:,.1f} responses per CPU-second "
        f"({1e3 / peer_best:.2f} ms each)"
    )
    print(f"  agreement on the subset: {len(subset) - disagreements}/{len(subset)} responses")
    print(f"  ratio (Python median / fhirpathpy): {ratio:,.0f}x")
    print(
        f"  targets: >= {TARGET_RATE:,} responses/s on one core: "
        f"{'met' if ours_median >= TARGET_RATE else 'NOT met'}; >= {TARGET_RATIO}x: "
        f"{'met' if ratio >= TARGET_RATIO else 'NOT met'}"
    )
    return 1 if disagreements else 0


if __name__ == "__main__":
    sys.exit(main())
