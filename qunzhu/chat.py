"""Chat with the bot in the terminal as a member of a sandbox group.

Each line is sent the way the WeCom bridge will send it: text starting with the bot's
@-mention and U+2005, conversation id "<chatid>:<userid>", and metadata with a fresh
msgid. Posts the bot makes to the group (milestones, big wins) are shown as they appear.
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
import urllib.error
import urllib.request
import uuid
from typing import Any

import redis

from qunzhu import settings

HELP = """命令 / commands:
  /as 名字      换成另一位群成员说话（例如 /as 小红）
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


def watch_group_posts(redis_url: str, stream: str, stop: threading.Event) -> None:
    """Print the bot's proactive posts (the outbox stream) as a group would show them."""
    client = redis.Redis.from_url(redis_url, socket_timeout=5)
    last = "$"
    while not stop.is_set():
        try:
            rows = client.xread({stream: last}, block=1000, count=10)
        except (redis.RedisError, OSError):
            stop.wait(2)
            continue
        for _key, entries in rows or []:
            for entry_id, fields in entries:
                last = entry_id
                content = fields.get(b"content", b"").decode("utf-8")
                group = fields.get(b"group", b"").decode("utf-8")
                print(f"\n  📢 [群 {group}] 福利官：{content}\n> ", end="", flush=True)


def main(argv: list[str] | None = None) -> int:
    """Read lines from the terminal and show the bot's answers."""
    from actions.config import load_brand

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rasa", default=f"http://127.0.0.1:{settings.get('QZ_RASA_PORT')}")
    args = parser.parse_args(argv)
    brand = load_brand()
    group, user = settings.get("QZ_CHAT_GROUP"), settings.get("QZ_CHAT_USER")
    stop = threading.Event()
    stream = f"qz:{{{brand.id}}}:outbox"
    threading.Thread(target=watch_group_posts, args=(settings.redis_url(), stream, stop),
                     daemon=True).start()
    print(f"\n欢迎来到「{brand.name}」沙盒群 {group}！你现在是群成员 {user}。")
    print(HELP)
    try:
        while True:
            try:
                line = input(f"{user}> ").strip()
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
                user = line[4:].strip() or user
                print(f"（现在你是 {user}）")
                continue
            if line.startswith("/group "):
                group = line[7:].strip() or group
                print(f"（现在在群 {group}）")
                continue
            try:
                replies = send(args.rasa, group, user, line, brand.bot_name)
            except (urllib.error.URLError, OSError) as exc:
                print(f"（连不上机器人：{exc}）", file=sys.stderr)
                continue
            if not replies:
                print("  福利官：（没有回复）")
            for reply in replies:
                print(f"  福利官：@{user} {reply.get('text', '')}")
    except KeyboardInterrupt:
        pass
    finally:
        stop.set()
    return 0


if __name__ == "__main__":
    sys.exit(main())
