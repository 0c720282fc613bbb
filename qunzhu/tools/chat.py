"""Chat with the bot in the terminal as a member of the sandbox group (`make chat`).

Each line is sent the way the WeCom bridge sends it: text starting with the bot's
@-mention and U+2005, conversation id "<chatid>:<userid>", and metadata with a fresh
msgid. You speak as the sandbox page's members (`/as 小红` is the page's 小红), and the
group's posts (milestones, big wins, welcomes) are shown as the simulated WeCom shows them.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import threading
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable
from typing import Any

from qunzhu import settings
from qunzhu.config import load_brand
from qunzhu.sandbox import SANDBOX_MEMBERS, member_id

MENTION = re.compile(r"<@([^>\s]+)>")
HELP = """命令 / commands:
  /as 名字      换成另一位群成员说话（例如 /as 小红；成员：""" + "、".join(
    name for _id, name in SANDBOX_MEMBERS) + """）
  /group 群id   换到另一个群
  /help        显示帮助
  /quit        退出（Ctrl-C / Ctrl-D 也可以）
直接输入文字就是 @福利官 说话，例如：打卡、我的积分、领券、抽奖、积分兑换、营业时间、转人工"""


def send(rasa_url: str, group: str, user: str, text: str, bot_name: str) -> list[dict[str, Any]]:
    """Send one group message to Rasa's REST channel; return the bot's replies."""
    payload = {
        "sender": f"{group}:{user}",
        "message": f"@{bot_name}\u2005{text}",
        "metadata": {"msgid": uuid.uuid4().hex, "chatid": group, "userid": user,
                     "chattype": "group"},
    }
    request = urllib.request.Request(
        f"{rasa_url}/webhooks/rest/webhook",
        data=json.dumps(payload, ensure_ascii=False).encode("utf-8"),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        replies: list[dict[str, Any]] = json.loads(response.read().decode("utf-8"))
    return replies


def watch_group_posts(sim_url: str, group: Callable[[], str], stop: threading.Event) -> None:
    """Print the bot's group posts as the simulated WeCom received them (its feed)."""
    after = -1
    while not stop.is_set():
        try:
            with urllib.request.urlopen(f"{sim_url}/sandbox/feed?after={max(after, 0)}",
                                        timeout=5) as response:
                doc = json.loads(response.read().decode("utf-8"))
        except (urllib.error.URLError, OSError, ValueError):
            stop.wait(2)
            continue
        names: dict[str, str] = doc.get("names") or {}
        first_poll = after < 0  # what the group said before the chat opened is not news
        for item in doc.get("items") or []:
            after = max(after, int(item.get("seq", 0)))
            if first_poll or item.get("via") != "webhook" or item.get("group") != group():
                continue
            text = MENTION.sub(lambda m, n=names: "@" + n.get(m.group(1), m.group(1)),  # type: ignore[misc]
                               str(item.get("content", "")))
            print(f"\n  📢 [群公告] 福利官：{text}\n> ", end="", flush=True)
        after = max(after, 0)
        stop.wait(1)


def main(argv: list[str] | None = None) -> int:
    """Read lines from the terminal and show the bot's answers."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rasa", default="",
                        help="a Rasa server (default: the one answering members now)")
    parser.add_argument("--sim", default=f"http://127.0.0.1:{settings.get('QZ_SIM_PORT')}")
    args = parser.parse_args(argv)
    from qunzhu.tools.stack import live_route  # the slot that is live after a publish

    rasa = (lambda: args.rasa) if args.rasa else live_route(settings.redis_url())
    brand = load_brand()
    group = settings.get("QZ_CHAT_GROUP")
    user = member_id(settings.get("QZ_CHAT_USER")) or settings.get("QZ_CHAT_USER")
    names = dict(SANDBOX_MEMBERS)
    stop = threading.Event()
    threading.Thread(target=watch_group_posts, args=(args.sim, lambda: group, stop),
                     daemon=True).start()
    print(f"\n欢迎来到「{brand.name}」沙盒群！你现在是群成员 {names.get(user, user)}。")
    print(HELP)
    try:
        while True:
            try:
                line = input(f"{names.get(user, user)}> ").strip()
            except EOFError:
                break
            if not line:
                continue
            if line in ("/quit", "/exit"):
                break
            if line == "/help":
                print(HELP)
                continue
            if line.startswith("/as "):
                chosen = member_id(line[4:])
                if chosen is None:
                    print("（沙盒群里没有这位成员，可以选：" + "、".join(names.values()) + "）")
                else:
                    user = chosen
                    print(f"（现在你是 {names[user]}）")
                continue
            if line.startswith("/group "):
                group = line[7:].strip() or group
                print(f"（现在在群 {group}）")
                continue
            try:
                replies = send(rasa(), group, user, line, brand.bot_name)
            except (urllib.error.URLError, OSError) as exc:
                print(f"（连不上机器人：{exc}。先在另一个终端运行 make run）", file=sys.stderr)
                continue
            if not replies:
                print("  福利官：（没有回复）")
            for reply in replies:
                print(f"  福利官：@{names.get(user, user)} {reply.get('text', '')}")
    except KeyboardInterrupt:
        pass
    finally:
        stop.set()
    return 0


if __name__ == "__main__":
    sys.exit(main())
