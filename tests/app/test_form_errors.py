"""Error-summary lines name the item once, with no doubled punctuation ("...relationships.:")."""

from __future__ import annotations

from markupsafe import Markup

from smart_app.forms.form_items import FormItem
from smart_app.forms.questionnaire_form import error_line


def question(text: str, prefix: str | None = None, where: str = "") -> FormItem:
    return FormItem(
        link_id="q",
        type="choice",
        kind="choice",
        id="q",
        label=Markup(text),
        prefix=Markup(prefix) if prefix else None,
        text=text,
        where=where,
    )


def test_a_statement_loses_its_full_stop_before_the_colon() -> None:
    item = question("I talk things over with my partner.", "12.")
    assert error_line(item, "Select an answer") == (
        "12. I talk things over with my partner: Select an answer"
    )


def test_a_question_keeps_its_question_mark() -> None:
    item = question("Do you want to answer about your mother?")
    assert error_line(item, "Select an answer") == (
        "Do you want to answer about your mother? Select an answer"
    )


def test_a_long_text_is_cut_at_a_word_with_one_ellipsis_and_no_colon_after_it() -> None:
    # 92 characters: the first 79 end inside "for", so the cut falls after "feelings".
    text = (
        "I often wish that my partner's feelings for me were as strong as my feelings for "
        "him or her."
    )
    assert error_line(question(text), "Select an answer") == (
        "I often wish that my partner's feelings for me were as strong as my feelings… "
        "Select an answer"
    )


def test_the_instance_is_named_after_the_text() -> None:
    item = question("Name of the pet.", where="Pet 2")
    assert error_line(item, "Enter an answer") == "Name of the pet (Pet 2): Enter an answer"
