"""Instrument banks: one model (model.py) and loaders for SF2/SF3, DLS and the built-in GM set."""
from .model import (Bank, BankError, Preset, REGION_DTYPE, REGION_FIELDS,  # noqa: F401
                    new_regions, default_region, read_bank_file)


def load_bank(path) -> Bank:
    """Load an SF2/SF3 or DLS file, chosen by its RIFF form type. Raises BankError."""
    p = str(path)
    head = read_bank_file(p, 12)
    if len(head) < 12 or head[:4] != b"RIFF":
        raise BankError(p, "RIFF", "not a RIFF file (expected an SF2, SF3 or DLS bank)")
    form = head[8:12]
    if form == b"sfbk":
        from .sf2 import load_sf2
        return load_sf2(p)
    if form == b"DLS ":
        from .dls import load_dls
        return load_dls(p)
    raise BankError(p, "RIFF", f"unknown form type {form!r} (expected 'sfbk' or 'DLS ')")
