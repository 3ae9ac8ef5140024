"""Closing the Task that assigned a questionnaire, once its response is in the record (pure).

SDC's ``sdc-task`` profile asks for a Questionnaire to be completed with a Task whose ``input``
names it; FHIR Workflow records what a Task produced in ``Task.output``. So a Task is done by a
response when its ``status`` is ``completed`` and an ``output`` of type ``questionnaire-response``
(SDC's temporary code system) holds a ``valueReference`` to the QuestionnaireResponse.

:func:`decide` looks at the Task as the server holds it now and says what to do: nothing (it is
already completed with this response: a retry or a second delivery changes nothing), nothing
(someone else closed it), refuse (it is not this patient's, or not this questionnaire's), or
write the new version built here, with ``If-Match`` on the version that was read.
"""

from __future__ import annotations

import copy
import datetime as dt
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from attach_fhir.assignments import OPEN_TASK, task_questionnaires

SDC_TEMP = "http://hl7.org/fhir/uv/sdc/CodeSystem/temp"
#: ``Task.output.type`` of the response that completes the Task (SDC ``sdc-task``).
RESPONSE_OUTPUT: Mapping[str, str] = {
    "system": SDC_TEMP,
    "code": "questionnaire-response",
    "display": "Questionnaire Response",
}

#: A Task id, status or version id as the app repeats it (FHIR code / id): bounded, no markup.
TASK_WORD = re.compile(r"[A-Za-z0-9\-.]{1,64}")

UPDATE = "update"
DONE = "done"
CLOSED = "closed"
REFUSED = "refused"


@dataclass(frozen=True)
class Decision:
    """What to do with a Task for a delivered response.

    ``action``: ``update`` (write ``task`` with ``If-Match: version``), ``done`` (already
    completed with this response), ``closed`` (closed otherwise: left alone) or ``refused``
    (not this patient's or this questionnaire's, or no version to match); ``reason`` in words.
    """

    action: str
    task: dict[str, Any] | None = None
    version: str | None = None
    reason: str | None = None


def local_reference(reference: str) -> str:
    """``[base/]Type/id[/_history/v]`` -> ``Type/id``."""
    path = urlsplit(reference).path if "://" in reference else reference
    parts = path.split("/_history/")[0].strip("/").split("/")
    return "/".join(parts[-2:])


def response_outputs(task: Mapping[str, Any]) -> list[str]:
    """``Type/id`` of every QuestionnaireResponse the Task's ``output`` references."""
    found = []
    for output in _list(task.get("output")):
        value = output.get("valueReference") if isinstance(output, dict) else None
        reference = value.get("reference") if isinstance(value, dict) else None
        if isinstance(reference, str) and local_reference(reference).startswith(
            "QuestionnaireResponse/"
        ):
            found.append(local_reference(reference))
    return found


def is_open(task: Mapping[str, Any]) -> bool:
    """True when the Task's ``status`` is one of the open ones (a status that is no string,
    as a malformed Task may carry, is not)."""
    status = task.get("status")
    return isinstance(status, str) and status in OPEN_TASK


def completed_with(task: Mapping[str, Any], response: str) -> bool:
    """True when the Task is ``completed`` and its output references ``response``."""
    return task.get("status") == "completed" and local_reference(response) in response_outputs(task)


def is_for(task: Mapping[str, Any], patient: str) -> bool:
    """True when the Task's ``for`` references ``patient`` (``Patient/<id>``)."""
    subject = task.get("for")
    reference = subject.get("reference") if isinstance(subject, dict) else None
    return isinstance(reference, str) and local_reference(reference) == patient


def assignment_problem(task: Mapping[str, Any], patient: str, questionnaire_url: str) -> str | None:
    """Why the Task is not an assignment of ``questionnaire_url`` to ``patient``; None if it is."""
    if not is_for(task, patient):
        return "The task is not this patient's."
    urls = {c.partition("|")[0] for c in task_questionnaires(task)}
    if questionnaire_url.partition("|")[0] not in urls:
        return "The task does not ask for this questionnaire."
    return None


