"""``mode=outbox``: evidence counts per state; with ``+retry=true`` deliver what is pending now."""

from __future__ import annotations

from pathlib import Path

from omegaconf import DictConfig

from vizoflow.clock import SiteClock
from vizoflow.errors import ConfigError


def outbox_status(cfg: DictConfig) -> str:
    """Counts per state; with ``+retry=true`` also deliver what is pending now."""
    from vizoflow.nodes.evidence import build_courier
    from vizoflow.nodes.metrics import EvidenceLinker, MetricsCollector
    from vizoflow.outbox import Outbox

    path = Path(cfg.evidence.dir) / "outbox.sqlite"
    if not path.exists():
        raise ConfigError(f"no outbox at {path} (evidence.dir={cfg.evidence.dir})")
    outbox = Outbox(path)
    try:
        if cfg.get("retry", False):
            outbox.retry_failed()
            ev = cfg.evidence
            clock = SiteClock(cfg.timezone)
            build_courier(outbox, cfg.site_name, cfg.camera, ev.upload_url, ev.incident_url, ev.video_url_template,
                          path.parent, ev.attempts, ev.backoff, clock=clock).drain()
            reported = outbox.due(("reported",), now=float("inf"))
            target = next((i.event["metrics_path"] for i in reported if i.event.get("metrics_path")), None)
            collector = MetricsCollector(target, clock=clock) if target and Path(target).parent.is_dir() else None
            if collector is not None and collector.days():  # the linker finds each item's own metrics files
                EvidenceLinker(outbox, collector).link()
        lines = [f"outbox {path}: " + ", ".join(f"{state} {n}" for state, n in outbox.counts().items())]
        lines += [f"  {i.state:<12} {i.event_id} part {i.part}: {i.last_error}" for i in outbox.all() if i.last_error]
        return "\n".join(lines)
    finally:
        outbox.close()
