"""scripts/accounts.sh on this machine: OS accounts, groups and inbox modes, tried as each actor.

Threat model, property 1: a department cannot read another department's drop, and staff
with a shell but no role cannot open any inbox file. The script runs for real (as root),
with account and group names unique to the run, and every check runs a command as the
account concerned (runuser, LC_ALL=C for the messages). Everything is removed afterwards.
"""

from __future__ import annotations

import grp
import os
import pwd
import secrets
import shlex
import shutil
import stat
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from kodomo_assets.lib.paths import DATA_DIR
from kodomo_assets.lib.registry import load_registry

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "accounts.sh"
DENIED = "Permission denied"  # EACCES: the mode bits say no
NOT_PERMITTED = "Operation not permitted"  # EPERM: the sticky bit says no
RUNUSER = shutil.which("runuser") or "runuser"  # /usr/sbin: not on the accounts' own PATH

pytestmark = [
    pytest.mark.skipif(
        os.geteuid() != 0,
        reason="creates OS users and groups: runs only as root (a throwaway machine)",
    ),
    pytest.mark.skipif(
        not (shutil.which("useradd") and shutil.which("runuser")),
        reason="needs useradd (Debian's passwd package) and runuser (util-linux)",
    ),
]


@dataclass(frozen=True)
class World:
    root: Path  # everything of this run, mode 0755 so that every account can traverse it
    inbox: Path
    home: Path
    env: dict[str, str]  # for scripts/accounts.sh
    prefix: str  # instead of `kodomo-`
    service: str  # the pipeline service account
    shimin: str  # clerk of 市民課: jumin.csv
    gakumu: str  # clerk of 学務課: gakurei.csv
    staff: str  # a shell login in no group of ours

    @property
    def drop_group(self) -> str:
        return f"{self.prefix}drop"


def script(world: World, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", str(SCRIPT), *args],
        env=world.env,
        capture_output=True,
        text=True,
        check=False,
        cwd="/",
    )


def ok(result: subprocess.CompletedProcess[str]) -> subprocess.CompletedProcess[str]:
    assert result.returncode == 0, result.stderr
    return result


def as_user(user: str, command: str, umask: str = "027") -> subprocess.CompletedProcess[str]:
    """Run a shell command as USER, with its own uid, groups and the given umask."""
    return subprocess.run(
        [RUNUSER, "-u", user, "--", "/bin/sh", "-c", f"umask {umask}; {command}"],
        env={"PATH": "/usr/bin:/bin", "LC_ALL": "C"},
        capture_output=True,
        text=True,
        check=False,
        cwd="/",
    )


def refused(result: subprocess.CompletedProcess[str], reason: str = DENIED) -> bool:
    return result.returncode != 0 and reason in result.stderr


def q(path: Path) -> str:
    return shlex.quote(str(path))


def _remove_accounts(users: list[str], prefix: str) -> None:
    for user in users:
        subprocess.run(["userdel", user], capture_output=True, check=False)
    for group in grp.getgrall():
        if group.gr_name.startswith(prefix):
            subprocess.run(["groupdel", group.gr_name], capture_output=True, check=False)


@pytest.fixture(scope="module")
def world() -> Iterator[World]:
    tag = f"kt{secrets.token_hex(3)}"
    root = Path(tempfile.mkdtemp(prefix=f"kodomo-accounts-{tag}-"))
    root.chmod(0o755)
    for parent in root.parents:
        assert parent.stat().st_mode & stat.S_IXOTH, (
            f"{parent} is closed to others: use another TMPDIR"
        )
    w = World(
        root=root,
        inbox=root / "inbox",
        home=root / "home",
        prefix=f"{tag}-",
        service=f"{tag}svc",
        shimin=f"{tag}shi",
        gakumu=f"{tag}gak",
        staff=f"{tag}stf",
        env={
            **os.environ,
            "LC_ALL": "C",
            "KODOMO_DATA": str(DATA_DIR),
            "KODOMO_SERVICE_USER": f"{tag}svc",
            "KODOMO_GROUP_PREFIX": f"{tag}-",
            "KODOMO_SERVICE_HOME": str(root / "service"),
            "KODOMO_HOME": str(root / "home"),
            "KODOMO_INBOX": str(root / "inbox"),
        },
    )
    try:
        ok(script(w, "setup"))  # department codes from the registry
        ok(script(w, "clerk", w.shimin, "shimin"))
        ok(script(w, "clerk", w.gakumu, "gakumu"))
        subprocess.run(
            [
                "useradd",
                "-N",
                "-g",
                "users",
                "-M",
                "-d",
                "/nonexistent",
                "-s",
                "/usr/sbin/nologin",
                w.staff,
            ],
            check=True,
            capture_output=True,
        )
        yield w
    finally:
        _remove_accounts([w.shimin, w.gakumu, w.staff, w.service], w.prefix)
        shutil.rmtree(root, ignore_errors=True)
    left = [
        line
        for f in ("/etc/passwd", "/etc/group")
        for line in Path(f).read_text().splitlines()
        if line.startswith(tag)
    ]
    assert not left, f"accounts left behind: {left}"


