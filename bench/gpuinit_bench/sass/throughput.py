"""The throughput model: the elements per second a kernel's per-element instruction demand (walk.py's counts)
allows on the GPUs of GPUS."""

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
