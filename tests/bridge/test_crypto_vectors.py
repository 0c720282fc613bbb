"""Conformance: every vector in ../shared/wecom/test_vectors.json, each with a negative twin."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from bot.wecom import errors
from bot.wecom.crypto import WeComCrypto, pkcs7_unpad, signature
from bot.wecom.parser import app_encrypt_field, parse_xml

VECTORS_FILE = Path(__file__).resolve().parents[3] / "shared" / "wecom" / "test_vectors.json"
LOCAL_COPY = Path(__file__).resolve().parent / "test_vectors.json"


def _vectors() -> dict[str, Any]:
    """The shared file when beside the checkout, else the copy committed with the tests."""
    path = VECTORS_FILE if VECTORS_FILE.exists() else LOCAL_COPY
    return dict(json.loads(path.read_text(encoding="utf-8")))


V = _vectors()
OFF = V["official"]
WPY = V["wechatpy"]


def crypto(token: str, key: str, receive_id: str, at: str) -> WeComCrypto:
    """A crypto whose clock stands at the vector's own timestamp."""
    return WeComCrypto(token, key, receive_id, clock=lambda: float(at))


def flip(text: str) -> str:
    """The same string with its last character changed."""
    return text[:-1] + ("0" if text[-1] != "0" else "1")


def test_committed_copy_matches_shared_file() -> None:
    if VECTORS_FILE.exists():
        assert json.loads(LOCAL_COPY.read_text()) == json.loads(VECTORS_FILE.read_text())


# ------------------------------------------------------------------ official A: URL verification
def test_a_verify_url() -> None:
    a = OFF["A_verify_url"]
    c = crypto(OFF["token"], OFF["encoding_aes_key"], a["expected_receiveid"], a["timestamp"])
    assert c.verify_url(a["msg_signature"], a["timestamp"], a["nonce"], a["echostr"]) == (
        a["expected_plaintext"]
    )


def test_a_negative_wrong_signature() -> None:
    a = OFF["A_verify_url"]
    c = crypto(OFF["token"], OFF["encoding_aes_key"], a["expected_receiveid"], a["timestamp"])
    with pytest.raises(errors.SignatureError) as info:
        c.verify_url(flip(a["msg_signature"]), a["timestamp"], a["nonce"], a["echostr"])
    assert info.value.errcode == -40001


def test_a_negative_wrong_receiveid() -> None:
    a = OFF["A_verify_url"]
    c = crypto(OFF["token"], OFF["encoding_aes_key"], "", a["timestamp"])
    with pytest.raises(errors.ReceiveIdError) as info:
        c.verify_url(a["msg_signature"], a["timestamp"], a["nonce"], a["echostr"])
    assert info.value.errcode == -40005


# ------------------------------------------------------------------ official B: XML message
def test_b_decrypt_xml_with_32_byte_padding() -> None:
    b = OFF["B_decrypt_xml"]
    c = crypto(OFF["token"], OFF["encoding_aes_key"], OFF["receiveid_corpid"], b["timestamp"])
    encrypt = app_encrypt_field(b["post_body"].encode())
    assert c.open(b["msg_signature"], b["timestamp"], b["nonce"], encrypt) == (
        b["expected_plaintext"]
    )
    # The pad byte is larger than 16: a 16-byte unpadder would reject this real message.
    assert b["expected_pad_byte"] > 16


def test_b_negative_tampered_ciphertext() -> None:
    b = OFF["B_decrypt_xml"]
    c = crypto(OFF["token"], OFF["encoding_aes_key"], OFF["receiveid_corpid"], b["timestamp"])
    encrypt = app_encrypt_field(b["post_body"].encode())
    tampered = encrypt.replace("Kl7k", "Kl7j", 1)
    with pytest.raises(errors.SignatureError):
        c.open(b["msg_signature"], b["timestamp"], b["nonce"], tampered)


def test_b_negative_stale_timestamp() -> None:
    b = OFF["B_decrypt_xml"]
    later = str(int(b["timestamp"]) + 301)
    c = crypto(OFF["token"], OFF["encoding_aes_key"], OFF["receiveid_corpid"], later)
    encrypt = app_encrypt_field(b["post_body"].encode())
    with pytest.raises(errors.StaleTimestampError):
        c.open(b["msg_signature"], b["timestamp"], b["nonce"], encrypt)


# ------------------------------------------------------------------ official C: JSON message
def test_c_decrypt_json_at_crypto_layer() -> None:
    cv = OFF["C_decrypt_json"]
    c = crypto(OFF["token"], OFF["encoding_aes_key"], OFF["receiveid_corpid"], cv["timestamp"])
    assert c.open(cv["msg_signature"], cv["timestamp"], cv["nonce"], cv["encrypt"]) == (
        cv["expected_plaintext"]
    )


