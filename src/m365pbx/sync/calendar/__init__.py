"""Calendar → PBX presence: read each person's coming events, hand them to the hub as blocks."""

from m365pbx.sync.calendar.reader import CalendarPlan, CalendarReader, CalendarStatus

__all__ = ["CalendarPlan", "CalendarReader", "CalendarStatus"]
