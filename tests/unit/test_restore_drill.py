"""The restore drill's pure parts: barman-cloud's command lines, recovery settings, the
primary's limits from pg_controldata, and how two catalog states differ."""

from __future__ import annotations

from pathlib import Path

import pytest
import typer

from fedeploy.restore_drill.barman import BackupStore, recovery_settings
from fedeploy.restore_drill.catalog_state import CatalogState, differences
from fedeploy.restore_drill.scratch import primary_limits

STORE = BackupStore("eofed-cf-waw-raw", "backups/catalog-db", "catalog-db", "https://s3.example")


def test_restore_and_wal_commands_name_the_store_and_the_server() -> None:
    assert STORE.restore("/scratch/data") == [
        "barman-cloud-restore",
        "--cloud-provider",
        "aws-s3",
        "--endpoint-url",
        "https://s3.example",
        "s3://eofed-cf-waw-raw/backups/catalog-db",
        "catalog-db",
        "auto",
        "/scratch/data",
    ]
    assert STORE.restore_command().endswith(
        "s3://eofed-cf-waw-raw/backups/catalog-db catalog-db %f %p"
    )
    assert STORE.key_prefix() == "backups/catalog-db/catalog-db/"


@pytest.mark.parametrize(
    ("bucket", "prefix", "server", "word"),
    [
        ("a/b", "p", "s", "bucket"),
        ("b", "/p", "s", "prefix"),
        ("b", "p/", "s", "prefix"),
        ("b", "p", "s s", "server name"),
    ],
)
def test_a_malformed_store_is_refused_naming_the_part(bucket, prefix, server, word) -> None:
    with pytest.raises(ValueError, match=word):
        BackupStore(bucket, prefix, server)


def test_recovery_stops_at_the_point_and_never_archives_into_the_live_folder() -> None:
    settings = recovery_settings(STORE, target_name="before-x")
    assert settings["recovery_target_name"] == "before-x"
    assert settings["recovery_target_action"] == "promote"
    assert settings["archive_mode"] == "off"
    assert "recovery_target_name" not in recovery_settings(STORE)
    with pytest.raises(ValueError, match="not both"):
        recovery_settings(STORE, target_name="a", target_time="2026-12-06 07:00:00+00")


def test_the_primarys_limits_are_read_from_pg_controldata() -> None:
    output = (
        "pg_control version number:            1300\n"
        "max_connections setting:              200\n"
        "max_worker_processes setting:         8\n"
        "max_wal_senders setting:              10\n"
        "max_prepared_xacts setting:           0\n"
        "max_locks_per_xact setting:           64\n"
    )
    assert primary_limits(output) == {
        "max_connections": "200",
        "max_worker_processes": "8",
        "max_wal_senders": "10",
        "max_prepared_transactions": "0",
        "max_locks_per_transaction": "64",
    }


def _state(counts: dict[str, int], sample: dict[tuple[str, str], tuple[str, ...]]) -> CatalogState:
    return CatalogState(tuple(sorted(counts)), counts, sample)


def test_identical_states_have_no_differences_and_each_difference_is_named() -> None:
    live = _state({"s2": 2}, {("s2", "a"): ("s3://b/a",), ("s2", "b"): ("s3://b/b",)})
    assert differences(live, live) == []
    restored = _state(
        {"s2": 2, "old": 1},
        {("s2", "a"): ("s3://b/a-moved",), ("s2", "c"): ("s3://b/c",), ("old", "x"): ()},
    )
    assert differences(restored, live) == [
        "collection 'old' is in the restored catalog but not live",
        "collection 'old': 1 items restored, 0 live",
        "item 'x' in 'old': sampled restored only",
        "item 'a' in 's2': asset hrefs differ",
        "item 'b' in 's2': sampled live only",
        "item 'c' in 's2': sampled restored only",
    ]
    assert differences(restored, live, limit=2)[-1] == "... and 4 more"


def test_the_scratch_servers_configuration_runs_and_loads_nothing(tmp_path) -> None:
    from fedeploy.restore_drill.scratch import drill_config

    # Even a setting given that names a command is overridden: the last line of a name wins.
    text = drill_config(
        {"recovery_end_command": "id", "restore_command": "cp x y", "listen_addresses": "*"},
        tmp_path,
        tmp_path / "socket",
    )
    last = dict(line.split(" = ", 1) for line in text.splitlines())
    for name in (
        "recovery_end_command",
        "archive_cleanup_command",
        "shared_preload_libraries",
        "session_preload_libraries",
        "local_preload_libraries",
    ):
        assert last[name] == "''", name
    assert last["restore_command"] == "'cp x y'"
    assert last["hba_file"] == f"'{tmp_path}/drill_hba.conf'"
    assert last["ident_file"] == f"'{tmp_path}/drill_ident.conf'"
    assert "include" not in text
    # No TCP listener (a port bound elsewhere first could be taken, and anything in the pod
    # could reach it): one Unix socket in the drill's private folder, whatever was given.
    assert last["listen_addresses"] == "''"
    assert last["unix_socket_directories"] == f"'{tmp_path}/socket'"
    assert last["unix_socket_permissions"] == "'0700'"


