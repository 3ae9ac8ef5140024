"""The assessment summary as a PDF: A4, Noto Sans (bundled by ``fontpkg-noto-sans``), no network.

fpdf2 writes the file in pure Python; the font is a TrueType file installed with the package, so
Latin, Greek and Cyrillic text survives as text (searchable, extractable). The creation date is
the assessment's own date, so the same summary always gives the same bytes (and the same hash
on its DocumentReference).
"""

from __future__ import annotations

import datetime as dt
from functools import cache

import fontpkg
from fpdf import FPDF
from fpdf.enums import TextMode, XPos, YPos

from attach_fhir.assessment_summary import AssessmentSummary
from attach_fhir.errors import AttachError

FONT = "NotoSans"
_WIDTH = 0  # full line width


class SummaryRenderError(AttachError):
    """The summary PDF could not be written (font missing, or text the writer refused)."""

    code = "summary_render_error"
    description = "The printable summary could not be produced."
    status_code = 500


@cache
def font_path() -> str:
    """The bundled Noto Sans TrueType file (variable weight)."""
    return str(fontpkg.path("Noto Sans"))


def _created(authored: str) -> dt.datetime:
    try:
        stamp = dt.datetime.fromisoformat(authored)
    except ValueError:
        stamp = dt.datetime(2000, 1, 1)
    if stamp.tzinfo is None:
        stamp = stamp.replace(tzinfo=dt.UTC)
    return stamp


class _Document(FPDF):
    def __init__(self, footer_text: str) -> None:
        super().__init__(format="A4")
        self._footer_text = footer_text

    def footer(self) -> None:
        self.set_y(-14)
        self.set_font(FONT, "", 8)
        self.cell(_WIDTH, 5, f"{self._footer_text} - page {self.page_no()}/{{nb}}", align="C")


def _para(pdf: FPDF, text: str, size: float = 10, style: str = "", height: float = 5) -> None:
    pdf.set_font(FONT, "", size)
    # Bold by stroking the outline: instancing the variable font's bold takes seconds.
    pdf.text_mode = TextMode.FILL_STROKE if style == "B" else TextMode.FILL
    pdf.multi_cell(_WIDTH, height, text, align="L", new_x=XPos.LMARGIN, new_y=YPos.NEXT)
    pdf.text_mode = TextMode.FILL


def _heading(pdf: FPDF, text: str) -> None:
    pdf.ln(3)
    _para(pdf, text, size=13, style="B", height=7)
    pdf.ln(1)


def render_pdf(summary: AssessmentSummary) -> bytes:
    """The summary as PDF bytes (deterministic for the same summary)."""
    try:
        return _render(summary)
    except (OSError, RuntimeError, ValueError) as exc:
        raise SummaryRenderError(reason=type(exc).__name__) from exc


def _render(summary: AssessmentSummary) -> bytes:
    pdf = _Document(summary.heading)
    path = font_path()
    pdf.add_font(FONT, "", path)
    pdf.set_line_width(0.15)
    pdf.set_title(summary.heading)
    pdf.set_subject("Assessment summary: answers and scores")
    pdf.set_creator("attach-fhir")
    pdf.set_creation_date(_created(summary.authored))
    pdf.set_auto_page_break(auto=True, margin=18)
    pdf.add_page()
    _para(pdf, summary.heading, size=16, style="B", height=8)
    pdf.ln(2)
    for label, value in summary.facts:
        _para(pdf, f"{label}: {value}")
    pdf.ln(2)
    _para(pdf, f"Citation: {summary.citation}", size=9, height=4.5)
    _para(pdf, f"Licence status: {summary.licence_status}", size=9, height=4.5)
    if summary.licence_note:
        _para(pdf, summary.licence_note, size=9, height=4.5)
    for restriction in summary.restrictions:
        _para(pdf, f"Use restriction: {restriction}", size=10, style="B")
    for note in summary.notes:
        _para(pdf, f"Note: {note}", size=10, style="B")

    _heading(pdf, "Scores")
    for score in summary.scores:
        _para(pdf, f"{score.display}: {score.value}", size=11, style="B", height=6)
        for line in score.meaning:
            _para(pdf, line, size=9, height=4.5)
        if score.note:
            _para(pdf, score.note, size=9, height=4.5)
        pdf.ln(1.5)

    _heading(pdf, "Answers")
    section: str | None = None
    for answer in summary.answers:
        if answer.section and answer.section != section:
            pdf.ln(1)
            _para(pdf, answer.section, size=11, style="B", height=6)
        section = answer.section
        _para(pdf, f"{answer.link_id}. {answer.text}", size=10)
        _para(pdf, f"Answer: {answer.answer}", size=10, style="B")
        pdf.ln(1)
    return bytes(pdf.output())
