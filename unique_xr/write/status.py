"""``unique-xr cube status``: what a cube store holds and how far its job got, from the commits alone."""

from __future__ import annotations

import json
import os
from typing import Any

__all__ = ["cube_status", "status_record"]


def status_record(folder: str | os.PathLike) -> dict[str, Any]:
    """The store's job in figures: spec summary, units done / total, last commit, seconds per unit."""
    from unique_xr.write.store import CubeStore

    store = CubeStore.open(folder)
    history = store.history()
    latest = history[0]
    meta = dict(latest.metadata)
    spec = json.loads(meta.get("job_spec") or history[-1].metadata.get("job_spec") or "{}")
    units = [s for s in history if s.metadata.get("unit")]
    times = sorted(s.written_at for s in units)
    per_unit = None
    if len(times) > 1:
        per_unit = (times[-1] - times[0]).total_seconds() / (len(times) - 1)
    total = meta.get("units_total") or history[-1].metadata.get("units_total")
    return {
        "folder": str(folder), "job_token": meta.get("job_token"),
        "region": spec.get("bbox") or spec.get("bounds") or spec.get("geometry"), "crs": spec.get("crs"),
        "period": f"{spec.get('start')} .. {spec.get('end')}", "members": spec.get("members"),
        "units_done": len(meta.get("units_done", [])), "units_total": total,
        "last_commit": {"id": latest.id, "message": latest.message, "at": latest.written_at.isoformat()},
        "seconds_per_unit": round(per_unit, 2) if per_unit is not None else None,
        "commits": len(history),
    }


def cube_status(folder: str | os.PathLike) -> str:
    """:func:`status_record` as a few lines of text."""
    r = status_record(folder)
    done, total = r["units_done"], r["units_total"]
    state = "finished" if total and done >= total else "in progress or stopped (rerun the same spec to resume)"
    lines = [
        f"cube {r['folder']} (job {r['job_token']})",
        f"  region {r['region']} {r['crs'] or ''}, period {r['period']}, {r['members']} member(s)",
        f"  units {done}/{total}: {state}",
        f"  last commit {r['last_commit']['id']} at {r['last_commit']['at']}: {r['last_commit']['message']}",
        f"  time per unit {r['seconds_per_unit']} s (between unit commits)" if r["seconds_per_unit"] is not None
        else "  time per unit: not known yet (fewer than two units committed)",
    ]
    return "\n".join(lines)
