"""The Vietnamese a citizen reads along the tip-off, as people who tried it asked for it to be worded."""

from __future__ import annotations

from tests.support.images import jpeg_with_gps


async def test_the_tipoff_reads_as_asked_in_vietnamese(citizen):
    await citizen.send("/report")
    assert "Lừa đảo (kể cả lừa đảo trên mạng)" in citizen.labels
    await citizen.click("category:drugs")
    await citizen.send("Người đàn ông áo đỏ bán ma túy ở đầu hẻm mỗi tối.")
    assert citizen.labels == ["Đang xảy ra", "Hôm nay", "Trước hôm nay"]
    await citizen.click("when:earlier")
    await citizen.send("hoan kiem")
    await citizen.click("Có")
    await citizen.click("place:skip")
    await citizen.click("people:skip")
    await citizen.send_file(jpeg_with_gps(), kind="photo")
    assert "Đã nhận 1 tệp." in citizen.text
    await citizen.click("evidence:done")
    assert "Mặc định, tin báo được gửi ẩn danh: cơ quan Công an sẽ không biết bạn là ai." in citizen.text
    assert citizen.labels == ["Ẩn danh, vẫn nhận câu hỏi bổ sung qua bot (khuyến nghị)",
                              "Ẩn danh, không nhận câu hỏi bổ sung", "Để lại số điện thoại"]


async def test_an_officer_reads_vua_xong_and_tra_lai_danh_sach_cho(services, tipline):
    from tests.handlers.officer.test_triage import enrol, submit_tip
    await submit_tip(tipline, "700100300")
    officer = await enrol(services, tipline, "800100300")
    officer.language = "vi"
    await officer.send("/language vi")
    await officer.send("/queue")
    assert "vừa xong" in officer.text and "0 phút" not in officer.text
    await officer.send("/next")
    assert "↩️ Trả lại danh sách chờ" in officer.labels
