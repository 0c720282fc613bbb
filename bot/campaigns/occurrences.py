"""Which campaign posts are due: occurrences, spread by a jitter every scheduler agrees on.

An occurrence is (campaign, scheduled local time, group): its id names it everywhere (the
budget's record, the outbox's idempotency key), so any number of scheduler processes that
find the same occurrence post it once. Posts to thousands of groups are spread over the
campaign's jitter window (identical simultaneous mass posts are what platforms flag); the
offset comes from a hash of the occurrence, so every process computes the same moment.

The jitter and the id are defined in qunzhu.campaigns, so the sandbox can tell when a
group's next post is due. `due_between(after, until)` lists the occurrences whose moment
falls in (after, until]: consecutive windows never list one twice, and together miss none.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta

from croniter import CroniterError

from qunzhu.campaigns import CampaignsFile, jitter, occurrence_key
from qunzhu.config import SHANGHAI

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Occurrence:
    """One post of one campaign into one group."""

    campaign: str
    chatid: str
    scheduled: datetime  # the campaign's local time
    due: datetime  # when this group's post goes: scheduled ± its jitter
    deadline: datetime  # after this the post is no longer worth sending
    promotional: bool

    @property
    def id(self) -> str:
        """The occurrence's identity, the same in every process."""
        return occurrence_key(self.campaign, self.scheduled, self.chatid)

    def missed(self, now: datetime, grace: timedelta) -> bool:
        """Whether it is too late to send at all (downtime longer than the grace window)."""
        return now - self.due > grace


def due_between(campaigns: CampaignsFile, groups: Mapping[str, list[str]], after: datetime,
                until: datetime) -> list[Occurrence]:
    """Occurrences whose moment is in (after, until], earliest first (groups: chatid → tags)."""
    found: list[Occurrence] = []
    for campaign in campaigns.campaigns:
        if not campaign.enabled:
            continue
        spread = timedelta(minutes=campaign.jitter_minutes)
        timely = timedelta(minutes=max(campaign.grace_minutes, campaign.timely_minutes))
        targets = campaign.targets(dict(groups))
        try:
            moments = list(campaign.schedule.between(after - spread, until + spread))
        except CroniterError:  # refused at load; an old copy must not stop the others
            log.error("campaign %s: its schedule cannot be computed; skipped", campaign.id)
            continue
        for scheduled in moments:
            if not campaign.active_on(scheduled.astimezone(SHANGHAI).date()):
                continue
            for chatid in targets:
                key = occurrence_key(campaign.id, scheduled, chatid)
                due = scheduled + jitter(key, campaign.jitter_minutes)
                if after < due <= until:
                    found.append(Occurrence(campaign.id, chatid, scheduled, due,
                                            scheduled + timely, campaign.promotional))
    found.sort(key=lambda o: (o.due, o.id))
    return found
