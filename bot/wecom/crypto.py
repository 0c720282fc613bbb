"""WXBizMsgCrypt-compatible signing and AES-256-CBC, pure and synchronous (doc 91144).

Signature first (constant time), then the ±300 s timestamp window, then decryption;
PKCS#7 padding is to 32-byte blocks as in the official sample, and the receiveid is
checked ("" for the 智能机器人, the CorpID for the app callback).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import secrets
import struct
import time
from collections.abc import Callable
from dataclasses import dataclass

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from bot.wecom.errors import (
    ComputeSignatureError,
    DecodeBase64Error,
    DecryptError,
    IllegalAesKeyError,
    IllegalBufferError,
    ReceiveIdError,
    SignatureError,
    StaleTimestampError,
)

BLOCK = 32
TIMESTAMP_WINDOW_S = 300
RANDOM_PREFIX = 16


def signature(token: str, timestamp: str, nonce: str, encrypt: str) -> str:
    """sha1 of the sorted concatenation, as WeCom computes msg_signature."""
    try:
        joined = "".join(sorted([token, timestamp, nonce, encrypt]))
        return hashlib.sha1(joined.encode("utf-8")).hexdigest()
    except (TypeError, UnicodeEncodeError) as exc:
        raise ComputeSignatureError("signature inputs are not text") from exc


def pkcs7_pad(data: bytes) -> bytes:
    """Pad to a multiple of 32 bytes with 1..32 bytes of the pad length."""
    amount = BLOCK - len(data) % BLOCK
    return data + bytes([amount]) * amount


def pkcs7_unpad(data: bytes) -> bytes:
    """Strip 32-byte-block PKCS#7 padding, refusing anything malformed."""
    if not data:
        raise IllegalBufferError("empty plaintext")
    amount = data[-1]
    if not 1 <= amount <= BLOCK or amount > len(data):
        raise IllegalBufferError("bad padding")
    if data[-amount:] != bytes([amount]) * amount:
        raise IllegalBufferError("bad padding")
    return data[:-amount]


def aes_key(encoding_aes_key: str) -> bytes:
    """The 32-byte key from the 43-character EncodingAESKey."""
    if len(encoding_aes_key) != 43:
        raise IllegalAesKeyError("EncodingAESKey must be 43 characters")
    try:
        key = base64.b64decode(encoding_aes_key + "=", validate=True)
    except binascii.Error as exc:
        raise IllegalAesKeyError("EncodingAESKey is not base64") from exc
    if len(key) != 32:
        raise IllegalAesKeyError("EncodingAESKey must decode to 32 bytes")
    return key


@dataclass(frozen=True)
class Envelope:
    """What an encrypted reply carries: ciphertext, signature and the signed pair."""

    encrypt: str
    msg_signature: str
    timestamp: str
    nonce: str

    def to_json(self) -> str:
        """The 智能机器人 passive-reply body (field names as in WXBizJsonMsgCrypt)."""
        return json.dumps(
            {
                "encrypt": self.encrypt,
                "msgsignature": self.msg_signature,
                "timestamp": self.timestamp,
                "nonce": self.nonce,
            }
        )


