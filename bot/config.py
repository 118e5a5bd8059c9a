"""The operator's config.toml: read, checked key by key, and turned into the handlers' settings."""

from __future__ import annotations

import difflib
import json
import os
import re
import tomllib
import unicodedata
from collections.abc import Mapping
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (AfterValidator, BaseModel, ConfigDict, Field, PrivateAttr, SecretStr, ValidationError,
                      ValidationInfo, model_validator)

from handlers.areas import Area, AreaIndex, PlaceNamesError, load_place_names
from handlers.context import Limits, Stats, TipLineSettings, Triage
from handlers.reminders.festival_calendar import CalendarError, Offset, ReminderSettings, load_calendar, parse_clock
from handlers.units import Unit, UnitTree
from handlers.citizen.questionnaire_file import QuestionnaireError, load_questionnaire

DEFAULT_PATH = Path("config.toml")

_SECRET_RULE = "16–256 characters of A-Z a-z 0-9 _ -"


def setting(default: Any = ..., *, env: str | None = None, secret: bool = False, retired: bool = False,
            **field: Any) -> Any:
    """One setting's whole definition beside its type and checks: its default, the TINBAO_* variable that
    wins over the file, and whether its value is secret (never repeated in an error message: messages
    end up in logs, terminals and bug reports). A retired setting is still read, so an older config.toml
    starts, but config.example.toml no longer shows it."""
    extra = {"env": env, "secret": secret or None, "retired": retired or None}
    return Field(default, json_schema_extra={k: v for k, v in extra.items() if v}, **field)


class ConfigError(Exception):
    """One clear line naming the bad config key, e.g.
    `config.toml: limits.tips_per_day: must be a whole number ≥ 1 (got "abc")`."""

    def __init__(self, message: str) -> None:
        super().__init__(" ".join(str(message).splitlines()))


class _Invalid(ValueError):
    """A check spanning several keys that knows which key, below the model it runs on, is wrong."""

    def __init__(self, loc: tuple[str | int, ...], message: str) -> None:
        super().__init__(message)
        self.loc = loc


def _resolve(path: Path, info: ValidationInfo) -> Path:
    """Relative paths follow the config file, not the working directory (systemd starts us in /)."""
    path = path.expanduser()
    base = (info.context or {}).get("base")
    return path if path.is_absolute() or base is None else base / path


def _shaped(pattern: str, message: str) -> AfterValidator:
    """A non-empty value must match ``pattern`` (empty means "not used")."""
    def check(value: Any) -> Any:
        text = value.get_secret_value() if isinstance(value, SecretStr) else value
        if text and not re.fullmatch(pattern, text):
            raise ValueError(message)
        return value
    return AfterValidator(check)


def _place_name(name: str) -> str:
    # NFC: an editor that saves decomposed accents would otherwise defeat matching typed names.
    if not (name := unicodedata.normalize("NFC", name.strip())):
        raise ValueError("must not be empty")
    return name


ConfigPath = Annotated[Path, AfterValidator(_resolve)]
WholeNumber = Annotated[int, Field(strict=True, ge=1)]  # strict: "5" in quotes is a mistake worth naming


class _Section(BaseModel):
    # validate_default: the defaults ("./data", …) must be resolved against the config folder too.
    model_config = ConfigDict(extra="forbid", frozen=True, validate_default=True)


class BotSection(_Section):
    data_dir: ConfigPath = setting(Path("data"), env="TINBAO_DATA_DIR")
    keyring: ConfigPath = setting(Path("keyring.json"), env="TINBAO_KEYRING")
    default_language: Literal["vi", "en"] = "vi"
    emergency_number: Annotated[str, _shaped(r"[0-9]{2,15}", "must be a phone number, digits only")] = "113"
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    # /healthz and /metrics on a listener of their own (polling mode); webhook listeners always serve them.
    health_listen: Annotated[str, _shaped(r"\S+:[0-9]{1,5}", 'must be "host:port"')] = ""


class DatabaseSection(_Section):
    url: Annotated[str, _shaped(r"(sqlite|postgresql)\S*", "must start with sqlite or postgresql")] = setting(
        "", env="TINBAO_DATABASE_URL", secret=True, repr=False)  # a PostgreSQL URL holds a password


