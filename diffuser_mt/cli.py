"""The ``diffuser-mt`` command: one subcommand per module that provides ``add_subcommand``.

The modules are the ``diffuser_mt.subcommands`` entry points of the installed
package (setup.py): ``score`` and ``trace`` from this core, ``revise`` from
``fairseq_plugins`` (it loads fairseq checkpoints), so the core never imports fairseq.
"""
from __future__ import annotations

import argparse
import sys
from importlib.metadata import entry_points

from diffuser_mt.textio import InputError

SUBCOMMAND_GROUP = "diffuser_mt.subcommands"


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    """The parser with every subcommand, or with ``only`` that one (loading revise imports fairseq: seconds)."""
    parser = argparse.ArgumentParser(prog="diffuser-mt", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    subparsers = parser.add_subparsers(dest="command", required=True)
    for entry_point in sorted(entry_points(group=SUBCOMMAND_GROUP), key=lambda e: e.name):
        if only is None or entry_point.name == only:
            entry_point.load().add_subcommand(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run one subcommand; an InputError becomes one line on stderr and exit status 1, Ctrl-C one line and 130."""
    argv = sys.argv[1:] if argv is None else argv
    known = {entry_point.name for entry_point in entry_points(group=SUBCOMMAND_GROUP)}
    args = build_parser(argv[0] if argv and argv[0] in known else None).parse_args(argv)
    try:
        return args.run(args) or 0
    except InputError as err:
        print(f"diffuser-mt {args.command}: error: {err}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:  # output files are written under a temporary name: nothing is half-written
        print(f"diffuser-mt {args.command}: error: interrupted (Ctrl-C)", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