def test_the_scratch_server_is_reached_over_its_socket_folder(tmp_path) -> None:
    from fedeploy.restore_drill.scratch import ScratchServer

    dsn = ScratchServer(tmp_path / "socket", "postgres").dsn("pgstac")
    assert dsn == f"host={tmp_path}/socket port=5432 user=postgres dbname=pgstac"


def test_the_socket_folder_is_private_and_a_too_long_path_is_refused(tmp_path) -> None:
    import os
    import stat

    from fedeploy.restore_drill.scratch import DrillError, _socket_dir

    (tmp_path / "socket").mkdir(mode=0o777)
    os.chmod(tmp_path / "socket", 0o777)
    folder = _socket_dir(tmp_path)
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    with pytest.raises(DrillError, match="give a shorter --workdir"):
        _socket_dir(tmp_path / ("w" * 100))
    (tmp_path / "link").mkdir()
    (tmp_path / "link" / "socket").symlink_to(tmp_path / "socket")
    with pytest.raises(DrillError, match="not a folder of this user"):
        _socket_dir(tmp_path / "link")


@pytest.mark.parametrize(
    ("workdir", "odd"),
    [
        ("/tmp/rl27p,@rl27abstract", "','"),  # a list: a second socket, an abstract one
        ('/tmp/a"b', "'\"'"),  # ends unix_socket_directories' quoted element
        ("/tmp/with space", "' '"),  # pg_ctl -o goes through /bin/sh: two arguments
        ("/tmp/it's", '"\'"'),  # an unterminated quote for /bin/sh
        ("/tmp/$(id)", "'$'"),
    ],
)
def test_a_workdir_the_server_would_misread_is_refused_naming_it(workdir, odd) -> None:
    from fedeploy.restore_drill.scratch import DrillError, scratch_workdir

    with pytest.raises(DrillError) as refused:
        scratch_workdir(Path(workdir))
    message = str(refused.value)
    assert repr(str(Path(workdir).resolve())) in message and odd in message, message
    assert "may hold only letters, digits and / . _ + - @ :" in message


@pytest.mark.parametrize("relative", ["@rl27rel", "relwork", "a/../@b"])
def test_a_relative_workdir_is_made_absolute_so_no_socket_is_abstract(
    relative, tmp_path, monkeypatch
) -> None:
    """libpq reads a host starting with `@` as an abstract socket (no file permissions) and
    PostgreSQL a relative socket folder from the data folder: the drill's paths are absolute."""
    from fedeploy.restore_drill.scratch import ScratchServer, drill_config, scratch_workdir

    monkeypatch.chdir(tmp_path)
    workdir = scratch_workdir(Path(relative))
    assert workdir == tmp_path.resolve() / relative.replace("a/../", "")
    text = drill_config({}, workdir, workdir / "socket")
    assert f"unix_socket_directories = '{workdir}/socket'" in text
    dsn = ScratchServer(workdir / "socket", "postgres").dsn("pgstac")
    assert dsn.startswith(f"host={workdir}/socket ") and "host=@" not in dsn


def test_the_drill_refuses_a_bad_workdir_before_reading_anything(monkeypatch) -> None:
    from typer.testing import CliRunner

    from fedeploy.restore_drill import command

    read: list[str] = []
    monkeypatch.setattr(command, "_read", lambda dsn, *_a, **_k: read.append(dsn))
    app = typer.Typer()
    app.command()(command.restore_drill_command)
    argv = ["--backup-url", "s3://b/backups/catalog-db", "--live-dsn", "postgresql://x/pgstac"]
    done = CliRunner().invoke(app, [*argv, "--workdir", "/tmp/x,@y", "--settle-seconds", "60"])
    assert isinstance(done.exception, command.DrillError), done.output
    assert "'/tmp/x,@y' holds ','" in str(done.exception) and read == []


@pytest.mark.parametrize("kind", ["file", "dangling symlink"])
def test_a_socket_path_that_is_no_folder_is_refused_not_a_traceback(kind, tmp_path) -> None:
    from fedeploy.restore_drill.scratch import DrillError, _socket_dir

    if kind == "file":
        (tmp_path / "socket").write_text("")
    else:
        (tmp_path / "socket").symlink_to(tmp_path / "nowhere")
    with pytest.raises(DrillError, match="socket is not a folder of this user"):
        _socket_dir(tmp_path)


def test_digests_name_changed_documents_and_items_whatever_the_sample() -> None:
    live = CatalogState(("s2",), {"s2": 2}, {}, {"s2": "doc"}, {"s2": "rows"})
    assert differences(live, live) == []
    restored = CatalogState(("s2",), {"s2": 2}, {}, {"s2": "doc'"}, {"s2": "rows'"})
    assert differences(restored, live) == [
        "collection 's2': its document differs",
        "collection 's2': items differ (ids or content; same count)",
    ]
    sampled = {("s2", "a"): ("s3://b/a",)}
    have = CatalogState(("s2",), {"s2": 2}, sampled, sample_digests={("s2", "a"): "x"})
    want = CatalogState(("s2",), {"s2": 2}, sampled, sample_digests={("s2", "a"): "y"})
    assert differences(have, want) == ["item 'a' in 's2': content differs"]
