"""Entry point run by the *bfcl-eval* interpreter (its own virtualenv; see eval/SETUP_NOTES.md).

    <bfcl python> eval/bfcl_entry.py --served-name NAME --registry-name KEY \
        [--ids-categories non_live,multi_turn --limit N] -- generate --model KEY ...

It registers, at run time, a bfcl-eval model entry ``KEY`` for the locally served checkpoint, then hands the
remaining arguments to bfcl-eval's own command line (``bfcl generate | evaluate``). The entry uses the
package's ``OpenAICompletionsHandler`` in function-calling mode: the server (``swift deploy
--agent_template hermes`` or ``vllm serve --tool-call-parser hermes``) renders the tools and parses the
model's hermes / Qwen3-FC ``<tool_call>{"name", "arguments"}</tool_call>`` blocks into OpenAI
``tool_calls``; bfcl-eval's own data, multi-turn executor and checkers do the rest. ``OPENAI_BASE_URL``
must point at the server's ``/v1``.

With ``--limit N`` it writes ``test_case_ids_to_generate.json`` (the first N ids of every category of
``--ids-categories``) into ``$BFCL_PROJECT_ROOT`` for ``bfcl generate --run-ids``.

This file imports nothing from the project: the bfcl-eval environment need not have it installed.
"""
from __future__ import annotations

import argparse
import json
import os
import sys


def register(registry_name: str, served_name: str) -> None:
    from bfcl_eval.constants.model_config import MODEL_CONFIG_MAPPING, ModelConfig
    from bfcl_eval.model_handler.api_inference.openai_completion import OpenAICompletionsHandler
    if '_' in registry_name:
        raise SystemExit(f'registry name {registry_name!r}: bfcl-eval maps "_" to "/" in its tables; use "-"')
    MODEL_CONFIG_MAPPING[registry_name] = ModelConfig(
        model_name=served_name,
        display_name=f'{registry_name} (FC)',  # no comma: bfcl-eval writes CSV unquoted
        url='local', org='local', license='local',
        model_handler=OpenAICompletionsHandler,
        input_price=None, output_price=None,
        is_fc_model=True,
        underscore_to_dot=True,  # OpenAI-style tools cannot hold "." in names: the handler maps it to "_"
    )


def write_ids(categories: str, limit: int) -> str:
    from bfcl_eval.constants.eval_config import TEST_IDS_TO_GENERATE_PATH
    from bfcl_eval.utils import load_dataset_entry, parse_test_category_argument
    ids = {}
    for cat in parse_test_category_argument([c for c in categories.split(',') if c]):
        ids[cat] = [e['id'] for e in load_dataset_entry(cat)][:limit]
    with open(TEST_IDS_TO_GENERATE_PATH, 'w') as f:
        json.dump(ids, f, indent=1)
    return str(TEST_IDS_TO_GENERATE_PATH)


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if '--' not in argv:
        raise SystemExit('usage: bfcl_entry.py OPTIONS -- BFCL-ARGS')
    cut = argv.index('--')
    p = argparse.ArgumentParser()
    p.add_argument('--served-name', required=True)
    p.add_argument('--registry-name', required=True)
    p.add_argument('--ids-categories', default=None)
    p.add_argument('--limit', type=int, default=None)
    args = p.parse_args(argv[:cut])
    if 'BFCL_PROJECT_ROOT' not in os.environ:
        raise SystemExit('set BFCL_PROJECT_ROOT (where bfcl-eval writes result/ and score/)')
    register(args.registry_name, args.served_name)
    if args.limit:
        print(f'[bfcl_entry] ids file: {write_ids(args.ids_categories, args.limit)}', file=sys.stderr)
    from bfcl_eval.__main__ import cli
    sys.argv = ['bfcl'] + argv[cut + 1:]
    try:
        cli()
    except SystemExit as e:  # typer exits; keep its code
        return int(e.code or 0)
    return 0


if __name__ == '__main__':
    sys.exit(main())
