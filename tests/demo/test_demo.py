"""The demo as README's first command runs it: a simulator process, m365pbx, people acting."""

from __future__ import annotations

import asyncio
import re
import socket
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from m365pbx.demo.runner import DemoOptions, run_demo


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def test_the_demo_shows_teams_presence_on_the_presence_api(tmp_path: Path) -> None:
    lines: list[str] = []
    port = free_port()
    answers: list[httpx.Response] = []

    key_printed = asyncio.Event()

    def say(line: str) -> None:
        lines.append(line)
        if "Authorization: Bearer" in line:
            key_printed.set()

    options = DemoOptions(people=15, port=port, directory=tmp_path, activity_interval=0.4,
                          duration=12, seed=11)

    async def probe() -> None:
        # Once the demo printed its key, read the presence API as a switchboard would.
        await key_printed.wait()
        key = next(line for line in lines if "Bearer" in line).split("Bearer ")[1].split("'")[0]
        await asyncio.sleep(8)
        async with httpx.AsyncClient() as http:
            answers.append(await http.get(f"http://127.0.0.1:{port}/api/v1/presence",
                                          headers={"Authorization": f"Bearer {key}"}))
            answers.append(await http.get(f"http://127.0.0.1:{port}/api/v1/presence"))
            # The printed one-time link signs the throwaway admin in, once.
            link = next(line for line in lines if "admin UI" in line).split()[2]
            signed_in = await http.get(link)
            answers.append(signed_in)
            answers.append(await http.get(f"http://127.0.0.1:{port}/admin",
                                          cookies=signed_in.cookies))
            answers.append(await http.get(link))

    probing = asyncio.create_task(probe())
    service = await run_demo(options, say)
    await probing
    matched = next(re.match(r"matched (\d+) of (\d+)", line) for line in lines
                   if line.startswith("matched"))
    assert matched is not None and matched.group(1) == matched.group(2) != "0"
    changes = [line for line in lines if "PBX now shows" in line]
    assert changes, "no Teams presence reached the PBX side"
    # Both directions are told: after a PBX action, what Teams then shows.
    told = [line for line in lines if "Teams now shows" in line]
    assert told, "the narration never said what Teams shows after a PBX action"
    authorised, anonymous, signed_in, overview, used_again = answers
    assert authorised.status_code == 200
    assert anonymous.status_code == 401
    assert signed_in.status_code == 303 and "m365pbx_admin" in signed_in.cookies
    assert overview.status_code == 200 and "Tenant contoso" in overview.text
    assert used_again.headers["location"] == "/admin/login"
    assert service.health()["tenants"]["contoso"]["directory"]["error"] is None
    secret = (tmp_path / "m365pbx.yaml").read_text()
    assert "client_secret" in secret  # written for the service, never printed:
    for line in lines:
        assert "client_secret" not in line and "password" not in line


@pytest.fixture(autouse=True)
def _no_ca_override(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("REQUESTS_CA_BUNDLE", raising=False)
    monkeypatch.delenv("CURL_CA_BUNDLE", raising=False)


def test_a_second_demo_on_a_taken_port_stops_at_once_and_says_what_to_do() -> None:
    with socket.socket() as taken:  # the first demo (or anything else) listens there
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = subprocess.run(
            [str(Path(sys.executable).with_name("m365pbx")), "demo", "--port", str(port),
             "--duration", "1"], capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 2, result.stderr
    assert f"cannot listen on 127.0.0.1 port {port}: Address already in use" in result.stderr
    assert "--port" in result.stderr and "Traceback" not in result.stderr
    assert "starting the Microsoft 365 simulator" not in result.stdout  # nothing started