class TelegramSection(_Section):
    # The shape aiogram insists on: caught here, the operator sees the key instead of a traceback.
    token: Annotated[SecretStr, _shaped(r"[0-9]+:[A-Za-z0-9_-]+", "is not a token from @BotFather")] = setting(
        SecretStr(""), env="TINBAO_TELEGRAM_TOKEN")
    api_base: Annotated[str, _shaped(r"https?://\S+", "must be an http(s):// address")] = "https://api.telegram.org"
    mode: Literal["polling", "webhook"] = "polling"
    webhook_url: str = ""
    webhook_listen: Annotated[str, _shaped(r"\S+:[0-9]{1,5}", 'must be "host:port"')] = "127.0.0.1:8080"
    webhook_secret: Annotated[SecretStr, _shaped(r"[A-Za-z0-9_-]{16,256}", f"must be {_SECRET_RULE}")] = setting(
        SecretStr(""), env="TINBAO_TELEGRAM_WEBHOOK_SECRET")

    @model_validator(mode="after")
    def _webhook_complete(self) -> TelegramSection:
        if self.mode == "webhook" and not self.webhook_secret.get_secret_value():
            # Without it, anyone who finds the URL can post forged updates in any citizen's name.
            raise _Invalid(("webhook_secret",), f"is required in webhook mode ({_SECRET_RULE})")
        if self.mode == "webhook" and not self.webhook_url.startswith("https://"):
            raise _Invalid(("webhook_url",), "webhook mode needs the public https:// address Telegram will call")
        return self


class ZaloBotSection(_Section):
    """The Zalo Bot Platform: a bot made in the Zalo app through the «Zalo Bot Manager» account."""

    # Zalo documents "12345689:abc-xyz"; only the digits and colon are checked strictly, the rest must
    # merely be safe in the URL path it is put in.
    token: Annotated[SecretStr, _shaped(r"[0-9]+:[^\s/?#%]+", "is not a Zalo Bot token (digits:letters, as Zalo "
                                                             "Bot Manager sent it)")] = setting(
        SecretStr(""), env="TINBAO_ZALO_BOT_TOKEN")
    api_base: Annotated[str, _shaped(r"https?://\S+", "must be an http(s):// address")] = \
        "https://bot-api.zaloplatforms.com"
    mode: Literal["polling", "webhook"] = "polling"
    webhook_url: str = ""
    webhook_listen: Annotated[str, _shaped(r"\S+:[0-9]{1,5}", 'must be "host:port"')] = "127.0.0.1:8080"
    webhook_secret: Annotated[SecretStr, _shaped(r"[A-Za-z0-9_-]{16,256}", f"must be {_SECRET_RULE}")] = setting(
        SecretStr(""), env="TINBAO_ZALO_BOT_WEBHOOK_SECRET")

    @model_validator(mode="after")
    def _webhook_complete(self) -> ZaloBotSection:
        if self.mode == "webhook" and not self.webhook_secret.get_secret_value():
            # Zalo sends it in X-Bot-Api-Secret-Token; without it anyone could post events as any citizen.
            raise _Invalid(("webhook_secret",), f"is required in webhook mode ({_SECRET_RULE})")
        if self.mode == "webhook" and not self.webhook_url.startswith("https://"):
            raise _Invalid(("webhook_url",), "webhook mode needs the public https:// address Zalo will call")
        return self


ZaloId = Annotated[str, _shaped(r"[0-9]{1,32}", "must be digits only, as Zalo shows it")]


