"""Tools for the static cost of SASS: compilers (NVRTC, nvcc), disassembler, resource usage, SASS annotation."""
import ctypes
import ctypes.util
import importlib.util
import os
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

from .parse import INS_LINE, SECTION_LINE

# --- tools: compilers, disassembler, resource usage ---------------------------------------------------------------

def package_dirs(name):
    try:
        spec = importlib.util.find_spec(name)
    except (ImportError, ValueError):
        return []
    return list(spec.submodule_search_locations or []) if spec else []


def find_tool(name):
    """A CUDA binary utility: Triton's bundled copy first, then PATH, then $CUDA_HOME/bin."""
    for d in package_dirs("triton"):
        p = Path(d) / "backends" / "nvidia" / "bin" / name
        if p.exists():
            return str(p)
    for p in (shutil.which(name), Path(os.environ.get("CUDA_HOME", "/usr/local/cuda")) / "bin" / name):
        if p and Path(p).exists():
            return str(p)
    return None


def _run(args):
    r = subprocess.run(args, capture_output=True, text=True, check=False)
    if r.returncode != 0:
        raise RuntimeError(f"{' '.join(map(str, args))} failed: {r.stderr[-2000:]}")
    return r.stdout


def _with_cubin(cubin, fn):
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "kernel.cubin"
        path.write_bytes(cubin)
        return fn(str(path))


def disassemble(cubin):
    """``nvdisasm -c -ndf`` of a cubin: the code sections with labels for branch targets."""
    return _with_cubin(cubin, lambda p: _run([find_tool("nvdisasm"), "-c", "-ndf", p]))


def resource_usage(cubin):
    """{function: {"REG", "STACK", "SHARED", "LOCAL", ...}} from ``cuobjdump -res-usage``."""
    text = _with_cubin(cubin, lambda p: _run([find_tool("cuobjdump"), "-res-usage", p]))
    out, name = {}, None
    for line in text.splitlines():
        m = re.match(r"\s*Function (\S+):", line)
        if m:
            name = m.group(1)
        elif name and "REG:" in line:
            out[name] = {k: int(v) for k, v in re.findall(r"(\w+):(\d+)", line)}
    return out


def kernel_param_layout(cubin):
    """{function: {ordinal: constant-bank-0 byte offset}} of each kernel's arguments, from ``cuobjdump -elf``."""
    text = _with_cubin(cubin, lambda p: _run([find_tool("cuobjdump"), "-elf", p]))
    out, name, attribute = {}, None, ""
    for line in text.splitlines():
        if line.startswith(".nv.info."):
            name = line[len(".nv.info."):].strip()
            out[name] = {"base": 0, "params": {}}
        elif name and "Attribute:" in line:
            attribute = line.split("Attribute:")[1].strip()
        elif name and attribute == "EIATTR_PARAM_CBANK" and "Value:" in line:
            out[name]["base"] = int(line.split()[-1], 16) & 0xFFFF
        elif name and attribute == "EIATTR_KPARAM_INFO":
            m = re.search(r"Ordinal : (0x[0-9a-f]+)\s+Offset\s+: (0x[0-9a-f]+)", line)
            if m:
                out[name]["params"][int(m.group(1), 16)] = int(m.group(2), 16)
    return {n: {o: v["base"] + off for o, off in v["params"].items()} for n, v in out.items() if v["params"]}


def _nvrtc():
    """libnvrtc as CuPy finds it (cuda.pathfinder), else from the NVIDIA wheels, $CUDA_HOME or the loader path."""
    try:
        from cuda.pathfinder import load_nvidia_dynamic_lib

        found = [load_nvidia_dynamic_lib("nvrtc").abs_path]
    except Exception:  # noqa: BLE001 - absent, or no NVRTC where it looks: try the other places
        found = []
    wheels = [p for d in package_dirs("nvidia") for p in sorted(Path(d).glob("*/lib/libnvrtc.so*"))]
    cuda = Path(os.environ.get("CUDA_HOME", "/usr/local/cuda"))
    candidates = [p for p in wheels + sorted((cuda / "lib64").glob("libnvrtc.so*"))
                  if "builtins" not in p.name and ".alt." not in p.name]
    for c in [*found, *map(str, candidates), ctypes.util.find_library("nvrtc") or ""]:
        try:
            return ctypes.CDLL(c)
        except OSError:
            continue
    return None


