"""The tip line behind a unit's own OA: webhook events stored sealed and answered, consultation messages
out, reminders inside the 7-day window or by ZBS template (VinFleet §5.2, §5.4; the "ZBS_Template_Mesage_API_v1"
PDF as quoted by a 2026 integration; see docs/zalo-oa.md)."""

from __future__ import annotations

import asyncio
import json
import logging
import secrets
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any

from aiohttp import web

from bot.channels.base import BLOCKED, REJECTED, SENT, TRANSIENT, ChatQueue, Outcome
from bot.channels.http_client import failure_line
from bot.channels.zalo_oa.codes import (CHAT_UNREACHABLE, NIGHT, NOT_FOLLOWER, OA_NOT_ELIGIBLE, OA_QUOTA, OUTSIDE_WINDOW,
                                        RATE_LIMITED, RESTRICTED, TEMPLATE_NOT_BY_UID, TOKEN_ERRORS, WHY_UNREACHABLE)
from bot.channels.zalo_oa.client import ZaloOAClient, ZaloOAError
from bot.channels.zalo_oa.events import (BUTTON_PAYLOAD, CHANNEL, ECHOES, EVENT_NAME_SHAPE, HANDLED_EVENTS, STALE_BUTTON,
                                         UndecodableEvent, button_binding, dedup_key, seen_key, to_inbound, user_of)
from bot.channels.zalo_oa.rendering import (BUTTONS_PER_MESSAGE, FILE_NOTICES, IMAGE_LIMIT, TEXT_LIMIT, Part,
                                            button_title, fit_image, human_size, render)
from bot.channels.zalo_oa.signature import (BAD_SIGNATURE, SIGNATURE_HEADER, TIMESTAMP_HEADER, epoch_ms,
                                            verify_event)
from bot.channels.zalo_oa.tokens import NotConnected, TokenKeeper
from bot.delivery import Deliveries
from bot.webhook import header_bytes, read_capped
from handlers import officer_alerts
from handlers.messages import Choice, Inbound, OutgoingFile, Reply, Route
from handlers.router import TipLine
from storage import zalo_oa as store
from storage.db import DatabaseAway

log = logging.getLogger(__name__)


WINDOW = timedelta(days=7)  # consultation messages reach a citizen this long after they last interacted
FREE_WINDOW = timedelta(hours=48)  # … and cost nothing for this long
STORE_DEADLINE = 1.5  # seconds to store an event before Zalo's 2 s are up; later, Zalo is told to retry
EVENT_LEASE = timedelta(minutes=2)  # a stored event nobody finished by then is taken by the sweeper
RATE_LIMIT_PAUSE = 2.0  # -32 on a reply: one more try after this long
# Dedup rows (by msg_id) must outlive ACCEPT_FOR, or a replay accepted after its row was purged would be
# handled twice; 3 days is that and then some (tests/bot/test_zalo_oa.py checks it after a purge).
KEEP_EVENTS = timedelta(days=3)
KEEP_BUTTONS = timedelta(days=30)
WEBHOOK_PATH = "/zalo-oa/webhook"
MAX_BODY = 256 * 1024  # an event is a few hundred bytes; attachments come as URLs


@dataclass(frozen=True)
class OASettings:
    """The [zalo_oa] section, as the channel uses it."""

    app_id: str
    oa_id: str
    secret_key: str = field(repr=False)
    image_max_bytes: int = IMAGE_LIMIT
    reminder_template_id: str = ""
    reminder_template_param: str = "content"
    reminders_in_paid_window: bool = False
    welcome_on_follow: bool = True
    refresh_every: timedelta = timedelta(hours=20)