class ZaloOASection(_Section):
    """A police unit's own Zalo Official Account, linked to an app on developers.zalo.me (see README)."""

    app_id: ZaloId = ""
    oa_id: ZaloId = ""
    # The OA Secret Key of the app's link to the OA (webhook signatures), not the App Secret Key.
    secret_key: Annotated[SecretStr, _shaped(r"\S{8,256}", "must be the OA Secret Key (no spaces)")] = setting(
        SecretStr(""), env="TINBAO_ZALO_OA_SECRET_KEY")
    # The App Secret Key (the secret_key header of OAuth calls).
    app_secret: Annotated[SecretStr, _shaped(r"\S{8,256}", "must be the App Secret Key (no spaces)")] = setting(
        SecretStr(""), env="TINBAO_ZALO_OA_APP_SECRET")
    redirect_uri: Annotated[str, _shaped(r"https?://\S+", "must be an http(s):// address")] = ""
    api_base: Annotated[str, _shaped(r"https?://\S+", "must be an http(s):// address")] = "https://openapi.zalo.me"
    oauth_base: Annotated[str, _shaped(r"https?://\S+", "must be an http(s):// address")] = "https://oauth.zaloapp.com"
    # No longer used: reminder templates go by user_id through api_base (bot/channels/zalo_oa.py). Still read,
    # so a config.toml written by an older `tinbao init` starts; `tinbao run` then says to remove it.
    template_api_base: Annotated[str, _shaped(r"https?://\S+", "must be an http(s):// address")] = setting("", retired=True)
    webhook_listen: Annotated[str, _shaped(r"\S+:[0-9]{1,5}", 'must be "host:port"')] = "127.0.0.1:8080"
    refresh_every_hours: Annotated[int, Field(strict=True, ge=1, le=24)] = 20
    # kB of 1,000 bytes; Zalo takes at most 1,000,000 (larger values are lowered to that, with a warning).
    image_max_kb: WholeNumber = 1000
    welcome_on_follow: bool = True
    reminder_template_id: Annotated[str, _shaped(r"[0-9A-Za-z_-]{1,64}", "must be the template id Zalo approved")] = ""
    reminder_template_param: Annotated[str, _shaped(r"[A-Za-z0-9_]{1,64}", "must be a template parameter name")] = \
        "content"
    reminders_in_paid_window: bool = False

    @property
    def configured(self) -> bool:
        return bool(self.app_id or self.oa_id)

    @model_validator(mode="after")
    def _complete(self) -> ZaloOASection:
        if not self.configured:
            return self
        for key in ("app_id", "oa_id"):
            if not getattr(self, key):
                raise _Invalid((key,), "is required once [zalo_oa] is used (app_id and oa_id, from developers.zalo.me)")
        if not self.secret_key.get_secret_value():
            # Without it, any event could be forged in any citizen's name.
            raise _Invalid(("secret_key",), "is required: the OA Secret Key (set TINBAO_ZALO_OA_SECRET_KEY)")
        if not self.app_secret.get_secret_value():
            raise _Invalid(("app_secret",), "is required to refresh the OA's tokens (set TINBAO_ZALO_OA_APP_SECRET)")
        return self


class LimitsSection(_Section):
    tips_per_day: WholeNumber = 5
    messages_per_minute: WholeNumber = 20
    status_checks_per_hour: WholeNumber = 10
    draft_ttl_hours: WholeNumber = 24
    max_files: WholeNumber = 10
    max_file_mb: WholeNumber = 20

    def limits(self) -> Limits:
        return Limits(tips_per_day=self.tips_per_day, messages_per_minute=self.messages_per_minute,
                      status_checks_per_hour=self.status_checks_per_hour, draft_ttl=timedelta(hours=self.draft_ttl_hours),
                      max_files=self.max_files, max_file_bytes=self.max_file_mb * 1024 * 1024)


class QuestionnaireSection(_Section):
    path: ConfigPath | None = None
    place_names: ConfigPath | None = None  # the deployment's own old names for the ward step (handlers/areas.py)


class AreaEntry(_Section):
    code: Annotated[str, _shaped(r"[0-9A-Za-z._-]{1,32}", "must be 1–32 letters, digits, . _ -")]
    name: Annotated[str, AfterValidator(_place_name)]
    parent: str | None = None


def parents_of(areas: list[AreaEntry]) -> dict[str, str | None]:
    return {a.code: a.parent for a in areas}


class UnitEntry(_Section):
    """A police unit: province police at the top, commune/ward police below (two local levels since 2025)."""

    id: Annotated[str, _shaped(r"[0-9A-Za-z._-]{1,32}", "must be 1–32 letters, digits, . _ -")]
    name: Annotated[str, AfterValidator(_place_name)]
    parent: str | None = None
    areas: list[str] = Field(default_factory=list)


class TriageSection(_Section):
    unclaimed_alert_hours: WholeNumber = 24
    review_alert_hours: WholeNumber = 72
    purge_not_valuable_after_days: WholeNumber = 365
    invite_ttl_hours: WholeNumber = 24

    def triage(self) -> Triage:
        return Triage(unclaimed_alert=timedelta(hours=self.unclaimed_alert_hours),
                      review_alert=timedelta(hours=self.review_alert_hours),
                      purge_not_valuable_after=timedelta(days=self.purge_not_valuable_after_days),
                      invite_ttl=timedelta(hours=self.invite_ttl_hours))


