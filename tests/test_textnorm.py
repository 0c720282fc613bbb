"""The Chinese text normaliser and the Rasa component that applies it."""

from __future__ import annotations

import pytest
from rasa.shared.nlu.training_data.message import Message
from rasa.shared.nlu.training_data.training_data import TrainingData

from qunzhu.plugins.nlu import ORIGINAL_TEXT, ChineseTextNormalizer
from qunzhu.textnorm import MAX_NLU_CHARS, has_meaningful_text, normalise

BOT = ["福利官"]


@pytest.mark.parametrize(("raw", "expected"), [
    ("@福利官\u2005打卡", "打卡"),            # mobile client
    ("@福利官 打卡", "打卡"),                 # desktop client
    ("＠福利官　簽到！", "签到!"),            # full-width @, ideographic space, 繁体
    ("@福利官打卡", "打卡"),                  # no separator at all
    ("@福利官 @福利官 抽奖", "抽奖"),         # tapped twice
    ("打卡 @福利官", "打卡"),                 # mention at the end
    ("@小王\u2005@福利官\u2005领券", "领券"),  # someone else first
    ("\u200b打\ufeff卡", "打卡"),             # zero-width characters
    ("ＡＢＣ１２３ 優惠券", "ABC123 优惠券"),   # full-width ASCII
    ("我想領取優惠券呀", "我想领取优惠券呀"),
    ("  多   个  空格 ", "多 个 空格"),
    ("@福利官", ""),
    ("", ""),
    ("@福利官 666666", "厉害"),             # number slang alone is spelled out …
    ("2333", "哈哈哈"),
    ("88", "拜拜"),
    ("886", "拜拜"),
    ("满30减5", "满30减5"),                  # … numbers in words are left alone
    ("你哋幾點收舖", "你们几点关门"),          # Cantonese, traditional
    ("我張券喺邊度睇", "我张券在哪里看"),
    ("唔該晒", "谢谢"),
    ("系统关系", "系统关系"),                  # 系 alone is Mandarin too: untouched
    ("唔", "唔"),                              # … and so is 唔 (hmm)
    ("123", "123"),
])
def test_normalise(raw: str, expected: str) -> None:
    assert normalise(raw, BOT) == expected


def test_emoji_joiner_survives() -> None:
    family = "👨\u200d👩\u200d👧"
    assert normalise(f"打卡{family}", BOT) == f"打卡{family}"


def test_long_text_is_capped() -> None:
    assert len(normalise("优惠券" * 5000, BOT)) == MAX_NLU_CHARS


def test_meaningful_text() -> None:
    assert not has_meaningful_text("👍👍!!")
    assert has_meaningful_text("打卡👍")


def _component() -> ChineseTextNormalizer:
    return ChineseTextNormalizer({"bot_names": BOT})


def test_component_normalises_live_messages_and_keeps_original() -> None:
    message = Message(data={"text": "@福利官\u2005簽到"})
    _component().process([message])
    assert message.get("text") == "签到"
    assert message.get(ORIGINAL_TEXT) == "@福利官\u2005簽到"


def test_component_normalises_training_data_the_same_way() -> None:
    data = TrainingData([Message(data={"text": "領券", "intent": "claim_coupon"})])
    _component().process_training_data(data)
    assert data.training_examples[0].get("text") == "领券"


def test_component_keeps_entity_offsets_valid() -> None:
    entities = [{"start": 4, "end": 7, "value": "拿铁券", "entity": "coupon"}]
    shifted = Message(data={"text": "\u200b我要领拿铁券", "intent": "claim_coupon",
                            "entities": entities})
    same_length = Message(data={"text": "我要領取拿鐵", "intent": "claim_coupon",
                                "entities": [{"start": 4, "end": 6, "value": "拿鐵",
                                              "entity": "product"}]})
    _component().process_training_data(TrainingData([shifted, same_length]))
    assert shifted.get("text") == "\u200b我要领拿铁券"  # would move offsets: left alone
    assert same_length.get("text") == "我要领取拿铁"


def test_component_ignores_messages_without_text() -> None:
    message = Message(data={"intent": "greet"})
    _component().process([message])
    assert message.get("text") is None


def test_codes_in_messages() -> None:
    from actions.codes import ALPHABET, codes_in, new_code

    assert codes_in("QZHKMNPQRS 还能用吗") == ["QZHKMNPQRS"]  # ours, letters only
    assert codes_in("qz7k2p9qmx这张能用吗") == ["QZ7K2P9QMX"]  # glued to Chinese, lower case
    assert codes_in("ABC12345 这个码是你们的吗") == ["ABC12345"]
    assert codes_in("my coupons please") == []
    assert codes_in("") == []
    for _ in range(200):
        code = new_code()
        assert set(code[2:]) <= set(ALPHABET)
        assert codes_in(f"这个{code}呢") == [code]
