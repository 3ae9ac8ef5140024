"""The review blueprint: a response's scores with their meaning, the patient's history, print.

URLs live under ``/app/<ctx>/review/`` (see :mod:`smart_app.web.context`):

- ``responses/<qr_id>`` (endpoint ``review.scores``): one QuestionnaireResponse's scores, read
  back from the EHR (the response, and the Observations ``derivedFrom`` it), set against the
  patient's earlier scores for the same instrument.
- ``/`` (``review.history``): every score the patient has, by instrument, across submissions.
- ``.../print``: the same pages without navigation, with a print stylesheet.

Nothing here computes a score: the values are the EHR's Observations; the words are the
instrument's (:mod:`attach_fhir.interpretation`).
"""

from __future__ import annotations

import logging
from typing import Any

from flask import Blueprint, render_template, request, url_for

from attach_fhir import history
from attach_fhir.errors import AttachError
from attach_fhir.human_names import human_name
from attach_fhir.instruments import library
from attach_fhir.interpretation import InstrumentMeaning, explain
from smart_app.records import delivery, score_records
from smart_app.records.receipt import Receipt, describe
from smart_app.records.submission import SUBMISSION_ID
from smart_app.review.figures import targets
from smart_app.review.view import InstrumentView, instrument_view
from smart_app.web.audience import clinicians_only
from smart_app.web.context import LaunchContext, current_launch
from smart_app.web.errors import NoPatient

log = logging.getLogger(__name__)

bp = Blueprint("review", __name__, template_folder="templates", url_prefix="/app/<ctx>/review")
clinicians_only(bp)  # a patient's launch gets the friendly 403 (web.audience)


def _patient(launch: LaunchContext, patient_id: str | None) -> dict[str, str] | None:
    """Name and birth date for the banner (and every printout); None when not readable."""
    if not patient_id or not launch.can("Patient", "r"):
        return None
    try:
        resource = launch.fhir().read("Patient", patient_id)
    except AttachError as exc:
        log.info("review.patient outcome=%s", exc.code)
        return None
    birth = resource.get("birthDate")
    return {"name": human_name(resource.get("name")), "birth_date": str(birth or "")}


def _subject_id(response: dict[str, Any], launch: LaunchContext) -> str | None:
    if launch.patient_id:
        return launch.patient_id
    reference = str((response.get("subject") or {}).get("reference") or "")
    return reference.split("Patient/", 1)[1] if "Patient/" in reference else None


def _skipped(
    launch: LaunchContext,
    patient_id: str | None,
    meaning: InstrumentMeaning | None,
    found: list[history.ScorePoint],
    known: dict[str, Any] | None = None,
) -> dict[str, frozenset[str]]:
    """Submission -> the ECR-RS relationships its response skipped, from the responses.

    ``known`` is a response already read (the one the page shows). The others are read with one
    search; where that is not granted or fails, their missing relationships read "no score
    recorded" instead of "skipped".
    """
    names = targets(meaning, found)
    if not names or meaning is None or not any(s.focus for s in meaning.scores.values()):
        return {}
    out: dict[str, frozenset[str]] = {}
    if known is not None and known.get("id"):
        out[f"QuestionnaireResponse/{known['id']}"] = frozenset(
            history.skipped_targets(known, names)
        )
    prefix = "QuestionnaireResponse/"
    wanted = {
        r.submission.removeprefix(prefix).split("/")[0]
        for r in history.relationship_scores(found)
        if r.submission.startswith(prefix) and r.submission not in out
    }
    if wanted and patient_id and launch.can("QuestionnaireResponse", "s"):
        for response in score_records.responses(launch.fhir(), patient_id, wanted):
            ref = f"{prefix}{response.get('id')}"
            out[ref] = frozenset(history.skipped_targets(response, names))
    return out


def _render(template: str, printable: bool, print_url: str, **context: Any) -> str:
    layout = "review/print_layout.html" if printable else "review/layout.html"
    return render_template(
        template, layout=layout, printable=printable, print_url=print_url, **context
    )


