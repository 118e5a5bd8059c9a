"""What a /command is: its name, who may use it, what handles it, and its line in the chat's menu.

The table of every command is ``COMMANDS`` in handlers/router.py; the router and every channel's
command menu read it (``menu_commands``), so a command is added in one place.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from handlers.i18n import contextual

# Who a command is for. An officer's and a supervisor's commands take (turn, officer, args), and
# anyone who is not an enrolled officer gets the neutral "I did not understand" for them.
EVERYONE, OFFICER, SUPERVISOR = "everyone", "officer", "supervisor"
MENU = "command menu"  # the catalog's msgctxt: a menu line may read differently from a button of the same words


@dataclass(frozen=True)
class Command:
    name: str  # "/queue"
    audience: str  # EVERYONE, OFFICER or SUPERVISOR (the menu it appears in)
    handler: Callable
    menu: str | None = None  # the menu's description, a catalog message (msgctxt "command menu"); None: unlisted
    resumes: bool = False  # everyone's commands answered on the side: the tip-off's question is asked again


def NC_(context: str, text: str) -> str:
    """Marks a text for extraction with its msgctxt (``-k NC_:1c,2``); translated where it is shown."""
    if context != MENU:
        raise ValueError(f"menu descriptions are translated in the {MENU!r} context, not {context!r}")
    return text


def menu_commands(commands: tuple[Command, ...], menu: str, lang: str) -> list[tuple[str, str]]:
    """(command, description) pairs of the menu a chat sees: "citizen", "officer" or "supervisor"."""
    audiences = {"citizen": (EVERYONE,), "officer": (EVERYONE, OFFICER),
                 "supervisor": (EVERYONE, OFFICER, SUPERVISOR)}[menu]
    return [(c.name.lstrip("/"), contextual(lang, MENU, c.menu))
            for audience in audiences for c in commands if c.audience == audience and c.menu]
