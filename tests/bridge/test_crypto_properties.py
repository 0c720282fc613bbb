"""Property tests: decrypt(encrypt(x)) == x for CJK, emoji, empty and 10 KB bodies."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from bot.wecom.crypto import WeComCrypto, pkcs7_pad, pkcs7_unpad

KEY = "6qkdMrq68nTKduznJYO1A37W2oEgpkMUvkttRToqhUt"
CJK_EMOJI = st.text(
    alphabet=st.one_of(
        st.characters(min_codepoint=0x4E00, max_codepoint=0x9FFF),
        st.characters(min_codepoint=0x1F300, max_codepoint=0x1FAFF),
        st.sampled_from(list("打卡签到优惠券 ，。！@\u2005\u200d")),
        st.characters(codec="utf-8"),
    ),
    max_size=400,
)


@settings(max_examples=200, deadline=None)
@given(message=CJK_EMOJI, receive_id=st.sampled_from(["", "ww1436e0e65a779aee"]))
def test_roundtrip_any_text(message: str, receive_id: str) -> None:
    c = WeComCrypto("token", KEY, receive_id, clock=lambda: 1_700_000_000.0)
    sealed = c.seal(message)
    assert c.open(sealed.msg_signature, sealed.timestamp, sealed.nonce, sealed.encrypt) == message


@settings(max_examples=50, deadline=None)
@given(data=st.binary(max_size=200))
def test_padding_roundtrip_is_32_byte_blocks(data: bytes) -> None:
    padded = pkcs7_pad(data)
    assert len(padded) % 32 == 0 and 1 <= len(padded) - len(data) <= 32
    assert pkcs7_unpad(padded) == data


def test_empty_and_10kb_bodies() -> None:
    c = WeComCrypto("token", KEY, "", clock=lambda: 1_700_000_000.0)
    for message in ["", "福" * 3413 + "🧧"]:
        sealed = c.seal(message)
        assert c.open(sealed.msg_signature, sealed.timestamp, sealed.nonce, sealed.encrypt) == (
            message
        )
    assert len(("福" * 3413 + "🧧").encode()) >= 10 * 1024


def test_each_seal_uses_fresh_randomness() -> None:
    c = WeComCrypto("token", KEY, "", clock=lambda: 1_700_000_000.0)
    assert c.encrypt("同一句话") != c.encrypt("同一句话")
