"""Who a page is for: a patient's own launch never reaches a clinician's page.

Clinician blueprints call ``clinicians_only(bp)``; single views use ``@clinician_page``. A
patient's launch asking for one gets 403 and a friendly page that leads back to their home.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from functools import wraps
from typing import Any, TypeVar

from flask import Blueprint, abort, make_response, render_template, request

from smart_app.web.context import LaunchContext, current_launch

log = logging.getLogger(__name__)

F = TypeVar("F", bound=Callable[..., Any])

#: The patient's home, named by endpoint so that web never imports a flow.
PATIENT_HOME = "patient.home"


def is_patient_launch(launch: LaunchContext) -> bool:
    """True for a patient's own (standalone, patient-role) launch."""
    return launch.record.get("kind") == "patient"


def refuse_patient() -> None:
    """403 with the friendly page when the current request's launch is a patient's own."""
    if not isinstance((request.view_args or {}).get("ctx"), str):
        return
    launch = current_launch()
    if is_patient_launch(launch):
        log.info("audience.refused endpoint=%s", request.endpoint)
        page = render_template("audience.html", launch=launch, home=PATIENT_HOME)
        abort(make_response(page, 403))


def clinicians_only(bp: Blueprint) -> Blueprint:
    """Every page of ``bp`` is refused to a patient's launch."""
    bp.before_request(refuse_patient)
    return bp


def clinician_page(view: F) -> F:
    """One view refused to a patient's launch (for a blueprint both audiences share)."""

    @wraps(view)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        refuse_patient()
        return view(*args, **kwargs)

    return wrapper  # type: ignore[return-value]
