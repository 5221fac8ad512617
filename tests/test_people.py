"""Users, roles and the audit: every write made by a named user whose role allows it, refused
otherwise on every route (the library the CLI and agents call, the CLI, the dashboard), and
recorded with who made it (``campaign show``, the report, the dashboard's audit, start
documents)."""

from __future__ import annotations

import json
import os
import sqlite3
import urllib.error
import urllib.request

import pytest

from db import Database
from orchestrator.campaign import approval
from orchestrator.campaign.people import (
    KEY_ENV,
    Action,
    PermissionDenied,
    acting_user,
    add_user,
    change_user,
    hash_key,
    new_user_key,
    user_for_key,
)
from tests.conftest import qdlab, wait_for
from tests.test_approval import HAND, rows_with
from tests.test_campaign import write_config
from tests.test_dashboard import _serve

ROLES = ("viewer", "proposer", "operator", "approver")


@pytest.fixture
def lab_users(tmp_path):
    """A lab database with an admin and one user of every other role, by name: their keys."""
    url = f"sqlite:///{tmp_path / 'people.db'}"
    db = Database(url)
    keys = {"ada": add_user(db, None, "ada", "admin")}
    admin = user_for_key(db, keys["ada"])
    for role in ROLES:
        keys[role] = add_user(db, admin, f"{role}-1", role)
    return db, url, keys


def test_keys_are_kept_only_as_hashes_and_a_lab_with_users_needs_one(lab_users):
    db, _, keys = lab_users
    assert [(u.name, u.role) for u in db.users()] == [
        ("ada", "admin"), ("viewer-1", "viewer"), ("proposer-1", "proposer"),
        ("operator-1", "operator"), ("approver-1", "approver"),
    ]  # fmt: skip
    with sqlite3.connect(db.url.removeprefix("sqlite:///")) as conn:
        dump = "\n".join(conn.iterdump())  # everything the database holds, as SQL
    assert all(k not in dump and hash_key(k) in dump for k in keys.values())
    with pytest.raises(PermissionDenied, match=f"{KEY_ENV}: this lab has users"):
        acting_user(db, key="")
    with pytest.raises(PermissionDenied, match="no enabled user of this lab has that key"):
        acting_user(db, key="qdk_not-a-key")
    assert acting_user(db, key=keys["operator"]).name == "operator-1"


def test_the_first_user_is_an_admin_and_only_admins_change_users(tmp_path):
    db = Database(f"sqlite:///{tmp_path / 'first.db'}")
    with pytest.raises(Exception, match="first user must be an admin"):
        add_user(db, None, "bob", "operator")
    with pytest.raises(Exception, match="--role: 'wizard' is not a role; allowed: viewer, "):
        add_user(db, None, "bob", "wizard")
    with pytest.raises(Exception, match="NAME: 'bo b' is not a user name"):
        add_user(db, None, "bo b", "admin")
    ada = user_for_key(db, add_user(db, None, "ada", "admin"))
    bob_key = add_user(db, ada, "bob", "operator")
    bob = user_for_key(db, bob_key)
    with pytest.raises(PermissionDenied, match=r"bob \(operator\) may not add users; roles "
                                               "that may: admin"):  # fmt: skip
        add_user(db, bob, "eve", "admin")
    with pytest.raises(PermissionDenied):
        change_user(db, bob, "bob", role="admin")
    with pytest.raises(Exception, match="ada is the lab's last admin"):
        change_user(db, ada, "ada", disabled=True)
    new = new_user_key(db, ada, "bob")
    assert user_for_key(db, bob_key) is None and user_for_key(db, new).name == "bob"
    change_user(db, ada, "bob", disabled=True)
    assert user_for_key(db, new) is None  # a disabled user's key opens nothing
    assert [e.action for e in db.audit()] == [
        "add user", "add user", "new key", "change user"
    ]  # fmt: skip


