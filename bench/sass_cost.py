"""Static cost of SASS: parse disassembly, walk the taken path, count instructions per class, model throughput.

The walk follows one thread through a kernel as ``nvdisasm -c`` prints it:

* branches whose predicate follows from known kernel arguments (the CUDA kernels' run-time ``kind``,
  ``contiguous``, ``single_run``, ``flip``) go where those values send them: a small constant propagation
  over MOV / LDC / ISETP / PLOP3 / LOP3 / SEL / IADD3 tracks them;
* of a data-dependent forward branch whose one side calls a subroutine, loops or touches local memory before
  the two sides meet again (the slow paths of sqrt.rn and of 64-bit division, taken for denormal or huge
  operands only; the Payne-Hanek reduction of sin/cos arguments beyond 105615), the other side;
* of a data-dependent forward branch whose one side stores to memory before the sides meet and the other
  does not (the CUDA kernel's test whether a lane lies in the run), the storing side: lanes outside the
  run occur only at the ends of runs;
* other data-dependent forward branches (clamps written as ``?:``): the longer side, an upper bound; the
  difference to the shorter side is reported as ``ambiguous``;
* a backward branch (a loop) is taken once and then falls through, so a loop body is walked twice and
  one iteration is the instructions between the two visits of its header; a conditional exit right before
  an unconditional backward branch (sm_80 leaves loops through ``@P CALL.REL.NOINC`` to a label) stays once;
* ``BRA.DIV`` (taken only when a warp has diverged) is not taken; a predicated ``EXIT`` whose predicate is
  unknown does not exit (the thread has work); a ``CALL`` on the path is followed and returns.

Every instruction on the path counts once, whether or not its guard predicate is true (it is issued).
"""
import ctypes
import ctypes.util
import importlib.util
import os
import re
import shutil
import subprocess
import tempfile
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

# --- instruction classes ------------------------------------------------------------------------------------------

CLASSES = ("alu", "fp32", "imad", "mufu", "conv", "memory", "control", "uniform", "other")
_FP32 = {"FADD", "FMUL", "FFMA", "FADD32I", "FMUL32I", "FFMA32I", "HADD2", "HMUL2", "HFMA2"}
_ALU = {"IADD3", "IADD", "VIADD", "VIADDMNMX", "IADD32I", "LOP3", "LOP", "LOP32I", "SHF", "SHL", "SHR", "ISETP",
        "ICMP", "IMNMX", "VIMNMX", "VIMNMX3", "IABS", "LEA", "SEL", "FSEL", "FSETP", "FMNMX", "FMNMX3", "PRMT", "PLOP3",
        "P2R", "R2P", "MOV", "MOV32I", "SGXT", "BMSK", "F2FP", "I2FP", "F2IP", "FCHK", "HSETP2", "HMNMX2", "VABSDIFF",
        "BREV", "LEPC"}
_IMAD = {"IMAD", "IMUL", "IMUL32I", "IMAD32I", "IDP"}
_MUFU = {"MUFU"}
_CONV = {"I2F", "F2I", "F2F", "FRND", "I2I", "POPC", "FLO"}
_MEMORY = {"LDG", "STG", "LD", "ST", "LDS", "STS", "LDL", "STL", "LDC", "ATOM", "ATOMG", "ATOMS", "RED", "REDG",
           "LDGSTS", "STSM", "LDSM", "CCTL", "MATCH"}
_CONTROL = {"BRA", "BRX", "JMP", "JMX", "CALL", "RET", "EXIT", "BSSY", "BSYNC", "BAR", "WARPSYNC", "BPT", "YIELD",
            "NOP", "DEPBAR", "MEMBAR", "ERRBAR", "NANOSLEEP", "KILL", "BREAK", "VOTE", "ELECT", "ACQBULK", "FENCE",
            "WARPGROUP"}
_OTHER = {"S2R", "S2UR", "CS2R", "R2UR", "B2R", "SHFL", "UCGABAR_ARV", "UCGABAR_WAIT"}


