"""What bench/gpu.py records of the device: its name, nominal memory bandwidth, properties and the versions
of the software it runs."""
import platform
import subprocess

import torch

import gpuinit

HBM_BYTES_S = (("H200", 4.8e12), ("H100 PCIe", 2.0e12), ("H100 NVL", 3.9e12), ("H100", 3.35e12))  # nominal


def nominal_hbm(name):
    """Nominal memory bandwidth (bytes/s) of a known device name, else None."""
    return next((bw for key, bw in HBM_BYTES_S if key in name), None)


def device_name(device):
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"{platform.processor() or 'cpu'} (interpreter)"


def versions():
    out = {"python": platform.python_version(), "torch": torch.__version__, "gpuinit": gpuinit.__version__,
           "cuda": torch.version.cuda}
    for name in ("triton", "cupy"):
        try:
            out[name] = __import__(name).__version__
        except Exception as e:  # noqa: BLE001 - cupy may fail to import without a GPU
            out[name] = f"unavailable: {type(e).__name__}"
    return out


def device_meta(device):
    if device.type != "cuda":
        return {}
    props = torch.cuda.get_device_properties(device)
    meta = {"memory_bytes": props.total_memory, "sm_count": props.multi_processor_count,
            "capability": f"{props.major}.{props.minor}"}
    try:
        r = subprocess.run(["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"], capture_output=True,
                           text=True, timeout=20, check=True)
        meta["driver"] = r.stdout.strip().splitlines()[0]
    except (OSError, subprocess.SubprocessError, IndexError):
        meta["driver"] = None
    return meta
