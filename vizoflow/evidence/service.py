"""The site's evidence service: the one owner of the evidence folder and its outbox."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from vizoflow.cameras import camera_names
from vizoflow.clock import SiteClock
from vizoflow.evidence.clips import ClipCutter, ClipSettings
from vizoflow.evidence.courier import Courier, DeliveryWorker, build_courier
from vizoflow.evidence.disk import DiskGuard
from vizoflow.evidence.linker import EvidenceLinker
from vizoflow.evidence.outbox import Outbox
from vizoflow.evidence.recorder import ClipRecorder
from vizoflow.evidence.retention import Retention

log = logging.getLogger(__name__)
OUTBOX_NAME = "outbox.sqlite"


class Evidence:
    """Clips, their outbox, delivery, linking and retention, for one site in one process.

    :func:`~vizoflow.pipeline.run_pipeline` starts it beside the status server and hands it to the graph nodes
    that ask for it (``uses: [evidence]``): each camera's clip node gets its
    :class:`ClipCutter` from :meth:`clips`, the analytics sink its :class:`EvidenceLinker`
    from :meth:`linker`. It alone opens the outbox, so the folder's free space is read
    once (not once per camera), clip numbers are unique across cameras, and closing
    happens in one order: clips finished and recorded, then the last delivery, then
    the outbox closed.

    Args:
        directory: The evidence folder (clips, ``outbox.sqlite``, ``incidents.jsonl``).
        site: Site name in incident payloads.
        upload_url: Upload endpoint; None keeps clips local (``file://`` URLs).
        incident_url: Incident endpoint; None writes ``incidents.jsonl`` in ``directory``.
        video_url_template: Public URL of an uploaded file, with ``{filename}``.
        mode, pre_roll, post_roll, max_seconds, buffer_seconds: How clips are cut (:class:`ClipSettings`).
        attempts: HTTP tries per request.
        backoff: First delay between tries (doubling).
        drain_seconds: At the end, how long to keep delivering before leaving the rest for next time.
        min_free_mb: Below this free space in ``directory`` no new clip is started (analysis goes on).
        retention: ``{max_age_hours, max_total_gb, interval_seconds}`` (see
            :mod:`vizoflow.evidence.retention`); None keeps every clip.
        timezone: The site's IANA time zone (clip names, incident ids, ``upload_timestamp``).
        deliver: False: clips are recorded but not delivered by this process (a replay
            of the track cache cuts no clips and delivers none, as before).
        poll_seconds: How often the delivery worker looks for due items.
        timeout_base, timeout_per_mb: Upload timeout, by clip size.
        camera: Camera name in incident payloads; None: each event's own camera.
        fps, jpeg_quality, queue_size: Nominal clip frame rate, quality of the buffered
            frames, frames waiting per camera (:class:`ClipSettings`).
    """

    def __init__(self, directory: str | Path, site: str = "default", upload_url: str | None = None,
                 incident_url: str | None = None, video_url_template: str = "{filename}", mode: str = "event",
                 pre_roll: float = 10.0, post_roll: float = 5.0, max_seconds: float = 120.0,
                 buffer_seconds: float = 45.0, attempts: int = 3, backoff: float = 1.0, drain_seconds: float = 30.0,
                 min_free_mb: float = 1024.0, retention: Mapping[str, Any] | None = None, timezone: str = "UTC",
                 deliver: bool = True, poll_seconds: float = 1.0, timeout_base: float = 10.0,
                 timeout_per_mb: float = 5.0, camera: str | None = None, fps: float = 25.0, jpeg_quality: int = 90,
                 queue_size: int = 64) -> None:
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.settings = ClipSettings(mode, pre_roll, post_roll, max_seconds, buffer_seconds, fps, jpeg_quality,
                                     queue_size)
        self.timezone = timezone
        retention = dict(retention or {})
        interval = float(retention.pop("interval_seconds", None) or 300.0)
        self.outbox = Outbox(self.directory / OUTBOX_NAME)
        try:
            self.retention = Retention(self.outbox, self.directory, **retention)
            self.disk = DiskGuard(self.directory, min_free_mb)
            self.recorder = ClipRecorder(self.outbox, self.directory, clip_per_event=mode == "event")
            self.courier: Courier = build_courier(self.outbox, site, camera, upload_url, incident_url,
                                                  video_url_template, self.directory, attempts, backoff,
                                                  timeout_base, timeout_per_mb, SiteClock(timezone))
        except BaseException:
            self.outbox.close()
            raise
        self.worker = DeliveryWorker(self.courier, self.retention, interval, poll_seconds, drain_seconds) \
            if deliver else None
        self._cutters: list[ClipCutter] = []
        self._finished = self._closed = False

    @classmethod
    def from_config(cls, cfg: DictConfig, deliver: bool = True) -> Evidence:
        """The service of a composed config: its ``evidence:`` section (``dir`` is the folder)."""
        settings = OmegaConf.to_container(cfg.evidence, resolve=True)
        assert isinstance(settings, dict)
        camera = None if camera_names(cfg) else cfg.camera  # several cameras: each event's own
        return cls(settings.pop("dir"), site=cfg.site_name, timezone=cfg.timezone, deliver=deliver, camera=camera,
                   **settings)

    @property
    def outbox_path(self) -> Path:
        """``outbox.sqlite`` in the evidence folder."""
        return self.outbox.path

    def clips(self, metrics_path: str | None = None) -> ClipCutter:
        """A new clip cutter for one camera (the service finishes it at :meth:`finish_delivery`)."""
        cutter = ClipCutter(self.directory, self.settings, self.recorder, self.disk, metrics_path, self.timezone)
        self._cutters.append(cutter)
        return cutter

    def linker(self, collector: Any) -> EvidenceLinker:
        """Links delivered evidence into ``collector``'s analytics file (the analytics sink's)."""
        return EvidenceLinker(self.outbox, collector)

    def status(self) -> dict[str, float]:
        """The evidence disk (once, however many cameras), recordings waiting, the delivery backlog."""
        values = {**self.disk.status(), **self.recorder.status()}
        if self.worker is not None:
            values.update(self.worker.status())
        return values

    def finish_delivery(self) -> None:
        """Finish every camera's clips, then deliver what is due for up to ``drain_seconds``.

        The analytics sink calls this before its last linking, so evidence delivered at
        the end lands in this run's file; :meth:`close` calls it too. Idempotent.
        """
        if self._finished:
            return
        self._finished = True
        for cutter in self._cutters:
            cutter.close()
        self.recorder.retry(force=True, last=True)  # every camera's clips are finished: the last try
        if self.worker is not None:
            self.worker.finish()

    def close(self) -> None:
        """Finish delivery, then close the outbox (idempotent)."""
        if self._closed:
            return
        self._closed = True
        try:
            self.finish_delivery()
        finally:
            self.courier.close()
            self.outbox.close()

    def __enter__(self) -> Evidence:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
