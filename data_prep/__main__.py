"""python -m data_prep {build,convert,demo,length-filter,rationales,import-batch,sft,check-manifest} ... (see docs/data.md)."""
from __future__ import annotations

import argparse
import sys

from . import bfcl_live, cli_build, cli_rationales, length_filter
from .manifest import ManifestError, check_manifest
from .pipeline import StrictError


def cmd_check_manifest(args) -> int:
    """Exit 0 if every PATH is a finished output (manifest present, complete, row count matching), else 1."""
    bad = 0
    for path in args.paths:
        try:
            record = check_manifest(path)
        except ManifestError as exc:
            print(f'check-manifest: not finished: {exc}', file=sys.stderr)
            bad += 1
        else:
            if not args.quiet:
                print(f'check-manifest: {path}: complete, {record["rows"]} rows')
    return 1 if bad else 0


def add_check_manifest_parser(sub) -> None:
    p = sub.add_parser('check-manifest', help='exit 0 only if each output was finished (its manifest matches)')
    p.add_argument('paths', nargs='+', metavar='PATH')
    p.add_argument('--quiet', action='store_true')
    p.set_defaults(func=cmd_check_manifest)


def make_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog='python -m data_prep', description=__doc__)
    sub = parser.add_subparsers(dest='command', required=True)
    cli_build.add_parsers(sub)
    cli_rationales.add_parsers(sub)
    length_filter.add_parser(sub)
    bfcl_live.add_parsers(sub)
    add_check_manifest_parser(sub)
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
