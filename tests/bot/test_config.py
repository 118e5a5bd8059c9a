"""config.toml: the example loads, environment wins, and every mistake is one line naming its key."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from bot.config import ConfigError, load_config

EXAMPLE = Path(__file__).resolve().parents[2] / "config.example.toml"
TOKEN = "123456789:AAHsEcReT-tOkEn_only_in_env"
AREAS = '[[areas]]\ncode = "79"\nname = "Thành phố Hồ Chí Minh"\n'

CUSTOM_QUESTIONNAIRE = """
[[steps]]
id = "category"
kind = "choice"
role = "category"
label = { vi = "Loại vụ việc", en = "Category" }
prompt = { vi = "Loại vụ việc?", en = "Which kind?" }
choices = [{ id = "drugs", vi = "Ma túy", en = "Drugs" }]

[[steps]]
id = "area"
kind = "area"
role = "area"
label = { vi = "Địa bàn", en = "Area" }
prompt = { vi = "Ở đâu?", en = "Where?" }

[[steps]]
id = "review"
kind = "review"
label = { vi = "Xem lại", en = "Review" }
prompt = { vi = "Gửi tin?", en = "Send?" }
"""


def write(tmp_path: Path, body: str, name: str = "config.toml") -> Path:
    path = tmp_path / name
    path.write_text(body, encoding="utf-8")
    return path


def error_for(tmp_path: Path, body: str, environ: dict[str, str] | None = None) -> str:
    with pytest.raises(ConfigError) as caught:
        load_config(write(tmp_path, body), environ=environ or {}).tipline_settings()
    message = str(caught.value)
    assert "\n" not in message
    assert message.startswith(str(tmp_path / "config.toml") + ": ")
    return message


def test_example_loads_and_builds_working_settings():
    config = load_config(EXAMPLE, environ={})
    settings = config.tipline_settings()
    assert config.telegram.mode == "polling" and not config.telegram.token.get_secret_value()
    assert config.database_url() == f"sqlite+aiosqlite:///{(EXAMPLE.parent / 'data').as_posix()}/tinbao.db"
    assert settings.default_language == "vi" and settings.emergency_number == "113"
    assert settings.limits.draft_ttl == timedelta(hours=24)
    assert settings.limits.max_file_bytes == 20 * 1024 * 1024
    assert [a.code for a in settings.areas.search("ben thanh")] == ["79.26743"]
    assert settings.areas.display("79.26743") == "Phường Bến Thành, Thành phố Hồ Chí Minh"
    assert settings.areas.get("01.00082").parent == "01"
    assert settings.questionnaire.by_role("category").kind == "choice"


def test_defaults_when_only_areas_are_given(tmp_path):
    config = load_config(write(tmp_path, AREAS), environ={})
    assert config.bot.data_dir == tmp_path / "data"
    assert config.bot.keyring == tmp_path / "keyring.json"
    assert config.telegram.api_base == "https://api.telegram.org"
    assert config.limits.tips_per_day == 5
    assert config.questionnaire.path is None
    with pytest.raises(ValueError):  # frozen: settings cannot drift after start-up checks
        config.limits.tips_per_day = 1000  # type: ignore[misc]


def test_path_comes_from_tinbao_config_else_the_working_directory(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    write(tmp_path, AREAS)
    elsewhere = write(tmp_path, AREAS.replace('"79"', '"01"'), name="elsewhere.toml")
    assert load_config(environ={}).areas[0].code == "79"
    assert load_config(environ={"TINBAO_CONFIG": str(elsewhere)}).areas[0].code == "01"


def test_relative_paths_follow_the_config_file_not_the_working_directory(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "etc").mkdir()
    path = write(tmp_path / "etc", '[bot]\ndata_dir = "state"\nkeyring = "../keys/ring.json"\n' + AREAS)
    config = load_config(path.relative_to(tmp_path), environ={})
    assert config.bot.data_dir == tmp_path / "etc" / "state"
    assert config.bot.keyring.resolve() == tmp_path / "keys" / "ring.json"
    assert config.database_url() == f"sqlite+aiosqlite:///{(tmp_path / 'etc' / 'state').as_posix()}/tinbao.db"


def test_environment_overrides_win_over_the_file(tmp_path):
    body = ('[bot]\ndata_dir = "file-data"\nkeyring = "file-ring.json"\n'
            '[database]\nurl = "sqlite+aiosqlite:///file.db"\n'
            '[telegram]\ntoken = "1:fromfile"\nmode = "webhook"\nwebhook_url = "https://tin.example.vn/tg"\n' + AREAS)
    environ = {"TINBAO_TELEGRAM_TOKEN": TOKEN, "TINBAO_TELEGRAM_WEBHOOK_SECRET": "s" * 32,
               "TINBAO_DATA_DIR": str(tmp_path / "env-data"), "TINBAO_KEYRING": str(tmp_path / "env-ring.json"),
               "TINBAO_DATABASE_URL": "postgresql://tinbao:pw@db/tinbao"}
    config = load_config(write(tmp_path, body), environ=environ)
    assert config.telegram.token.get_secret_value() == TOKEN
    assert config.telegram.webhook_secret.get_secret_value() == "s" * 32
    assert config.bot.data_dir == tmp_path / "env-data"
    assert config.bot.keyring == tmp_path / "env-ring.json"
    assert config.database_url() == "postgresql://tinbao:pw@db/tinbao"


def test_an_empty_environment_variable_counts_as_unset(tmp_path):
    config = load_config(write(tmp_path, '[telegram]\ntoken = "1:fromfile"\n' + AREAS),
                         environ={"TINBAO_TELEGRAM_TOKEN": ""})
    assert config.telegram.token.get_secret_value() == "1:fromfile"


def test_a_bad_environment_value_names_its_variable(tmp_path):
    message = error_for(tmp_path, AREAS, environ={"TINBAO_DATABASE_URL": "mysql://root:hunter2@db/x"})
    assert "database.url (from $TINBAO_DATABASE_URL)" in message
    assert "hunter2" not in message


def test_missing_file_suggests_tinbao_init(tmp_path):
    with pytest.raises(ConfigError, match="tinbao init") as caught:
        load_config(tmp_path / "nowhere.toml", environ={})
    assert str(tmp_path / "nowhere.toml") in str(caught.value)


def test_toml_syntax_error_gives_line_and_column(tmp_path):
    message = error_for(tmp_path, AREAS + "[limits\ntips_per_day = 5\n")
    assert "line 4" in message and "column" in message


def test_unknown_key_is_named_with_a_suggestion(tmp_path):
    message = error_for(tmp_path, "[limits]\ntips_per_dya = 3\n" + AREAS)
    assert message.endswith("limits.tips_per_dya: unknown key (did you mean tips_per_day?)")


def test_unknown_section_is_named(tmp_path):
    assert "telegarm: unknown key" in error_for(tmp_path, "[telegarm]\nmode = \"polling\"\n" + AREAS)


def test_wrong_type_names_the_key_and_what_was_expected(tmp_path):
    message = error_for(tmp_path, '[limits]\ntips_per_day = "abc"\n' + AREAS)
    assert message.endswith('limits.tips_per_day: must be a whole number ≥ 1 (got "abc")')
    assert "bot.default_language: must be one of 'vi' or 'en'" in error_for(
        tmp_path, '[bot]\ndefault_language = "fr"\n' + AREAS)


@pytest.mark.parametrize("value", ["-1", "0"])
def test_a_limit_below_one_is_refused(tmp_path, value):
    message = error_for(tmp_path, f"[limits]\nmax_files = {value}\n" + AREAS)
    assert f"limits.max_files: must be a whole number ≥ 1 (got {value})" in message


def test_several_problems_report_the_first_and_count_the_rest(tmp_path):
    message = error_for(tmp_path, "[limits]\ntips_per_day = -1\nmax_files = -2\n" + AREAS)
    assert "limits.tips_per_day" in message and "(and 1 more problem)" in message


def test_duplicate_area_code_is_refused(tmp_path):
    message = error_for(tmp_path, AREAS + '[[areas]]\ncode = "79"\nname = "Phường Sài Gòn"\n')
    assert 'areas[1].code: "79" is already used by areas[0]' in message


def test_area_whose_parent_does_not_exist_is_refused(tmp_path):
    message = error_for(tmp_path, AREAS + '[[areas]]\ncode = "79.1"\nname = "Phường Sài Gòn"\nparent = "80"\n')
    assert 'areas[1].parent: "80" is not the code' in message


def test_areas_whose_parents_form_a_loop_are_refused(tmp_path):
    body = '[[areas]]\ncode = "a"\nname = "A"\nparent = "b"\n[[areas]]\ncode = "b"\nname = "B"\nparent = "a"\n'
    assert "areas[0].parent: the parents of \"a\" form a loop" in error_for(tmp_path, body)


def test_at_least_one_area_is_needed(tmp_path):
    assert error_for(tmp_path, "[bot]\n").split(": ")[1] == "areas"


def test_webhook_mode_needs_a_secret(tmp_path):
    body = '[telegram]\nmode = "webhook"\nwebhook_url = "https://tin.example.vn/tg"\n' + AREAS
    assert "telegram.webhook_secret: is required in webhook mode" in error_for(tmp_path, body)
    short = error_for(tmp_path, body.replace("[telegram]\n", '[telegram]\nwebhook_secret = "short"\n'))
    assert "telegram.webhook_secret: must be 16–256 characters" in short and "short" not in short.split(": ", 1)[1]


def test_webhook_mode_needs_a_public_https_url(tmp_path):
    body = '[telegram]\nmode = "webhook"\nwebhook_secret = "' + "x" * 20 + '"\n' + AREAS
    assert "telegram.webhook_url: webhook mode needs the public https://" in error_for(tmp_path, body)


def test_token_never_appears_in_repr_str_or_errors(tmp_path):
    environ = {"TINBAO_TELEGRAM_TOKEN": TOKEN}
    config = load_config(write(tmp_path, AREAS), environ=environ)
    assert TOKEN not in repr(config) and TOKEN not in str(config) and TOKEN not in repr(config.telegram)
    messages = [
        error_for(tmp_path, '[telegram]\nmode = "webhook"\n' + AREAS, environ=environ),  # error elsewhere
        error_for(tmp_path, f'[telegram]\ntokn = "{TOKEN}"\n' + AREAS),  # misspelt key holding it
        error_for(tmp_path, f'[telegram]\ntoken = "{TOKEN} "\n' + AREAS),  # malformed token itself
        error_for(tmp_path, '[telegram]\ntoken = 123456789\n' + AREAS),  # wrong type
    ]
    for message in messages:
        assert TOKEN not in message and "123456789" not in message
    assert "telegram.token" in messages[2] and "telegram.token" in messages[3]


def test_the_error_does_not_chain_the_validation_error_that_holds_the_values(tmp_path):
    with pytest.raises(ConfigError) as caught:
        load_config(write(tmp_path, f'[telegram]\ntoken = "{TOKEN} "\n' + AREAS), environ={})
    assert caught.value.__cause__ is None and caught.value.__suppress_context__


def test_questionnaire_override_is_used(tmp_path):
    write(tmp_path, CUSTOM_QUESTIONNAIRE, name="ours.toml")
    config = load_config(write(tmp_path, '[questionnaire]\npath = "ours.toml"\n' + AREAS), environ={})
    assert config.questionnaire.path == tmp_path / "ours.toml"
    steps = config.tipline_settings().questionnaire.steps
    assert [s.id for s in steps] == ["category", "area", "review"]


@pytest.mark.parametrize("questionnaire", [
    CUSTOM_QUESTIONNAIRE.replace('kind = "review"', 'kind = "text"'),  # fails the questionnaire's own checks
    "[[steps]\n",  # not TOML
    None,  # no such file
])
def test_a_broken_questionnaire_names_questionnaire_path(tmp_path, questionnaire):
    if questionnaire is not None:
        write(tmp_path, questionnaire, name="ours.toml")
    message = error_for(tmp_path, '[questionnaire]\npath = "ours.toml"\n' + AREAS)
    assert ": questionnaire.path: " in message and "ours.toml" in message


# --- [zalo_bot] -------------------------------------------------------------------------------

ZALO_TOKEN = "4125987412:zAlO-sEcReT_tOkEn-only-in-env"


def test_zalo_bot_is_off_by_default_and_points_at_zalo(tmp_path):
    for config in (load_config(EXAMPLE, environ={}), load_config(write(tmp_path, AREAS), environ={})):
        zalo = config.zalo_bot
        assert not zalo.token.get_secret_value() and not zalo.webhook_secret.get_secret_value()
        assert zalo.api_base == "https://bot-api.zaloplatforms.com"
        assert (zalo.mode, zalo.webhook_url, zalo.webhook_listen) == ("polling", "", "127.0.0.1:8080")


def test_zalo_bot_secrets_come_from_the_environment(tmp_path):
    body = ('[zalo_bot]\ntoken = "1:fromfile"\nmode = "webhook"\nwebhook_url = "https://tin.example.vn"\n'
            'webhook_listen = "0.0.0.0:8443"\napi_base = "http://127.0.0.1:9000"\n' + AREAS)
    environ = {"TINBAO_ZALO_BOT_TOKEN": ZALO_TOKEN, "TINBAO_ZALO_BOT_WEBHOOK_SECRET": "z" * 32}
    config = load_config(write(tmp_path, body), environ=environ)
    assert config.zalo_bot.token.get_secret_value() == ZALO_TOKEN
    assert config.zalo_bot.webhook_secret.get_secret_value() == "z" * 32
    assert (config.zalo_bot.mode, config.zalo_bot.webhook_listen) == ("webhook", "0.0.0.0:8443")
    assert config.zalo_bot.api_base == "http://127.0.0.1:9000"
    assert ZALO_TOKEN not in repr(config) and "z" * 32 not in repr(config)


def test_zalo_bot_webhook_mode_needs_a_secret_and_a_public_https_url(tmp_path):
    body = '[zalo_bot]\nmode = "webhook"\nwebhook_url = "https://tin.example.vn"\n' + AREAS
    assert "zalo_bot.webhook_secret: is required in webhook mode" in error_for(tmp_path, body)
    short = error_for(tmp_path, body.replace("[zalo_bot]\n", '[zalo_bot]\nwebhook_secret = "short"\n'))
    assert "zalo_bot.webhook_secret: must be 16–256 characters" in short and "short" not in short.split(": ", 1)[1]
    plain = '[zalo_bot]\nmode = "webhook"\nwebhook_secret = "' + "x" * 20 + '"\nwebhook_url = "http://10.0.0.2"\n'
    assert "zalo_bot.webhook_url: webhook mode needs the public https://" in error_for(tmp_path, plain + AREAS)
    wrong_mode = error_for(tmp_path, '[zalo_bot]\nmode = "push"\n' + AREAS)
    assert "zalo_bot.mode: must be one of 'polling' or 'webhook'" in wrong_mode


@pytest.mark.parametrize("token", ["no-colon-here", f"{ZALO_TOKEN}/x", f"{ZALO_TOKEN} ", ":abc"])
def test_a_malformed_zalo_token_is_named_but_never_shown(tmp_path, token):
    message = error_for(tmp_path, f'[zalo_bot]\ntoken = "{token}"\n' + AREAS)
    assert "zalo_bot.token: is not a Zalo Bot token" in message
    assert token.strip() not in message.split(": ", 1)[1]
    from_env = error_for(tmp_path, AREAS, environ={"TINBAO_ZALO_BOT_TOKEN": token})
    assert "zalo_bot.token (from $TINBAO_ZALO_BOT_TOKEN)" in from_env and token.strip() not in from_env.split(": ", 1)[1]


def test_zalo_bot_keys_are_checked_like_the_others(tmp_path):
    assert error_for(tmp_path, '[zalo_bot]\nwebhok_secret = "x"\n' + AREAS).endswith(
        "zalo_bot.webhok_secret: unknown key (did you mean webhook_secret?)")
    assert 'zalo_bot.webhook_listen: must be "host:port"' in error_for(
        tmp_path, '[zalo_bot]\nwebhook_listen = "8080"\n' + AREAS)
    assert "zalo_bot.api_base: must be an http(s):// address" in error_for(
        tmp_path, '[zalo_bot]\napi_base = "bot-api.zaloplatforms.com"\n' + AREAS)


def test_figures_have_a_threshold_per_audience_and_both_default_to_safe(tmp_path):
    stats = load_config(write(tmp_path, AREAS), environ={}).tipline_settings().stats
    assert (stats.threshold("published"), stats.threshold("supervisors")) == (3, 3)
    stats = load_config(write(tmp_path, "[stats]\nmin_cell = 5\n" + AREAS), environ={}).tipline_settings().stats
    assert (stats.threshold("published"), stats.threshold("supervisors")) == (5, 5)  # unset: as strict
    stats = load_config(write(tmp_path, "[stats]\nmin_cell_supervisors = 1\n" + AREAS),
                        environ={}).tipline_settings().stats
    assert (stats.threshold("published"), stats.threshold("supervisors")) == (3, 1)
    assert "stats.min_cell_supervisors: must be a whole number ≥ 1 (got 0)" in error_for(
        tmp_path, "[stats]\nmin_cell_supervisors = 0\n" + AREAS)