@pytest.mark.parametrize("role", ROLES)
def test_each_role_is_refused_what_it_may_not_do_before_anything_is_read(lab_users, role):
    """Refused on the operations every route calls, naming the user, their role and the roles
    that may; a refused write reaches nothing (no campaign 99 exists to be looked up)."""
    db, _, keys = lab_users
    actor = user_for_key(db, keys[role])
    writes = {
        Action.APPROVE: lambda: approval.approve(db, 99, None, actor=actor),
        Action.REJECT: lambda: approval.reject(db, 99, 1, "no", actor=actor),
        Action.PAUSE: lambda: approval.pause(db, 99, actor=actor),
        Action.RUN: lambda: approval.resume_in_background(db, 99, actor=actor),
        Action.ADD: lambda: approval.add(db, 99, HAND, actor=actor),
        Action.ADMIN: lambda: new_user_key(db, actor, "ada"),
    }
    for action, write in writes.items():
        allowed = actor.may(action) or (action == Action.ADD and actor.may(Action.PROPOSE))
        if allowed:
            with pytest.raises(Exception, match="campaign 99"):
                write()  # let through, to find there is no such campaign
        else:
            with pytest.raises(PermissionDenied, match=f"{actor.name} \\({role}\\) may not"):
                write()
    assert {a for a in Action if actor.may(a)} == {
        "viewer": set(),
        "proposer": {Action.PROPOSE},
        "operator": {Action.RUN, Action.PAUSE},
        "approver": {Action.APPROVE, Action.REJECT, Action.ADD, Action.PROPOSE, Action.PAUSE},
    }[role]


def _post(address: str, path: str, body: dict, key: str | None) -> tuple[int, dict]:
    headers = {"Content-Type": "application/json"}
    if key is not None:
        headers["Authorization"] = f"Bearer {key}"
    request = urllib.request.Request(
        address + path, json.dumps(body).encode(), headers=headers, method="POST"
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read())