def op_class(op):
    """The class of an opcode with its modifiers ("IMAD.WIDE.U32" -> "imad")."""
    base = op.split(".")[0]
    if base in _IMAD:
        return "imad"
    if base in _FP32:
        return "fp32"
    if base in _ALU:
        return "alu"
    if base in _MUFU:
        return "mufu"
    if base in _CONV:
        return "conv"
    if base in _MEMORY:
        return "memory"
    if base in _CONTROL:
        return "control"
    if base in _OTHER:
        return "other"
    if base.startswith("U"):
        return "uniform"
    return "other"


# --- parsing ------------------------------------------------------------------------------------------------------

@dataclass
class Ins:
    addr: int
    guard: str | None  # "P0", "!P0", "UP1", ... or None
    op: str  # opcode with modifiers
    operands: list
    target: str | None = None  # branch or call target label

    @property
    def base(self):
        return self.op.split(".")[0]


@dataclass
class Section:
    name: str
    ins: list = field(default_factory=list)
    labels: dict = field(default_factory=dict)  # label -> instruction index


_SECTION = re.compile(r"^//-+\s+\.text\.(\S+)\s+-+")
_LABEL = re.compile(r"^\s*([.$\w][\w.$]*):\s*$")
_INS = re.compile(r"^\s*/\*([0-9a-f]{4,})\*/\s+(.*?)\s*;\s*(?:/\*.*)?$")
_TARGET = re.compile(r"`\(([^)]+)\)")


def split_operands(text):
    out, depth, cur = [], 0, ""
    for ch in text:
        if ch in "[(":
            depth += 1
        elif ch in "])":
            depth -= 1
        if ch == "," and depth == 0:
            out.append(cur.strip())
            cur = ""
        else:
            cur += ch
    if cur.strip():
        out.append(cur.strip())
    return out


def parse_sass(text):
    """{section name: Section} from ``nvdisasm -c`` output; a section holds a kernel and its subroutines."""
    sections, sec = {}, None
    for line in text.splitlines():
        m = _SECTION.match(line)
        if m:
            sec = sections.setdefault(m.group(1), Section(m.group(1)))
            continue
        if sec is None:
            continue
        m = _LABEL.match(line)
        if m:
            sec.labels[m.group(1)] = len(sec.ins)
            continue
        m = _INS.match(line)
        if not m:
            continue
        body = m.group(2).strip()
        guard = None
        if body.startswith("@"):
            guard, body = body[1:].split(None, 1)
        parts = body.split(None, 1)
        op, rest = parts[0], parts[1] if len(parts) > 1 else ""
        t = _TARGET.search(rest)
        target = t.group(1) if t else None
        operands = split_operands(_TARGET.sub("", rest)) if rest else []
        sec.ins.append(Ins(int(m.group(1), 16), guard, op, operands, target))
    return sections


# --- constant propagation -----------------------------------------------------------------------------------------

_MASK = 0xFFFFFFFF
_REG = re.compile(r"^(-|~|!)?\|?(U?R\d+|U?RZ|U?P[0-6T])\|?((?:\.\w+)*)$")
_CBANK = re.compile(r"^c\[0x0\]\[(0x[0-9a-f]+)\]$")


class State:
    """Known register and predicate values along the path; ``params``: byte offset in constant bank 0 -> byte."""

    def __init__(self, params):
        self.params = params
        self.vals = {"RZ": 0, "URZ": 0, "PT": True, "UPT": True}

    def cbank(self, offset):
        b = [self.params.get(offset + i) for i in range(4)]
        return None if None in b else int.from_bytes(bytes(b), "little")

    def value(self, operand):
        """Integer (32-bit) or bool value of a source operand, or None when unknown."""
        m = _CBANK.match(operand)
        if m:
            return self.cbank(int(m.group(1), 16))
        m = _REG.match(operand)
        if m:
            sign, name, _ = m.groups()
            v = self.vals.get(name)
            if v is None:
                return None
            if isinstance(v, bool):
                return (not v) if sign == "!" else v
            return (-v) & _MASK if sign == "-" else (~v) & _MASK if sign == "~" else v
        try:
            return int(operand, 0) & _MASK
        except ValueError:
            return None

    def set(self, name, value):
        if name in ("RZ", "URZ", "PT", "UPT"):
            return
        if value is None:
            self.vals.pop(name, None)
        else:
            self.vals[name] = value

    def guard(self, guard):
        return True if guard is None else self.value(guard)


