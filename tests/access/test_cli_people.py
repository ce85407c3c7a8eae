"""``landexplorer users``, ``groups`` and ``audit``, the one-time sign-in link and the
first run's admin, driven through the real command line on both stores."""

from __future__ import annotations

import io
import json
import re
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient

from landexplorer.api.app import create_app
from landexplorer.cli import main
from landexplorer.settings import Settings
from tests import live
from tests.people import bearer

#: ``cli(*args, stdin=None) -> (exit code, stdout, stderr on one line)``
Cli = Callable[..., tuple[int, str, str]]
LINK = re.compile(r"(https?://[^\s/]+)(/auth/once/lxo_[A-Za-z0-9_-]+)")


@pytest.fixture
def cli(
    store_backend: str,
    settings: Settings,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> Cli:
    """Run ``landexplorer --data-dir ... ARGS`` on this test's catalogue: (code, out, err)."""
    if settings.database_url:
        monkeypatch.setenv("LANDEXPLORER_DATABASE_URL", settings.database_url)
    else:
        monkeypatch.delenv("LANDEXPLORER_DATABASE_URL", raising=False)

    def run(*args: str, stdin: str | None = None) -> tuple[int, str, str]:
        if stdin is not None:
            monkeypatch.setattr("sys.stdin", io.StringIO(stdin))
        code = main(["--data-dir", str(settings.data_dir), *args])
        captured = capsys.readouterr()
        return code, captured.out, " ".join(captured.err.split())

    return run


def test_users_groups_tokens_and_audit(cli: Cli, settings: Settings) -> None:
    code, out, _ = cli("users", "add", "sam", "--display", "Sam Green")
    assert code == 0, out
    assert "Made account 'sam'" in out and "no password yet" in out
    base, path = LINK.search(out).groups()  # type: ignore[union-attr]
    assert base == "http://127.0.0.1:8000"
    code, out, _ = cli(
        "users", "add", "kim", "--admin", "--password-stdin", stdin="a long password\n"
    )
    assert code == 0 and "Made admin account 'kim'" in out and "/auth/once/" not in out
    # plain-words refusals
    for args, expected in [
        (("users", "add", "sam"), "already an account called 'sam'"),
        (("users", "add", "Bad Name"), "A user name must be 2 to 40 characters"),
        (("users", "disable", "nobody"), "no account called 'nobody'"),
        (("groups", "show", "nogroup"), "no group called 'nogroup'"),
    ]:
        code, out, err = cli(*args)
        assert code == 1, args
        assert expected in err and "Traceback" not in err, (args, err)
    code, _, err = cli("users", "add", "weak", "--password-stdin", stdin="short\n")
    assert code == 1 and "at least 10 characters" in err

    code, out, _ = cli("groups", "add", "growers", "--title", "Trafford growers")
    assert code == 0
    code, _, err = cli("groups", "member", "growers", "sam", "--role", "boss")
    assert code == 1 and "one of viewer, contributor, steward, not 'boss'" in err
    code, _, err = cli("groups", "member", "growers", "ghost", "--role", "viewer")
    assert code == 1 and "no account called 'ghost'" in err
    assert cli("groups", "member", "growers", "sam", "--role", "steward")[0] == 0
    code, out, _ = cli("groups", "show", "growers", "--json")
    assert json.loads(out)["members"] == {"sam": "steward"}
    code, out, _ = cli("groups", "list")  # piped: plain columns
    assert re.search(r"^growers\s+Trafford growers\s+1\s", out, re.M), out

    code, out, _ = cli("users", "list")
    assert "2 account(s)" in out
    assert re.search(r"^sam\s+Sam Green\s+enabled\s+not yet\s+growers \(steward\)", out, re.M), out
    assert re.search(r"^kim\s+-\s+yes\s+enabled\s+yes\s", out, re.M), out

    code, out, err = cli("users", "token", "sam", "--name", "QGIS", "--scope", "read")
    assert code == 0 and "shown only now" in err
    token = out.strip()
    assert token.startswith("lxt_") and "\n" not in token
    code, _, err = cli("users", "token", "sam", "--name", "x", "--scope", "admin")
    assert code == 1 and "scope is 'read' or 'write'" in err
    with TestClient(create_app(settings)) as client:
        me = client.get("/auth/me", headers=bearer(token)).json()
        assert me["user"] == "sam" and me["scope"] == "read"
    assert cli("users", "disable", "sam")[0] == 0
    with TestClient(create_app(settings)) as client:  # a server started after the change
        assert client.get("/auth/me", headers=bearer(token)).status_code == 401
    code, _, err = cli("users", "reset-password", "sam")
    assert code == 1 and "disabled" in err and "users enable sam" in err
    assert cli("users", "enable", "sam")[0] == 0
    code, out, _ = cli("users", "reset-password", "sam")
    assert code == 0 and LINK.search(out) and LINK.search(out).group(2) != path  # type: ignore[union-attr]
    code, out, _ = cli("users", "list", "--json")
    assert {u["name"]: u["disabled"] for u in json.loads(out)} == {"kim": False, "sam": False}

    code, out, _ = cli("groups", "remove", "growers", "sam")
    assert code == 0
    code, _, err = cli("groups", "remove", "growers", "sam")
    assert code == 1 and "'sam' is not a member of 'growers'" in err

    # the audit log: every change above, as the operator, newest first, never a secret
    code, out, _ = cli("audit", "--json", "--limit", "100")
    events = json.loads(out)
    actions = [e["action"] for e in events]
    assert actions[0] == "member removed" and actions[-1] == "user added"
    for wanted in ("group added", "member set", "token created", "user disabled",
                   "user enabled", "sign-in link made"):  # fmt: skip
        assert wanted in actions, wanted
    assert {e["actor"] for e in events} == {"operator (command line)"}
    assert token not in out and "lxo_" not in out
    ids = [e["id"] for e in events]
    assert ids == sorted(ids, reverse=True)
    code, out, _ = cli("audit", "--limit", "2")
    assert "2 event(s), newest first" in out and f"--before {ids[1]}" in out
    code, out, _ = cli("audit", "--json", "--before", str(ids[1]), "--limit", "1")
    assert [e["id"] for e in json.loads(out)] == [ids[2]]
    code, out, _ = cli("audit", "--json", "--user", "sam")
    assert json.loads(out) == []


def test_one_time_link_signs_in_exactly_once(cli: Cli, settings: Settings) -> None:
    code, out, _ = cli("users", "add", "sam")
    assert code == 0
    path = LINK.search(out).group(2)  # type: ignore[union-attr]
    with TestClient(create_app(settings)) as client:
        page = client.get(path)
        assert page.status_code == 200 and 'id="sign-in-once"' in page.text
        first = client.post(path, follow_redirects=False)
        assert first.status_code == 303 and first.headers["location"] == "/"
        assert "lx_session=" in first.headers["set-cookie"]
        assert client.get("/auth/me").json()["user"] == "sam"
        client.cookies.clear()
        again = client.post(path, follow_redirects=False)
        assert again.status_code == 400 and "set-cookie" not in again.headers
        assert client.get("/auth/me").json()["signed_in"] is False


def test_layers_take_an_owner_and_group_that_exist(cli: Cli, real_data: Path) -> None:
    csv = str(real_data / "allotments" / "trafford_allotments.csv")
    code, _, err = cli("ingest", csv, "--id", "plots", "--owner", "ghost")
    assert code == 1 and "no account called 'ghost'" in err
    cli("users", "add", "sam")
    code, _, err = cli("ingest", csv, "--id", "plots", "--owner", "sam", "--group", "nogroup")
    assert code == 1 and "no group called 'nogroup'" in err
    cli("groups", "add", "growers")
    code, out, _ = cli("ingest", csv, "--id", "plots", "--owner", "sam", "--group", "growers",
                       "--visibility", "group", "--json")  # fmt: skip
    assert code == 0
    entry = json.loads(out)[0]
    assert (entry["owner"], entry["group"], entry["visibility"]) == ("sam", "growers", "group")
    code, out, _ = cli("layers", "update", "plots", "--visibility", "link")
    assert code == 0
    code, out, _ = cli("audit", "--layer", "plots", "--json")
    assert [e["action"] for e in json.loads(out)] == ["details changed", "upload"]


def test_first_run_makes_an_admin_with_a_link_once(
    store_backend: str, settings: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    data = settings.data_dir
    data.mkdir(parents=True, exist_ok=True)
    logs_before = set(data.parent.glob("serve-*.log"))
    with live.serve(data, database_url=settings.database_url) as url:
        log = next(iter(set(data.parent.glob("serve-*.log")) - logs_before))
        text = " ".join(log.read_text().split())
        said = re.search(r"No admin account yet: made 'admin'\. Sign in once with (\S+) "
                         r"\(valid for 60 minutes\), then set a password\.", text)  # fmt: skip
        assert said, text
        port = url.rsplit(":", 1)[1]
        assert said.group(1).startswith(f"http://127.0.0.1:{port}/auth/once/lxo_")
        link = said.group(1)
        first = httpx.post(link, follow_redirects=False)
        assert first.status_code == 303 and "lx_session=" in first.headers["set-cookie"]
        assert httpx.post(link, follow_redirects=False).status_code == 400
    logs_before = set(data.parent.glob("serve-*.log"))
    with live.serve(data, database_url=settings.database_url):
        log = next(iter(set(data.parent.glob("serve-*.log")) - logs_before))
        assert "No admin account yet" not in log.read_text()


def test_serve_prints_a_sign_in_link_for_a_user(cli: Cli, settings: Settings) -> None:
    import os
    import subprocess
    import sys
    import time

    code, _, err = cli("serve", "--sign-in-link", "ghost")
    assert code == 1 and "no account called 'ghost'" in err
    cli("users", "add", "kim", "--admin", "--password-stdin", stdin="a long password\n")
    cli("users", "add", "sam")
    port = live.free_port()
    environ = {**os.environ, "LANDEXPLORER_DATA_DIR": str(settings.data_dir)}
    if settings.database_url:
        environ["LANDEXPLORER_DATABASE_URL"] = settings.database_url
    cmd = [sys.executable, "-m", "landexplorer.cli", "serve", "--port", str(port),
           "--log-level", "warning", "--sign-in-link", "sam"]  # fmt: skip
    proc = subprocess.Popen(cmd, env=environ, stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stderr is not None
        line = proc.stderr.readline()
        deadline = time.monotonic() + 30
        while "Sign in as" not in line and time.monotonic() < deadline:
            line = proc.stderr.readline()
        assert "No admin account yet" not in line  # kim is an admin already
        found = LINK.search(line)
        assert found and found.group(1) == f"http://127.0.0.1:{port}", line
        while True:  # wait until it answers
            try:
                httpx.get(f"http://127.0.0.1:{port}/conformance", timeout=2)
                break
            except httpx.HTTPError:
                assert time.monotonic() < deadline
                time.sleep(0.2)
        first = httpx.post(found.group(0), follow_redirects=False)
        assert first.status_code == 303
        assert (
            httpx.get(f"http://127.0.0.1:{port}/auth/me", cookies=first.cookies).json()["user"]
            == "sam"
        )
    finally:
        proc.terminate()
        proc.wait(10)


def test_demo_gives_community_layers_to_its_group_and_stays_public(
    cli: Cli, settings: Settings, real_data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from landexplorer.layers.demo import DEFAULT_MANIFEST

    manifest = json.loads(DEFAULT_MANIFEST.read_text())
    manifest["layers"] = [m for m in manifest["layers"] if m["id"] in ("allotments", "wards")]
    small = tmp_path / "demo.json"
    small.write_text(json.dumps(manifest))
    monkeypatch.setenv("LANDEXPLORER_DEMO_MANIFEST", str(small))
    monkeypatch.setenv("LANDEXPLORER_DEMO_MIRROR", str(real_data))
    for _ in range(2):  # running it again is harmless
        code, _, err = cli("demo", "--json")
        assert code == 0, err
        code, out, _ = cli("groups", "show", "trafford-growers", "--json")
        group = json.loads(out)
        assert group["title"] == "Trafford community growers"
        assert group["members"] == {"demo-steward": "steward"}
        code, out, _ = cli("users", "list", "--json")
        assert [u["name"] for u in json.loads(out)] == ["demo-steward"]
    code, out, _ = cli("layers", "list", "--json")
    layers = {e["id"]: (e["owner"], e["group"], e["visibility"]) for e in json.loads(out)}
    assert layers == {
        "allotments": ("demo-steward", "trafford-growers", "public"),
        "wards": ("", "", "public"),
    }
    with TestClient(create_app(settings.model_copy(update={"demo_manifest": small}))) as client:
        assert client.get("/collections/allotments/items?limit=1").status_code == 200
