"""Operator accounts in Redis: argon2id password hashes, roles, API tokens, the first admin.

argon2id (argon2-cffi, RFC 9106's low-memory profile: 64 MiB, 3 passes) is memory-hard, so a
stolen hash costs an attacker memory per guess, not just time. Hashing runs in a thread so a
login never stalls the console's event loop. API tokens are random and stored only as their
SHA-256: a token is long enough that a fast hash is safe, and a read of Redis leaks none.
"""

from __future__ import annotations

import asyncio
import hashlib
import re
import secrets
import time
from dataclasses import dataclass

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from console.roles import Role
from qunzhu.redisconn import AsyncRedis, text_of

NAME = re.compile(r"^[a-z0-9_.-]{2,32}$")
MIN_PASSWORD = 10
TOKEN_PREFIX = "qzc_"


class AccountError(ValueError):
    """A refused account change, with the reason in the console's words."""


@dataclass(frozen=True)
class Account:
    """An operator: login name, display name and role."""

    name: str
    display: str
    role: Role
    epoch: str = ""  # changes when the account is re-created or its password changes


class Keys:
    """Where accounts live (one slot: accounts are few and change together)."""

    users = "qz:{console}:users"

    @staticmethod
    def user(name: str) -> str:
        return f"qz:{{console}}:user:{name}"

    @staticmethod
    def token(digest: str) -> str:
        return f"qz:{{console}}:token:{digest}"

    @staticmethod
    def tokens_of(name: str) -> str:
        return f"qz:{{console}}:tokens:{name}"


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class Accounts:
    """Create, check and change operator accounts."""

    def __init__(self, r: AsyncRedis, hasher: PasswordHasher | None = None) -> None:
        self._r = r
        self._hasher = hasher or PasswordHasher()
        # A hash to verify against when the name is unknown: an unknown name and a wrong
        # password take the same time, so timing does not tell which names exist.
        self._dummy = self._hasher.hash(secrets.token_urlsafe(16))

    async def get(self, name: str) -> Account | None:
        raw = await self._r.hgetall(Keys.user(name))
        if not raw:
            return None
        fields = {text_of(k): text_of(v) for k, v in raw.items()}
        return Account(name, fields.get("display", name), Role.parse(fields["role"]),
                       fields.get("epoch", ""))

    async def all(self) -> list[Account]:
        names = sorted(text_of(n) for n in await self._r.smembers(Keys.users))
        found = [await self.get(n) for n in names]
        return [a for a in found if a is not None]

    async def create(self, name: str, display: str, role: Role, password: str) -> Account:
        """A new account; AccountError when the name is taken or the password weak."""
        name = name.strip().lower()
        if not NAME.match(name):
            raise AccountError("登录名只能用 2–32 位小写字母、数字、点、横线或下划线")
        check_password(password)
        hashed = await asyncio.to_thread(self._hasher.hash, password)
        created = await self._r.hsetnx(Keys.user(name), "hash", hashed)
        if not created:
            raise AccountError(f"登录名 {name} 已被使用")
        epoch = secrets.token_hex(8)
        await self._r.hset(Keys.user(name), mapping={
            "display": clean_display(display) or name, "role": role.name.lower(),
            "created": str(int(time.time())), "epoch": epoch})
        await self._r.sadd(Keys.users, name)
        return Account(name, clean_display(display) or name, role, epoch)

    async def verify(self, name: str, password: str) -> Account | None:
        """The account when the password is right; None otherwise (in the same time)."""
        stored = await self._r.hget(Keys.user(name.strip().lower()), "hash")
        hashed = text_of(stored) if stored is not None else self._dummy
        try:
            await asyncio.to_thread(self._hasher.verify, hashed, password)
        except (VerificationError, InvalidHashError):
            return None
        if stored is None:
            return None
        account = await self.get(name.strip().lower())
        if account is not None and self._hasher.check_needs_rehash(hashed):
            await self._r.hset(Keys.user(account.name), "hash",
                               await asyncio.to_thread(self._hasher.hash, password))
        return account

    async def set_password(self, name: str, password: str) -> str:
        """A new password; every other session of the account ends (a new epoch, returned)."""
        check_password(password)
        if not await self._r.exists(Keys.user(name)):
            raise AccountError(f"没有账号 {name}")
        epoch = secrets.token_hex(8)
        await self._r.hset(Keys.user(name), mapping={
            "hash": await asyncio.to_thread(self._hasher.hash, password), "epoch": epoch})
        return epoch

    async def set_role(self, name: str, role: Role) -> None:
        account = await self.get(name)
        if account is None:
            raise AccountError(f"没有账号 {name}")
        if account.role is Role.ADMIN and role is not Role.ADMIN and await self._admins() <= 1:
            raise AccountError("至少要保留一位管理员")
        await self._r.hset(Keys.user(name), "role", role.name.lower())

    async def delete(self, name: str) -> None:
        account = await self.get(name)
        if account is None:
            raise AccountError(f"没有账号 {name}")
        if account.role is Role.ADMIN and await self._admins() <= 1:
            raise AccountError("至少要保留一位管理员")
        for digest in await self._r.smembers(Keys.tokens_of(name)):
            await self._r.delete(Keys.token(text_of(digest)))
        await self._r.delete(Keys.user(name), Keys.tokens_of(name))
        await self._r.srem(Keys.users, name)

    async def _admins(self) -> int:
        return sum(1 for a in await self.all() if a.role is Role.ADMIN)

    # ------------------------------------------------------------------ API tokens
    async def new_token(self, name: str) -> str:
        """A new API token for an account, shown once; only its digest is kept."""
        token = TOKEN_PREFIX + secrets.token_urlsafe(32)
        digest = _digest(token)
        await self._r.set(Keys.token(digest), name)
        await self._r.sadd(Keys.tokens_of(name), digest)
        return token

    async def by_token(self, token: str) -> Account | None:
        if not token.startswith(TOKEN_PREFIX):
            return None
        name = await self._r.get(Keys.token(_digest(token)))
        return None if name is None else await self.get(text_of(name))

    async def revoke_tokens(self, name: str) -> int:
        digests = [text_of(d) for d in await self._r.smembers(Keys.tokens_of(name))]
        for digest in digests:
            await self._r.delete(Keys.token(digest))
        await self._r.delete(Keys.tokens_of(name))
        return len(digests)

    # ------------------------------------------------------------------ first start
    async def ensure_first_admin(self, name: str = "admin") -> str | None:
        """On a console with no accounts, an admin with a generated password (returned once)."""
        if await self._r.scard(Keys.users):
            return None
        password = secrets.token_urlsafe(12)
        try:
            await self.create(name, "管理员", Role.ADMIN, password)
        except AccountError:  # another console process created it first
            return None
        return password


def clean_display(display: str) -> str:
    """A display name as people (and git, which records it as the author) can use it."""
    text = "".join(ch for ch in display if ch.isprintable() and ch not in "<>\"").strip()
    return text[:32] if any(ch.isalnum() for ch in text) else ""


def check_password(password: str) -> None:
    """A password long enough to resist guessing; AccountError otherwise."""
    if len(password) < MIN_PASSWORD:
        raise AccountError(f"密码至少 {MIN_PASSWORD} 位")
    if len(password) > 256:
        raise AccountError("密码太长了（最多 256 位）")