class ZaloOAChannel:
    """The tip line behind a unit's own OA: webhook events in, consultation messages out.

    One chat's events are handled (and answered) in the order they came; chats run side by side."""

    name, label, webhook_path = CHANNEL, "the Zalo OA", WEBHOOK_PATH

    def __init__(self, *, client: ZaloOAClient, tipline: TipLine, settings: OASettings,
                 deliveries: Deliveries | None = None, tokens: TokenKeeper | None = None,
                 worker: str | None = None) -> None:
        self.client, self.tipline, self.settings = client, tipline, settings
        self.services = tipline.services
        # Shared with the other channels of this process: a verdict written on Telegram reaches a tipster here.
        self.deliveries = deliveries or Deliveries()
        self.deliveries.register(CHANNEL, self.send)
        self.tokens = tokens or TokenKeeper(self.services, client, settings.oa_id,
                                            refresh_every=settings.refresh_every, on_failure=self._alert)
        self.worker = worker or f"oa-{secrets.token_hex(6)}"
        # What became of each webhook call: handled, ignored (echoes…), duplicate (Zalo's retries),
        # undecodable (signed, unreadable), failed (our side), refused (not Zalo's).
        self.outcomes: Counter[str] = Counter()
        self._told: set[int] = set()  # operator-side refusals already logged once (-249, -221, -224)
        self._chats = ChatQueue()
        self._last_purge: datetime | None = None

    async def _alert(self, reason: str) -> None:
        replies = await officer_alerts.zalo_oa_refresh_failed(self.services, reason=reason)
        await self.deliveries.send(replies, origin=Route("system", "-"))
        told = len(replies)
        log.error("Zalo OA token refresh failed; %d admin(s) told", told)

    # --- receiving ---

    async def receive(self, raw: bytes, signature: str | bytes | None,
                      timestamp_header: str | bytes | None = None) -> int:
        """One webhook call: checked, stored durably, answered; the event is then handled in its own task."""
        now_ms = int(self.services.clock().timestamp() * 1000)
        verdict = verify_event(raw, signature, app_id=self.settings.app_id, secret_key=self.settings.secret_key,
                               now_ms=now_ms, timestamp_header=timestamp_header)
        if verdict.status != 200:
            self.refuse(verdict.why or BAD_SIGNATURE)
            return verdict.status
        if verdict.event is None:
            if verdict.why:
                self.skip(verdict.why)
            return 200  # the probe, or Zalo's own body that we cannot read: either way, not sent again
        event = verdict.event
        name = event.get("event_name")
        if isinstance(name, str) and (name.startswith("oa_send_") or name in ECHOES or name not in HANDLED_EVENTS):
            # Echoes of what the OA (the bot, or an officer typing in the OA inbox) sent: never answered.
            self.outcomes["ignored"] += 1
            log.debug("a Zalo OA event was ignored: %s", name if EVENT_NAME_SHAPE.fullmatch(name) else "(unknown name)")
            return 200
        try:
            to_inbound(event, oa_id=self.settings.oa_id, fetcher=self._fetcher)  # readable? (decoded again later)
        except UndecodableEvent as exc:
            self.skip(str(exc))
            return 200
        except Exception as exc:
            self.skip(failure_line(exc))
            return 200
        storing = asyncio.ensure_future(self._store(event, raw))
        done, _ = await asyncio.wait({storing}, timeout=STORE_DEADLINE)
        if not done:
            # Zalo will retry; if the insert still lands, the event is handled when it does (and the retry
            # is a duplicate), so nothing is lost either way.
            storing.add_done_callback(lambda late: self._stored_late(late, event))
            log.warning("a Zalo OA event could not be stored within %.1f s; Zalo is asked to retry", STORE_DEADLINE)
            return 503
        try:
            event_id = storing.result()
        except Exception as exc:
            log.error("a Zalo OA event could not be stored (%s); Zalo is asked to retry", failure_line(exc))
            return 503
        if event_id is None:
            self.outcomes["duplicate"] += 1  # Zalo sent it again: stored (and handled) the first time
        else:
            self.dispatch(event, event_id)
        return 200

    def refuse(self, why: str) -> None:
        """Count a call that is not (provably) Zalo's; one log line, without its content."""
        self.outcomes["refused"] += 1
        log.warning("a Zalo OA webhook call was refused: %s", why)

    def skip(self, why: str) -> None:
        """Count a signed event that cannot be read; one log line, without its content."""
        self.outcomes["undecodable"] += 1
        log.warning("a signed Zalo OA event could not be read and was acknowledged: %s", why)

    def _stored_late(self, task: asyncio.Task, event: dict) -> None:
        if task.cancelled():
            return
        if (exc := task.exception()) is not None:
            log.error("a Zalo OA event stored too late failed (%s); Zalo's retry will bring it", failure_line(exc))
        elif task.result() is not None:
            self.dispatch(event, task.result())

    async def _store(self, event: dict, raw: bytes):
        async with self.services.db.transaction() as session:
            event_id = await store.store_event(session=session, keyring=self.services.keyring,
                                               dedup_key=dedup_key(event, self.settings.oa_id),
                                               event_name=event["event_name"], raw=raw, worker=self.worker,
                                               now=self.services.clock())
        return event_id

    def dispatch(self, event: dict, event_id: int) -> asyncio.Task:
        """Handle one stored event after the chat's previous one."""
        return self._chats.run(user_of(event) or "-", lambda: self.handle(event, event_id))

    async def handle(self, event: dict, event_id: int | None = None) -> None:
        """A citizen wrote, tapped a button, sent a file or a location, followed the OA: answer it."""
        user = user_of(event)
        later = False
        try:
            inbound = to_inbound(event, oa_id=self.settings.oa_id, fetcher=self._fetcher)
            if inbound is not None and event.get("event_name") == "follow" and not self.settings.welcome_on_follow:
                inbound = None
            if inbound is not None:
                await self._resolve_button(inbound)
                replies = await self.tipline.handle(inbound)
                await self.deliveries.send(replies, origin=Route(CHANNEL, inbound.chat_id))
        except UndecodableEvent as exc:  # stored by another version, or swept: read it as receive() would
            user = None
            self.skip(str(exc))
        except DatabaseAway:
            later = True  # the event stays stored: the sweep of stale events handles it once the database is back
        except Exception as exc:
            # Never the message or the chat id in the log: only what failed, and where.
            self.outcomes["failed"] += 1
            log.error("a Zalo OA event could not be answered: %s", failure_line(exc))
        else:
            self.outcomes["handled"] += 1
        if later:
            return  # not finished: left stored for the sweep
        try:
            await self._finish(event, event_id, user)
        except Exception as exc:
            log.error("a Zalo OA event could not be marked handled: %s", failure_line(exc))

    async def _finish(self, event: dict, event_id: int | None, user: str | None) -> None:
        """Handled: the event's payload is shredded, and the citizen's last interaction is noted."""
        services = self.services
        now = services.clock()
        sent_at = epoch_ms(event.get("timestamp"))
        at = min(datetime.fromtimestamp(sent_at / 1000, timezone.utc), now) if sent_at else now
        async with services.db.transaction() as session:
            if user is not None and user != self.settings.oa_id:
                key = seen_key(services.keyring, user)
                if event.get("event_name") == "unfollow":
                    await store.forget_interaction(session=session, seen_key=key)  # nothing kept of who left
                else:
                    await store.record_interaction(session=session, keyring=services.keyring, seen_key=key, at=at)
            if event_id is not None:
                await store.finish_event(session=session, event_id=event_id, now=now)

    async def _resolve_button(self, inbound: Inbound) -> None:
        """A tapped oa.query.hide button arrives as text: turn it back into its choice, never into words."""
        match = BUTTON_PAYLOAD.fullmatch((inbound.text or "").strip())
        if match is None:
            return
        async with self.services.db.transaction() as session:
            choice = await store.resolve_button(session=session, keyring=self.services.keyring, token=match.group(1),
                                                binding=button_binding(self.services.keyring, inbound.chat_id))
        inbound.text, inbound.choice = None, choice or STALE_BUTTON

    def _fetcher(self, url: str) -> Callable[[], Awaitable[bytes]]:
        return self.client.fetcher(self.services.settings.limits.max_file_bytes)(url)

    async def sweep(self) -> int:
        """Handle the events that were stored but never finished (a worker stopped, or stored them late)."""
        now = self.services.clock()
        async with self.services.db.transaction() as session:
            left = await store.claim_stale_events(session=session, keyring=self.services.keyring, worker=self.worker,
                                                  claimed_before=now - EVENT_LEASE, now=now)
        for event_id, raw in left:
            try:
                event = json.loads(raw)
            except ValueError:
                event = {}
            self.dispatch(event if isinstance(event, dict) else {}, event_id)
        if left:
            log.info("%d Zalo OA event(s) left unhandled are being handled now", len(left))
        return len(left)

    async def drain(self, timeout: float = 30.0) -> None:
        """Let the events already taken finish, so no citizen loses an answer on shutdown."""
        await self._chats.drain(timeout)

    async def serve(self) -> None:
        """`tinbao run`'s OA job (events come by webhook): the upkeep below, until cancelled."""
        await self.maintain()

    async def stop(self) -> None:
        """Nothing to stop: the webhook server stops taking calls, and the upkeep is cancelled."""

    async def close(self) -> None:
        await self.client.close()

    def add_routes(self, app: web.Application, secret: str = "") -> None:
        """POST /zalo-oa/webhook: X-ZEvent-Signature is checked over the raw bytes; a bad or missing one gets
        401 and nothing else happens (bodies over MAX_BODY get 413: their signature is not worth checking).
        A good event is stored before Zalo gets its 200 (within Zalo's 2 seconds) and handled after; a signed
        one that cannot be read gets 200 too, and is counted, so Zalo stops sending it. Zalo's unsigned ``{}``
        check, when the URL is saved, gets 200. (No path secret: events are checked by their signature.)"""

        async def receive(request: web.Request) -> web.Response:
            raw = await read_capped(request, MAX_BODY)
            if raw is None:
                self.refuse(f"body over {MAX_BODY // 1024} KiB")
                return web.Response(status=413)
            # The raw bytes: the signature covers them, not re-serialised JSON; the headers as bytes too.
            status = await self.receive(raw, header_bytes(request, SIGNATURE_HEADER),
                                        header_bytes(request, TIMESTAMP_HEADER))
            return web.json_response({"error": 0}) if status == 200 else web.Response(status=status)

        async def probe(request: web.Request) -> web.Response:
            return web.Response(status=200)  # a GET carries no event: nothing happens

        app.router.add_post(WEBHOOK_PATH, receive)
        app.router.add_get(WEBHOOK_PATH, probe)

    async def maintain(self, *, every: float = 60.0) -> None:
        """`tinbao run`'s OA job: finish events left behind, refresh the token about every 20 h, purge old rows."""
        while True:
            for job in (self.sweep, self.tokens.refresh_if_due, self.purge):
                try:
                    await job()
                except NotConnected as exc:
                    log.error("%s", exc)
                except Exception as exc:
                    log.error("Zalo OA maintenance failed (%s); retrying later", failure_line(exc))
            await asyncio.sleep(every)

    async def purge(self) -> None:
        """Once a day: handled events past Zalo's retries, old button payloads, interactions past the window."""
        now = self.services.clock()
        if self._last_purge is not None and now - self._last_purge < timedelta(days=1):
            return
        async with self.services.db.transaction() as session:
            await store.purge_events(session=session, before=now - KEEP_EVENTS)
            await store.purge_buttons(session=session, before=now - KEEP_BUTTONS)
            await store.purge_interactions(session=session, keyring=self.services.keyring, before=now - WINDOW)
        self._last_purge = now

    # --- sending ---

    async def _with_token(self, call: Callable[[str], Awaitable[Any]]) -> Any:
        """The call with the current access token; on -216/-220 the token is refreshed once and the call retried once."""
        token, version = await self.tokens.current()
        try:
            return await call(token)
        except ZaloOAError as exc:
            if exc.error_code not in TOKEN_ERRORS:
                raise
            expired = exc
        fresh = await self.tokens.refresh(stale_version=version)
        if fresh is None:
            raise expired
        return await call(fresh)

    async def _save_buttons(self, chat_id: str, choices: list[Choice]) -> list[str]:
        async with self.services.db.transaction() as session:
            return await store.save_buttons(session=session, keyring=self.services.keyring,
                                            binding=button_binding(self.services.keyring, chat_id),
                                            choice_ids=[c.id for c in choices], now=self.services.clock())

    async def _message(self, chat_id: str, part: Part) -> dict:
        message: dict[str, Any] = {"text": part.text}
        if part.choices:
            tokens = await self._save_buttons(chat_id, part.choices)
            message["attachment"] = {"type": "template", "payload": {"buttons": [
                {"title": button_title(choice.label), "type": "oa.query.hide", "payload": f"#tb{token}"}
                for choice, token in zip(part.choices, tokens)]}}
        return message

    async def send_part(self, chat_id: str, part: Part) -> None:
        message = await self._message(chat_id, part)
        await self._with_token(lambda token: self.client.send_message(token, chat_id, message))

    async def send(self, chat_id: str, replies: list[Reply]) -> int:
        """Deliver replies to an OA chat (the one that wrote, or another one the handlers name): every part of
        every reply; returns how many parts were not sent.

        What each refusal does (bot/channels/zalo_oa/codes.py, column "a reply"): -216/-220/-124 refresh once
        and retry once; -32 waits a moment and tries that part once more; a refusal that says the chat cannot
        be reached (CHAT_UNREACHABLE: not a follower, outside the window, a quota, an inactive or restricting
        citizen, the OA's own standing) drops the rest of this chat's messages, since each would be refused
        too; anything else drops that part only."""
        failures = 0
        parts: list[Part | OutgoingFile] = []
        for reply in replies:
            parts += render(reply)
            parts += reply.files
        for index, part in enumerate(parts):
            try:
                await self._send_one(chat_id, part)
            except NotConnected as exc:
                log.error("a reply could not be sent: %s", exc)
                return len(parts) - index
            except ZaloOAError as exc:
                if exc.error_code == RATE_LIMITED:
                    await asyncio.sleep(RATE_LIMIT_PAUSE)
                    try:
                        await self._send_one(chat_id, part)
                        continue
                    except ZaloOAError as again:
                        exc = again
                failures += 1
                code = exc.error_code
                if code in CHAT_UNREACHABLE:
                    log.warning("Zalo OA refused a reply (%s: %s); the rest of it is dropped", code,
                                WHY_UNREACHABLE[code])
                    return failures + len(parts) - index - 1
                # Not retried: whether Zalo delivered it is unknown, and a question twice is worse than a re-prompt.
                log.warning("a reply could not be sent through Zalo OA: %s", exc)
        return failures

    async def _send_one(self, chat_id: str, part: Part | OutgoingFile) -> None:
        if isinstance(part, OutgoingFile):
            await self.send_file(chat_id, part)
        else:
            await self.send_part(chat_id, part)

    async def send_file(self, chat_id: str, file: OutgoingFile) -> None:
        """A photo goes as an uploaded image (shrunk to fit if need be); anything else is named in words."""
        fitted = None
        if file.kind == "photo" or (file.mime or "").startswith("image/"):
            fitted = await asyncio.to_thread(fit_image, file.data, self.settings.image_max_bytes)
        if fitted is None:
            lang = self.services.settings.default_language
            notice = FILE_NOTICES.get(lang, FILE_NOTICES["en"]).format(kind=file.kind, size=human_size(len(file.data)))
            await self.send_part(chat_id, Part(notice))
            return
        data, mime = fitted
        name = "image.jpg" if mime == "image/jpeg" else "image.png"
        attachment_id = await self._with_token(
            lambda token: self.client.upload_image(token, data, filename=name, mime=mime))
        message = {"attachment": {"type": "template", "payload": {"template_type": "media", "elements": [
            {"media_type": "image", "attachment_id": attachment_id}]}}}
        await self._with_token(lambda token: self.client.send_message(token, chat_id, message))

    # --- reminders (the outbox dispatcher's sender for this channel) ---

    async def send_reminder(self, chat_id: str, reply: Reply | str) -> Outcome:
        """A festival reminder: a consultation message inside the free 48 hours (to 7 days if the operator
        pays for it); otherwise the approved template, by user_id, if one is configured; otherwise refused
        as "outside_window", which /broadcasts counts. Never raises for an answer Zalo gave."""
        reply = Reply(reply) if isinstance(reply, str) else reply
        services = self.services
        async with services.db.transaction() as session:
            seen = await store.last_interaction(session=session, keyring=services.keyring,
                                                seen_key=seen_key(services.keyring, chat_id))
        age = services.clock() - seen if seen is not None else None
        limit = WINDOW if self.settings.reminders_in_paid_window else FREE_WINDOW
        without_template = Outcome.refused("outside_window")
        if age is not None and age <= limit:
            try:
                part = Part(reply.text[:TEXT_LIMIT], list(reply.choices[:BUTTONS_PER_MESSAGE]))
                await self.send_part(chat_id, part)
                return SENT
            except NotConnected:
                return TRANSIENT
            except ZaloOAError as exc:
                if exc.error_code == RESTRICTED:
                    # The citizen turned consultation messages off; a template is another kind of message.
                    without_template = REJECTED
                elif exc.error_code not in OUTSIDE_WINDOW:
                    return self._reminder_outcome(exc)
                # Zalo counts the window differently from our record: the template, if there is one.
        return await self._send_template(chat_id, reply, without=without_template)

    async def _send_template(self, chat_id: str, reply: Reply, *, without: Outcome) -> Outcome:
        template_id = self.settings.reminder_template_id
        if not template_id:
            return without
        data = {self.settings.reminder_template_param: reply.text[:400]}
        try:
            sent = await self._with_token(lambda token: self.client.send_template(
                token, user_id=chat_id, template_id=template_id, template_data=data))
        except NotConnected:
            return TRANSIENT
        except ZaloOAError as exc:
            return self._reminder_outcome(exc)
        if not sent.get("message_id"):
            # error 0 is Zalo's word that it was sent; sending again could deliver it twice.
            log.warning("Zalo answered a template with error 0 but no data.message_id; counted as sent")
        return SENT

    def _reminder_outcome(self, exc: ZaloOAError) -> Outcome:
        """What a refused reminder becomes in the outbox (the table at the top, column "a reminder")."""
        code = exc.error_code
        if code == NOT_FOLLOWER:
            return BLOCKED  # no longer follows the OA: unsubscribed, like a Telegram user who blocked the bot
        if code in OUTSIDE_WINDOW:
            return Outcome.refused("outside_window")
        if code == RATE_LIMITED:
            return Outcome.wait(30)
        if code is None or code in TOKEN_ERRORS or code in (OA_QUOTA, NIGHT) or code >= 500:
            return TRANSIENT  # network, a token being replaced, the OA's quota, the night: tried later, a few times
        if code == TEMPLATE_NOT_BY_UID or code in OA_NOT_ELIGIBLE:
            if code not in self._told:  # every reminder would say the same: one line for the operator
                self._told.add(code)
                log.error("Zalo OA refuses reminders with %s (%s): %s", code, exc.description,
                          "zalo_oa.reminder_template_id must be a template approved for sending by user_id"
                          if code == TEMPLATE_NOT_BY_UID else "the OA's verification or package must be fixed")
            return REJECTED
        return REJECTED  # -218, -217, -227, -244, -201 …: this message would be refused again


