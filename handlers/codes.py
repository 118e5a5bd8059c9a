"""Codes people copy by hand: receipt codes for tipsters, enrolment codes for officers."""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass

# Crockford's base32: no I, L, O or U, so a code read aloud or copied by hand survives.
ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
_LOOKALIKES = str.maketrans({"O": "0", "I": "1", "L": "1"})


@dataclass(frozen=True)
class CodeFormat:
    prefix: str
    length: int  # random characters, 5 bits each

    def new(self) -> str:
        """A random code like TB-7K3MP-9QXFA, in groups of five."""
        raw = "".join(secrets.choice(ALPHABET) for _ in range(self.length))
        return "-".join([self.prefix] + [raw[i:i + 5] for i in range(0, self.length, 5)])

    def normalize(self, text: str) -> str | None:
        """The code as typed ("tb 7k3mp 9qxfa", O for 0, I or L for 1); None if it cannot be one."""
        cleaned = re.sub(r"[^0-9A-Za-z]", "", text).upper()
        if cleaned.startswith(self.prefix) and len(cleaned) == self.length + len(self.prefix):
            cleaned = cleaned[len(self.prefix):]
        cleaned = cleaned.translate(_LOOKALIKES)
        if len(cleaned) != self.length or any(ch not in ALPHABET for ch in cleaned):
            return None
        return cleaned


RECEIPT = CodeFormat("TB", 10)  # 50 random bits, stored only as a keyed hash; /status attempts are limited
INVITE = CodeFormat("CB", 15)  # 75 random bits: a day is far too short to guess one
