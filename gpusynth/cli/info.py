"""`gpusynth info`: backends, GPU, version, and a bank's presets."""
from __future__ import annotations

import json

from .common import load_bank


def run(a):
    from ..backend.select import backend_info
    from .. import __version__
    info = backend_info()
    info["version"] = __version__
    if a.bank:
        bank = load_bank(a.bank)
        info["bank"] = {"name": bank.name, "path": a.bank, "regions": int(len(bank.regions)),
                        "pool_samples": int(len(bank.pool)),
                        "presets": [{"bank": p.bank, "program": p.program, "drum": p.drum,
                                     "name": p.name} for p in bank.presets]}
    if a.json:
        print(json.dumps(info, indent=2, default=str))
        return 0
    print(f"gpusynth {info['version']}")
    for name, b in (info.get("backends") or {}).items():
        mark = "yes" if b.get("available") else "no "
        print(f"  backend {name:6s} available: {mark}  {b.get('reason', '')}")
    for k, v in info.items():
        if k in ("version", "bank", "backends"):
            continue
        if isinstance(v, dict):
            v = ", ".join(f"{a}={b}" for a, b in v.items())
        print(f"{k}: {v}")
    if a.bank:
        b = info["bank"]
        print(f"bank {b['name']} ({b['path']}): {len(b['presets'])} presets, {b['regions']} regions")
        for p in b["presets"]:
            kind = "drum" if p["drum"] else "    "
            print(f"  {p['bank']:5d}:{p['program']:3d} {kind} {p['name']}")
    return 0


def add_parser(sub):
    i = sub.add_parser("info", help="backends, GPU, and bank presets")
    i.add_argument("--json", action="store_true")
    i.add_argument("--bank")
    i.set_defaults(fn=run)
    return i
