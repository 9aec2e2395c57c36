#!/usr/bin/env python3
"""Validate an image directory's index.json against schema/image.schema.json.

Usage: validate_image.py [--schema FILE] DIR [DIR...]

Prints one line per schema violation ("DIR/index.json: JSON path: reason") and exits 1 when any image has one;
exits 2 when an index or the schema cannot be read. Several directories in one run save Python's start-up time. Structure only: bounds, overlaps and checksums are checked by bpfckpt itself.
Needs python3-jsonschema (Debian 12 ships 4.10, which has Draft202012Validator).
"""
import argparse
import json
import pathlib
import sys

try:
    from jsonschema import Draft202012Validator
except ImportError:
    sys.exit("validate_image.py: python3-jsonschema is not installed (apt-get install python3-jsonschema)")

DEFAULT_SCHEMA = pathlib.Path(__file__).resolve().parents[2] / "schema" / "image.schema.json"


def load_json(path: pathlib.Path, what: str):
    try:
        with path.open(encoding="utf-8") as f:
            return json.load(f)
    except (OSError, ValueError) as e:
        print(f"validate_image.py: {what} {path}: {e}", file=sys.stderr)
        sys.exit(2)


def json_path(error) -> str:
    """The failing value's location as $.processes[0].vmas[3].kind."""
    out = "$"
    for part in error.absolute_path:
        out += f"[{part}]" if isinstance(part, int) else f".{part}"
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description="Validate DIR/index.json against the bpfckpt image schema.")
    parser.add_argument("dirs", type=pathlib.Path, nargs="+", metavar="DIR", help="an image directory")
    parser.add_argument("--schema", type=pathlib.Path, default=DEFAULT_SCHEMA, help="default: %(default)s")
    args = parser.parse_args()

    schema = load_json(args.schema, "schema")
    Draft202012Validator.check_schema(schema)
    validator = Draft202012Validator(schema)

    invalid = 0
    for d in args.dirs:
        path = d / "index.json"
        index = load_json(path, "index")
        errors = sorted(validator.iter_errors(index), key=lambda e: list(map(str, e.absolute_path)))
        for e in errors:
            print(f"{path}: {json_path(e)}: {e.message}")
        invalid += bool(errors)
    if invalid:
        print(f"{invalid} of {len(args.dirs)} image(s) violate the schema", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
