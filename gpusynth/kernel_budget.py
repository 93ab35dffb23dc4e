"""Register, spill and FP64 budgets of the CUDA kernels, measured with nvcc (no GPU needed).

``kernel_budget(arch)`` compiles the render module (``_kernels.source_for(*RENDER_SOURCES)``
with the GPU build's ``-D`` constants) with ``nvcc -cubin -Xptxas -v --keep``: ptxas's report
gives registers, spills, stack frame and shared memory per kernel, the kept PTX the instruction
mix per kernel (``.f64`` instructions, calls). ``kernel_budgets(archs)`` runs several arches in
parallel; compiler output is cached per source, flags and nvcc (``--no-cache`` to bypass).
Kernel names are discovered from the ptxas output and the PTX ``.entry`` lines, so renaming or
adding kernels needs no change here. The stack frame (local arrays) is reported, not budgeted.

Budgets (DESIGN.md sections 5 and 9) apply to the render kernels, i.e. kernels whose name starts
with ``voice_render``: at most MAX_REGISTERS registers, MAX_SPILL_BYTES bytes of spill stores and
of spill loads, MAX_F64_INSTRUCTIONS PTX instructions with ``.f64`` in their opcode (the kernel's
own body plus every non-inlined function it calls), and no forbidden call (FP64 slow paths such
as ``__internal_accurate_pow`` or ``__internal_trig_reduction_slowpathd``, any ``__internal_*``,
and double-precision ``pow/exp/log/sin/cos`` and relatives when they are not inlined). Double
math that nvcc inlines shows up only in the ``.f64`` count.

    python -m gpusynth.kernel_budget [--arch sm_90[,sm_80]] [--json] [--no-cache] [--no-fmad]

exits 0 when every render kernel is within budget, 1 when one is not, 2 when nvcc is missing.
"""
from __future__ import annotations

import functools
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile

__all__ = ["MAX_REGISTERS", "MAX_SPILL_BYTES", "MAX_F64_INSTRUCTIONS", "MAX_FORBIDDEN_CALLS",
           "RENDER_PREFIX", "NVCC_FLAGS", "kernel_budget", "kernel_budgets", "analyze",
           "parse_ptxas", "parse_ptx", "violations", "occupancy", "find_nvcc", "gpu_define_flags"]

MAX_REGISTERS = 128
MAX_SPILL_BYTES = 0
# the kernels' FP64 is per tick, never per frame: the two LFO phases (an hour-long note keeps
# its LFO exact) and the exact fractional-position update; 70 .f64 PTX instructions today
MAX_F64_INSTRUCTIONS = 80
MAX_FORBIDDEN_CALLS = 0              # calls for which is_forbidden_call() is true: none allowed
RENDER_PREFIX = "voice_render"       # the budgets apply to kernels whose name starts with this

# nvcc's defaults otherwise: --fmad=true (FMA allowed in the per-sample loop, DESIGN section 5)
NVCC_FLAGS = ("-std=c++11", "--fmad=true")

# double-precision math whose call (when nvcc does not inline it) is a per-call FP64 slow path
DOUBLE_MATH = frozenset("""pow exp exp2 exp10 expm1 log log2 log10 log1p sin cos tan sincos
    sinpi cospi sincospi sinh cosh tanh asin acos atan atan2 asinh acosh atanh cbrt hypot
    erf erfc tgamma lgamma fmod remainder""".split())

# (registers per SM, max resident warps per SM, max resident blocks per SM)
ARCH_LIMITS = {
    "sm_70": (65536, 64, 32), "sm_72": (65536, 64, 32), "sm_75": (65536, 32, 16),
    "sm_80": (65536, 64, 32), "sm_86": (65536, 48, 16), "sm_87": (65536, 48, 16),
    "sm_89": (65536, 48, 24), "sm_90": (65536, 64, 32), "sm_100": (65536, 64, 32),
    "sm_120": (65536, 48, 32),
}
SHARED_PER_SM = {"sm_70": 96 << 10, "sm_75": 64 << 10, "sm_80": 164 << 10, "sm_86": 100 << 10,
                 "sm_87": 164 << 10, "sm_89": 100 << 10, "sm_90": 228 << 10}
