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

The modules: parse (instruction classes, parsing), propagate (constant propagation), walk (the walk,
counts), tools (compilers, disassembler, annotation) and throughput (the throughput model).
"""
