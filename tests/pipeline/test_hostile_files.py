"""Hostile inputs end in quarantine (or are refused) with a reason, in bounded time and memory, and the
other files of the run still load: zip bombs, deep JSON, huge CSV fields, symbolic links, FIFOs, devices."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time
import zipfile
from pathlib import Path

import pytest

from ingest.files import RATIO_FREE_BYTES, Limits, scan
from ingest.pipeline import IngestError, run
from vault import load as vload

ROOT = Path(__file__).resolve().parents[2]
DEEP = 200_000

GOOD_ICS = (
    "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nBEGIN:VEVENT\r\nUID:good-1\r\nDTSTART:20240105T090000Z\r\n"
    "DTEND:20240105T100000Z\r\nSUMMARY:Dentist\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n"
)


def ics_of_size(size: int) -> bytes:
    """A valid one-event calendar of exactly `size` bytes (the padding is an X- property, highly compressible)."""
    head = GOOD_ICS.replace("UID:good-1", "UID:padded-1").replace("END:VEVENT", "X-PAD:{}\r\nEND:VEVENT")
    pad = size - len(head.format("").encode())
    return head.format("A" * pad).encode()


def bomb_zip(path: Path, *, member_mib: int = 256) -> Path:
    """A small zip whose .ics member inflates to `member_mib` MiB (about 1000:1), next to a good calendar."""
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=1) as z:
        z.writestr("Takeout/Calendar/good.ics", GOOD_ICS)
        with z.open("Takeout/Calendar/bomb.ics", "w", force_zip64=True) as m:
            m.write(b"BEGIN:VCALENDAR\r\nX-PAD:")
            chunk = b"A" * (1 << 20)
            for _ in range(member_mib):
                m.write(chunk)
    return path


def quarantine_reasons(vault) -> dict[str, str]:
    return {r["file"]: r["reason"] for r in vload.quarantined(vault, None, limit=100)}


def test_a_zip_bomb_member_is_quarantined_quickly_and_the_good_member_loads(vault, tmp_path):
    archive = bomb_zip(tmp_path / "takeout.zip")
    assert archive.stat().st_size < 2 << 20
    t0 = time.perf_counter()
    report = run(vault, [archive])
    assert time.perf_counter() - t0 < 5
    assert report.loaded == 1 and vault.query("SELECT uid FROM calendar_events") == [("good-1",)]
    reason = quarantine_reasons(vault)["bomb.ics"]
    assert "100:1 cap (zip bomb?)" in reason


def test_reading_a_zip_bomb_member_keeps_memory_bounded(tmp_path):
    archive = bomb_zip(tmp_path / "takeout.zip", member_mib=1024)
    script = textwrap.dedent(f"""
        import resource, sys
        from ingest.files import scan
        from ingest.guard import guarded
        from ingest.sources.calendar import ics
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        (bomb,) = [f for f in scan([__import__("pathlib").Path({str(archive)!r})]).files if f.name == "bomb.ics"]
        rejected = [r for b in guarded(bomb, ics, {{}}) for r in b.rejected]
        # the header check refuses it; streaming the member regardless stops at the ratio cap (a lower one
        # here, so the test does not inflate the 450 MiB the default allows this member)
        from ingest.files import InputFile, Limits
        streamed = InputFile(bomb.path, bomb.member, Limits(member_ratio=10))
        with streamed._open_member(check_header=False) as stream:
            try:
                while stream.read(1 << 20):
                    pass
            except OSError as e:
                rejected.append(e)
        after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        print(len(rejected), (after - before) // 1024)
    """)
    t0 = time.perf_counter()
    out = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=60, check=True)
    assert time.perf_counter() - t0 < 10
    refusals, grown_mib = map(int, out.stdout.split())
    assert refusals == 2 and grown_mib < 64  # a 1 GiB member: it was never held, nor inflated past the cap


def test_a_member_at_the_size_cap_loads_and_one_byte_over_is_quarantined(vault, tmp_path):
    data = ics_of_size(64 << 10)
    archive = tmp_path / "cal.zip"
    with zipfile.ZipFile(archive, "w", compression=zipfile.ZIP_STORED) as z:
        z.writestr("padded.ics", data)
    report = run(vault, [archive], limits=Limits(member_bytes=len(data)))
    assert (report.loaded, report.quarantined) == (1, 0)
    report = run(vault, [archive], limits=Limits(member_bytes=len(data) - 1))
    assert report.quarantined == 1 and "cap" in quarantine_reasons(vault)["padded.ics"]


def test_a_member_at_the_ratio_cap_loads_and_one_just_over_is_quarantined(vault, tmp_path):
    data = ics_of_size(2 * RATIO_FREE_BYTES)
    archive = tmp_path / "cal.zip"
    with zipfile.ZipFile(archive, "w", compression=zipfile.ZIP_DEFLATED) as z:
        z.writestr("padded.ics", data)
    ratio = len(data) / zipfile.ZipFile(archive).getinfo("padded.ics").compress_size
    report = run(vault, [archive], limits=Limits(member_ratio=ratio * 1.001))
    assert (report.loaded, report.quarantined) == (1, 0)
    report = run(vault, [archive], limits=Limits(member_ratio=ratio * 0.999))
    assert report.quarantined == 1 and "zip bomb?" in quarantine_reasons(vault)["padded.ics"]


def test_a_damaged_zip_member_is_quarantined_and_the_run_goes_on(vault, tmp_path):
    archive = tmp_path / "cal.zip"
    with zipfile.ZipFile(archive, "w", compression=zipfile.ZIP_DEFLATED) as z:
        z.writestr("a.ics", ics_of_size(8192))
        z.writestr("b.ics", GOOD_ICS)
    raw = bytearray(archive.read_bytes())
    at = raw.index(b"a.ics") + 5 + 40  # inside a.ics's deflate stream
    raw[at:at + 8] = b"\xff" * 8
    archive.write_bytes(bytes(raw))
    report = run(vault, [archive])
    assert vault.query("SELECT uid FROM calendar_events") == [("good-1",)]
    assert report.quarantined == 1 and "damaged zip member" in quarantine_reasons(vault)["a.ics"]


def nested(depth: int) -> str:
    return "[" * depth + "]" * depth


SEMANTIC = {"timelineObjects": [{"placeVisit": {
    "location": {"latitudeE7": 533690589, "longitudeE7": 836951347, "placeId": "ChIJhome"},
    "duration": {"startTimestamp": "2023-01-05T18:10:00Z", "endTimestamp": "2023-01-06T07:45:00Z"}}}]}


@pytest.mark.parametrize(
    ("name", "text", "reason"),
    [
        ("2023_FEBRUARY.json", '{"timelineObjects": ' + nested(DEEP) + "}", "nested too deeply"),
        ("Timeline.json", '{"semanticSegments": ' + nested(DEEP) + "}", "nested too deeply"),
        ("MyActivity.json", '[{"header": "x", "title": "y", "time": ' + nested(DEEP) + "}]", "nested too deeply"),
        ("Records.json", '{"locations": [' + '{"a":' * DEEP + "1" + "}" * DEEP + "]}", "malformed JSON record"),
    ],
)
def test_json_nested_200k_levels_deep_is_quarantined_and_the_good_file_loads(vault, tmp_path, name, text, reason):
    folder = tmp_path / "Takeout"
    folder.mkdir()
    (folder / "2023_JANUARY.json").write_text(json.dumps(SEMANTIC))
    (folder / name).write_text(text)
    report = run(vault, [folder])
    assert vault.query("SELECT place_id FROM place_visits") == [("ChIJhome",)]
    assert report.quarantined >= 1 and reason in quarantine_reasons(vault)[name]
    assert "file stopped" not in quarantine_reasons(vault)[name]  # the source itself says so, not the guard


def test_a_jsonl_usage_line_nested_200k_levels_deep_is_quarantined_alone(vault, tmp_path):
    good = {"timestamp_ms": 1_730_000_000_000, "event_type": 15, "package": None, "class": None}
    lines = [json.dumps(good), '{"timestamp_ms": 1, "event_type": ' + nested(DEEP) + "}", json.dumps(good | {"timestamp_ms": 1_730_000_060_000})]
    path = tmp_path / "usage.jsonl"
    path.write_text("\n".join(lines) + "\n")
    report = run(vault, [path])
    assert (report.loaded, report.quarantined) == (2, 1)
    (r,) = vload.quarantined(vault, None, limit=10)
    assert r["position"] == 1 and "nested too deeply" in r["reason"]


def test_a_usage_csv_field_over_128_kib_quarantines_that_record_and_the_rest_loads(vault, tmp_path):
    rows = ["timestamp_ms,event_type,package,class", "1730000000000,15,,",
            "1730000030000,1,com.slack," + "C" * ((128 << 10) + 1), "1730000060000,16,,"]
    path = tmp_path / "usage_events.csv"
    path.write_text("\n".join(rows) + "\n")
    report = run(vault, [path])
    assert (report.loaded, report.quarantined) == (2, 1)
    (r,) = vload.quarantined(vault, None, limit=10)
    assert r["position"] == 1 and "128 KiB" in r["reason"]


def test_a_usage_csv_field_of_exactly_128_kib_loads(vault, tmp_path):
    rows = ["timestamp_ms,event_type,package,class", "1730000030000,1,com.slack," + "C" * (128 << 10)]
    path = tmp_path / "usage_events.csv"
    path.write_text("\n".join(rows) + "\n")
    assert run(vault, [path]).loaded == 1


def test_symbolic_links_in_a_folder_are_not_followed_and_are_reported(vault, tmp_path):
    secret = tmp_path / "outside" / "secret.ics"
    secret.parent.mkdir()
    secret.write_text(GOOD_ICS.replace("Dentist", "SECRET-OUTSIDE"))
    folder = tmp_path / "export"
    folder.mkdir()
    (folder / "good.ics").write_text(GOOD_ICS)
    (folder / "link.ics").symlink_to(secret)
    (folder / "linked-dir").symlink_to(secret.parent, target_is_directory=True)
    report = run(vault, [folder])
    assert report.not_read == {str(folder / "link.ics"): "symbolic link, not followed",
                               str(folder / "linked-dir"): "symbolic link, not followed"}
    assert vault.query("SELECT summary FROM calendar_events") == [("Dentist",)]
    assert not vault.query("SELECT 1 FROM quarantine WHERE raw LIKE '%SECRET%'")


def test_following_links_never_leaves_the_given_folder(tmp_path):
    secret = tmp_path / "secret.ics"
    secret.write_text(GOOD_ICS)
    folder = tmp_path / "export"
    (folder / "sub").mkdir(parents=True)
    (folder / "sub" / "real.ics").write_text(GOOD_ICS)
    (folder / "inside.ics").symlink_to(folder / "sub" / "real.ics")
    (folder / "outside.ics").symlink_to(secret)
    found = scan([folder], Limits(follow_links=True))
    assert [f.path for f in found.files] == [folder / "inside.ics", folder / "sub" / "real.ics"]
    assert found.not_read == {str(folder / "outside.ics"): "symbolic link pointing outside the folder, not followed"}


def test_a_fifo_or_device_given_as_a_path_is_refused_without_reading_it(vault, tmp_path):
    fifo = tmp_path / "pipe.ics"
    os.mkfifo(fifo)
    for path, kind in ((fifo, "is a FIFO (named pipe)"), (Path("/dev/zero"), "is a character device")):
        t0 = time.perf_counter()
        with pytest.raises(IngestError) as e:
            run(vault, [path])
        assert time.perf_counter() - t0 < 2
        assert str(e.value) == f"{path} {kind}, not a file or folder; it was not read; nothing was ingested"


def test_a_fifo_inside_a_folder_is_reported_and_never_opened(vault, tmp_path):
    folder = tmp_path / "export"
    folder.mkdir()
    (folder / "good.ics").write_text(GOOD_ICS)
    os.mkfifo(folder / "pipe.ics")
    report = run(vault, [folder])
    assert report.loaded == 1 and report.not_read == {str(folder / "pipe.ics"): "a FIFO (named pipe), not read"}


def test_the_cli_refuses_dev_zero_in_one_line(tmp_path, monkeypatch, capsys):
    from lifevault.cli import main
    from tests.conftest import PASSPHRASE
    from tests.test_cli import FAST

    monkeypatch.setenv("LIFEVAULT_PASSPHRASE", PASSPHRASE)
    monkeypatch.setenv("LIFEVAULT_HOME", str(tmp_path / "home"))
    assert main(["init", *FAST]) == 0  # the cheapest KDF a vault accepts
    capsys.readouterr()
    code = main(["ingest", "/dev/zero"])
    err = capsys.readouterr().err
    assert code != 0 and code != 70 and err.count("\n") == 1 and "character device" in err and "Traceback" not in err


def test_a_folder_tree_deeper_than_the_recursion_limit_is_walked(tmp_path):
    (tmp_path / "export").mkdir()
    fds = [os.open(tmp_path / "export", os.O_RDONLY)]
    try:
        for _ in range(sys.getrecursionlimit() + 100):  # (pathlib's mkdir(parents=True) itself recurses)
            os.mkdir("d", dir_fd=fds[-1])
            fds.append(os.open("d", os.O_RDONLY, dir_fd=fds[-1]))
        os.close(os.open("good.ics", os.O_WRONLY | os.O_CREAT, dir_fd=fds[-1]))
        found = scan([tmp_path / "export"])
        assert [f.name for f in found.files] == ["good.ics"] and found.not_read == {}
    finally:  # removed here, bottom up: rmtree (pytest's clean-up of old runs too) recurses and would fail
        os.unlink("good.ics", dir_fd=fds[-1])
        while len(fds) > 1:
            os.close(fds.pop())
            os.rmdir("d", dir_fd=fds[-1])
        os.close(fds.pop())


def test_the_cli_bounds_are_options_and_what_was_not_read_is_printed(tmp_path, monkeypatch, capsys):
    from lifevault.cli import main
    from tests.conftest import PASSPHRASE
    from tests.test_cli import FAST

    monkeypatch.setenv("LIFEVAULT_PASSPHRASE", PASSPHRASE)
    monkeypatch.setenv("LIFEVAULT_HOME", str(tmp_path / "home"))
    assert main(["init", *FAST]) == 0  # the cheapest KDF a vault accepts
    folder = tmp_path / "export"
    folder.mkdir()
    with zipfile.ZipFile(folder / "cal.zip", "w", compression=zipfile.ZIP_STORED) as z:
        z.writestr("padded.ics", ics_of_size((1 << 20) + 1))
    (folder / "link.ics").symlink_to(tmp_path)
    capsys.readouterr()
    assert main(["ingest", str(folder), "--max-member-mib", "1", "--json"]) == 0
    out = capsys.readouterr()
    report = json.loads(out.out)
    assert report["quarantined"] == 1 and report["not_read"] == {str(folder / "link.ics"): "symbolic link, not followed"}
    assert f"not read: {folder / 'link.ics'}: symbolic link, not followed" in out.err
    assert main(["ingest", str(folder), "--max-member-mib", "2", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["loaded"] == 1
