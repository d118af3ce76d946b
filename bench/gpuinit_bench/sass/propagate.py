"""Constant propagation over SASS for the path walk (walk.py): the values of known kernel arguments
and what follows from them, so that branches on them go where those values send them."""
import re

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
