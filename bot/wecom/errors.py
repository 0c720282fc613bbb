"""Exceptions that carry the official WXBizMsgCrypt errcodes, so logs and tests name them."""

from __future__ import annotations


class WeComCryptoError(Exception):
    """A callback failed verification or decryption; `errcode` is the official sample's code."""

    errcode = -40000

    def __init__(self, reason: str) -> None:
        super().__init__(f"{reason} (errcode {self.errcode})")
        self.reason = reason


class SignatureError(WeComCryptoError):
    """msg_signature does not match: the body was not signed with our token."""

    errcode = -40001


class ParseError(WeComCryptoError):
    """The body is not the documented JSON/XML envelope (or carries a DOCTYPE)."""

    errcode = -40002


class ComputeSignatureError(WeComCryptoError):
    """The signature inputs cannot be hashed (e.g. not text)."""

    errcode = -40003


class IllegalAesKeyError(WeComCryptoError):
    """The EncodingAESKey is not 43 base64 characters decoding to 32 bytes."""

    errcode = -40004


class ReceiveIdError(WeComCryptoError):
    """The decrypted receiveid is not ours ("" for the 智能机器人, the CorpID for the app)."""

    errcode = -40005


class EncryptError(WeComCryptoError):
    """AES encryption of a reply failed."""

    errcode = -40006


class DecryptError(WeComCryptoError):
    """AES decryption failed (wrong key or a ciphertext that is not whole blocks)."""

    errcode = -40007


class IllegalBufferError(WeComCryptoError):
    """The decrypted buffer has bad padding or a length field that does not fit."""

    errcode = -40008


class EncodeBase64Error(WeComCryptoError):
    """Base64 encoding of the ciphertext failed."""

    errcode = -40009


class DecodeBase64Error(WeComCryptoError):
    """The encrypt field is not valid base64."""

    errcode = -40010


class GenReturnError(WeComCryptoError):
    """Building the encrypted reply envelope failed."""

    errcode = -40011


class StaleTimestampError(SignatureError):
    """The signed timestamp is outside ±300 s: treated as a bad signature (a replay)."""
