"""The report of bench/gpu.py: a markdown table per case, and the results saved as JSON and markdown."""
import json


def fmt(x, spec):
    return "" if x is None else format(x, spec)


def fmt_size(n):
    if not n:
        return ""
    k = n.bit_length() - 1
    return f"2^{k}" if n == 1 << k else f"{n:,}"


def fmt_bytes(n):
    return "" if n is None else f"{n / 2**20:.1f} MiB"


def fmt_ok(ok):
    return {True: "ok", False: "**FAIL**", None: "-"}[ok]


def markdown(meta, rows):
    lines = [f"# gpuinit on {meta['device']}", ""]
    clocks = "; ".join(f"{c['when']}: {c.get('nvidia_smi')} (torch.cuda.clock_rate {c.get('torch_clock_rate_mhz')})"
                       for c in meta.get("clocks", []))
    hbm = meta.get("nominal_hbm_bytes_s")
    hbm = f"{hbm / 1e12:.2f} TB/s" if hbm else "unknown"
    state = "complete" if meta["complete"] else "incomplete: cases still to run"
    failed, skipped = sum(r["ok"] is False for r in rows), sum(r["ok"] is None for r in rows)
    lines += [f"- {meta['date']}; " + ", ".join(f"{k} {v}" for k, v in meta["versions"].items()),
              f"- nominal HBM bandwidth: {hbm}; SM clock (current, max): {clocks or 'n/a'}",
              f"- repeat {meta['repeat']}; sizes {[fmt_size(n) for n in meta['sizes']]}; "
              f"dtypes {meta['dtypes']}; {state}",
              f"- rows: {len(rows)}; failed: {failed}; skipped: {skipped}", ""]
    header = ("| kind | dtype | size | impl | G elem/s | % store ceiling | % HBM | ms | peak extra | ok | value "
              "| note |")
    for case in dict.fromkeys(r["case"] for r in rows):
        lines += [f"## {case}", "", header, "|---" * 12 + "|"]
        for r in (r for r in rows if r["case"] == case):
            rate = None if r["elements_per_s"] is None else r["elements_per_s"] / 1e9
            cells = [r["kind"] or "", r["dtype"] or "", fmt_size(r["size"]), r["impl"], fmt(rate, ".4g"),
                     fmt(r["pct_store_ceiling"], ".1f"), fmt(r["pct_hbm"], ".1f"), fmt(r["ms"], ".3f"),
                     fmt_bytes(r["peak_extra_bytes"]), fmt_ok(r["ok"]), fmt(r["value"], ""),
                     r["note"].replace("|", "/")]
            lines.append("| " + " | ".join(cells) + " |")
        lines.append("")
    return "\n".join(lines)


def save(out, slug, meta, rows):
    (out / f"gpu-{slug}.json").write_text(json.dumps({"meta": meta, "rows": rows}, indent=1) + "\n")
    (out / f"gpu-{slug}.md").write_text(markdown(meta, rows))
