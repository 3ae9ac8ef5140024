"""How large a request body the app reads, refused with 413 before any of it is parsed.

Measured (tests/e2e/test_request_limits.py prints it): the largest form of a packaged
instrument, the ECR-RS with all four relationship sections shown and every item answered with
its longest code, posts 43 fields in 765 bytes; no packaged instrument has a repeating group.
The free-text attachment journal is bounded by what a person writes: 256 kB is over 28,000
characters of non-Latin script (9 bytes each once percent-encoded). The largest JSON body is a
CDS Hooks call with a full prefetch (200 score Observations and 50 draft QuestionnaireResponses,
about 1 MB); 2 MB leaves it room. Without these, a 20 MB POST of 2M fields to ``/launch`` took
3.8 s and 400-500 MB to refuse.
"""

from __future__ import annotations

import typing as t
from urllib.parse import parse_qsl

from flask import Flask, Request, current_app, request
from werkzeug.exceptions import RequestEntityTooLarge
from werkzeug.formparser import FormDataParser

from smart_app.web.errors import ConfigurationError

#: Any body (forms, CDS Hooks JSON): werkzeug refuses more; ``serve`` tells waitress too.
MAX_CONTENT_LENGTH = 2 * 1024 * 1024
#: A form body (url-encoded, or one multipart text part): over 300 times the ECR-RS post.
MAX_FORM_MEMORY_SIZE = 256 * 1024
#: Fields in one form: over ten times the ECR-RS post.
MAX_FORM_PARTS = 500
SETTINGS = ("MAX_CONTENT_LENGTH", "MAX_FORM_MEMORY_SIZE", "MAX_FORM_PARTS")
FORM_TYPES = frozenset({"application/x-www-form-urlencoded", "multipart/form-data"})


class BoundedFormParser(FormDataParser):
    """Werkzeug's parser, with the form bounds applied to url-encoded bodies as well (werkzeug
    applies them to multipart bodies only)."""

    def _parse_urlencoded(
        self,
        stream: t.IO[bytes],
        mimetype: str,
        content_length: int | None,
        options: dict[str, str],
    ) -> tuple[t.IO[bytes], t.Any, t.Any]:
        limit = self.max_form_memory_size
        data = stream.read() if limit is None else stream.read(limit + 1)
        if limit is not None and len(data) > limit:  # a chunked body declares no length
            raise RequestEntityTooLarge()
        try:
            # max_num_fields counts separators before splitting: no list of 2M pairs is built.
            items = parse_qsl(
                data.decode(),
                keep_blank_values=True,
                errors="werkzeug.url_quote",
                max_num_fields=self.max_form_parts,
            )
        except ValueError:
            raise RequestEntityTooLarge("The form has too many fields.") from None
        return stream, self.cls(items), self.cls()


class BoundedRequest(Request):
    """The app's request class: forms parsed by ``BoundedFormParser``."""

    form_data_parser_class = BoundedFormParser


def _refuse_declared_oversize() -> None:
    """413 from the Content-Length header alone, before CSRF or a view reads a byte."""
    length = request.content_length
    if length is None:
        return  # chunked: the limited stream and the parser stop it while reading
    limit = int(current_app.config["MAX_CONTENT_LENGTH"])
    if request.mimetype in FORM_TYPES:
        limit = min(limit, int(current_app.config["MAX_FORM_MEMORY_SIZE"]))
    if length > limit:
        raise RequestEntityTooLarge()


def init_app(app: Flask) -> None:
    """Check the bounds, use the bounded request class, refuse oversized bodies first."""
    for key in SETTINGS:
        value = app.config[key]
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ConfigurationError(f"ATTACH_{key} must be a positive whole number.")
    app.request_class = BoundedRequest
    app.before_request(_refuse_declared_oversize)  # registered before the CSRF check
