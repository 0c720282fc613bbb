"""data/customer_groups.yml: the shipped file is valid; a mistake is told as file:line: field,
in WeCom's own limits (bytes, 100 templates), before anything reaches WeCom."""

from __future__ import annotations

from pathlib import Path

import pytest

from qunzhu.customergroups import customer_groups_file, load_customer_groups
from qunzhu.sandbox import CUSTOMER_GROUPS, CUSTOMER_OWNERS
from qunzhu.yamlconfig import ConfigError

PATH = Path("data/customer_groups.yml")


def problems(text: str) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        load_customer_groups(PATH, text)
    return str(caught.value).splitlines()


def test_the_shipped_file_is_valid_and_names_the_sandboxs_customer_groups() -> None:
    assert customer_groups_file().name == "customer_groups.yml"
    loaded = load_customer_groups()
    assert [t.id for t in loaded.welcome_templates] == ["vip_welcome", "store_welcome"]
    chats = {c for c, _name, _owner in CUSTOMER_GROUPS}
    owners = {o for o, _name in CUSTOMER_OWNERS}
    for send in loaded.mass_sends:
        assert set(send.groups) <= chats and set(send.owners) <= owners
        assert send.send_at.utcoffset() is not None and send.send_at.hour == 18


def test_an_empty_file_means_nothing_to_do() -> None:
    assert load_customer_groups(PATH, "").welcome_templates == []
    assert load_customer_groups(PATH, "mass_sends: []\n").mass_sends == []


def test_each_mistake_names_its_line_and_field() -> None:
    text = "\n".join([
        "welcome_templates:",
        "  - id: ok",
        "    text: 欢迎",
        "  - id: Bad-Id",                               # 4
        f"    text: \"{'字' * 1001}\"",                   # 5: 3003 bytes
        "    link: {title: 会员, url: ftp://example}",   # 6
        "    colour: red",                              # 7: not a field
        "mass_sends:",
        "  - id: s1",                                   # 9
        "    name: 预告",
        "    text: hi",
        "    send_at: tomorrow",                        # 12
        "  - id: s2",                                   # 13
        "    name: 预告",
        "    text: hi",
        "    send_at: 2026-12-01 10:00",
        "  - id: s3",
        "    name: 预告",
        f"    text: \"{'字' * 1334}\"",                   # 19: 4002 bytes
        "    groups: [wrA, wrA]",
        "    send_at: 2026-12-01 10:00",
        ""])
    found = problems(text)
    assert found == [
        'data/customer_groups.yml:4: welcome_templates[1].id: string does not match regex '
        '"^[a-z0-9_]+$"',
        "data/customer_groups.yml:5: welcome_templates[1].text: WeCom takes at most 3000 "
        "bytes here, this is 3003 (a Chinese character is 3 bytes)",
        "data/customer_groups.yml:6: welcome_templates[1].link.url: expected an http:// or "
        "https:// address",
        "data/customer_groups.yml:7: welcome_templates[1].colour: extra fields not permitted",
        "data/customer_groups.yml:12: mass_sends[0].send_at: expected a time like "
        "2026-12-01 12:00",
        "data/customer_groups.yml:13: mass_sends[1]: name the groups (chat ids) or their "
        "owners (userids), or both",
        "data/customer_groups.yml:19: mass_sends[2].text: WeCom takes at most 4000 bytes "
        "here, this is 4002 (a Chinese character is 3 bytes)",
    ]


def test_file_wide_rules_are_told_too() -> None:
    many = "welcome_templates:\n" + "".join(
        f"  - id: t{n}\n    text: 欢迎{n}\n" for n in range(101))
    assert problems(many) == ["data/customer_groups.yml:1: (top level): welcome_templates: "
                              "WeCom keeps at most 100 per corp, this lists 101"]
    twice = ("mass_sends:\n" + "  - {id: a, name: n, text: t, groups: [wrA], "
             "send_at: 2026-12-01 10:00}\n" * 2)
    assert problems(twice) == ["data/customer_groups.yml:1: (top level): mass_sends: "
                               "duplicate id a"]
    dupes = ("mass_sends:\n  - {id: a, name: n, text: t, groups: [wrA, wrA], owners: [x], "
             "send_at: 2026-12-01 10:00}\n")
    assert problems(dupes) == ["data/customer_groups.yml:2: mass_sends[0]: groups: listed "
                               "twice: wrA"]
    assert problems("mass_sends: {a: 1}\n")[0].startswith(
        "data/customer_groups.yml:1: mass_sends: value is not a valid list")
    assert problems("welcome_templates: [\n") == [
        "data/customer_groups.yml:2: expected the node content, but found '<stream end>'"]