def _reg_name(operand):
    m = _REG.match(operand)
    return m.group(2) if m and not m.group(1) else None


def _next_reg(name, k):
    prefix = "UR" if name.startswith("UR") else "R"
    return f"{prefix}{int(name[len(prefix):]) + k}" if name[len(prefix):].isdigit() else name


def _width(op):
    return 4 if ".128" in op else 2 if (".64" in op or ".WIDE" in op) else 1


def _clobber(state, ins):
    """Forget what an instruction not modelled below may write: its first operand (and the registers after
    it for wide results) and predicates among its first three operands."""
    for i, operand in enumerate(ins.operands[:3]):
        name = _reg_name(operand)
        if name is None:
            continue
        if i == 0 or "P" in name:
            for k in range(_width(ins.op) if i == 0 and "P" not in name else 1):
                state.set(_next_reg(name, k), None)


def _compare(cmp, a, b, unsigned):
    if not unsigned:
        a = a - (1 << 32) if a >> 31 else a
        b = b - (1 << 32) if b >> 31 else b
    return {"EQ": a == b, "NE": a != b, "LT": a < b, "LE": a <= b, "GT": a > b, "GE": a >= b}.get(cmp)


def _combine(bop, x, y):
    if x is None or y is None:
        return None
    return {"AND": x and y, "OR": x or y, "XOR": x != y}.get(bop)


def _lut(lut, a, b, c):
    out = 0
    for bit in range(32):
        idx = ((a >> bit) & 1) << 2 | ((b >> bit) & 1) << 1 | ((c >> bit) & 1)
        out |= ((lut >> idx) & 1) << bit
    return out


def execute(state, ins):
    """Update ``state`` with what ``ins`` computes, where that follows from known values."""
    g = state.guard(ins.guard)
    if g is False:
        return
    snapshot = dict(state.vals) if g is None else None
    _execute(state, ins)
    if snapshot is not None:  # maybe not executed: keep only what both outcomes agree on
        for k in set(snapshot) | set(state.vals):
            if snapshot.get(k) != state.vals.get(k):
                state.vals.pop(k, None)