def test_c_negative_wrong_token() -> None:
    cv = OFF["C_decrypt_json"]
    c = crypto("not-the-token", OFF["encoding_aes_key"], OFF["receiveid_corpid"], cv["timestamp"])
    with pytest.raises(errors.SignatureError):
        c.open(cv["msg_signature"], cv["timestamp"], cv["nonce"], cv["encrypt"])


# ------------------------------------------------------------------ wechatpy D1–D3
def test_d1_check_signature() -> None:
    d = WPY["D1_check_signature"]
    c = crypto(WPY["token"], WPY["encoding_aes_key"], WPY["receiveid_corpid"], d["timestamp"])
    assert c.verify_url(d["signature"], d["timestamp"], d["nonce"], d["echo_str"]) == (
        d["expected_plaintext"]
    )


def test_d1_negative_nonce_off_by_one() -> None:
    d = WPY["D1_check_signature"]
    c = crypto(WPY["token"], WPY["encoding_aes_key"], WPY["receiveid_corpid"], d["timestamp"])
    with pytest.raises(errors.SignatureError):
        c.verify_url(d["signature"], d["timestamp"], "437374424", d["echo_str"])


def test_d2_decrypt() -> None:
    d = WPY["D2_decrypt"]
    c = crypto(WPY["token"], WPY["encoding_aes_key"], WPY["receiveid_corpid"], d["timestamp"])
    root = parse_xml(c.open(d["signature"], d["timestamp"], d["nonce"], d["encrypt"]))
    fields = {child.tag: child.text for child in root}
    for name, value in d["expected_fields"].items():
        assert fields[name] == value


def test_d2_negative_wrong_key() -> None:
    d = WPY["D2_decrypt"]
    c = crypto(WPY["token"], OFF["encoding_aes_key"], WPY["receiveid_corpid"], d["timestamp"])
    with pytest.raises((errors.IllegalBufferError, errors.ReceiveIdError)):
        c.open(d["signature"], d["timestamp"], d["nonce"], d["encrypt"])


def test_d3_deterministic_encrypt() -> None:
    d = WPY["D3_encrypt_deterministic"]
    c = crypto(WPY["token"], WPY["encoding_aes_key"], WPY["receiveid_corpid"], d["timestamp"])
    sealed = c.seal(
        d["plaintext"],
        nonce=d["nonce"],
        timestamp=d["timestamp"],
        random_prefix=d["random16"].encode(),
    )
    assert sealed.encrypt == d["expected_encrypt"]
    assert sealed.msg_signature == d["expected_msg_signature"]


def test_d3_negative_other_prefix_changes_ciphertext() -> None:
    d = WPY["D3_encrypt_deterministic"]
    c = crypto(WPY["token"], WPY["encoding_aes_key"], WPY["receiveid_corpid"], d["timestamp"])
    sealed = c.seal(d["plaintext"], nonce=d["nonce"], timestamp=d["timestamp"],
                    random_prefix=b"6543210987654321")
    assert sealed.encrypt != d["expected_encrypt"]
    assert c.open(sealed.msg_signature, sealed.timestamp, sealed.nonce, sealed.encrypt) == (
        d["plaintext"]
    )


# ------------------------------------------------------------------ edges
def test_signature_is_order_independent_sha1() -> None:
    assert signature("b", "a", "d", "c") == signature("a", "b", "c", "d")


@pytest.mark.parametrize("key", ["short", "!" * 43, "A" * 44])
def test_bad_aes_key_is_refused_without_echoing_it(key: str) -> None:
    with pytest.raises(errors.IllegalAesKeyError) as info:
        WeComCrypto("t", key, "")
    assert key not in str(info.value)


@pytest.mark.parametrize(
    "tail", [b"\x00", b"\x21", b"\x03\x03\x02"], ids=["zero", "over-32", "mixed"]
)
def test_bad_padding_is_an_illegal_buffer(tail: bytes) -> None:
    with pytest.raises(errors.IllegalBufferError):
        pkcs7_unpad(b"x" * 29 + tail)


def test_non_base64_is_decode_error() -> None:
    c = WeComCrypto("t", OFF["encoding_aes_key"], "", clock=lambda: 0)
    with pytest.raises(errors.DecodeBase64Error) as info:
        c.decrypt("not base64 at all!")
    assert info.value.errcode == -40010


def test_repr_hides_secrets() -> None:
    c = WeComCrypto(OFF["token"], OFF["encoding_aes_key"], "")
    assert OFF["token"] not in repr(c) and OFF["encoding_aes_key"] not in repr(c)
