"""lifevault.fleet: synthetic personas through the real ingest pipeline, one vault per device, for the simulation."""

from __future__ import annotations

from vault.store import Vault


def test_a_fleet_of_personas_is_built_once_with_each_device_ingested_and_no_exports_left(tmp_path):
    from federated import simulate as sim
    from lifevault.fleet import personas

    built: list[int] = []
    fleet = personas(tmp_path / "fleet", 2, seed=3, days=8, progress=built.append)
    assert sorted(built) == [0, 1] and [h.name for h in fleet.homes] == ["device-000", "device-001"]
    assert not (fleet.root / "exports").exists() and fleet.passphrase_file.read_text().strip() == sim.SYNTH_PASSPHRASE
    counts = []
    for i in range(2):
        with Vault.open(fleet.homes[i], sim.SYNTH_PASSPHRASE) as v:
            counts.append(v.query("SELECT count(*) FROM app_sessions")[0][0])
    assert all(c > 0 for c in counts) and counts[0] != counts[1]  # two different personas
    keys = [(h / "keys.json").stat().st_mtime_ns for h in fleet.homes]
    again = personas(tmp_path / "fleet", 3, seed=3, days=8, progress=built.append)
    assert sorted(built) == [0, 1, 2] and len(again.homes) == 3  # only the missing device was built
    assert [(h / "keys.json").stat().st_mtime_ns for h in again.homes[:2]] == keys
