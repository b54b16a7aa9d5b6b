"""The ``diffuser-mt`` command: one subcommand per module that provides ``add_subcommand``."""
from __future__ import annotations

import argparse
import sys

from diffuser_mt import metrics
from diffuser_mt.textio import InputError

SUBCOMMAND_MODULES = (metrics,)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="diffuser-mt", description=__doc__)
    subparsers = parser.add_subparsers(dest="command", required=True)
    for module in SUBCOMMAND_MODULES:
        module.add_subcommand(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run one subcommand; an InputError becomes one line on stderr and exit status 1."""
    args = build_parser().parse_args(argv)
    try:
        return args.run(args) or 0
    except InputError as err:
        print(f"diffuser-mt {args.command}: error: {err}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
