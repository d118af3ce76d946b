"""The path one thread takes through a kernel (the rules: the package's docstring), and its instruction counts."""
from collections import Counter
from dataclasses import dataclass

from .parse import CLASSES, op_class
from .propagate import State, execute

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
