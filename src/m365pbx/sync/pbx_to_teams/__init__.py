"""PBX → Teams: batched presence writes, and what survives a restart (issue 14)."""

from m365pbx.sync.pbx_to_teams.restore import RestartGuard, SavedPerson
from m365pbx.sync.pbx_to_teams.sink import BatchingTeamsSink, SinkStatus
from m365pbx.sync.pbx_to_teams.snapshot import Snapshot, merge, snapshot_of

__all__ = ["BatchingTeamsSink", "RestartGuard", "SavedPerson", "SinkStatus", "Snapshot",
           "merge", "snapshot_of"]