class WeComCrypto:
    """One callback's crypto: token, key and the receiveid this endpoint accepts."""

    def __init__(
        self,
        token: str,
        encoding_aes_key: str,
        receive_id: str,
        *,
        clock: Callable[[], float] = time.time,
        window_s: int = TIMESTAMP_WINDOW_S,
    ) -> None:
        self._token = token
        self._key = aes_key(encoding_aes_key)
        self._receive_id = receive_id
        self._clock = clock
        self._window_s = window_s

    def __repr__(self) -> str:
        """Never show the token or key, even in a debugger or traceback."""
        return f"WeComCrypto(receive_id={self._receive_id!r})"

    # ------------------------------------------------------------------ verification
    def check(self, msg_signature: str, timestamp: str, nonce: str, encrypt: str) -> None:
        """Signature in constant time first, then the timestamp window."""
        expected = signature(self._token, timestamp, nonce, encrypt)
        if not hmac.compare_digest(expected.encode(), msg_signature.encode("utf-8", "replace")):
            raise SignatureError("msg_signature does not match")
        # Unix seconds have 10 digits until 2286: anything else is not a timestamp (and a
        # number of hundreds of digits would overflow the float comparison below).
        if not (timestamp.isascii() and timestamp.isdigit() and len(timestamp) <= 12):
            raise StaleTimestampError("timestamp is not a number of seconds")
        sent = int(timestamp)
        if abs(self._clock() - sent) > self._window_s:
            raise StaleTimestampError("timestamp outside the allowed window")

    def verify_url(self, msg_signature: str, timestamp: str, nonce: str, echostr: str) -> str:
        """GET URL verification: the decrypted echostr to answer as plain text."""
        self.check(msg_signature, timestamp, nonce, echostr)
        return self.decrypt(echostr)

    def open(self, msg_signature: str, timestamp: str, nonce: str, encrypt: str) -> str:
        """Verify and decrypt one callback's `encrypt` field."""
        self.check(msg_signature, timestamp, nonce, encrypt)
        return self.decrypt(encrypt)

    # ------------------------------------------------------------------ AES
    def decrypt(self, encrypt: str) -> str:
        """AES-256-CBC decrypt, unpad, split off the random prefix and check the receiveid."""
        try:
            raw = base64.b64decode(encrypt, validate=True)
        except (binascii.Error, ValueError) as exc:
            raise DecodeBase64Error("encrypt is not base64") from exc
        if not raw or len(raw) % 16:
            raise DecryptError("ciphertext is not whole AES blocks")
        decryptor = Cipher(algorithms.AES(self._key), modes.CBC(self._key[:16])).decryptor()
        plain = pkcs7_unpad(decryptor.update(raw) + decryptor.finalize())
        if len(plain) < RANDOM_PREFIX + 4:
            raise IllegalBufferError("plaintext too short")
        (length,) = struct.unpack(">I", plain[RANDOM_PREFIX : RANDOM_PREFIX + 4])
        body = plain[RANDOM_PREFIX + 4 :]
        if length > len(body):
            raise IllegalBufferError("length field exceeds the plaintext")
        try:
            message = body[:length].decode("utf-8")
            receive_id = body[length:].decode("utf-8")
        except UnicodeDecodeError as exc:
            raise IllegalBufferError("plaintext is not UTF-8") from exc
        if not hmac.compare_digest(receive_id.encode(), self._receive_id.encode()):
            raise ReceiveIdError("receiveid does not match")
        return message

    def encrypt(self, message: str, *, random_prefix: bytes | None = None) -> str:
        """Encrypt a reply; the random prefix comes from `secrets` unless a test fixes it."""
        prefix = random_prefix if random_prefix is not None else secrets.token_bytes(16)
        if len(prefix) != RANDOM_PREFIX:
            raise ValueError("random prefix must be 16 bytes")
        data = message.encode("utf-8")
        plain = prefix + struct.pack(">I", len(data)) + data + self._receive_id.encode("utf-8")
        encryptor = Cipher(algorithms.AES(self._key), modes.CBC(self._key[:16])).encryptor()
        cipher = encryptor.update(pkcs7_pad(plain)) + encryptor.finalize()
        return base64.b64encode(cipher).decode("ascii")

    def seal(
        self,
        message: str,
        *,
        nonce: str | None = None,
        timestamp: str | None = None,
        random_prefix: bytes | None = None,
    ) -> Envelope:
        """Encrypt and sign a message (a passive reply, or the simulator's callback)."""
        ts = timestamp if timestamp is not None else str(int(self._clock()))
        nc = nonce if nonce is not None else str(secrets.randbelow(10**10))
        encrypted = self.encrypt(message, random_prefix=random_prefix)
        return Envelope(encrypted, signature(self._token, ts, nc, encrypted), ts, nc)
