"""Loading the input files of `m365pbx match`: Microsoft users (Graph JSON) and PBX users."""

from m365pbx.directory_files.pbx import PbxUsersFile, detect_delimiter, load_pbx_users
from m365pbx.directory_files.teams import TeamsUsersFile, load_teams_users
from m365pbx.directory_files.text import decode_text, parse_json, read_bytes

__all__ = [
    "PbxUsersFile",
    "TeamsUsersFile",
    "decode_text",
    "detect_delimiter",
    "load_pbx_users",
    "load_teams_users",
    "parse_json",
    "read_bytes",
]
