"""Every EHR read of a page goes through one tolerant layer, and the page says what it dropped.

:class:`ReadingClient` is the launch's FHIR client
(:meth:`smart_app.web.context.LaunchContext.fhir`):
its reads and searches hand the pages only resources that parse as FHIR R4, with the parts that
do not parse dropped (:mod:`attach_fhir.fhir_reader`). What was dropped is counted for the
request, and :func:`unreadable_notice` puts it in a sentence every page shows (``base.html``).
Counts only: no record data is kept or logged.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from flask import Flask, g, has_app_context

from attach_fhir.errors import AttachError
from attach_fhir.fhir_reader import Reading, read_resource, search_matches
from attach_fhir.io.fhir_client import FhirClient, Params

log = logging.getLogger(__name__)


class UnreadableRecord(AttachError):
    """The EHR answered a read with a resource that could not be read at all."""

    code = "unreadable_record"
    description = "The EHR sent a record this app could not read, so it is not shown."
    status_code = 502


@dataclass
class Tally:
    """What this request could not read: whole results, and parts of results it shows."""

    results: int = 0
    parts: int = 0


def tally() -> Tally:
    """This request's tally (a fresh one outside a request)."""
    if not has_app_context():
        return Tally()
    found: Tally = g.setdefault("attach_unreadable", Tally())
    return found


def unreadable_notice() -> str | None:
    """The sentence saying what could not be read and is not shown, if anything."""
    counted = tally() if has_app_context() and "attach_unreadable" in g else Tally()
    sentences = []
    if counted.results:
        sentences.append(
            "One result from the record could not be read and is not shown."
            if counted.results == 1
            else f"{counted.results} results from the record could not be read and are not shown."
        )
    if counted.parts:
        sentences.append(
            "One part of the record could not be read and is not shown."
            if counted.parts == 1
            else f"{counted.parts} parts of the record could not be read and are not shown."
        )
    return " ".join(sentences) or None


def init_app(app: Flask) -> None:
    """Give every template the sentence (``unreadable_notice``)."""
    app.context_processor(lambda: {"unreadable_notice": unreadable_notice()})


class ReadingClient(FhirClient):
    """A :class:`FhirClient` whose reads and searches keep what parses and count the rest."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        #: (type, id) of resources read with parts dropped: never written back.
        self._partly_read: set[tuple[Any, Any]] = set()

    def capabilities(self) -> dict[str, Any]:
        """The CapabilityStatement, its unreadable parts dropped."""
        return self._kept(super().capabilities())

    def read(self, resource_type: str, resource_id: str) -> dict[str, Any]:
        """``GET [type]/[id]``, its unreadable parts dropped (UnreadableRecord if nothing is)."""
        return self._kept(super().read(resource_type, resource_id))

    def vread(self, resource_type: str, resource_id: str, version_id: str) -> dict[str, Any]:
        """``GET [type]/[id]/_history/[vid]``, its unreadable parts dropped."""
        return self._kept(super().vread(resource_type, resource_id, version_id))

    def read_reference(self, reference: str) -> dict[str, Any]:
        """A referenced resource, its unreadable parts dropped."""
        return self._kept(super().read_reference(reference))

    def search(self, resource_type: str, params: Params | None = None) -> Iterator[dict[str, Any]]:
        """Every readable match (following ``next`` links); the rest counted, not shown."""
        for bundle in self.search_pages(resource_type, params):
            matches = search_matches(bundle)
            self._count(matches.unreadable, 0)
            for reading in matches.readings:
                yield self._counted(reading)

    def update(self, resource: Mapping[str, Any], if_match: str | None = None) -> dict[str, Any]:
        """``PUT`` the resource, unless it was read here with parts dropped: writing it back
        would delete from the record what this app could not read."""
        if (resource.get("resourceType"), resource.get("id")) in self._partly_read:
            raise UnreadableRecord(
                "Part of this record could not be read, so it was not changed: "
                "change it in the EHR."
            )
        return super().update(resource, if_match=if_match)

    def _kept(self, raw: dict[str, Any]) -> dict[str, Any]:
        return self._counted(read_resource(raw))

    def _counted(self, reading: Reading) -> dict[str, Any]:
        resource = reading.resource
        if resource is None:
            self._count(1, 0)
            raise UnreadableRecord()
        self._count(0, reading.dropped_parts)
        if reading.dropped_parts:
            self._partly_read.add((resource.get("resourceType"), resource.get("id")))
        return resource

    @staticmethod
    def _count(results: int, parts: int) -> None:
        if results or parts:
            log.info("fhir.read unreadable results=%d parts=%d", results, parts)
            counted = tally()
            counted.results += results
            counted.parts += parts
