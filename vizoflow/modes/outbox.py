"""``mode=outbox``: evidence counts per state; with ``+retry=true`` deliver what is pending now."""

from __future__ import annotations

from pathlib import Path

from omegaconf import DictConfig

from vizoflow.errors import ConfigError


def outbox_status(cfg: DictConfig) -> str:
    """Counts per state; with ``+retry=true`` also deliver what is pending now and link it."""
    from vizoflow.analytics.dayfile import AnalyticsFile
    from vizoflow.evidence import Evidence
    from vizoflow.evidence.service import OUTBOX_NAME

    path = Path(cfg.evidence.dir) / OUTBOX_NAME
    if not path.exists():
        raise ConfigError(f"no outbox at {path} (evidence.dir={cfg.evidence.dir})")
    with Evidence.from_config(cfg, deliver=False) as evidence:
        outbox = evidence.outbox
        if cfg.get("retry", False):
            outbox.retry_failed()
            evidence.courier.drain()
            reported = outbox.due(("reported",), now=float("inf"))
            target = next((i.event["metrics_path"] for i in reported if i.event.get("metrics_path")), None)
            collector = (AnalyticsFile(target, clock=evidence.courier.clock)
                         if target and Path(target).parent.is_dir() else None)
            if collector is not None and collector.days():  # the linker finds each item's own metrics files
                evidence.linker(collector).link()
        lines = [f"outbox {path}: " + ", ".join(f"{state} {n}" for state, n in outbox.counts().items())]
        lines += [f"  {i.state:<12} {i.event_id} part {i.part}: {i.last_error}" for i in outbox.all() if i.last_error]
        return "\n".join(lines)