class StatsSection(_Section):
    """Figures for supervisors (/stats, /report, `tinbao report`)."""

    # Figures that may leave the force (`tinbao report`, and /stats or /baocao with "congbo"): counts
    # below this are shown as "<3"; 1 shows every count.
    min_cell: WholeNumber = setting(3)
    # A supervisor's own /stats and /baocao, which stay within the force; unset: as strict as min_cell.
    min_cell_supervisors: WholeNumber | None = setting(None)

    def stats(self) -> Stats:
        return Stats(min_cell=self.min_cell, min_cell_supervisors=self.min_cell_supervisors)


def _offset(text: str) -> str:
    try:
        Offset.parse(text)
    except CalendarError as exc:
        raise ValueError(str(exc)) from None
    return text


ClockTime = Annotated[str, _shaped(r"([01]?[0-9]|2[0-3]):[0-5][0-9]", 'must be a time of day such as "21:00"')]


class RemindersSection(_Section):
    """Festival reminders: sending pace, quiet hours, the calendar of national days."""

    enabled: bool = True
    rate_per_second: WholeNumber = 25
    quiet_start: ClockTime = "21:00"
    quiet_end: ClockTime = "07:00"
    tick_seconds: WholeNumber = 30
    max_attempts: WholeNumber = 5
    retry_seconds: WholeNumber = 30
    unknown_after_minutes: WholeNumber = 10
    default_offsets: list[Annotated[str, AfterValidator(_offset)]] = Field(
        default_factory=lambda: ["7d 08:00", "1d 08:00", "0d 07:00"])
    calendar: ConfigPath | None = None

    def reminder_settings(self, calendar) -> ReminderSettings:
        """These settings with the calendar already read (and checked against [[areas]])."""
        return ReminderSettings(
            enabled=self.enabled, rate_per_second=float(self.rate_per_second),
            quiet_start=parse_clock(self.quiet_start), quiet_end=parse_clock(self.quiet_end),
            tick_seconds=float(self.tick_seconds), max_attempts=self.max_attempts,
            retry_seconds=float(self.retry_seconds), unknown_after=timedelta(minutes=self.unknown_after_minutes),
            default_offsets=tuple(Offset.parse(o) for o in self.default_offsets) or ReminderSettings().default_offsets,
            calendar=calendar)