@pytest.mark.slow
def test_an_operator_runs_an_agent_proposes_an_approver_decides_and_the_audit_shows_who(
    lab_users, tmp_path, spawn, browser
):
    db, url, keys = lab_users
    as_ = {role: {**os.environ, KEY_ENV: key} for role, key in keys.items()}
    config = write_config(tmp_path, approval="required", budget=3, stop_on_target=False)
    # nobody may run it without a key, nor a viewer; the operator may
    out = qdlab("campaign", "run", config, "--db", url, env={**os.environ, KEY_ENV: ""})
    assert out.returncode == 2 and f"{KEY_ENV}: this lab has users" in out.stderr
    out = qdlab("campaign", "run", config, "--db", url, env=as_["viewer"])
    assert out.returncode == 2 and "viewer-1 (viewer) may not run campaigns" in out.stderr
    assert db.campaigns() == []  # refused before anything was stored
    agent = spawn("campaign", "run", config, "--db", url, "--json", capture=True,
                  env=as_["operator"])  # fmt: skip
    wait_for(lambda: rows_with(db, "awaiting_approval"), what="a proposal")

    # an agent's experiment waits for a person; an approver's runs
    out = qdlab("campaign", "add", "1", "--conditions", json.dumps(HAND), "--db", url,
                env=as_["proposer"])  # fmt: skip
    assert out.returncode == 0 and "awaits approval" in out.stdout, out.stderr
    proposed = db.experiments(1)[-1]
    assert proposed.status == "awaiting_approval"
    assert proposed.provenance == {"source": "agent", "by": "proposer-1"}
    out = qdlab("campaign", "approve", "1", "--all", "--db", url, env=as_["operator"])
    assert out.returncode == 2 and "operator-1 (operator) may not approve" in out.stderr

    address = _serve(spawn, url, token=None)
    assert _post(address, "/api/campaigns/1/approve", {}, None)[0] == 401
    assert _post(address, "/api/campaigns/1/approve", {}, "qdk_nobody")[0] == 401
    code, said = _post(address, "/api/campaigns/1/approve", {}, keys["viewer"])
    assert code == 403 and "viewer-1 (viewer) may not approve" in said["detail"]
    bearer = {"Authorization": f"Bearer {keys['approver']}"}
    me = urllib.request.Request(f"{address}/api/me", headers=bearer)
    with urllib.request.urlopen(me, timeout=30) as r:
        assert json.loads(r.read())["user"] == "approver-1"
    first = rows_with(db, "awaiting_approval")[0]
    code, said = _post(address, "/api/campaigns/1/reject",
                       {"number": first.number, "reason": "too hot"}, keys["approver"])  # fmt: skip
    assert code == 200, said
    # the approver signs in to the page with their key and approves by clicking
    page = browser.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(f"{address}/campaigns/1")
    page.fill("#token", keys["approver"])
    page.dispatch_event("#token", "change")
    page.wait_for_selector("#who:has-text('approver-1 (approver)')")
    page.wait_for_selector("#awaiting button.approve")
    clicked = rows_with(db, "awaiting_approval")[0].id  # the first row's
    page.click("#awaiting button.approve")
    # (that proposal leaves the queue of approvals; a new one may take its place at once)
    wait_for(lambda: db.experiment(clicked).status != "awaiting_approval", what="the click")
    while agent.poll() is None:  # the approver approves whatever comes, from the dashboard
        _post(address, "/api/campaigns/1/approve", {}, keys["approver"])
        wait_for(lambda: agent.poll() is not None or rows_with(db, "awaiting_approval"), 120)
    out, err = agent.communicate()
    assert agent.returncode == 0, err

    audit = db.audit(1)
    assert (audit[0].user, audit[0].role, audit[0].action) == ("operator-1", "operator", "run")
    did = {(e.user, e.action) for e in audit}
    assert {("proposer-1", "propose"), ("approver-1", "reject"), ("approver-1", "approve")} <= did
    assert not any(e.user in ("viewer-1",) for e in audit)  # refused writes leave no trace
    approved = [e.experiment_number for e in audit if e.action == "approve"]
    assert proposed.number in approved
    starts = [d for run in db.runs(1) for n, d in db.run_documents(run["uid"]) if n == "start"]
    assert starts and {d["operator"] for d in starts} == {"operator-1"}

    show = qdlab("campaign", "show", "1", "--db", url, env=as_["viewer"])
    assert "Who did what" in show.stdout and "approver-1 (approver) reject" in show.stdout
    shown = json.loads(qdlab("campaign", "show", "1", "--db", url, "--json").stdout)
    assert [e["user"] for e in shown["audit"]] == [e.user for e in audit]
    assert {e["by"] for e in shown["experiments"]} >= {"proposer-1"}
    page.goto(f"{address}/campaigns/1")  # completed: nothing is offered to add to it
    page.wait_for_selector("#adding", state="hidden")
    assert page.title() == "QDLab: Campaign 1: test-campaign"
    page.goto(f"{address}/campaigns/1/audit")  # the dashboard's audit page, newest first
    page.wait_for_selector("#audit tr td:has-text('approver-1')")
    assert page.inner_text("#audit tr:last-child").split("\t")[1:4] == [
        "operator-1", "operator", "run"
    ]  # fmt: skip
    assert errors == []
    report = qdlab("campaign", "report", "1", "--db", url, "--out", str(tmp_path / "r"))
    assert report.returncode == 0, report.stderr
    assert "approver-1 (approver) reject" in (tmp_path / "r" / "report.html").read_text()


def test_an_admin_manages_users_from_the_cli_and_nobody_else_may(lab_users):
    db, url, keys = lab_users
    env = {role: {**os.environ, KEY_ENV: key} for role, key in keys.items()}
    out = qdlab("user", "role", "viewer-1", "--role", "admin", "--db", url, env=env["approver"])
    assert out.returncode == 2 and "approver-1 (approver) may not change users" in out.stderr
    out = qdlab("user", "key", "operator-1", "--db", url, env=env["ada"])
    assert out.returncode == 0, out.stderr
    new = out.stdout.strip()
    assert user_for_key(db, keys["operator"]) is None and user_for_key(db, new).name == "operator-1"
    out = qdlab("user", "disable", "viewer-1", "--db", url, env=env["ada"])
    assert out.returncode == 0 and "viewer-1 is disabled" in out.stdout, out.stderr
    listed = json.loads(qdlab("user", "list", "--db", url, "--json").stdout)
    assert {u["name"]: u["disabled"] for u in listed}["viewer-1"] is True
    assert all("key" not in field for u in listed for field in u)  # not even the hash