REG_ALLOC_UNIT = 256                 # registers are allocated per warp in units of 256


def find_nvcc() -> str:
    """Path of nvcc ($NVCC, PATH, $CUDA_HOME/bin, /usr/local/cuda/bin), or a one-line
    RuntimeError."""
    cands = [os.environ.get("NVCC"), shutil.which("nvcc")]
    for root in (os.environ.get("CUDA_HOME"), os.environ.get("CUDA_PATH"), "/usr/local/cuda"):
        if root:
            cands.append(os.path.join(root, "bin", "nvcc"))
    for c in cands:
        if c and os.path.isfile(c) and os.access(c, os.X_OK):
            return c
    raise RuntimeError("nvcc not found (looked at $NVCC, PATH, $CUDA_HOME/bin, "
                       "/usr/local/cuda/bin): kernel budgets need the CUDA toolkit's nvcc")


@functools.lru_cache(maxsize=None)
def _nvcc_version(nvcc: str) -> str:
    try:
        out = subprocess.run([nvcc, "--version"], capture_output=True, text=True, timeout=60).stdout
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    m = re.search(r"release\s+([\d.]+),\s*V([\d.]+)", out)
    return m.group(2) if m else (out.strip().splitlines() or ["unknown"])[-1]


# ------------------------------------------------------------------------------ ptxas -v output

_PTXAS_COMPILING = re.compile(r"Compiling entry function '([^']+)' for '([^']+)'")
_PTXAS_PROPS = re.compile(r"Function properties for (\S+)")
_PTXAS_STACK = re.compile(r"(\d+) bytes stack frame, (\d+) bytes spill stores, (\d+) bytes spill loads")
_PTXAS_USED = re.compile(r"Used (\d+) registers")


def parse_ptxas(text: str) -> tuple[dict, dict]:
    """``nvcc -Xptxas -v`` output -> (entry kernels, other functions), each ``{name: figures}``
    with registers, spill_stores, spill_loads, stack_frame, shared_bytes, barriers,
    cumulative_stack (entries only have registers)."""
    entries: dict = {}
    funcs: dict = {}
    entry_names: set = set()
    current = None
    for line in text.splitlines():
        m = _PTXAS_COMPILING.search(line)
        if m:
            entry_names.add(m.group(1))
            current = entries.setdefault(m.group(1), {})
            continue
        m = _PTXAS_PROPS.search(line)
        if m:
            nm = m.group(1)
            current = (entries if nm in entry_names else funcs).setdefault(nm, {})
            continue
        if current is None:
            continue
        m = _PTXAS_STACK.search(line)
        if m:
            current.update(stack_frame=int(m.group(1)), spill_stores=int(m.group(2)),
                           spill_loads=int(m.group(3)))
            continue
        m = _PTXAS_USED.search(line)
        if m:
            current["registers"] = int(m.group(1))
            for key, pat in (("shared_bytes", r"(\d+) bytes smem"),
                             ("barriers", r"used (\d+) barriers"),
                             ("cumulative_stack", r"(\d+) bytes cumulative stack size")):
                mm = re.search(pat, line)
                current[key] = int(mm.group(1)) if mm else 0
    for d in entries.values():
        for k in ("registers", "stack_frame", "spill_stores", "spill_loads", "shared_bytes",
                  "barriers", "cumulative_stack"):
            d.setdefault(k, 0)
    return entries, funcs


# ------------------------------------------------------------------------------------- PTX

_PTX_HEADER = re.compile(
    r"^[ \t]*(?:\.(?:visible|weak|extern)\s+)*\.(entry|func)\s+(?:\([^)]*\)\s*)?([A-Za-z_$%][\w$]*)",
    re.M)
_PTX_CALL = re.compile(r"^call(?:\.uni)?\s+(?:\([^)]*\)\s*,\s*)?([A-Za-z_$][\w$]*)")
_LABEL = re.compile(r"^(?:[$\w]+:\s*)+")


