"""console.yamlform: typed values land in the YAML as the team writes it; refusals in Chinese."""

from __future__ import annotations

import pytest

from console import yamlform
from console.trainingdata import TeachError
from console.yamlform import Field
from qunzhu.config import load_games
from qunzhu.settings import PROJECT_ROOT
from qunzhu.yamlconfig import ConfigError

DOC = """\
# Rules.
checkin:
  base_points: 5             # every day
  announce: [7, 30]
coupons:
  - id: a
    name: 甲券
    stock: 5
    aliases: [甲, 一号]

  - id: b
    name: 乙券
    stock: 9   # keep

# The draw.
draw:
  on: true
"""
FIELDS = (
    Field(("checkin", "base_points"), "打卡积分", "int"),
    Field(("checkin", "announce"), "祝贺天数", "numbers", optional=True),
    Field(("coupons", "#a", "stock"), "甲券 · 库存", "int", optional=True),
    Field(("coupons", "#a", "aliases"), "甲券 · 叫法", "words", optional=True),
    Field(("coupons", "#b", "stock"), "乙券 · 库存", "int", optional=True),
    Field(("coupons", "#b", "limit"), "乙券 · 每人", "int", optional=True),
    Field(("draw", "on"), "抽奖开着", "flag"),
    Field(("draw", "note"), "抽奖说明", optional=True),
    Field(("draw", "starts"), "抽奖开始", "time", optional=True),
    Field(("draw", "staff"), "客服账号", "ids", optional=True),
    Field(("draw", "closed"), "抽奖关着", "flag"),
)


def _edit(values: dict[str, str]) -> tuple[str, dict[str, list[str]]]:
    doc = yamlform.yaml().load(DOC)
    changed = yamlform.apply(doc, FIELDS, values)
    return yamlform.dump(doc), changed


def test_untouched_fields_and_every_comment_stay_byte_for_byte() -> None:
    text, changed = _edit({"checkin.base_points": "5", "coupons.#a.stock": "5"})
    assert text == DOC and changed == {}


def test_a_changed_number_changes_one_line_and_keeps_its_comment() -> None:
    text, changed = _edit({"checkin.base_points": "6"})
    assert text == DOC.replace("base_points: 5  ", "base_points: 6  ")
    assert changed == {"打卡积分": ["5", "6"]}


def test_a_list_keeps_its_one_line_style_and_numbers_stay_numbers() -> None:
    text, _ = _edit({"checkin.announce": "7、30，100", "coupons.#a.aliases": "甲,一号, 头号"})
    assert "  announce: [7, 30, 100]\n" in text and "    aliases: [甲, 一号, 头号]\n" in text
    with pytest.raises(TeachError, match="祝贺天数：请填整数"):
        _edit({"checkin.announce": "七"})


def test_a_form_sent_back_untouched_changes_nothing_even_for_keys_the_file_lacks() -> None:
    doc = yamlform.yaml().load(DOC)
    shown = yamlform.read(doc, FIELDS)  # what the page shows, and a browser sends back
    assert shown["draw.note"] == "" and shown["draw.closed"] == ""
    text, changed = _edit(shown)
    assert text == DOC and changed == {}


def test_an_emptied_optional_list_removes_the_key() -> None:
    text, changed = _edit({"coupons.#a.aliases": " "})
    assert "aliases" not in text.split("- id: b")[0]
    assert changed == {"甲券 · 叫法": ["甲、一号", ""]}


def test_full_width_digits_crlf_and_a_time_zone_are_read_as_meant() -> None:
    text, _ = _edit({"checkin.base_points": "１２", "draw.starts": "2026-12-01T01:00+00:00",
                     "draw.staff": "kefu01 kefu02、kefu03"})
    assert "  base_points: 12 " in text
    assert "  starts: 2026-12-01 09:00\n" in text, "UTC 01:00 is 09:00 in Shanghai"
    assert "  staff: [kefu01, kefu02, kefu03]\n" in text
    doc = yamlform.yaml().load(DOC)
    yamlform.apply(doc, (Field(("draw", "text"), "说明", "long"),), {"draw.text": "一\r\n二"})
    assert "\r" not in yamlform.dump(doc)


def test_a_flag_written_as_words_is_shown_as_the_bot_reads_it() -> None:
    doc = yamlform.yaml().load(DOC.replace("  on: true", "  on: 'no'"))
    assert yamlform.read(doc, FIELDS)["draw.on"] == ""


def test_an_item_without_the_id_is_never_picked_for_the_word_none() -> None:
    doc = yamlform.yaml().load("items:\n  - name: 无编号\n  - id: None\n    name: 叫 None\n")
    yamlform.apply(doc, (Field(("items", "#None", "name"), "名称"),), {"items.#None.name": "新"})
    assert doc["items"][0]["name"] == "无编号" and doc["items"][1]["name"] == "新"


def test_a_new_key_goes_before_the_blank_line_and_the_next_comment() -> None:
    text, _ = _edit({"coupons.#b.limit": "2", "draw.note": "每天一次"})
    assert "    stock: 9   # keep\n    limit: 2\n\n# The draw.\n" in text
    assert text.endswith("  on: true\n  note: 每天一次\n")


def test_emptying_an_optional_number_removes_it_and_the_spacing_stays() -> None:
    text, changed = _edit({"coupons.#b.stock": ""})
    assert "    name: 乙券\n\n# The draw.\n" in text
    assert changed == {"乙券 · 库存": ["9", ""]}


def test_a_flag_is_written_as_a_yaml_boolean_and_said_in_chinese() -> None:
    text, changed = _edit({"draw.on": ""})
    assert "  on: false\n" in text and changed == {"抽奖开着": ["是", "否"]}


@pytest.mark.parametrize("values,reason", [
    ({"checkin.base_points": "5.5"}, "打卡积分：请填一个整数（收到：5.5）"),
    ({"checkin.base_points": ""}, "打卡积分：不能为空"),
    ({"coupons.#a.stock": "x" * 3000}, "甲券 · 库存：太长了"),
])
def test_a_value_that_means_nothing_is_refused_naming_the_field(
    values: dict[str, str], reason: str,
) -> None:
    with pytest.raises(TeachError) as refused:
        _edit(values)
    assert reason in str(refused.value)


def test_an_item_gone_since_the_page_was_drawn_is_said_so() -> None:
    doc = yamlform.yaml().load(DOC)
    with pytest.raises(TeachError, match="找不到 zz"):
        yamlform.apply(doc, (Field(("coupons", "#zz", "stock"), "丙券 · 库存", "int"),),
                       {"coupons.#zz.stock": "1"})


def test_the_bots_own_check_is_said_with_the_forms_labels() -> None:
    text = (PROJECT_ROOT / "data/games.yml").read_text("utf-8")
    doc = yamlform.yaml().load(text)
    doc["coupons"][0]["stock"] = -1
    doc["coupons"][1]["ends"] = "2020-01-01 00:00"
    fields = (Field(("coupons", "#cut_30_5", "stock"), "满30减5券 · 一共发多少张", "int"),)
    with pytest.raises(ConfigError) as error:
        load_games(text=yamlform.dump(doc))
    said = yamlform.explain(error.value, doc, fields, {"coupons[1]": "拿铁第二杯半价券"})
    assert said == ("满30减5券 · 一共发多少张：不能小于 0；"
                    "拿铁第二杯半价券：结束时间要晚于开始时间")


def test_a_message_without_a_translation_is_kept_not_hidden() -> None:
    said = yamlform.explain(ConfigError("data/x.yml:3: foo: something odd"), {}, ())
    assert said == "foo：不符合要求（something odd）"