def _execute(state, ins):
    op, ops, base = ins.op, ins.operands, ins.base
    v = state.value
    try:
        if base in ("MOV", "UMOV", "MOV32I") and len(ops) >= 2:
            state.set(_reg_name(ops[0]), v(ops[1]))
        elif base in ("LDC", "ULDC") and len(ops) == 2 and _CBANK.match(ops[1]):
            off = int(_CBANK.match(ops[1]).group(1), 16)
            for k in range(_width(op)):
                state.set(_next_reg(_reg_name(ops[0]), k), state.cbank(off + 4 * k))
        elif base in ("IMAD", "UIMAD") and ".WIDE" not in op and ".HI" not in op and ".X" not in op and len(ops) == 4:
            a, b, c = v(ops[1]), v(ops[2]), v(ops[3])
            if ".SHL" in op or ".IADD" in op or a is None or b is None or c is None:
                _clobber(state, ins)
            else:
                state.set(_reg_name(ops[0]), (a * b + c) & _MASK)
        elif base in ("ISETP", "UISETP") and ".EX" not in op:
            _, cmp, *mods = op.split(".")
            unsigned = "U32" in mods
            bop = next(m for m in mods if m in ("AND", "OR", "XOR"))
            a, b, c = v(ops[2]), v(ops[3]), v(ops[4])
            r = None if a is None or b is None else _compare(cmp, a, b, unsigned)
            state.set(_reg_name(ops[0]), _combine(bop, r, c))
            state.set(_reg_name(ops[1]), _combine(bop, None if r is None else not r, c))
        elif base in ("PLOP3", "UPLOP3"):
            a, b, c = (v(x) for x in ops[2:5])
            for dst, lut in ((ops[0], int(ops[5], 0)), (ops[1], int(ops[6], 0))):
                r = None if None in (a, b, c) else bool(_lut(lut, int(a), int(b), int(c)) & 1)
                state.set(_reg_name(dst), r)
        elif base in ("LOP3", "ULOP3") and ops and "P" in (_reg_name(ops[0]) or "R"):
            a, b, c = (v(x) for x in ops[2:5])
            r = None if None in (a, b, c) else _lut(int(ops[5], 0), a, b, c) != 0
            state.set(_reg_name(ops[0]), r)
        elif base in ("LOP3", "ULOP3"):
            a, b, c = (v(x) for x in ops[1:4])
            state.set(_reg_name(ops[0]), None if None in (a, b, c) else _lut(int(ops[4], 0), a, b, c))
        elif base in ("SEL", "USEL"):
            p = v(ops[3])
            state.set(_reg_name(ops[0]), None if p is None else v(ops[1] if p else ops[2]))
        elif base in ("IADD3", "UIADD3") and ".X" not in op and len(ops) == 4:
            a, b, c = (v(x) for x in ops[1:4])
            state.set(_reg_name(ops[0]), None if None in (a, b, c) else (a + b + c) & _MASK)
        else:
            _clobber(state, ins)
    except (ValueError, IndexError, StopIteration, TypeError):
        _clobber(state, ins)


# --- the path walk ------------------------------------------------------------------------------------------------

@dataclass
class Walk:
    path: list  # instruction indices, in order
    loop: tuple | None  # (start, end) positions in path of one loop iteration
    decisions: Counter
    ambiguities: list  # (path position, instructions by which a longer-side choice there may overcount)

    @property
    def ambiguous(self):
        return sum(a for _, a in self.ambiguities)


def _linear(sec, j, limit=4000):
    """The instruction indices a thread reaches from ``j`` following fall-through and unconditional branches
    (conditional ones fall through), and the position of the first sign of a slow path among them (or None):
    a CALL that no conditional branch precedes (the side leads straight into a subroutine), a loop, or a
    local-memory access (libdevice's Payne-Hanek reduction of huge sin/cos arguments has both)."""
    seen, out, call, branched = set(), [], None, False
    while j < len(sec.ins) and len(out) < limit and j not in seen:
        seen.add(j)
        out.append(j)
        ins = sec.ins[j]
        if ins.base == "CALL" and call is None and not branched:
            call = len(out) - 1
        if ins.base in ("LDL", "STL") and call is None:
            call = len(out) - 1
        if ins.base in ("BRA", "JMP") and ins.target is not None and sec.labels[ins.target] in seen and call is None:
            call = len(out) - 1  # a loop inside the side
        if ins.base in ("BRA", "JMP") and ins.guard not in (None, "PT"):
            branched = True
        if ins.base in ("EXIT", "RET", "BPT") and ins.guard is None:
            break
        if ins.base in ("BRA", "JMP") and ins.guard in (None, "PT") and ".DIV" not in ins.op:
            j = sec.labels[ins.target]
            continue
        j += 1
    return out, call


_STORES = {"STG", "ST", "STL", "STS", "RED", "ATOM", "ATOMG"}


