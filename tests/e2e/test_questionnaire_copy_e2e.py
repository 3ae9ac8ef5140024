"""The EHR's copy of a Questionnaire against the real sandbox FHIR server: a copy whose answer
labels were swapped is set aside for the packaged instrument, with a notice the clinician reads;
a faithful copy (its own title only) is still the one shown.

The sandbox is this module's own: the tampered ECR-R must not reach other tests. Expected
labels are read from the packaged files, the tampering is done here, by hand.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import httpx
import pytest

from attach_fhir.instruments import library
from ehr_sandbox.runner import Sandbox
from tests.fixtures.sandbox import ehr_copy, ehr_writer
from tests.fixtures.smart_app_server import (
    PRACTITIONER,
    AppServer,
    Browser,
    ehr_launch,
    launch_base,
    registered_app,
)

pytestmark = pytest.mark.e2e

ADULT = "sandbox-adult-29"
#: The PRFQ is a parent's report on a young child: it may fit the 4-year-old, never the adult.
YOUNG_CHILD = "sandbox-child-4"
ECR_R = "http://attach-fhir.org/fhir/Questionnaire/ecr-r|1.0.0"
PRFQ = "http://attach-fhir.org/fhir/Questionnaire/prfq|1.1.0"
EHR_TITLE = "PRFQ as named in the EHR forms library"


@dataclass
class CopyEnv:
    """The module's sandbox and app."""

    sandbox: Sandbox
    server: AppServer


def swapped_labels(canonical: str) -> dict[str, object]:
    """The packaged Questionnaire with each question's first and last answer labels swapped."""
    tampered = ehr_copy(canonical)
    for item in tampered["item"]:
        options = item.get("answerOption")
        if options:
            first, last = options[0]["valueCoding"], options[-1]["valueCoding"]
            first["display"], last["display"] = last["display"], first["display"]
    return tampered


@pytest.fixture(scope="module")
def env(
    sandbox_factory: Callable[..., Sandbox], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[CopyEnv]:
    sandbox = sandbox_factory(with_app=False)
    server = registered_app(sandbox, "symmetric", tmp_path_factory.mktemp("questionnaire-copy-app"))
    with httpx.Client(timeout=30) as http:
        writer = ehr_writer(sandbox, http, PRACTITIONER)
        writer.create(swapped_labels(ECR_R))
        writer.create(ehr_copy(PRFQ, title=EHR_TITLE))
    try:
        yield CopyEnv(sandbox, server)
    finally:
        server.stop()


def launched_for(env: CopyEnv, patient: str) -> tuple[Browser, str]:
    """A browser after an EHR launch for ``patient``; the launch's ``/app/<ctx>`` URL."""
    browser = Browser()
    landing = ehr_launch(browser, env.sandbox, env.server, patient)
    return browser, launch_base(env.server, landing)


@pytest.fixture
def app_base(env: CopyEnv) -> Iterator[tuple[Browser, str]]:
    """A launch for the adult."""
    browser, base = launched_for(env, ADULT)
    yield browser, base
    browser.close()


@pytest.fixture
def child_app_base(env: CopyEnv) -> Iterator[tuple[Browser, str]]:
    """A launch for the young child, whom the PRFQ may fit."""
    browser, base = launched_for(env, YOUNG_CHILD)
    yield browser, base
    browser.close()


def fill_page(app_base: tuple[Browser, str], instrument_id: str) -> str:
    """The fill page of ``instrument_id`` for the launched patient."""
    browser, base = app_base
    page = browser.request("GET", f"{base}/assess/{instrument_id}/")
    assert page.status_code == 200, page.text
    return page.text


def label(page: str, link_id: str, code: str) -> str:
    """The visible label of item ``link_id``'s radio for ``code`` on the fill page."""
    radio = re.search(
        rf'<input type="radio" name="q:{link_id}" value="{code}"[^>]*>(.*?)</label>', page, re.S
    )
    assert radio is not None, f"no radio {link_id}={code}"
    return re.sub(r"<[^>]+>", "", radio.group(1)).strip()


def test_a_copy_with_swapped_labels_is_set_aside_for_the_packaged_wording(
    env: CopyEnv, app_base: tuple[Browser, str]
) -> None:
    page = fill_page(app_base, "ecr-r")
    packaged = library().questionnaire(ECR_R)
    first, last = (packaged["item"][0]["answerOption"][i]["valueCoding"] for i in (0, -1))
    # The packaged wording, not the EHR's swapped one: code 1 is "Strongly disagree".
    assert label(page, "1", first["code"]) == f"{first['code']} {first['display']}"
    assert label(page, "1", last["code"]) == f"{last['code']} {last['display']}"
    notice = re.search(r'id="questionnaire-copy-notice"[^>]*>(.*?)</p>', page, re.S)
    assert notice is not None, "the clinician is told why"
    questions = sum(1 for i in packaged["item"] if i.get("answerOption"))
    assert notice.group(1) == (
        "The EHR&#39;s copy of this questionnaire differs from the published instrument "
        f"(item 1: answer 1 reads &#34;{last['display']}&#34; where the instrument has "
        f"&#34;{first['display']}&#34;; {2 * questions - 1} more differences), so this form "
        "shows the published wording, which is what the scores are computed from."
    )


def test_a_faithful_copy_is_still_shown_without_a_notice(
    env: CopyEnv, child_app_base: tuple[Browser, str]
) -> None:
    page = fill_page(child_app_base, "prfq")
    assert EHR_TITLE in page  # the EHR's copy: its title is not the packaged one
    assert 'id="questionnaire-copy-notice"' not in page
