"""Where the answers went, as the submission and review pages say it (hand-written sentences)."""

from __future__ import annotations

import datetime as dt

from attach_fhir.io.outbox_store import OutboxItem
from smart_app.records.receipt import Receipt, describe, written_words

# 2026-12-05T10:42:30Z
AT = dt.datetime(2026, 12, 5, 10, 42, 30, tzinfo=dt.UTC).timestamp()
SYDNEY_SUMMER = dt.timezone(dt.timedelta(hours=11))
WRITTEN = {
    "urn:uuid:a": "QuestionnaireResponse/qr1",
    "urn:uuid:b": "Observation/o1",
    "urn:uuid:c": "Observation/o2",
    "urn:uuid:d": "Provenance/p1",
}


def item(status: str, receipt: dict[str, str] | None = None) -> OutboxItem:
    return OutboxItem(
        seq=1,
        submission_id="8c5d8a0e-0d1f-4d1e-9a49-3f1b9b0c2a11",
        target="t",
        payload=None,
        status=status,
        attempts=1,
        next_attempt_at=0.0,
        lease_until=None,
        created_at=AT - 5,
        updated_at=AT,
        last_error=None,
        last_error_code=None,
        receipt=receipt,
    )


def test_delivered_names_what_was_written_and_when() -> None:
    said = describe(item("delivered", WRITTEN), dt.UTC)
    assert said.state == "delivered"
    assert said.text == (
        "Saved to the record (QuestionnaireResponse and 2 score Observations) "
        "at 10:42 on 5 Dec 2026."
    )


def test_the_time_is_in_the_apps_zone() -> None:
    # 10:42 UTC is 21:42 the same day at UTC+11.
    said = describe(item("delivered", WRITTEN), SYDNEY_SUMMER)
    assert said.text.endswith("at 21:42 on 5 Dec 2026.")


def test_waiting_and_delivering_say_saved_here() -> None:
    for status in ("queued", "delivering"):
        said = describe(item(status), dt.UTC)
        assert (said.state, said.text) == ("waiting", "Saved here, waiting to reach the record.")


def test_refused_and_kept() -> None:
    assert describe(item("failed-permanent"), dt.UTC).state == "failed"
    assert describe(None, dt.UTC).state == "kept"


def test_a_document_and_a_single_score() -> None:
    assert written_words({"a": "DocumentReference/d"}) == "a PDF summary"
    one = {"a": "QuestionnaireResponse/q", "b": "Observation/o", "c": "Provenance/p"}
    assert written_words(one) == "QuestionnaireResponse and 1 score Observation"
    four = {"q": "QuestionnaireResponse/q", **{f"o{i}": f"Observation/{i}" for i in range(4)}}
    assert written_words(four) == "QuestionnaireResponse and 4 score Observations"


def test_a_patient_reads_where_their_answers_went_without_resource_types() -> None:
    said = {
        status: describe(item(status, WRITTEN), SYDNEY_SUMMER, patient=True)
        for status in ("delivered", "queued", "failed-permanent")
    }
    assert said["delivered"] == Receipt(
        "delivered", "Your answers are in your clinic's record (sent at 21:42 on 5 Dec 2026)."
    )
    assert said["queued"].state == "waiting"
    assert said["queued"].text == (
        "Your answers are kept safely and will be sent to your clinic's record automatically."
    )
    assert said["failed-permanent"] == Receipt(
        "failed", "Your answers were not saved in your clinic's record."
    )