class Config(_Section):
    # Sections default to {} rather than an instance so that their defaults, too, see the config folder.
    bot: BotSection = Field(default_factory=dict)  # type: ignore[arg-type]
    database: DatabaseSection = Field(default_factory=dict)  # type: ignore[arg-type]
    telegram: TelegramSection = Field(default_factory=dict)  # type: ignore[arg-type]
    zalo_bot: ZaloBotSection = Field(default_factory=dict)  # type: ignore[arg-type]
    zalo_oa: ZaloOASection = Field(default_factory=dict)  # type: ignore[arg-type]
    limits: LimitsSection = Field(default_factory=dict)  # type: ignore[arg-type]
    questionnaire: QuestionnaireSection = Field(default_factory=dict)  # type: ignore[arg-type]
    areas: list[AreaEntry] = Field(default_factory=list)
    units: list[UnitEntry] = Field(default_factory=list)
    triage: TriageSection = Field(default_factory=dict)  # type: ignore[arg-type]
    reminders: RemindersSection = Field(default_factory=dict)  # type: ignore[arg-type]
    stats: StatsSection = Field(default_factory=dict)  # type: ignore[arg-type]
    _source: str = PrivateAttr("config.toml")  # the file's name, for errors found after loading

    @model_validator(mode="after")
    def _area_tree(self) -> Config:
        if not self.areas:
            raise _Invalid(("areas",), "add at least one [[areas]] entry: the province and its wards/communes")
        first: dict[str, int] = {}
        for i, area in enumerate(self.areas):
            if first.setdefault(area.code, i) != i:
                raise _Invalid(("areas", i, "code"), f'"{area.code}" is already used by areas[{first[area.code]}]')
        parents = {a.code: a.parent for a in self.areas}
        for i, area in enumerate(self.areas):
            if area.parent is not None and area.parent not in parents:
                raise _Invalid(("areas", i, "parent"), f'"{area.parent}" is not the code of any [[areas]] entry')
            code, chain = area.code, set()
            while code is not None:  # a loop would pass an unassigned tip "to the parent unit" for ever
                if code in chain:
                    raise _Invalid(("areas", i, "parent"), f'the parents of "{area.code}" form a loop')
                chain.add(code)
                code = parents[code]
        return self

    @model_validator(mode="after")
    def _unit_tree(self) -> Config:
        ids: dict[str, int] = {}
        owner: dict[str, int] = {}
        for i, unit in enumerate(self.units):
            if ids.setdefault(unit.id, i) != i:
                raise _Invalid(("units", i, "id"), f'"{unit.id}" is already used by units[{ids[unit.id]}]')
            for code in unit.areas:
                if code not in parents_of(self.areas):
                    raise _Invalid(("units", i, "areas"), f'"{code}" is not the code of any [[areas]] entry')
                if owner.setdefault(code, i) != i:  # a tip must have one unit, not two
                    raise _Invalid(("units", i, "areas"), f'"{code}" already belongs to units[{owner[code]}]')
        for i, unit in enumerate(self.units):
            if unit.parent is not None and unit.parent not in ids:
                raise _Invalid(("units", i, "parent"), f'"{unit.parent}" is not the id of any [[units]] entry')
            seen, current = set(), unit
            while current is not None and current.parent is not None:
                if current.id in seen:
                    raise _Invalid(("units", i, "parent"), f'the parents of "{unit.id}" form a loop')
                seen.add(current.id)
                current = self.units[ids[current.parent]]
        return self

    def database_url(self) -> str:
        """The configured URL, else a SQLite file in the data directory (storage picks the async driver)."""
        return self.database.url or f"sqlite+aiosqlite:///{self.bot.data_dir.as_posix()}/tinbao.db"

    def tipline_settings(self) -> TipLineSettings:
        """What the conversation handlers need; a broken questionnaire file is reported as a config error."""
        try:
            questionnaire = load_questionnaire(self.questionnaire.path)
        except QuestionnaireError as exc:
            raise ConfigError(f"{self._source}: questionnaire.path: {exc}") from None
        except (OSError, LookupError, TypeError, ValueError, AttributeError) as exc:  # malformed past its checks
            raise ConfigError(f"{self._source}: questionnaire.path: {self.questionnaire.path} is malformed "
                              f"({type(exc).__name__}: {exc})") from None
        other_names = []
        if self.questionnaire.place_names is not None:
            try:
                other_names = load_place_names(self.questionnaire.place_names, parents_of(self.areas))
            except PlaceNamesError as exc:
                raise ConfigError(f"{self._source}: questionnaire.place_names: {exc}") from None
        areas = AreaIndex([Area(code=a.code, name=a.name, parent=a.parent) for a in self.areas],
                          other_names=other_names)
        return TipLineSettings(
            areas=areas,
            questionnaire=questionnaire,
            limits=self.limits.limits(),
            default_language=self.bot.default_language,
            emergency_number=self.bot.emergency_number,
            units=UnitTree([Unit(u.id, u.name, u.parent, tuple(u.areas)) for u in self.units], areas),
            triage=self.triage.triage(),
            stats=self.stats.stats(),
            reminders=self.reminder_settings(),  # a broken calendar file stops the start, like a questionnaire
        )

    def reminder_settings(self) -> ReminderSettings:
        """The reminder settings, with the calendar file read and its areas checked against [[areas]]."""
        section = self.reminders
        key = f"{self._source}: reminders.calendar"
        try:
            calendar = load_calendar(section.calendar)
        except CalendarError as exc:
            raise ConfigError(f"{key}: {exc}") from None
        known = parents_of(self.areas)
        for event in calendar:
            if event.area is not None and event.area not in known:
                raise ConfigError(f'{key}: event {event.id}: area "{event.area}" is not the code of any '
                                  f'[[areas]] entry')
        return section.reminder_settings(calendar)


def _settings_of(model: type[BaseModel], prefix: str = ""):
    """(dotted key, field) for every setting of the file, sections included."""
    for name, field in model.model_fields.items():
        kind = field.annotation
        if isinstance(kind, type) and issubclass(kind, _Section):
            yield from _settings_of(kind, f"{prefix}{name}.")
        else:
            yield f"{prefix}{name}", field


def _extra(field, what: str) -> Any:
    return (field.json_schema_extra or {}).get(what)


SETTINGS = dict(_settings_of(Config))
# Secrets come from the environment so that config.toml can live in git and backups without them.
ENV_OVERRIDES = {_extra(f, "env"): tuple(key.split(".")) for key, f in SETTINGS.items() if _extra(f, "env")}
_ENV_PATHS = {_extra(f, "env") for f in SETTINGS.values() if _extra(f, "env") and f.annotation is Path}
_SECRET_KEYS = {key for key, f in SETTINGS.items() if _extra(f, "secret") or f.annotation is SecretStr}


