"""`tinbao chat` as a newcomer runs it: a real process, a citizen's tip and an officer's whole triage
in one terminal (/as switches person), no token, nothing but the config file and the keyring."""

from __future__ import annotations

import io
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def tinbao(tmp_path: Path, *args: str, stdin: str = "") -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TINBAO_")}
    return subprocess.run([sys.executable, "-m", "bot.cli", "--config", str(tmp_path / "config.toml"), *args],
                          input=stdin, capture_output=True, text=True, cwd=ROOT, env=env, timeout=120)


def test_citizen_and_officer_in_one_terminal(tmp_path):
    shutil.copyfile(ROOT / "config.example.toml", tmp_path / "config.toml")
    init = tinbao(tmp_path, "init")
    assert init.returncode == 0, init.stderr
    assert (tmp_path / "keyring.json").stat().st_mode & 0o777 == 0o600
    invite = tinbao(tmp_path, "officers", "invite", "--unit", "ca-ben-thanh", "--name", "Đại úy Lan")
    assert invite.returncode == 0, invite.stderr
    code = re.search(r"CB-[0-9A-Z]{5}-[0-9A-Z]{5}-[0-9A-Z]{5}", invite.stdout).group(0)
    script = "\n".join([
        "/as citizen", "/start", "1",  # menu: report a crime
        "1",  # drugs
        "Có người bán ma túy ở quán cà phê đầu hẻm mỗi tối.",
        "2",  # today
        "ben thanh",
        "1",  # yes, Phường Bến Thành
        "Số 12 đường Lê Lợi",
        "1",  # people: skip
        "1",  # evidence: none
        "1",  # anonymous, follow-up allowed
        "9",  # review: send
        "/as lan", f"/enroll {code}", "/next",
        "/quit",
    ]) + "\n"
    chat = tinbao(tmp_path, "chat", "--language", "en", stdin=script)
    assert chat.returncode == 0, chat.stderr
    out = chat.stdout
    assert "Receipt code: TB-" in out
    assert "You are enrolled as officer of Công an phường Bến Thành" in out
    assert "Có người bán ma túy ở quán cà phê đầu hẻm mỗi tối." in out.split("/enroll")[-1]
    assert "[to citizen] " in out and "being reviewed" in out
    ref = re.search(r"\n([2-9A-Z]{6}) · Drugs", out).group(1)
    second = tinbao(tmp_path, "chat", "--language", "en", stdin="\n".join([
        "/as lan", f"/ask {ref} Bạn có nhớ biển số xe không?",
        "/as citizen", "Biển số 59X1-123.45",
        "/as lan", f"/valuable {ref}", f"/case {ref} 125/2026/HS 2", "/quit"]) + "\n")
    assert second.returncode == 0, second.stderr
    out = second.stdout
    assert "[to citizen] An officer has a question" in out
    assert "[to lan] The tipster answered your question" in out
    assert "[to citizen] Your tip of" in out and "judged valuable" in out
    assert f"Tip {ref} is linked to case 125/2026/HS with 2 subject(s)." in out
    verify = tinbao(tmp_path, "audit", "verify")
    assert verify.returncode == 0 and "audit log intact" in verify.stdout


def test_a_bad_config_key_is_one_clear_line(tmp_path):
    (tmp_path / "config.toml").write_text('[limits]\ntips_per_day = "abc"\n', encoding="utf-8")
    result = tinbao(tmp_path, "chat")
    assert result.returncode == 2
    assert result.stderr.strip().count("\n") == 0 and "limits.tips_per_day" in result.stderr


def test_a_missing_keyring_is_one_clear_line(tmp_path):
    shutil.copyfile(ROOT / "config.example.toml", tmp_path / "config.toml")
    result = tinbao(tmp_path, "chat")
    assert result.returncode == 2
    assert "keyring" in result.stderr and "tinbao init" in result.stderr and result.stderr.strip().count("\n") == 0