def _receipt(sid: str, response: str) -> Receipt | None:
    """Where the submission ``sid`` went, when it is the one that wrote ``response``."""
    if not SUBMISSION_ID.fullmatch(sid):
        return None
    item = delivery.outbox_services().outbox.store.get(sid)
    if item is None or response not in (item.receipt or {}).values():
        return None
    return describe(item)


def _scores(ctx: str, qr_id: str, printable: bool) -> str:
    launch = current_launch()
    client = launch.fhir()
    response = score_records.read_response(client, qr_id, launch.patient_id)
    lib = library()
    canonical = str(response.get("questionnaire") or "")
    resolved = score_records.resolve_questionnaire(
        client, canonical, lib, launch.can("Questionnaire", "s")
    )
    meaning: InstrumentMeaning | None = None
    if resolved.explains is not None:
        meaning = explain(resolved.explains, lib.score_codes())
    own = score_records.response_observations(client, qr_id, launch.patient_id)
    patient_id = _subject_id(response, launch)
    codes = list(meaning.scores) if meaning else sorted({p.code for p in history.points(own)})
    earlier: list[dict[str, Any]] = []
    if patient_id and launch.can("Observation", "s"):
        earlier = score_records.patient_observations(client, patient_id, codes)
    title = resolved.title or canonical
    found = history.points([*earlier, *own])
    view = instrument_view(
        meaning.id if meaning else "response",
        title,
        meaning,
        found,
        current=f"QuestionnaireResponse/{qr_id}",
        skipped=_skipped(launch, patient_id, meaning, found, response),
    )
    current = f"QuestionnaireResponse/{qr_id}"
    per_relationship = meaning is not None and any(s.focus for s in meaning.scores.values())
    # An ECR-RS with every relationship's gate left unanswered or answered "no" has no scores,
    # by design: say so rather than "no score Observations yet".
    all_skipped = (
        per_relationship
        and not any(p.submission == current for p in found)
        and history.skipped_targets(response) == set(history.TARGETS)
    )
    receipt = _receipt(request.args.get("sid", ""), current) if not printable else None
    log.info("review.scores outcome=ok scores=%d", len(view.rows))
    return _render(
        "review/scores.html",
        printable,
        url_for("review.scores_print", ctx=ctx, qr_id=qr_id),
        launch=launch,
        patient=_patient(launch, patient_id),
        response=response,
        title=title,
        view=view,
        all_skipped=all_skipped,
        receipt=receipt,
        questionnaire_source="EHR" if resolved.ehr is not None else "packaged",
    )


@bp.get("/responses/<qr_id>")
def scores(ctx: str, qr_id: str) -> str:
    """One response's scores, their meaning, and the patient's history for that instrument."""
    return _scores(ctx, qr_id, printable=False)


@bp.get("/responses/<qr_id>/print")
def scores_print(ctx: str, qr_id: str) -> str:
    """The scores page for printing: no navigation, print stylesheet."""
    return _scores(ctx, qr_id, printable=True)


def _history(printable: bool) -> str:
    launch = current_launch()
    if not launch.patient_id:
        raise NoPatient("No patient was selected in the EHR, so there are no scores to review.")
    lib = library()
    instruments = lib.instruments()
    owner = {code: inst for inst in instruments for code in inst.score_codes}
    found = history.points(
        score_records.patient_observations(launch.fhir(), launch.patient_id, list(owner))
    )
    views: list[InstrumentView] = []
    for inst in instruments:
        own = [p for p in found if owner.get(p.code) is inst]
        if own:
            meaning = explain(lib.questionnaire(inst.url), lib.score_codes())
            skipped = _skipped(launch, launch.patient_id, meaning, own)
            views.append(instrument_view(inst.id, inst.title, meaning, own, skipped=skipped))
    log.info("review.history outcome=ok instruments=%d", len(views))
    return _render(
        "review/history.html",
        printable,
        url_for("review.history_print", ctx=launch.id),
        launch=launch,
        patient=_patient(launch, launch.patient_id),
        views=views,
    )


@bp.get("/")
def patient_history(ctx: str) -> str:
    """Every score of the patient in context, by instrument, over time."""
    return _history(printable=False)


@bp.get("/print")
def history_print(ctx: str) -> str:
    """The history page for printing."""
    return _history(printable=True)
