"""One way to pause Python's cyclic garbage collector around a front-end phase."""

from __future__ import annotations

import contextlib
import gc
from collections.abc import Iterator


@contextlib.contextmanager
def gc_paused() -> Iterator[None]:
    """Pause the cyclic collector for the block (nested uses are fine; the outermost one resumes it).

    Parsing and checking a large spec allocate a few objects per token or node and free almost none until the
    phase ends, so the collector's repeated passes over the growing heap make the phase superlinear (a 20k-node
    spec parsed at 2.6x the per-node time of a 2k one; 1.0x paused). Reference counting still frees what can be
    freed at once, and anything cyclic left behind goes at the first collection after the block.
    """
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            _promote()
            gc.enable()


PROMOTE_AT = 50_000     # objects allocated in the pause past which they move to the oldest generation at once


def _promote() -> None:
    """Move what the paused phase built into the oldest generation without scanning it.

    Left in the youngest generation, the phase's objects (a large graph: millions) would be scanned by the first
    collection after the pause, again as they age through the middle generation, and once more at the next full
    collection: about a second per pass on a 100k-node graph, for objects that are nearly all long-lived. The
    collector's own freeze and unfreeze move every tracked object into the oldest generation (no scan), where
    garbage among them is found at the next full collection as usual. Skipped when the program froze objects
    itself (``gc.freeze``), so its permanent generation stays as it made it.
    """
    if gc.get_count()[0] >= PROMOTE_AT and gc.get_freeze_count() == 0:
        gc.freeze()
        gc.unfreeze()
