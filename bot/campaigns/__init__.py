"""Campaigns in the bridge: the scheduler and the anti-spam budget every non-reply post passes."""
