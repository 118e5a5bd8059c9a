"""One registry of commands: the menus channels show are read from it, in the catalog's languages."""

from __future__ import annotations

from handlers.router import COMMANDS, OFFICER_COMMANDS, command_menu

CITIZEN_VI = [("report", "Gửi tin báo tố giác tội phạm"), ("status", "Tra cứu tin báo bằng mã"),
              ("cancel", "Hủy tin báo đang viết"), ("remind", "Nhắc ngày hội"), ("language", "Đổi ngôn ngữ"),
              ("help", "Hướng dẫn")]
CITIZEN_EN = [("report", "Report a crime"), ("status", "Check a tip with its code"),
              ("cancel", "Cancel the tip you are writing"), ("remind", "Festival reminders"),
              ("language", "Change language"), ("help", "Help")]
OFFICER_VI = [("queue", "Tin báo đang chờ của đơn vị"), ("judged", "Tin báo đã đánh giá của đơn vị"),
              ("next", "Nhận tin báo tiếp theo"), ("tip", "Xem tin báo: /tip MÃ"),
              ("files", "Tệp chứng cứ của tin báo: /files MÃ"), ("valuable", "Có giá trị: /valuable MÃ"),
              ("notvaluable", "Không có giá trị: /notvaluable MÃ LÝ_DO"), ("export", "Hồ sơ tin báo: /export MÃ"),
              ("ask", "Hỏi người báo tin"),
              ("note", "Ghi chú"), ("case", "Gắn vụ án: /case MÃ VỤ SỐ_ĐỐI_TƯỢNG"), ("release", "Trả lại hàng chờ"),
              ("transfer", "Chuyển đơn vị"),
              ("search", "Tìm tin theo số điện thoại, tài khoản, biển số"), ("link", "Liên kết hai tin: /link MÃ MÃ"),
              ("whoami", "Thông tin cán bộ"),
              ("event", "Sự kiện ngày hội: /event add"), ("broadcasts", "Tiến độ nhắc và thông báo"),
              ("announce", "Thông báo (quản trị): /announce KHU_VỰC | NỘI_DUNG")]
SUPERVISOR_VI = [("reopen", "Mở lại kết luận: /reopen MÃ LÝ_DO"), ("stats", "Số liệu: /stats tuần|tháng|quý|năm"),
                 ("baocao", "Báo cáo phong trào: /baocao TỪ_NGÀY ĐẾN_NGÀY")]


def test_the_menus_read_as_they_always_did():
    """The menu lines come from the catalog now; a citizen and an officer see the same words as before."""
    assert command_menu("citizen", "vi") == CITIZEN_VI
    assert command_menu("citizen", "en") == CITIZEN_EN
    assert command_menu("officer", "vi") == CITIZEN_VI + OFFICER_VI
    assert command_menu("supervisor", "vi") == CITIZEN_VI + OFFICER_VI + SUPERVISOR_VI


def test_a_menu_line_is_translated_apart_from_a_button_of_the_same_words():
    """ "Report a crime" is both a welcome button and a menu line; each keeps its own Vietnamese."""
    from handlers.i18n import translator
    assert translator("vi")("Report a crime") != dict(command_menu("citizen", "vi"))["report"]


def test_every_command_is_named_once_and_officers_commands_are_the_non_citizen_ones():
    names = [c.name for c in COMMANDS]
    assert len(names) == len(set(names))
    assert OFFICER_COMMANDS == {c.name for c in COMMANDS if c.audience != "everyone"}
    assert {"/queue", "/stats", "/announce"} <= OFFICER_COMMANDS and "/status" not in OFFICER_COMMANDS