def channel_from_config(section, *, tipline: TipLine, deliveries: Deliveries) -> ZaloOAChannel:
    """The OA channel `tinbao run` serves, from the [zalo_oa] section of config.toml."""
    if section.template_api_base:
        # Kept readable so an older config.toml still starts; templates now go by user_id through api_base.
        log.warning("zalo_oa.template_api_base is no longer used (reminder templates go by user_id through "
                    "zalo_oa.api_base); remove it from the config")
    image_max_bytes = section.image_max_kb * 1000
    if image_max_bytes > IMAGE_LIMIT:
        log.warning("zalo_oa.image_max_kb = %d is over Zalo's 1 MB (1,000,000 bytes); %d is used",
                    section.image_max_kb, IMAGE_LIMIT // 1000)
        image_max_bytes = IMAGE_LIMIT
    client = ZaloOAClient(app_id=section.app_id, app_secret=section.app_secret.get_secret_value(),
                          api_base=section.api_base, oauth_base=section.oauth_base)
    settings = OASettings(app_id=section.app_id, oa_id=section.oa_id, secret_key=section.secret_key.get_secret_value(),
                          image_max_bytes=image_max_bytes,
                          reminder_template_id=section.reminder_template_id,
                          reminder_template_param=section.reminder_template_param,
                          reminders_in_paid_window=section.reminders_in_paid_window,
                          welcome_on_follow=section.welcome_on_follow,
                          refresh_every=timedelta(hours=section.refresh_every_hours))
    return ZaloOAChannel(client=client, tipline=tipline, settings=settings, deliveries=deliveries)