def nvrtc_version():
    lib = _nvrtc()
    if lib is None:
        return None
    major, minor = ctypes.c_int(), ctypes.c_int()
    lib.nvrtcVersion(ctypes.byref(major), ctypes.byref(minor))
    return f"{major.value}.{minor.value}"


def nvcc_version():
    nvcc = shutil.which("nvcc")
    if nvcc is None:
        return None
    m = re.search(r"release ([\d.]+)", _run([nvcc, "--version"]))
    return m.group(1) if m else "unknown"


def compile_nvrtc(source, options, arch, names=()):
    """(cubin, {name expression: lowered name}) for sm_<arch> from CUDA C ``source``, by NVRTC (as CuPy's
    RawModule compiles), instantiating the template kernels that ``names`` name."""
    lib = _nvrtc()
    prog = ctypes.c_void_p()
    if lib.nvrtcCreateProgram(ctypes.byref(prog), source.encode(), b"kernel.cu", 0, None, None):
        raise RuntimeError("nvrtcCreateProgram failed")
    try:
        for n in names:
            lib.nvrtcAddNameExpression(prog, n.encode())
        opts = [o.encode() for o in (*options, f"-arch=sm_{arch}")]
        rc = lib.nvrtcCompileProgram(prog, len(opts), (ctypes.c_char_p * len(opts))(*opts))
        size = ctypes.c_size_t()
        lib.nvrtcGetProgramLogSize(prog, ctypes.byref(size))
        log = ctypes.create_string_buffer(size.value)
        lib.nvrtcGetProgramLog(prog, log)
        if rc:
            raise RuntimeError(f"NVRTC failed: {log.value.decode(errors='replace')[-3000:]}")
        lib.nvrtcGetCUBINSize(prog, ctypes.byref(size))
        cubin = ctypes.create_string_buffer(size.value)
        lib.nvrtcGetCUBIN(prog, cubin)
        lowered = {}
        for n in names:
            out = ctypes.c_char_p()
            if lib.nvrtcGetLoweredName(prog, n.encode(), ctypes.byref(out)) == 0:
                lowered[n] = out.value.decode()
        return cubin.raw, lowered
    finally:
        lib.nvrtcDestroyProgram(ctypes.byref(prog))


def compile_nvcc(source, options, arch):
    """A cubin for sm_<arch> from CUDA C ``source``, by ``nvcc -cubin``."""
    with tempfile.TemporaryDirectory() as d:
        src, out = Path(d) / "kernel.cu", Path(d) / "kernel.cubin"
        src.write_text(source)
        _run([shutil.which("nvcc"), "-cubin", f"-arch=sm_{arch}", *options, "-o", str(out), str(src)])
        return out.read_bytes()


def section_lines(sass, name):
    """The lines of section ``.text.<name>`` of a disassembly."""
    out, inside = [], False
    for line in sass.splitlines():
        m = SECTION_LINE.match(line)
        if m or line.startswith("//-----"):
            inside = bool(m) and m.group(1) == name
            continue
        if inside:
            out.append(line)
    return out


def annotate(sass, name, counts, title, note="column 1: executions on the counted path (one thread)"):
    """The disassembly of kernel ``name``, compacted, each instruction prefixed by how often the counted path
    runs it."""
    ins, lines = iter(counts), [f"// {title}", f"// {note}", ""]
    for line in section_lines(sass, name):
        m = INS_LINE.match(line)
        if m:
            lines.append(f"{next(ins, 0):>3}  /*{m.group(1)}*/ {m.group(2)} ;")
        elif line.strip():
            lines.append(f"     {line.strip()}")
    return "\n".join(lines) + "\n"