def month(world: World, ym: str) -> Path:
    ok(script(world, "month", str(world.inbox), ym))
    return world.inbox / ym


def drop(world: World, clerk: str, folder: Path, name: str, umask: str = "027") -> Path:
    path = folder / name
    ok(as_user(clerk, f"printf '%s\\n' {shlex.quote(clerk)} > {q(path)}", umask=umask))
    return path


def groups_of(user: str) -> set[str]:
    primary = grp.getgrgid(pwd.getpwnam(user).pw_gid).gr_name
    return {primary} | {g.gr_name for g in grp.getgrall() if user in g.gr_mem}


def test_the_clerks_are_the_registrys_departments() -> None:
    datasets = load_registry().datasets
    assert (datasets["jumin"].file, datasets["jumin"].department.code) == ("jumin.csv", "shimin")
    assert (datasets["gakurei"].file, datasets["gakurei"].department.code) == (
        "gakurei.csv",
        "gakumu",
    )


def test_setup_creates_the_accounts_groups_and_folders(world: World) -> None:
    codes = set(load_registry().departments)
    p = world.prefix
    assert groups_of(world.service) == {world.service} | {p + c for c in codes}
    assert groups_of(world.shimin) == {p + "shimin", world.drop_group}
    assert grp.getgrgid(pwd.getpwnam(world.shimin).pw_gid).gr_name == p + "shimin"
    assert groups_of(world.gakumu) == {p + "gakumu", world.drop_group}
    assert not {g for g in groups_of(world.staff) if g.startswith(p)}
    assert set(grp.getgrnam(world.drop_group).gr_mem) == {world.shimin, world.gakumu}

    service = pwd.getpwnam(world.service)
    for folder, group, mode in [
        (world.home, service.pw_gid, 0o700),
        (Path(service.pw_dir), service.pw_gid, 0o700),
        (world.inbox, grp.getgrnam(world.drop_group).gr_gid, 0o710),
    ]:
        st = folder.stat()
        assert (st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode)) == (service.pw_uid, group, mode), (
            folder
        )


def test_setup_and_month_are_idempotent_and_repair_modes(world: World) -> None:
    folder = month(world, "2022-09")
    world.inbox.chmod(0o755)
    folder.chmod(0o777)
    ok(script(world, "setup"))
    ok(script(world, "clerk", world.shimin, "shimin"))
    assert stat.S_IMODE(world.inbox.stat().st_mode) == 0o710
    month(world, "2022-09")
    st = folder.stat()
    assert stat.S_IMODE(st.st_mode) == 0o1730
    assert (st.st_uid, st.st_gid) == (
        pwd.getpwnam(world.service).pw_uid,
        grp.getgrnam(world.drop_group).gr_gid,
    )


def test_script_refuses_bad_input(world: World) -> None:
    assert "YYYY-MM" in script(world, "month", str(world.inbox), "2022-13").stderr
    assert "not a department" in script(world, "clerk", f"{world.prefix}x", "nosuchdept").stderr
    assert "one department" in script(world, "clerk", world.shimin, "gakumu").stderr
    assert script(world, "clerk", world.service, "shimin").returncode != 0
    assert groups_of(world.shimin) == {world.prefix + "shimin", world.drop_group}


def test_each_clerk_drops_its_own_file_readable_by_its_department_only(world: World) -> None:
    folder = month(world, "2022-10")
    for clerk, dept, name in [
        (world.shimin, "shimin", "jumin.csv"),
        (world.gakumu, "gakumu", "gakurei.csv"),
    ]:
        st = drop(world, clerk, folder, name).stat()
        assert (st.st_uid, st.st_gid) == (
            pwd.getpwnam(clerk).pw_uid,
            grp.getgrnam(world.prefix + dept).gr_gid,
        )
        assert stat.S_IMODE(st.st_mode) == 0o640
    # A refused export is fixed by writing it again: the owner may replace its own file.
    ok(as_user(world.shimin, f"printf 'fixed\\n' > {q(folder / 'jumin.csv')}"))


