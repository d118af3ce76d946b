"""SASS as data for the walk: instruction classes, and the parser of ``nvdisasm -c`` output."""
import re
from dataclasses import dataclass, field

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


SECTION_LINE = re.compile(r"^//-+\s+\.text\.(\S+)\s+-+")
_LABEL = re.compile(r"^\s*([.$\w][\w.$]*):\s*$")
INS_LINE = re.compile(r"^\s*/\*([0-9a-f]{4,})\*/\s+(.*?)\s*;\s*(?:/\*.*)?$")
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
        m = SECTION_LINE.match(line)
        if m:
            sec = sections.setdefault(m.group(1), Section(m.group(1)))
            continue
        if sec is None:
            continue
        m = _LABEL.match(line)
        if m:
            sec.labels[m.group(1)] = len(sec.ins)
            continue
        m = INS_LINE.match(line)
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
