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

The pieces: bench/sass_parse.py (instruction classes, parsing), bench/sass_exec.py (constant propagation),
bench/sass_walk.py (the walk, counts), bench/sass_tools.py (compilers, disassembler); this module holds the
throughput model and is the one to import (its siblings are imported from bench/ on sys.path).
"""
from sass_parse import CLASSES, Ins, Section, op_class, parse_sass, split_operands
from sass_tools import (
    _package_dirs,
    annotate,
    compile_nvcc,
    compile_nvrtc,
    disassemble,
    find_tool,
    kernel_param_layout,
    nvcc_version,
    nvrtc_version,
    resource_usage,
    section_lines,
)
from sass_walk import Walk, class_counts, difference_quotient, opcode_counts, walk

__all__ = ["CLASSES", "GPUS", "RESOURCES", "Ins", "Section", "Walk", "_package_dirs", "annotate", "class_counts",
           "compile_nvcc", "compile_nvrtc", "difference_quotient", "disassemble", "find_tool", "kernel_param_layout",
           "model", "nvcc_version", "nvrtc_version", "op_class", "opcode_counts", "parse_sass", "resource_usage",
           "section_lines", "split_operands", "walk"]

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
