"""Receipt codes carry 50 random bits, as the README says: ten characters of Crockford's base32, each of
the 32 equally likely, independent of the others and of every earlier code, and different in every
process. Checked on the codes themselves (200,000 of them), not on the constants that describe them.

The limits below are chi-square tails of about one in ten million for codes that are as random as
promised: a failure here means the codes are not, not bad luck.
"""

from __future__ import annotations

import re
import subprocess
import sys
from collections import Counter

from handlers.codes import ALPHABET, RECEIPT
from handlers.citizen.submission import new_receipt_code

CODES = 200_000
SHAPE = re.compile(r"TB-([0-9A-HJKMNP-TV-Z]{5})-([0-9A-HJKMNP-TV-Z]{5})")
# Chi-square tail bounds: P(X > 90) ≈ 1.2e-7 with 31 degrees of freedom (32 symbols, one position);
# P(X > 1300) ≈ 7.6e-9 with 1023 (32 × 32 pairs of neighbouring positions).
ONE_POSITION_LIMIT, NEIGHBOURS_LIMIT = 90.0, 1300.0


def chi_square(counts: Counter, cells: int, total: int) -> float:
    expected = total / cells
    return sum((counts.get(cell, 0) - expected) ** 2 / expected for cell in range(cells))


def _draw(n: int = CODES) -> list[str]:
    return [new_receipt_code() for _ in range(n)]  # the function the tip-off hands codes out with


def test_receipt_codes_are_ten_crockford_characters_each_uniform_and_independent():
    codes = _draw()
    raw = []
    for code in codes:
        match = SHAPE.fullmatch(code)
        assert match, f"not a receipt code: {code!r}"
        raw.append(match.group(1) + match.group(2))
    assert len(set(raw)) == CODES  # 50 bits: a repeat among 200,000 has odds of about 1 in 50,000
    index = {symbol: i for i, symbol in enumerate(ALPHABET)}
    for position in range(10):
        counts = Counter(index[code[position]] for code in raw)
        assert len(counts) == 32, f"position {position} uses only {len(counts)} of the 32 symbols"
        statistic = chi_square(counts, 32, CODES)
        assert statistic < ONE_POSITION_LIMIT, f"position {position} is not uniform (chi-square {statistic:.0f})"
    for position in range(9):
        pairs = Counter(32 * index[code[position]] + index[code[position + 1]] for code in raw)
        statistic = chi_square(pairs, 1024, CODES)
        assert statistic < NEIGHBOURS_LIMIT, (
            f"positions {position} and {position + 1} depend on each other (chi-square {statistic:.0f})")


def test_the_uniformity_check_catches_codes_with_fewer_bits():
    """The same statistic on codes drawn from 31 symbols (about 49.5 bits): far past the limit."""
    import secrets
    short = ALPHABET[:31]
    raw = ["".join(secrets.choice(short) for _ in range(10)) for _ in range(CODES)]
    index = {symbol: i for i, symbol in enumerate(ALPHABET)}
    counts = Counter(index[code[0]] for code in raw)
    assert chi_square(counts, 32, CODES) > 10 * ONE_POSITION_LIMIT


def test_every_process_draws_other_codes():
    """No fixed seed: two bot processes started alike hand out different codes."""
    program = ("from handlers.citizen.submission import new_receipt_code; "
               "print(' '.join(new_receipt_code() for _ in range(500)))")
    runs = [set(subprocess.run([sys.executable, "-c", program], capture_output=True, text=True, check=True,
                               timeout=60).stdout.split()) for _ in range(2)]
    assert all(len(run) == 500 for run in runs) and not runs[0] & runs[1]


def test_codes_read_back_as_typed():
    """What the citizen copies by hand (lower case, spaces, O for 0, I or L for 1) finds the same code."""
    for code in _draw(2000):
        raw = code.replace("-", "")[2:]
        typed = "tb " + " ".join([raw[:5], raw[5:]]).lower().replace("0", "o").replace("1", "l")
        assert RECEIPT.normalize(typed) == RECEIPT.normalize(code) == raw