def test_what_the_bot_sends_is_saved_where_it_can_be_opened(tmp_path):
    """A supervisor trying `tinbao chat` sees the chart, the CSV and the XLSX; an officer sees the evidence."""
    from datetime import datetime
    from zoneinfo import ZoneInfo

    from PIL import Image
    shutil.copyfile(ROOT / "config.example.toml", tmp_path / "config.toml")
    assert tinbao(tmp_path, "init").returncode == 0
    invite = tinbao(tmp_path, "officers", "invite", "--unit", "ca-ben-thanh", "--role", "supervisor",
                    "--name", "Thiếu tá Minh")
    code = re.search(r"CB-[0-9A-Z]{5}-[0-9A-Z]{5}-[0-9A-Z]{5}", invite.stdout).group(0)
    Image.new("RGB", (40, 30), (200, 10, 10)).save(tmp_path / "quan-ca-phe.jpg")
    today = datetime.now(ZoneInfo("Asia/Ho_Chi_Minh")).strftime("%d/%m/%Y")
    script = "\n".join([
        "/as citizen", "/start", "1", "1", "Có người bán ma túy ở quán cà phê đầu hẻm mỗi tối.", "2", "ben thanh", "1",
        "Số 12 đường Lê Lợi", "1", f"/photo {tmp_path / 'quan-ca-phe.jpg'}", "1", "1", "9",
        "/as minh", f"/enroll {code}", "/stats", f"/baocao {today} {today}", "/next", "/quit"]) + "\n"
    chat = tinbao(tmp_path, "chat", "--language", "en", stdin=script)
    assert chat.returncode == 0, chat.stderr
    saved = re.findall(r"\[(photo|document) saved: (.+)\]", chat.stdout)
    assert [kind for kind, _path in saved] == ["photo", "document", "document", "photo"]
    paths = [Path(path) for _kind, path in saved]
    folder = tmp_path / "data" / "chat-out"
    assert [p.parent for p in paths] == [folder] * 4 and all(p.is_file() for p in paths)
    assert [p.suffix for p in paths] == [".png", ".csv", ".xlsx", ".jpg"]  # chart, report, evidence of /next
    chart, report, workbook, evidence = (p.read_bytes() for p in paths)
    assert Image.open(io.BytesIO(chart)).format == "PNG"
    assert report.startswith(b"\xef\xbb\xbf") and "Drugs" in report.decode("utf-8-sig")
    assert workbook[:2] == b"PK" and Image.open(io.BytesIO(evidence)).size == (40, 30)
    assert "bytes]" not in chat.stdout
    # Evidence lies here in clear: the folder and every file are the operator's alone, like all tinbao writes.
    assert folder.stat().st_mode & 0o777 == 0o700
    assert {p.stat().st_mode & 0o777 for p in paths} == {0o600}


def test_a_sent_file_never_lands_outside_the_folder_nor_overwrites_another(tmp_path):
    from bot.channels.console import save_file
    from handlers.messages import OutgoingFile
    folder = tmp_path / "chat-out"
    first = save_file(folder, OutgoingFile("photo", b"one", filename="../../../etc/passwd"))
    second = save_file(folder, OutgoingFile("photo", b"two", filename="passwd"))
    unnamed = save_file(folder, OutgoingFile("photo", b"three", mime="image/jpeg"))
    assert [p.parent for p in (first, second, unnamed)] == [folder] * 3
    assert (first.name, second.name, unnamed.name) == ("passwd", "passwd-2", "photo.jpg")
    assert (first.read_bytes(), second.read_bytes()) == (b"one", b"two")


def test_a_pin_the_bot_sends_is_shown_in_the_terminal():
    from bot.channels.console import render
    from handlers.messages import Location, Reply
    shown = render(Reply("🗺 https://www.openstreetmap.org/?mlat=10.77260&mlon=106.69800", location=Location(10.7726, 106.698)))
    assert shown.splitlines()[-1] == "[location pin: 10.77260, 106.69800]"
    assert "location pin" not in render(Reply("no pin here"))
