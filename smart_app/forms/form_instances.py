"""The add and remove buttons of repeating groups: the form again with one instance more or less.

Each button posts the whole form with its ``action`` (``add<scope>:<linkId>``,
``remove<scope>.<n>:<linkId>``, see :mod:`smart_app.forms.form_fields`), so nothing typed is lost;
the
page comes back from the posted values with the instance added or removed, focused on the new
instance (or the one that took the removed one's place), and without validation messages. Such a
post never saves or submits: to the flows it is the same as ``action=update``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from smart_app.forms.form_fields import FIELD_KINDS, Path, item_key, parse_name, scope
from smart_app.forms.form_items import FormItem
from smart_app.forms.questionnaire_form import QuestionnaireForm, Values, build_form


def form_after_action(
    questionnaire: Mapping[str, Any], values: Values, action: str
) -> QuestionnaireForm:
    """The form showing ``values`` after ``action``: an add or remove applied, else as posted."""
    parsed = parse_name(action)
    form = build_form(questionnaire, values)
    if parsed is None or parsed[0] not in {"add", "remove"}:
        return form
    verb, path, link_id = parsed
    group_path = path if verb == "add" else path[:-1]
    group = _group(form, link_id, group_path)
    if group is None:
        return form
    count = len(group.children)
    if verb == "add":
        if not group.can_add:
            return form
        added = {**values, group.count_name: [str(count + 1)]}
        return build_form(questionnaire, added, focus=item_key(link_id, (*group_path, count + 1)))
    if not path or path[-1] > count or not group.children[path[-1] - 1].removable:
        return form
    kept = _without(values, group, path[-1])
    focus = item_key(link_id, (*group_path, min(path[-1], count - 1)))
    return build_form(questionnaire, kept, focus=focus)


def _group(form: QuestionnaireForm, link_id: str, path: Path) -> FormItem | None:
    """The enabled repeating group with this linkId in the instance at ``path``."""
    for item in form.walk():
        if item.kind == "repeat" and item.link_id == link_id and item.path == path:
            return item if item.enabled else None
    return None


def _without(values: Values, group: FormItem, number: int) -> Values:
    """The values with instance ``number`` of ``group`` gone and the later ones moved up."""
    depth = len(group.path)
    out: Values = {}
    for name, given in values.items():
        parsed = parse_name(name)
        if parsed is None or parsed[0] not in FIELD_KINDS:
            out[name] = given
            continue
        word, path, link_id = parsed
        inside = len(path) > depth and path[:depth] == group.path and link_id in group.members
        if not inside or path[depth] < number:
            out[name] = given
        elif path[depth] > number:
            moved = (*path[:depth], path[depth] - 1, *path[depth + 1 :])
            out[f"{word}{scope(moved)}:{link_id}"] = given
    out[group.count_name] = [str(len(group.children) - 1)]
    return out
