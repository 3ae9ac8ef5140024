"""``attach-fhir questionnaires validate [PATH...]``: check instrument files, list every problem."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from attach_fhir.commands import package
from attach_fhir.instruments import read_packaged
from attach_fhir.validation import Problem, read_json, score_codes_of, validate_resources


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the ``questionnaires`` command and its ``validate`` sub-command."""
    parser = sub.add_parser(
        "questionnaires",
        help="work with the instrument Questionnaires",
        description=(
            "Work with the instrument Questionnaires: 'validate' checks them, 'package' writes "
            "them as a FHIR package, 'load' puts that package into a FHIR server."
        ),
    )
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    validate = actions.add_parser(
        "validate",
        help="validate Questionnaire files (default: the packaged library)",
        description=(
            "Check each Questionnaire (R4 parse, scoring-model schema, unique linkIds, scored "
            "items, FHIRPath expressions) and print every problem as 'path: message'. "
            "Directories are searched for *.json. Exit 1 if any problem is found."
        ),
    )
    validate.add_argument(
        "paths",
        nargs="*",
        type=Path,
        metavar="PATH",
        help="Questionnaire JSON files or directories (default: the packaged library)",
    )
    validate.set_defaults(func=run_validate)
    package.register(actions)


def _files(paths: list[Path]) -> list[Path]:
    out: list[Path] = []
    for path in paths:
        out.extend(sorted(path.glob("*.json")) if path.is_dir() else [path])
    return out


def run_validate(args: argparse.Namespace) -> int:
    """Validate the files named (or the packaged library); 1 if anything is wrong."""
    problems: list[Problem] = []
    resources: dict[str, dict[str, Any]] = {}
    if args.paths:
        files = _files(args.paths)
        for path in files:
            data, problem = read_json(path)
            if problem is not None:
                problems.append(problem)
            elif data is not None:
                resources[str(path)] = data
        count = len(files)
    else:
        resources = read_packaged()
        count = len(resources)
    # Score codes come from the attach-scores CodeSystem among the files, else the library's.
    known = score_codes_of(resources.values())
    if known is None:
        known = score_codes_of(read_packaged().values())
    problems.extend(validate_resources(resources, known))
    for problem in problems:
        print(problem)
    print(f"{count} file(s) checked, {len(problems)} problem(s)", file=sys.stderr)
    return 1 if problems else 0