def test_a_clerk_cannot_read_list_change_delete_or_rename_another_departments_drop(
    world: World,
) -> None:
    folder = month(world, "2022-11")
    files = {
        world.shimin: drop(world, world.shimin, folder, "jumin.csv"),
        world.gakumu: drop(world, world.gakumu, folder, "gakurei.csv"),
    }
    for me, other in [(world.shimin, world.gakumu), (world.gakumu, world.shimin)]:
        theirs = files[other]
        assert refused(as_user(me, f"cat {q(theirs)}"))
        assert refused(as_user(me, f"printf 'x\\n' >> {q(theirs)}"))
        assert refused(as_user(me, f"ls {q(folder)}"))
        assert refused(as_user(me, f"ls {q(world.inbox)}"))
        assert refused(as_user(me, f"rm -f {q(theirs)}"), NOT_PERMITTED)
        assert refused(as_user(me, f"mv {q(theirs)} {q(folder / 'renamed.csv')}"), NOT_PERMITTED)
        assert theirs.read_text() == f"{other}\n"
    assert sorted(p.name for p in folder.iterdir()) == ["gakurei.csv", "jumin.csv"]


def test_staff_with_a_shell_can_neither_list_read_nor_write_the_inbox(world: World) -> None:
    folder = month(world, "2022-12")
    path = drop(world, world.shimin, folder, "jumin.csv")
    for command in [
        f"ls {q(world.inbox)}",
        f"ls {q(folder)}",
        f"cat {q(path)}",
        f"ls -l {q(path)}",
        f"printf 'x\\n' > {q(folder / 'gakurei.csv')}",
        f"mkdir {q(world.inbox / '2099-01')}",
    ]:
        assert refused(as_user(world.staff, command)), command
    assert not (folder / "gakurei.csv").exists()


def test_the_pipeline_reads_every_drop_and_removes_it_after_ingest(world: World) -> None:
    folder = month(world, "2023-01")
    jumin = drop(world, world.shimin, folder, "jumin.csv")
    gakurei = drop(world, world.gakumu, folder, "gakurei.csv")
    listing = ok(as_user(world.service, f"ls {q(folder)}")).stdout.split()
    assert sorted(listing) == ["gakurei.csv", "jumin.csv"]
    assert ok(as_user(world.service, f"cat {q(jumin)}")).stdout == f"{world.shimin}\n"
    assert ok(as_user(world.service, f"cat {q(gakurei)}")).stdout == f"{world.gakumu}\n"
    # The files belong to the clerks, but the pipeline owns the sticky folder: it may delete
    # them, which is how no plaintext export stays in the inbox after an ingest.
    ok(as_user(world.service, f"rm {q(jumin)} {q(gakurei)}"))
    assert list(folder.iterdir()) == []


def test_a_world_readable_drop_is_open_to_every_clerk_by_name(world: World) -> None:
    folder = month(world, "2023-02")
    path = drop(world, world.shimin, folder, "jumin.csv", umask="022")
    assert stat.S_IMODE(path.stat().st_mode) == 0o644
    # Staff still cannot: they may not traverse the inbox root (0710, group kodomo-drop).
    assert refused(as_user(world.staff, f"cat {q(path)}"))
    # But every clerk traverses the month folder to drop its own file, and the names are
    # fixed by the contract: the 学務課 clerk reads 市民課's register without listing the
    # folder. The folder modes cannot prevent this, only the clerk's umask (027) can; this
    # is why the pipeline must flag (and not silently ingest) drops readable by others.
    assert ok(as_user(world.gakumu, f"cat {q(path)}")).stdout == f"{world.shimin}\n"


def test_a_clerk_can_take_another_departments_file_name(world: World) -> None:
    """What the modes do not stop, and the pipeline must check: a file is named by any clerk."""
    folder = month(world, "2023-03")
    spoof = drop(world, world.gakumu, folder, "jumin.csv")  # 学務課 writes 市民課's name first
    assert refused(as_user(world.shimin, f"printf 'x\\n' > {q(spoof)}"))
    assert refused(as_user(world.shimin, f"rm -f {q(spoof)}"), NOT_PERMITTED)
    # So the group of a drop must be the group of the dataset's department (here it is not).
    assert grp.getgrgid(spoof.stat().st_gid).gr_name == world.prefix + "gakumu"
    # A clerk may also leave a symlink under another department's name: the pipeline, which
    # reads every department's files, must not follow it (lstat, O_NOFOLLOW, regular files).
    jumin = drop(world, world.shimin, month(world, "2023-04"), "jumin.csv")
    link = folder / "gakurei.csv"
    ok(as_user(world.gakumu, f"ln -s {q(jumin)} {q(link)}"))
    assert link.is_symlink() and link.lstat().st_uid == pwd.getpwnam(world.gakumu).pw_uid
