"""What the annotations app does (called by views, API, commands and the demo alike):

- campaigns.py   create a campaign with its items (selection.py picks them), enroll annotators
- selection.py   which outputs become items: random, or where scorers disagree most
- assignment.py  next item, submit (versions), skip, undo — safe under concurrency
"""
from annotations.services.assignment import (
    Claim,
    NotFound,
    next_assignment,
    order_shown,
    own_assignment,
    skip,
    submit_judgment,
    undo_last,
)
from annotations.services.campaigns import create_campaign, enroll, set_status, unenroll

__all__ = [
    "Claim", "NotFound", "create_campaign", "enroll", "next_assignment", "order_shown", "own_assignment",
    "set_status", "skip", "submit_judgment", "undo_last", "unenroll",
]
