"""`tinbao` as bench/conversation.py --profile runs it: the same CLI, with every SQL statement the
process sends counted by an SQLAlchemy event listener (by its first word). SIGUSR1 writes the counts so far
(and the statements' texts, with placeholders only) to the file named by the first argument, so the bench can take a difference around one measurement.

    python bench/counted_bot.py COUNTS.json --config config.toml run
"""

from __future__ import annotations

import json
import signal
import sys
from collections import Counter
from pathlib import Path

from sqlalchemy import event
from sqlalchemy.engine import Engine

counts: Counter[str] = Counter()
texts: Counter[str] = Counter()  # the statements themselves (with their placeholders, never values)


@event.listens_for(Engine, "before_cursor_execute")
def _count(_conn, _cursor, statement, _parameters, _context, _executemany) -> None:
    counts[statement.split(None, 1)[0].upper()] += 1
    texts[" ".join(statement.split())[:110]] += 1


@event.listens_for(Engine, "begin")
def _count_begin(_conn) -> None:
    counts["(begin)"] += 1


@event.listens_for(Engine, "commit")
def _count_commit(_conn) -> None:
    counts["(commit)"] += 1


def main() -> int:
    out = Path(sys.argv.pop(1))
    signal.signal(signal.SIGUSR1, lambda *_: out.write_text(json.dumps({**counts, "texts": texts})))
    from bot.cli import main as cli
    return cli(sys.argv[1:])


if __name__ == "__main__":
    sys.exit(main())
