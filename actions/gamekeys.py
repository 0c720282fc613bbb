"""Where game state lives in Redis: one hash-tag slot per member, group, campaign and code.

A Lua script may only touch keys of one slot on Redis Cluster, so the keys are grouped by
what changes together, and each kind of state sits on its own slot:

- a member (`{<brand>:m:<user>}`): balance and streak, wallet, draws today, the ledger of
  their points and coupons, and their messages' results (idempotency records);
- a group (`{<brand>:g:<group>}`): its leaderboard and the marks that a check-in was counted;
- a coupon campaign (`{<brand>:c:<campaign>}`): stock issued, claims per member;
- a coupon code (`{<brand>:k:<code>}`): who holds it (so any code is found in one step);
- the points shop (`{<brand>:rewards}`) and the lucky draw's prizes (`{<brand>:prizes}`):
  brand-wide stock, each on its own slot.

An operation that spans slots is a short saga in `actions.store`, every step idempotent per
(member, message id).
"""

from __future__ import annotations

from dataclasses import dataclass

from qunzhu import coupons


@dataclass(frozen=True)
class GameKeys:
    """The game's key names for one brand."""

    brand: str

    # ------------------------------------------------------------ per member
    def _member(self, user: str) -> str:
        return coupons.member_prefix(self.brand, user)

    def member(self, user: str) -> str:
        """Hash: points, streak, best_streak, checkins, last_day."""
        return f"{self._member(user)}:state"

    def wallet(self, user: str) -> str:
        """Hash code → coupon JSON, as issued."""
        return coupons.wallet_key(self.brand, user)

    def ledger(self, user: str) -> str:
        """Stream: every change to the member's points and every coupon they got."""
        return f"{self._member(user)}:ledger"

    def draws(self, user: str, day: str) -> str:
        """Counter of the member's lucky draws on one local day (expires after two days)."""
        return f"{self._member(user)}:draws:{day}"

    def result(self, op: str, user: str, msgid: str) -> str:
        """A message's final result, replayed when WeCom delivers it again.

        Per member: message ids are unique per bot, not across channels, so two members'
        messages may share one and must not share a result.
        """
        return f"{self._member(user)}:idem:{op}:{msgid}"

    def paid(self, op: str, user: str, msgid: str) -> str:
        """A draw or redemption paid for but not yet settled (the saga's middle)."""
        return f"{self._member(user)}:paid:{op}:{msgid}"

    def under_way(self, user: str, msgid: str) -> str:
        """A claim begun: the campaign and code every later delivery of the message finishes."""
        return f"{self._member(user)}:claiming:{msgid}"

    # ------------------------------------------------------------ per group
    def _group(self, group: str) -> str:
        return f"qz:{{{self.brand}:g:{group or '-'}}}"

    def leaderboard(self, group: str) -> str:
        """Sorted set: check-in points earned in this group (ties: first to get there)."""
        return f"{self._group(group)}:lb"

    def leaderboard_seq(self, group: str) -> str:
        """Counter of the group's check-ins: orders equal scores by arrival."""
        return f"{self._group(group)}:lbseq"

    def counted(self, group: str, user: str, msgid: str) -> str:
        """Present once a member's check-in has been added to this group's leaderboard."""
        return f"{self._group(group)}:counted:{user}:{msgid}"

    # ------------------------------------------------------------ per campaign
    def _campaign(self, campaign: str) -> str:
        return coupons.campaign_prefix(self.brand, campaign)

    def issued(self, campaign: str) -> str:
        """Counter: coupons of this campaign issued."""
        return coupons.issued_key(self.brand, campaign)

    def claims(self, campaign: str) -> str:
        """Hash user → coupons of this campaign they claimed."""
        return f"{self._campaign(campaign)}:claims"

    def claim(self, campaign: str, user: str, msgid: str) -> str:
        """A coupon reserved for one message (the reservation a retry finds again)."""
        return f"{self._campaign(campaign)}:claim:{user}:{msgid}"

    # ------------------------------------------------------------ per code
    def code(self, code: str) -> str:
        """Hash: owner of one coupon code, the group it was claimed in, its redemption."""
        return coupons.code_key(self.brand, code)

    # ------------------------------------------------------------ brand-wide stock
    @property
    def rewards_issued(self) -> str:
        """Hash reward id → how many were redeemed."""
        return f"qz:{{{self.brand}:rewards}}:issued"

    def reward_hold(self, user: str, msgid: str) -> str:
        """A unit of reward stock taken for one paid message."""
        return f"qz:{{{self.brand}:rewards}}:hold:{user}:{msgid}"

    @property
    def prizes_issued(self) -> str:
        """Hash prize id → how many were won."""
        return f"qz:{{{self.brand}:prizes}}:issued"

    @property
    def drawlog(self) -> str:
        """Stream: every draw with its random number, for audit."""
        return f"qz:{{{self.brand}:prizes}}:drawlog"

    def pick(self, user: str, msgid: str) -> str:
        """The prize picked for one paid draw (a retry gets the same prize)."""
        return f"qz:{{{self.brand}:prizes}}:pick:{user}:{msgid}"