def _choose(sec, taken, fall):
    """(next index, decision name, ambiguous instructions) at a data-dependent forward branch."""
    a, call_a = _linear(sec, taken)
    b, call_b = _linear(sec, fall)
    in_b = {x: i for i, x in enumerate(b)}
    meet = next(((i, in_b[x]) for i, x in enumerate(a) if x in in_b), (len(a), len(b)))
    slow_a = call_a is not None and call_a < meet[0]
    slow_b = call_b is not None and call_b < meet[1]
    if slow_a != slow_b:
        return (fall, "slow_path", 0) if slow_a else (taken, "slow_path", 0)
    store_a = any(sec.ins[x].base in _STORES for x in a[:meet[0]])
    store_b = any(sec.ins[x].base in _STORES for x in b[:meet[1]])
    if store_a != store_b:
        return (taken, "stores", 0) if store_a else (fall, "stores", 0)
    if meet[0] > meet[1]:
        return taken, "longer_side", meet[0] - meet[1]
    return fall, "longer_side", meet[1] - meet[0]


def _latch(sec, i):
    """Whether the instruction after ``i`` is an unconditional backward branch: then a conditional branch or
    call at ``i`` is the exit test of a loop (sm_80 code leaves loops by a CALL.REL.NOINC to a label)."""
    nxt = sec.ins[i + 1] if i + 1 < len(sec.ins) else None
    return (nxt is not None and nxt.base == "BRA" and nxt.guard in (None, "PT") and nxt.target is not None
            and sec.labels[nxt.target] <= i)


def walk(sec, entry=None, params=None, iterate=True, max_steps=200000):
    """The path one thread takes through the kernel ``sec`` (see the module docstring). ``iterate=False``: a
    thread with a single iteration, however the compiler laid the loop out: loops are left at their first exit
    test, and a predicated EXIT after the thread's first store exits (loops unrolled by two peel an odd trip)."""
    state = State(params or {})
    i = sec.labels.get(entry, 0) if entry else 0
    path, stack, back_taken, visits = [], [], set(), {}
    decisions, ambiguities, header, stored = Counter(), [], None, False
    while len(path) < max_steps:
        ins = sec.ins[i]
        visits.setdefault(i, []).append(len(path))
        path.append(i)
        g = state.guard(ins.guard)
        base = ins.base
        if base in ("EXIT", "BPT") or (base == "RET" and not stack):
            if g is True or (g is None and not iterate and stored):  # a single iteration done: no more work
                break
            if g is None:
                decisions["exit_not_taken"] += 1
            i += 1
            continue
        stored = stored or base in _STORES
        if base == "RET":
            i = i + 1 if g is False else stack.pop()
            continue
        if base not in ("BRA", "JMP", "CALL") or ins.target is None:
            execute(state, ins)
            i += 1
            continue
        t = sec.labels[ins.target]
        local = not ins.target.startswith("$")  # a label in the kernel, not a subroutine
        if g is None and _latch(sec, i):  # loop exit test: stay for one more iteration, then leave
            if iterate and i not in back_taken:
                back_taken.add(i)
                decisions["loop"] += 1
                i += 1
            else:
                i = t
            continue
        if base == "CALL" and not local:
            if g is not False:
                stack.append(i + 1)
                i = t
            else:
                i += 1
            continue
        if ".DIV" in ins.op:
            decisions["converged"] += 1
            i += 1
        elif g is True or g is False:
            if ins.guard not in (None, "PT"):
                decisions["constant"] += 1
            if g and t <= i:
                header = t if header is None else header
                if len(visits.get(t, ())) > 3:
                    raise RuntimeError(f"unbounded loop at {ins.addr:#x} in {sec.name}")
            i = t if g else i + 1
        elif t <= i:  # a loop: one more iteration, then out
            if iterate and i not in back_taken:
                back_taken.add(i)
                decisions["loop"] += 1
                header = t if header is None else header
                i = t
            else:
                i += 1
        else:
            i, why, amb = _choose(sec, t, i + 1)
            decisions[why] += 1
            if amb:
                ambiguities.append((len(path) - 1, amb))
    else:
        raise RuntimeError(f"path through {sec.name} longer than {max_steps} instructions")
    seen = visits.get(header, [])
    return Walk(path, (seen[0], seen[1]) if len(seen) >= 2 else None, decisions, ambiguities)


