"""One update being handled: the chat's locked conversation row, language, texts and services."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from sqlmodel.ext.asyncio.session import AsyncSession

from handlers.context import Services
from handlers.i18n import pick_language, translator
from handlers.messages import Inbound
from storage.models import Conversation


@dataclass
class Turn:
    services: Services
    session: AsyncSession
    conversation: Conversation
    inbound: Inbound
    now: datetime

    @property
    def lang(self) -> str:
        return pick_language(self.conversation.language, self.inbound.language,
                             self.services.settings.default_language)

    @property
    def _(self) -> Callable[[str], str]:
        return translator(self.lang)
