"""python -m data_prep {build,convert,demo,rationales,import-batch,sft} ... (see README, "Training data")."""
from __future__ import annotations

import argparse
import sys

from . import bfcl_live, cli_build, cli_rationales
from .pipeline import StrictError


def make_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog='python -m data_prep', description=__doc__)
    sub = parser.add_subparsers(dest='command', required=True)
    cli_build.add_parsers(sub)
    cli_rationales.add_parsers(sub)
    bfcl_live.add_parsers(sub)
    return parser


def main(argv=None) -> int:
    parser = make_parser()
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except (StrictError, argparse.ArgumentTypeError, FileNotFoundError, ValueError) as exc:
        print(f'error: {exc}', file=sys.stderr)
        return 2


if __name__ == '__main__':
    sys.exit(main())
