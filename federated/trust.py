"""Epsilon per trust assumption, over a ledger of releases in any mix of modes. Pure: ledger bodies in, numbers out.

What one release is worth depends on whom you trust. Each assumption counts every release with the noise
multiplier that assumption guarantees for it, and composes all of them (inf as soon as one release offers
nothing under it):

    assumption          local   central   distributed (t shares)
    as declared         z       z         z         every party as the round declared: the ledger's figure
    honest server       z       z         z/sqrt(t) the server adds its noise and keeps the clip; other
                                                    devices may skip theirs
    honest majority     z       inf       z         at least t devices honest; the server may not be
    device-verifiable   z       inf       z/sqrt(t) nobody: only the noise this device added itself

Amplification by sampling is a further claim on top of "as declared", made only when every release was
a central round whose server sampled with a secret CSPRNG and divided by a fixed denominator (q N, not the
realised count) -- the ledger records this as sampler SECRET_FIXED. Never in local mode (the server sees
each update and knows whom it asked) nor distributed mode (SecAgg+ reveals how many took part), and never
for a sampler anyone can replay from a public seed.

A distributed round runs the Skellam mechanism (federated/skellam.py): under "as declared" and "honest
majority" it counts with the parameters its ledger row records (the whole sum's Skellam noise), under
"honest server" and "device-verifiable" with this device's own share (Skellam with lambda / t, the same
rounding bound). A history holding a Skellam release composes in RDP (accounting.compose), one of plain
Gaussian releases with PLD.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence
from typing import Any

ASSUMPTIONS = {
    "as_declared": "every party as the round declared (honest server in central rounds, at least t honest "
                   "devices in distributed rounds)",
    "honest_server": "an honest server (adds its noise, keeps the clip); other devices may be dishonest",
    "honest_majority": "at least t honest devices per distributed round; the server may be dishonest",
    "device_verifiable": "nobody: only the noise this device added itself",
}
SECRET_FIXED = "csprng-secret-fixed-denominator"

_FACTOR: dict[str, dict[str, str | None]] = {  # assumption -> mode -> how the release's z counts: "z", "share" (z / sqrt t) or None (nothing)
    "as_declared": {"local": "z", "central": "z", "distributed": "z"},
    "honest_server": {"local": "z", "central": "z", "distributed": "share"},
    "honest_majority": {"local": "z", "central": None, "distributed": "z"},
    "device_verifiable": {"local": "z", "central": None, "distributed": "share"},
}


def _z(body: Mapping[str, Any], how: str | None) -> float | None:
    if how is None:
        return None
    z = float(body["noise_multiplier"])
    if how == "share":
        if "noise_shares" not in body:  # recorded before the ledger kept t: no share can be claimed
            return None
        return z / math.sqrt(int(body["noise_shares"]))
    return z


def noise_multipliers(bodies: Sequence[Mapping[str, Any]], assumption: str) -> list[float] | None:
    """The noise multiplier each release carries under `assumption`, or None when one carries nothing."""
    table = _FACTOR[assumption]
    out: list[float] = []
    for b in bodies:
        z = _z(b, table.get(str(b["mode"])))
        if z is None:
            return None
        out.append(z)
    return out


def _event(body: Mapping[str, Any], how: str | None) -> Any:
    """What one release is worth under an assumption, as accounting.compose counts it: a noise multiplier,
    a skellam.Params (a distributed Skellam round: the whole sum's, or this device's own share, Skellam with
    lambda / t, i.e. noise multiplier z / sqrt(t) and the same rounding bound D2), or None (nothing)."""
    from federated import accounting, skellam

    z = _z(body, how)
    if z is None or body.get("mechanism") != skellam.NAME:
        return z
    p = accounting.event_of(body)
    if how == "share":
        p = dataclasses.replace(p, noise_multiplier=p.noise_multiplier / math.sqrt(p.noise_shares), noise_shares=1)
    return p


def events(bodies: Sequence[Mapping[str, Any]], assumption: str) -> list[Any] | None:
    """The releases as `assumption` counts them (accounting.compose's events), None when one carries nothing."""
    table = _FACTOR[assumption]
    out: list[Any] = []
    for b in bodies:
        e = _event(b, table.get(str(b["mode"])))
        if e is None:
            return None
        out.append(e)
    return out


def amplifiable(body: Mapping[str, Any]) -> bool:
    """May this release claim amplification by sampling? (See the module docstring.)"""
    return (str(body.get("mode")) == "central" and body.get("sampling") == "poisson"
            and body.get("sampler") == SECRET_FIXED and body.get("sampling_rate") is not None)


def by_assumption(bodies: Sequence[Mapping[str, Any]], *, delta: float) -> dict[str, Any]:
    """{"as_declared", "honest_server", "honest_majority", "device_verifiable": epsilon (inf when some
    release offers nothing under it), "amplified": epsilon or None, "amplified_reason": why not}."""
    from federated import accounting

    out: dict[str, Any] = {}
    for name in ASSUMPTIONS:
        evs = events(bodies, name)
        out[name] = math.inf if evs is None else accounting.compose(evs, delta)[0]
    out["amplified"], out["amplified_reason"] = None, ""
    if not bodies:
        out["amplified_reason"] = "no release"
    elif all(amplifiable(b) for b in bodies):
        sampled = [accounting.Release(noise_multiplier=float(b["noise_multiplier"]), sampling="poisson",
                                      sampling_rate=float(b["sampling_rate"])) for b in bodies]
        out["amplified"] = accounting.epsilon(sampled, delta)
    else:
        out["amplified_reason"] = ("only central rounds sampled by the server's secret CSPRNG with a fixed "
                                   "denominator can claim amplification; some release was not one")
    return out


__all__ = ["ASSUMPTIONS", "SECRET_FIXED", "amplifiable", "by_assumption", "events", "noise_multipliers"]