def changed_task(task: Mapping[str, Any], status: str, when: str) -> dict[str, Any]:
    """A copy of the Task read, to write back with a new ``status`` at ``when``: everything else
    as the EHR holds it, but the server's ``meta.versionId``/``lastUpdated`` (If-Match carries
    the version) and a generated narrative. Made from the structured data alone, that narrative
    would still describe the Task as it was; a server that generates narrative makes it again.
    A narrative a person wrote is kept."""
    new = copy.deepcopy(dict(task))
    new["status"] = status
    new["lastModified"] = written_like(task.get("authoredOn"), when)
    if _dict(new.get("text")).get("status") == "generated":
        new.pop("text")
    meta = {
        k: v for k, v in _dict(new.get("meta")).items() if k not in ("versionId", "lastUpdated")
    }
    if meta:
        new["meta"] = meta
    else:
        new.pop("meta", None)
    return new


def written_like(authored: object, when: str, local_zone: dt.tzinfo | None = None) -> str:
    """The instant ``when`` written in the UTC offset of ``authored`` (the Task's
    ``authoredOn``). R4's Task inv-1 wants ``lastModified >= authoredOn``, and servers compare
    the two as they are written (Medplum compares the text). An EHR that wrote its local day
    (``2026-12-06``) gets the app's local offset (``local_zone``, else the process's zone), so
    in a zone ahead of UTC the moment is not read as the day before; one that wrote ``...Z``
    or ``...-05:00`` gets that offset back. The same moment either way; ``when`` as given if
    either does not parse."""
    try:
        moment = dt.datetime.fromisoformat(when)
    except ValueError:
        return when
    if moment.tzinfo is None or not isinstance(authored, str):
        return when
    if re.fullmatch(r"\d{4}(-\d{2}(-\d{2})?)?", authored):
        zone = local_zone or moment.astimezone().tzinfo
    else:
        try:
            zone = dt.datetime.fromisoformat(authored).tzinfo
        except ValueError:
            return when
        if zone is None:
            return when
    text = moment.astimezone(zone).isoformat()
    return text[:-6] + "Z" if text.endswith("+00:00") else text


def completed_task(task: Mapping[str, Any], response: str, when: str) -> dict[str, Any]:
    """The Task as completed by ``response`` at ``when`` (see :func:`changed_task`)."""
    new = changed_task(task, "completed", when)
    reference = local_reference(response)
    if reference not in response_outputs(new):
        output = {
            "type": {"coding": [dict(RESPONSE_OUTPUT)]},
            "valueReference": {"reference": reference},
        }
        new["output"] = [*_list(new.get("output")), output]
    return new


def decide(
    task: Mapping[str, Any], response: str, patient: str, questionnaire_url: str, when: str
) -> Decision:
    """What to write (if anything) to close ``task`` with the delivered ``response``."""
    problem = assignment_problem(task, patient, questionnaire_url)
    if problem:
        return Decision(REFUSED, reason=problem)
    if completed_with(task, response):
        return Decision(DONE)
    version = open_version(task, "The clinic's record already shows the task as", "updated")
    if isinstance(version, Decision):
        return version
    return Decision(UPDATE, task=completed_task(task, response, when), version=version)


def open_version(task: Mapping[str, Any], shown_as: str, action: str) -> str | Decision:
    """The version to write ``task`` at (If-Match), or the Decision not to: it is closed
    (``shown_as`` its status), or it has no version (it cannot be ``action`` safely)."""
    if not is_open(task):
        return Decision(CLOSED, reason=f"{shown_as} {status_word(task)}.")
    version = task_version(task)
    if version is None:
        reason = f"The EHR did not give the task's version, so it cannot be {action} safely."
        return Decision(REFUSED, reason=reason)
    return version


def status_word(task: Mapping[str, Any]) -> str:
    """The Task's status as the app may repeat it to the user, or ``unknown``."""
    status = task.get("status")
    return status if isinstance(status, str) and TASK_WORD.fullmatch(status) else "unknown"


def task_version(task: Mapping[str, Any]) -> str | None:
    """``meta.versionId`` when it is an id: None (no version, or no id) means the Task is not
    written blind, since the value goes into the If-Match header."""
    version = _dict(task.get("meta")).get("versionId")
    return version if isinstance(version, str) and TASK_WORD.fullmatch(version) else None


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}