def _strip_comments(ptx: str) -> str:
    ptx = re.sub(r"/\*.*?\*/", " ", ptx, flags=re.S)
    return re.sub(r"//[^\n]*", "", ptx)


def _ptx_bodies(ptx: str) -> dict:
    """{name: (kind, body text)} for every .entry / .func with a body (prototypes skipped)."""
    ptx = _strip_comments(ptx)
    out = {}
    for m in _PTX_HEADER.finditer(ptx):
        kind, name = m.group(1), m.group(2)
        i, depth = m.end(), 0
        while i < len(ptx):            # up to the body's '{' (or ';' for a prototype)
            ch = ptx[i]
            if ch == "(":
                depth += 1
            elif ch == ")":
                depth -= 1
            elif depth == 0 and ch in "{;":
                break
            i += 1
        if i >= len(ptx) or ptx[i] == ";":
            continue
        start, depth = i, 0
        while i < len(ptx):
            if ptx[i] == "{":
                depth += 1
            elif ptx[i] == "}":
                depth -= 1
                if depth == 0:
                    break
            i += 1
        out[name] = (kind, ptx[start + 1:i])
    return out


def _instructions(body: str) -> list[str]:
    out = []
    for st in re.split(r"[;{}]", body):
        st = _LABEL.sub("", " ".join(st.split()))
        if not st or st.startswith("."):
            continue                   # declarations (.reg, .param, .local, .shared ...)
        out.append(st)
    return out


def _opcode(ins: str) -> str:
    tok = ins.split()[0]
    if tok.startswith("@"):           # predicated: '@%p1 bra ...'
        parts = ins.split()
        tok = parts[1] if len(parts) > 1 else tok
    return tok


def is_forbidden_call(name: str) -> bool:
    """FP64 slow paths and double-precision math calls (float variants such as powf are fine)."""
    if name.startswith("__internal_"):
        return True
    base = name
    if base.startswith("__nv_"):                 # libdevice (NVRTC): __nv_pow, __nv_powf
        base = base[5:]
    if base in DOUBLE_MATH:
        return True
    m = re.match(r"_Z(\d+)(\w+)", name)           # mangled C++: _Z3powdd, _Z3expd
    if m:
        n = int(m.group(1))
        fn, args = m.group(2)[:n], m.group(2)[n:]
        return fn in DOUBLE_MATH and "d" in args
    return False


def parse_ptx(ptx: str) -> dict:
    """Per ``.entry``: instruction counts (total, ``.f64``, ``.f32``; own body and including the
    non-inlined ``.func``s it reaches), the calls it makes and the forbidden ones among them."""
    bodies = _ptx_bodies(ptx)
    info = {}
    for name, (kind, body) in bodies.items():
        ins = _instructions(body)
        calls = []
        for s in ins:
            m = _PTX_CALL.match(s)
            if m and m.group(1) not in calls:
                calls.append(m.group(1))
        info[name] = {"kind": kind, "instructions": len(ins),
                      "f64": sum(".f64" in _opcode(s) for s in ins),
                      "f32": sum(".f32" in _opcode(s) for s in ins), "calls": calls}
    out = {}
    for name, d in info.items():
        if d["kind"] != "entry":
            continue
        seen, todo = [], list(d["calls"])
        while todo:                  # every function reachable through calls, once
            c = todo.pop(0)
            if c in seen:
                continue
            seen.append(c)
            todo += info.get(c, {}).get("calls", [])
        reach = [info[c] for c in seen if c in info]
        out[name] = {
            "instructions": d["instructions"] + sum(r["instructions"] for r in reach),
            "f64_instructions": d["f64"] + sum(r["f64"] for r in reach),
            "f32_instructions": d["f32"] + sum(r["f32"] for r in reach),
            "f64_instructions_own": d["f64"], "instructions_own": d["instructions"],
            "calls": seen, "forbidden_calls": [c for c in seen if is_forbidden_call(c)],
        }
    return out


