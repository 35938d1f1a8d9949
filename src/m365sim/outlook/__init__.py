"""The outlook part: calendars (events, calendarView, getSchedule), contacts, their changes,
automatic replies (mailbox settings), and the presence effect of meetings and out-of-office
time."""

from __future__ import annotations

from typing import TYPE_CHECKING

from fastapi import FastAPI

from m365sim.outlook import mailbox_settings, routes_calendar, routes_contacts, routes_control

if TYPE_CHECKING:
    from m365sim.simulator import Simulator


def register(app: FastAPI, sim: Simulator) -> None:
    """Add this part's Graph and control routes to the app."""
    routes_calendar.register(app, sim)
    routes_contacts.register(app, sim)
    routes_control.register(app, sim)
    mailbox_settings.register(app, sim)