def load_config(path: str | Path | None = None, *, environ: Mapping[str, str] | None = None) -> Config:
    """Read config.toml (or $TINBAO_CONFIG), let TINBAO_* variables win, and check every key."""
    environ = os.environ if environ is None else environ
    path = Path(path if path is not None else environ.get("TINBAO_CONFIG") or DEFAULT_PATH)
    label = str(path)
    try:
        with path.open("rb") as file:
            raw = tomllib.load(file)
    except FileNotFoundError:
        raise ConfigError(f"{label}: no such file; run `tinbao init` to create one (or set TINBAO_CONFIG)") from None
    except tomllib.TOMLDecodeError as exc:  # its message ends "(at line L, column C)"
        raise ConfigError(f"{label}: not valid TOML: {exc}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{label}: cannot be read as UTF-8 text: {exc}") from None
    from_env = _apply_environment(raw, environ)
    try:
        config = Config.model_validate(raw, context={"base": path.absolute().parent})
    except ValidationError as exc:
        # from None: a ValidationError repeats the input values, secrets included.
        raise ConfigError(f"{label}: {_describe(exc, from_env)}") from None
    config._source = label
    return config


def _apply_environment(raw: dict[str, Any], environ: Mapping[str, str]) -> dict[str, str]:
    """Copy TINBAO_* values into the parsed file; returns dotted key → variable, to name it in errors."""
    applied = {}
    for variable, (section, key) in ENV_OVERRIDES.items():
        if not (value := environ.get(variable)):  # compose files pass unset variables as empty strings
            continue
        if variable in _ENV_PATHS:  # relative to where the operator typed it, as in any shell command
            value = str(Path(value).expanduser().absolute())
        if isinstance(table := raw.setdefault(section, {}), dict):  # else validation names the bad section
            table[key] = value
            applied[f"{section}.{key}"] = variable
    return applied


_PLAIN = {
    "extra_forbidden": "unknown key", "missing": "is required",
    "int_type": "must be a whole number ≥ 1", "greater_than_equal": "must be a whole number ≥ 1",
    "string_type": 'must be text in quotes, e.g. "…"', "path_type": "must be a file or folder path in quotes",
    "model_type": "must be a table, e.g. [section]", "list_type": "must be a list of [[areas]] tables",
}
_KNOWN_KEYS = {name for model in (Config, BotSection, DatabaseSection, TelegramSection, ZaloBotSection, ZaloOASection,
                                  LimitsSection, QuestionnaireSection, AreaEntry, UnitEntry, TriageSection,
                                  RemindersSection, StatsSection)
               for name in model.model_fields}


def _describe(exc: ValidationError, from_env: Mapping[str, str]) -> str:
    """Pydantic's first complaint as `<dotted.key>: <plain message>`, with the value only if not secret."""
    errors = exc.errors()
    loc, kind, cause = errors[0]["loc"], errors[0]["type"], (errors[0].get("ctx") or {}).get("error")
    if isinstance(cause, _Invalid):
        loc, message = loc + cause.loc, str(cause)
    elif kind == "value_error":
        message = str(cause)
    elif kind == "literal_error":
        message = f"must be one of {errors[0]['ctx']['expected']}"
    else:
        message = _PLAIN.get(kind) or errors[0]["msg"][:1].lower() + errors[0]["msg"][1:]
    key = "".join(f"[{part}]" if isinstance(part, int) else f".{part}" for part in loc).lstrip(".")
    if kind == "extra_forbidden" and (close := difflib.get_close_matches(str(loc[-1]), _KNOWN_KEYS, n=1)):
        message += f" (did you mean {close[0]}?)"
    value = errors[0].get("input")
    if (kind not in ("missing", "extra_forbidden") and not isinstance(cause, _Invalid) and key not in _SECRET_KEYS
            and isinstance(value, (str, int, float, bool))):
        shown = json.dumps(value, ensure_ascii=False)
        message += f" (got {shown if len(shown) <= 60 else shown[:57] + '…'})"
    if key in from_env:
        key += f" (from ${from_env[key]})"
    more = len(errors) - 1
    return f"{key}: {message}" + (f" (and {more} more problem{'s' if more > 1 else ''})" if more else "")