# ------------------------------------------------------------------------------ occupancy

def occupancy(registers: int, arch: str = "sm_90", block: int = 128, shared_bytes: int = 0):
    """Theoretical occupancy (resident warps / max warps per SM) of a kernel using `registers`
    per thread at `block` threads per block, or None for an unknown arch."""
    lim = ARCH_LIMITS.get(arch)
    if lim is None or registers <= 0 or block <= 0:
        return None
    regs_sm, max_warps, max_blocks = lim
    warps_per_block = -(-block // 32)
    per_warp = -(-registers * 32 // REG_ALLOC_UNIT) * REG_ALLOC_UNIT
    blocks = min(max_blocks, max_warps // warps_per_block,
                 (regs_sm // per_warp) // warps_per_block)
    if shared_bytes:
        blocks = min(blocks, SHARED_PER_SM.get(arch, 48 << 10) // shared_bytes)
    return round(blocks * warps_per_block / max_warps, 4)


# ------------------------------------------------------------------------------- budgets

def violations(kernel: dict) -> list[str]:
    """Budget violations of one kernel's figures (empty when within budget)."""
    v = []
    if kernel.get("registers", 0) > MAX_REGISTERS:
        v.append(f"{kernel['registers']} registers > {MAX_REGISTERS}")
    for k in ("spill_stores", "spill_loads"):
        if kernel.get(k, 0) > MAX_SPILL_BYTES:
            v.append(f"{kernel[k]} bytes of {k.replace('_', ' ')} > {MAX_SPILL_BYTES}")
    if kernel.get("f64_instructions", 0) > MAX_F64_INSTRUCTIONS:
        v.append(f"{kernel['f64_instructions']} .f64 PTX instructions > {MAX_F64_INSTRUCTIONS}")
    if len(kernel.get("forbidden_calls", ())) > MAX_FORBIDDEN_CALLS:
        v.append("forbidden calls: " + ", ".join(kernel["forbidden_calls"]))
    return v


def _first_error(r) -> str:
    out = (r.stdout or "") + (r.stderr or "")
    return next((ln for ln in out.splitlines() if "error" in ln.lower()),
                (out.strip().splitlines() or ["(no output)"])[0]).strip()


def _run(cmd, timeout=600):
    try:
        return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        raise RuntimeError(f"nvcc timed out after {timeout} s: {' '.join(cmd[:3])} ...") from None


def cache_dir() -> str:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "gpusynth", "kernel_budget")


def _cache_key(nvcc: str, source: str, flags) -> str:
    h = hashlib.sha256(source.encode())
    for part in (nvcc, _nvcc_version(nvcc), *flags):
        h.update(b"\0" + str(part).encode())
    return h.hexdigest()


def _cache_get(key: str):
    try:
        with open(os.path.join(cache_dir(), key + ".json")) as f:
            d = json.load(f)
        return d["ptxas"], d["ptx"], d["ptx_command"]
    except (OSError, ValueError, KeyError):
        return None


def _cache_put(key: str, ptxas: str, ptx: str, ptx_cmd) -> None:
    try:
        d = cache_dir()
        os.makedirs(d, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=d, suffix=".tmp")
        with os.fdopen(fd, "w") as f:
            json.dump({"ptxas": ptxas, "ptx": ptx, "ptx_command": ptx_cmd}, f)
        os.replace(tmp, os.path.join(d, key + ".json"))
    except OSError:
        pass                                   # a read-only home: no cache, same figures


def _compile(nvcc, source, arch, defines, extra_flags, name):
    """(ptxas -v report, PTX text, cubin command, PTX command) of one nvcc -cubin --keep run."""
    with tempfile.TemporaryDirectory(prefix="gpusynth-kb-") as d:
        cu = os.path.join(d, name)
        with open(cu, "w") as f:
            f.write(source)
        cubin_cmd = [nvcc, "-cubin", f"-arch={arch}", *extra_flags, *defines, "-Xptxas", "-v",
                     "--keep", "--keep-dir", d, cu, "-o", os.path.join(d, "k.cubin")]
        r = _run(cubin_cmd)
        if r.returncode != 0:
            raise RuntimeError(f"nvcc -cubin -arch={arch} failed: {_first_error(r)}")
        out = (r.stdout or "") + (r.stderr or "")
        ptx_files = sorted(f for f in os.listdir(d) if f.endswith(".ptx"))
        if ptx_files:
            with open(os.path.join(d, ptx_files[0])) as f:
                ptx = f.read()
            ptx_cmd = ["(kept by --keep from the cubin run)"]
        else:                                  # an nvcc that keeps no PTX: compile it apart
            ptx_cmd = [nvcc, "-ptx", f"-arch={arch}", *extra_flags, *defines, cu, "-o",
                       os.path.join(d, "k.ptx")]
            rp = _run(ptx_cmd)
            if rp.returncode != 0:
                raise RuntimeError(f"nvcc -ptx -arch={arch} failed: {_first_error(rp)}")
            with open(os.path.join(d, "k.ptx")) as f:
                ptx = f.read()

        def clean(cmd):
            return ["<tmp>" if c == d else c.replace(d + os.sep, "") for c in cmd]
        return out, ptx, clean(cubin_cmd), clean(ptx_cmd)


def analyze(source: str, arch: str = "sm_90", defines=(), extra_flags=NVCC_FLAGS,
            render_prefix: str = RENDER_PREFIX, block: int = 128, name: str = "kernel.cu",
            cache: bool = True) -> dict:
    """Compile CUDA C `source` with nvcc (one ``-cubin -Xptxas -v --keep`` run: ptxas's report
    and the PTX it assembled) and return per-kernel figures plus budget violations of the
    kernels whose name starts with `render_prefix`. `cache`: reuse the compiler output of an
    identical source, flags and nvcc (``$XDG_CACHE_HOME/gpusynth/kernel_budget``)."""
    nvcc = find_nvcc()
    flags = [f"-arch={arch}", *extra_flags, *defines, name]
    key = _cache_key(nvcc, source, flags)
    hit = _cache_get(key) if cache else None
    cubin_cmd = [nvcc, "-cubin", f"-arch={arch}", *extra_flags, *defines, "-Xptxas", "-v",
                 "--keep", "--keep-dir", "<tmp>", name, "-o", "k.cubin"]
    if hit:
        out, ptx, ptx_cmd = hit
    else:
        out, ptx, cubin_cmd, ptx_cmd = _compile(nvcc, source, arch, defines, extra_flags, name)
        if cache:
            _cache_put(key, out, ptx, ptx_cmd)
    entries, funcs = parse_ptxas(out)
    ptx_info = parse_ptx(ptx)
    kernels = {}
    for nm in sorted(set(entries) | set(ptx_info)):
        k = dict(entries.get(nm, {}))
        k.update(ptx_info.get(nm, {}))
        k["render_kernel"] = nm.startswith(render_prefix)
        if "registers" in k:
            k["occupancy"] = occupancy(k["registers"], arch, block, k.get("shared_bytes", 0))
            k["occupancy_block"] = block
        k["violations"] = violations(k) if k["render_kernel"] else []
        kernels[nm] = k
    render = [nm for nm, k in kernels.items() if k["render_kernel"]]
    return {
        "arch": arch, "nvcc": nvcc, "nvcc_version": _nvcc_version(nvcc),
        "cubin_command": cubin_cmd, "ptx_command": ptx_cmd, "cached": bool(hit),
        "budgets": {"applies_to": f"kernels named {render_prefix}*",
                    "max_registers": MAX_REGISTERS, "max_spill_bytes": MAX_SPILL_BYTES,
                    "max_f64_instructions": MAX_F64_INSTRUCTIONS,
                    "max_forbidden_calls": MAX_FORBIDDEN_CALLS,
                    "forbidden": "__internal_* (FP64 slow paths) and double pow/exp/log/sin/cos... calls"},
        "kernels": kernels, "functions": funcs, "render_kernels": render,
        "ok": bool(render) and not any(kernels[nm]["violations"] for nm in render),
    }


def gpu_define_flags(K=None) -> list:
    """The -D constants of the GPU build."""
    if K is None:
        from . import _kernels as K
    return list(K.define_flags(gpu=True))


def kernel_budget(arch: str = "sm_90", names=None, fmad: bool = True, cache: bool = True) -> dict:
    """Budget figures of the render module for `arch` (``sm_80``, ``sm_90``...).

    `names`: kernel source files (default ``_kernels.RENDER_SOURCES``), inlined into one
    translation unit by ``_kernels.source_for`` and compiled with the GPU build's ``-D``
    constants (``_kernels.define_flags(gpu=True)``). JSON-able result."""
    from . import _kernels as K
    names = tuple(names) if names else tuple(K.RENDER_SOURCES)
    defines = gpu_define_flags(K)
    flags = ("-std=c++11", "--fmad=true" if fmad else "--fmad=false")
    out = analyze(K.source_for(*names), arch, defines, flags, name="render_module.cu", cache=cache)
    out["sources"] = list(names)
    out["defines"] = defines
    return out


def kernel_budgets(archs=("sm_80", "sm_90"), names=None, fmad: bool = True,
                   cache: bool = True) -> dict:
    """``{arch: kernel_budget(arch)}``, the architectures compiled in parallel (nvcc is
    single-threaded; ptxas dominates)."""
    from concurrent.futures import ThreadPoolExecutor
    archs = list(archs)
    with ThreadPoolExecutor(max_workers=max(1, min(len(archs), os.cpu_count() or 1))) as ex:
        futs = {a: ex.submit(kernel_budget, a, names, fmad, cache) for a in archs}
        return {a: f.result() for a, f in futs.items()}


def _summary_line(rep: dict) -> list[str]:
    lines = [f"{rep['arch']} (nvcc {rep['nvcc_version']}, {' '.join(rep['cubin_command'][1:4])} ...)"]
    for nm, k in rep["kernels"].items():
        occ = k.get("occupancy")
        lines.append(
            f"  {nm:24s} {k.get('registers', '?'):>4} regs  spill {k.get('spill_stores', 0)}/"
            f"{k.get('spill_loads', 0)} B  stack {k.get('stack_frame', 0)} B  smem "
            f"{k.get('shared_bytes', 0)} B  f64 {k.get('f64_instructions', '?')}  f32 "
            f"{k.get('f32_instructions', '?')}  occupancy@{k.get('occupancy_block', '')} "
            f"{'?' if occ is None else f'{occ:.1%}'}"
            + (f"  calls {','.join(k['calls'])}" if k.get("calls") else ""))
        for v in k.get("violations", []):
            lines.append(f"      OVER BUDGET: {v}")
    if not rep["render_kernels"]:
        lines.append(f"  no kernel named {RENDER_PREFIX}* found")
    return lines


def main(argv=None) -> int:
    import argparse
    p = argparse.ArgumentParser(prog="python -m gpusynth.kernel_budget",
                                description="registers, spills and FP64 use of the CUDA kernels "
                                            "(nvcc, no GPU)")
    p.add_argument("--arch", default="sm_90", help="comma list, e.g. sm_80,sm_90")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.add_argument("--no-cache", action="store_true", help="always run nvcc (no cached output)")
    p.add_argument("--no-fmad", action="store_true",
                   help="compile with --fmad=false (as the cupy backend's exact mode)")
    a = p.parse_args(argv)
    try:
        reps = list(kernel_budgets([x.strip() for x in a.arch.split(",")],
                                   fmad=not a.no_fmad, cache=not a.no_cache).values())
    except RuntimeError as e:
        print(f"kernel_budget: {e}", file=sys.stderr)
        return 2
    if a.json:
        print(json.dumps(reps[0] if len(reps) == 1 else reps, indent=2))
    else:
        for r in reps:
            print("\n".join(_summary_line(r)))
    return 0 if all(r["ok"] for r in reps) else 1


if __name__ == "__main__":
    sys.exit(main())
