"""``archdsl cache info|clear``: the compile cache that makes later builds and loads of one spec fast.

``archdsl.build``/``archdsl.zoo.build`` of a spec file and ``archdsl.load_built`` keep the code they generate
in a cache folder, keyed by everything it depends on (the spec and the files it imports, the model, parameters
and flags, archdsl's own code, torch and Python): a later process reuses it instead of compiling again. The
folder is $ARCHDSL_CACHE_DIR, else $XDG_CACHE_HOME/archdsl, else ~/.cache/archdsl; ARCHDSL_NO_CACHE=1 (or
ARCHDSL_CACHE_DIR set empty) turns the cache off. It keeps at most 256 entries and 256 MiB, least recently used
first out; removing the folder at any time is safe.
"""

from __future__ import annotations

import argparse
import json


def add_parser(sub) -> None:
    """Register the command."""
    p = sub.add_parser("cache", help="show or empty the compile cache (generated code kept between runs)",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("action", choices=("info", "clear"),
                   help="info: where the cache is and what it holds; clear: remove every entry")
    p.add_argument("--format", choices=("text", "json"), default="text", help="output format (default text)")


def run(args: argparse.Namespace) -> int:
    """Print the cache's state, or empty it; 0."""
    from archdsl import compilecache

    if args.action == "clear":
        removed = compilecache.clear()
        state = {**compilecache.info(), "removed": removed}
    else:
        state = compilecache.info()
    if args.format == "json":
        print(json.dumps(state))
        return 0
    if not state["enabled"]:
        print(f"compile cache: off ({compilecache.NO_CACHE_ENV} is set, or {compilecache.CACHE_DIR_ENV} is empty)")
        return 0
    if args.action == "clear":
        print(f"removed {removed} entr{'y' if removed == 1 else 'ies'} from {state['folder']}")
        return 0
    print(f"compile cache: {state['folder']}\n"
          f"entries: {state['entries']} of at most {state['max_entries']}, "
          f"{state['bytes'] / 2**20:.1f} MiB of at most {state['max_bytes'] // 2**20} MiB")
    return 0