def class_counts(sec, indices):
    c = Counter(op_class(sec.ins[j].op) for j in indices)
    return {k: c.get(k, 0) for k in CLASSES}


def opcode_counts(sec, indices):
    return Counter(sec.ins[j].op.split(".")[0] for j in indices)


def difference_quotient(count_1, ept_1, count_2, ept_2):
    """Per-element cost from totals at two tile sizes: fixed costs (prologue, epilogue) cancel exactly when
    a total is ``fixed + ept * per_element``."""
    if ept_2 == ept_1:
        raise ValueError("the two tile sizes give the same elements per thread")
    if isinstance(count_1, dict):
        return {k: difference_quotient(count_1[k], ept_1, count_2[k], ept_2) for k in count_1}
    return (count_2 - count_1) / (ept_2 - ept_1)


# --- the throughput model -----------------------------------------------------------------------------------------

GPUS = {
    # per SM per clock, in thread-instructions (lanes); hbm in bytes/s
    "sm_90": {"name": "H100 SXM5", "sms": 132, "clock_hz": 1.98e9, "hbm": 3.35e12,
              "issue": 128, "fp32": 128, "imad": 64, "alu": 64, "xu": 16},
    "sm_80": {"name": "A100 SXM4 80GB", "sms": 108, "clock_hz": 1.41e9, "hbm": 2.039e12,
              "issue": 128, "fp32": 64, "imad": 64, "alu": 64, "xu": 16},
}
RESOURCES = ("issue", "fp32", "int", "mufu", "memory")


def model(per_class, bytes_per_element, arch, useful_fraction=1.0):
    """Modeled throughput from per-element instruction demand: each resource's rate over its demand, the
    minimum binding. ``fp32`` is the FMA pipe (FP32 arithmetic and integer multiply-add share it, and IMAD
    runs on its heavy half only); ``int`` the ALU pipe; ``mufu`` the XU pipe (MUFU and slow conversions)."""
    gpu = GPUS[arch]
    per_sm_clock = gpu["sms"] * gpu["clock_hz"]
    total = sum(per_class.values())
    fma = per_class["fp32"] + per_class["imad"]
    demand = {
        "issue": total / gpu["issue"],
        "fp32": max(fma / gpu["fp32"], per_class["imad"] / gpu["imad"]),
        "int": per_class["alu"] / gpu["alu"],
        "mufu": (per_class["mufu"] + per_class["conv"]) / gpu["xu"],
    }
    bounds = {k: (per_sm_clock / d if d > 0 else float("inf")) * useful_fraction for k, d in demand.items()}
    bounds["memory"] = gpu["hbm"] / bytes_per_element
    binding = min(RESOURCES, key=lambda k: bounds[k])
    rate = bounds[binding]
    return {"binding_resource": binding, "modeled_elements_per_s": rate,
            "modeled_hbm_fraction": rate * bytes_per_element / gpu["hbm"],
            "bounds_elements_per_s": {k: bounds[k] for k in RESOURCES}}


# --- tools: compilers, disassembler, resource usage ---------------------------------------------------------------

def _package_dirs(name):
    try:
        spec = importlib.util.find_spec(name)
    except (ImportError, ValueError):
        return []
    return list(spec.submodule_search_locations or []) if spec else []


def find_tool(name):
    """A CUDA binary utility: Triton's bundled copy first, then PATH, then $CUDA_HOME/bin."""
    for d in _package_dirs("triton"):
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
    wheels = [p for d in _package_dirs("nvidia") for p in sorted(Path(d).glob("*/lib/libnvrtc.so*"))]
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
        m = _SECTION.match(line)
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
        m = _INS.match(line)
        if m:
            lines.append(f"{next(ins, 0):>3}  /*{m.group(1)}*/ {m.group(2)} ;")
        elif line.strip():
            lines.append(f"     {line.strip()}")
    return "\n".join(lines) + "\n"
