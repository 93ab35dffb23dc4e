"""The layout rules of docs/architecture.md that a machine can check: the layers
(import-linter: no cycle, no upward import), the size of classes, the one settings object
documented from one source, and ``gpusynth.render`` a plain function."""
import ast
import inspect
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import gpusynth
from gpusynth import settings as S

ROOT = Path(__file__).resolve().parents[2]
PKG = ROOT / "gpusynth"
MAX_CLASS_LINES = 520


def test_layers_import_linter():
    """`lint-imports` keeps the layers contract of pyproject.toml (checked in CI)."""
    exe = shutil.which("lint-imports")
    cmd = [exe] if exe else [sys.executable, "-m", "importlinter.cli"]
    r = subprocess.run(cmd + ["--no-cache"], cwd=ROOT, capture_output=True, text=True,
                       timeout=300)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-2000:]
    assert "1 kept, 0 broken" in r.stdout


def test_no_class_longer_than_about_500_lines():
    long = []
    for p in PKG.rglob("*.py"):
        for node in ast.walk(ast.parse(p.read_text())):
            if isinstance(node, ast.ClassDef):
                n = node.end_lineno - node.lineno + 1
                if n > MAX_CLASS_LINES:
                    long.append(f"{p.relative_to(ROOT)}:{node.name} {n} lines")
    assert not long, long


def test_render_is_a_plain_function():
    assert inspect.isfunction(gpusynth.render)
    assert type(sys.modules["gpusynth"]).__name__ == "module"
    assert "rendering" not in dir(gpusynth.render)


def test_readme_settings_table_is_the_dataclass():
    """The README's settings table is made from gpusynth.settings (regenerate it with
    `python -m gpusynth.settings`)."""
    readme = (ROOT / "README.md").read_text()
    assert S.markdown_table() in readme


def test_render_help_lists_every_user_setting():
    """`gpusynth render --help` documents each setting from the dataclass's own text."""
    from gpusynth.cli import build_parser
    p = build_parser()
    sub = next(a for a in p._actions if a.dest == "cmd").choices["render"]
    helps = {a.dest: a.help for a in sub._actions}
    for name, f in S.FIELDS.items():
        if f.metadata["group"] == "engine":
            continue
        assert name in helps, name
        if name not in ("interp", "reverb", "chorus", "effects"):
            assert helps[name] == S.describe(name), name


def test_settings_defaults_do_not_depend_on_the_backend():
    from gpusynth import Synth
    vs = {b: Synth(backend=b).open()["voices"] for b in ("numpy", "null")}
    assert set(vs.values()) == {S.Settings().voices}


def test_settings_errors_name_the_setting():
    with pytest.raises(S.SettingsError, match="^voices 0 is out of range"):
        S.Settings(voices=0)
    with pytest.raises(TypeError, match="unknown setting"):
        gpusynth.Synth(reverb_size=0.3)
    with pytest.raises(S.SettingsError, match="chorus_type must be one of"):
        gpusynth.Synth(chorus_type="square")
    s = S.Settings.of(None, gain=0.8, voices=None)
    assert s.gain == 0.8 and s.voices == S.Settings().voices
    assert s.replace(interp="linear").interp == "linear"
