"""Detector cost: a bare predict loop against the same detector inside the pipeline.

The issue: detection cost 27-29 ms/frame inside the demo pipeline but about 20 ms in a
bare ``predict`` loop over the same frames. On this shared, noisy 2-core machine such
a difference can only be seen side by side, so everything here runs in ONE process
and interleaved: each repetition runs every row once, in an order that rotates between
repetitions; tables show medians, ratios taken within a repetition, their spread, and
``others``, the share of the two cores other processes took while a row ran (0% is
a quiet machine; /proc/stat, steal included).

Part 1, the detector in the pipeline (demo clip, ``+site=demo``, the same
YoloDetector instance everywhere):

* ``bare`` rows: ``predict`` over frames decoded into memory beforehand (no decode
  cost), 1 frame per call (the issue's loop) or 4 (what ``runtime.batch_size: 4`` hands
  the detect node); ``plain YOLO`` is ``YOLO(path).predict`` with OpenVINO's own
  settings, as the models README loads it: on a CPU with bf16 that runs bf16 while
  vizoflow pins f32 (the precision each runs in is printed first).
* ``pipe`` rows: the detect node's ms/frame from the Runtime's RunStats, detect alone
  from the file source (its decode thread), and the whole demo graph as
  ``python -m vizoflow +site=demo`` runs it (tracker, rules, preview, ...); the other
  ``demo + ...`` rows apply one candidate change each, monkeypatched here (vizoflow is
  not edited). Every pipeline row also runs the bare loop *inside* the run, on the same
  images right after each batch's detect (:class:`BareAfterDetect`): ``in-run`` ratios
  compare pipeline and bare half a second apart, not minutes apart, and are the
  steadier numbers here. Rows also show Ultralytics' preprocess / inference /
  postprocess split of detect and the CPU the decode threads used per frame.
* Part 1b, one suspected cause at a time, as A/B in alternating blocks of 8 frames
  (ABBA order): 4 frames per call, frames from the file source (decode thread on),
  decode with 1 FFmpeg thread instead of vizoflow's AUTO, the DeepSORT embedder
  (OpenVINO, its own thread pool) running between detector calls.

Part 2, one detector shared by several cameras, k = 1, 2, 4 frames per call, frames/s
end to end with Ultralytics' own pre- and postprocessing in every option:

* (a) ``predict`` on the list (sync, LATENCY hint, one graph run per image; the IR is
  batch 1); (a') the same through the manual path of (b), with sync inference;
* (b) THROUGHPUT hint with 2 streams, the k letterboxed images in flight at once,
  through ``AsyncInferQueue`` and through ``start_async`` on one InferRequest per
  stream; every wait has a timeout (ultralytics issue 25923: AsyncInferQueue can hang);
* (c) ``predict`` with LATENCY and ``INFERENCE_NUM_THREADS`` 1, or 2 without CPU pinning.

Boxes of every option are compared with (a): max abs difference in pixels, and frames
whose box count differs.

    python bench/detector.py [--frames 96] [--pipe-frames 48] [--reps 3] [--pairs 8]
                             [--shared-frames 40] [--shared-reps 2] [--part 1|2|all]
                             [--variants "pipe demo/file;demo + x264 1 thread"]

About 5-6 minutes with the defaults on this machine (detection ~55 ms/frame here).
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import itertools
import os
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

os.environ.setdefault("YOLO_OFFLINE", "1")
BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
sys.path[:0] = [str(ROOT), str(BENCH)]  # run as `python bench/detector.py` from anywhere

import numpy as np  # noqa: E402
from hydra import compose, initialize_config_dir  # noqa: E402
from hydra.utils import instantiate  # noqa: E402
from omegaconf import DictConfig  # noqa: E402

from vizoflow.cli import CONF_DIR  # noqa: E402
from vizoflow.frame import Frame  # noqa: E402
from vizoflow.graph import build_nodes  # noqa: E402
from vizoflow.runner import build_source  # noqa: E402
from vizoflow.runtime import Runtime  # noqa: E402

VIDEO = ROOT.parent / "shared" / "footage" / "ucf-checkout" / "video.mp4"
TIMEOUT_S = 20.0  # per async wait: far above one inference, far below "hung"


# --------------------------------------------------------------------------- measuring


def _busy_jiffies() -> int:
    """Busy CPU time of the whole machine (all processes), in clock ticks."""
    user, nice, system, _idle, _iowait, irq, softirq, steal, *_ = map(int, Path("/proc/stat").read_text().split()[1:11])
    return user + nice + system + irq + softirq + steal


def _own_jiffies() -> int:
    """CPU time of this process (all its threads), in clock ticks."""
    fields = Path("/proc/self/stat").read_text().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])


@dataclass
class Sample:
    """One variant, one repetition."""

    ms_per_frame: float
    split: tuple[float, float, float] | None = None  # Ultralytics pre / inference / post, ms per image
    others: float = 0.0  # other processes' CPU share of the machine during the run
    note: str = ""
    cpu: dict[str, float] = field(default_factory=dict)  # ms of CPU per frame by thread group
    bare: float | None = None  # pipeline rows: the in-run bare loop's ms/frame (BareAfterDetect)


@contextlib.contextmanager
def others_load(out: dict[str, float]) -> Iterator[None]:
    """Measure the share of both cores that *other* processes used meanwhile (into ``out['others']``).

    The machine is shared: a test run elsewhere during one variant and not another would
    read as a difference between variants; this number shows when that happened.
    """
    ticks = os.sysconf("SC_CLK_TCK")
    cores = os.cpu_count() or 1
    busy0, own0, t0 = _busy_jiffies(), _own_jiffies(), time.perf_counter()
    yield
    wall = time.perf_counter() - t0
    foreign = (_busy_jiffies() - busy0) - (_own_jiffies() - own0)
    out["others"] = max(0.0, foreign / ticks / (wall * cores))


def thread_cpu() -> dict[int, tuple[str, float]]:
    """CPU seconds so far of every live thread of this process, with the group it belongs to.

    Groups: ``main`` (the pipeline's own thread), ``decode`` (vizoflow's decode thread),
    ``ffmpeg`` (FFmpeg's decoder threads, named ``av:...``), ``py`` (other Python
    threads), ``native`` (unnamed native threads: OpenVINO's TBB workers, x264's threads).
    """
    python = {t.native_id: t.name for t in threading.enumerate()}
    main = threading.main_thread().native_id
    out = {}
    for entry in Path("/proc/self/task").iterdir():
        try:
            comm = (entry / "comm").read_text().strip()
            seconds = int((entry / "schedstat").read_text().split()[0]) / 1e9
        except (OSError, ValueError):
            continue  # the thread ended meanwhile
        tid = int(entry.name)
        if tid == main:
            group = "main"
        elif tid in python:
            group = "decode" if python[tid] == "vizoflow-decode" else "py"
        else:
            group = "ffmpeg" if comm.startswith("av:") else "native"
        out[tid] = (group, seconds)
    return out


def cpu_per_frame(before: dict[int, tuple[str, float]], after: dict[int, tuple[str, float]],
                  frames: int) -> dict[str, float]:
    """ms of CPU per frame by thread group between two :func:`thread_cpu` snapshots."""
    groups: dict[str, float] = {}
    for tid, (group, seconds) in after.items():
        groups[group] = groups.get(group, 0.0) + seconds - before.get(tid, (group, 0.0))[1]
    return {g: 1000 * v / frames for g, v in groups.items()}


class SpeedProbe:
    """Sums Ultralytics' per-image preprocess / inference / postprocess times of a detector's calls.

    Wraps the YOLO object's ``predict`` for the duration of a run, so the detect node
    itself runs unchanged.
    """

    def __init__(self, detector: Any) -> None:
        self.detector = detector
        self.sums = np.zeros(3)
        self.images = 0

    def __enter__(self) -> SpeedProbe:
        model = self.detector._model
        original = type(model).predict.__get__(model)

        def predict(source: Any, **kwargs: Any) -> Any:
            results = original(source, **kwargs)
            for r in results:
                self.sums += (r.speed["preprocess"], r.speed["inference"], r.speed["postprocess"])
            self.images += len(results)
            return results

        model.predict = predict
        return self

    def __exit__(self, *exc: object) -> None:
        del self.detector._model.predict  # back to the class's method

    @property
    def split(self) -> tuple[float, float, float] | None:
        """Mean ms per image of each stage, None before any call."""
        return tuple(float(x) for x in self.sums / self.images) if self.images else None  # type: ignore[return-value]


# --------------------------------------------------------------------------- patches (the candidate fixes)


@contextlib.contextmanager
def openvino_config(extra: dict[str, Any]) -> Iterator[None]:
    """Every OpenVINO model compiled inside gets ``extra`` properties on top of its own.

    Properties such as INFERENCE_NUM_THREADS or ENABLE_CPU_PINNING are fixed at compile
    time, so the detector / tracker is *built* inside this block. Ultralytics keeps a
    partial of the bound method, so its later recompiles keep them too.
    """
    import openvino as ov

    original = ov.Core.compile_model
    if not extra:
        yield
        return

    @functools.wraps(original)
    def compile_model(self: Any, model: Any, device_name: str | None = None, config: dict | None = None,
                      **kwargs: Any) -> Any:
        return original(self, model, device_name, {**(config or {}), **extra}, **kwargs)

    ov.Core.compile_model = compile_model
    try:
        yield
    finally:
        ov.Core.compile_model = original


def decode_with(thread_type: str, thread_count: int) -> Callable[..., Iterator[tuple[int, float, np.ndarray]]]:
    """:func:`vizoflow.video.decode` with other FFmpeg decoder threading (the candidate fix for video.py).

    vizoflow sets ``thread_type = "AUTO"`` and leaves ``thread_count`` at 0 (FFmpeg: one
    frame thread per core plus one, 3 here): threads that decode while the detector
    runs. Same frames and timestamps; the truncation checks of the original are left out.
    """
    import av

    def decode(path: Path, expected_frames: int | None = None) -> Iterator[tuple[int, float, np.ndarray]]:
        with av.open(str(path)) as container:
            stream = container.streams.video[0]
            stream.thread_type = thread_type
            stream.thread_count = thread_count
            fps = float(stream.average_rate or stream.guessed_rate or 25)
            first: float | None = None
            for index, frame in enumerate(container.decode(stream)):
                t = frame.time if frame.time is not None else index / fps
                first = t if first is None else first
                yield index, t - first, frame.to_ndarray(format="bgr24")

    return decode


def source_with_decode(path: str, decode: tuple[str, int]) -> Any:
    """vizoflow's file source, decoding with other FFmpeg threading (see :func:`decode_with`)."""
    from vizoflow.nodes.sources import VideoFileSource

    class Source(VideoFileSource):
        def _frames(self) -> Iterator[Frame]:
            for info in self.videos:
                for index, seconds, image in decode_with(*decode)(info.path, info.frames):
                    if index % self.stride == 0:
                        yield Frame(video=info.path.stem, index=index, timestamp=seconds, image=image,
                                    epoch=info.epoch)

    return Source(path)


def predict_per_frame(detector: Any, frames: list[Frame]) -> list[Frame]:
    """``YoloDetector.process_batch`` with one ``predict`` call per frame (the candidate fix for detect.py).

    The IR has a static batch of 1, so Ultralytics runs the graph once per image anyway;
    a list only makes its preprocessing stack the k letterboxed 640x640 images into one
    float tensor first (4.9 MB each), which no longer fits in cache.
    """
    import supervision as sv

    from vizoflow.nodes.detect import PERSON

    for frame in frames:
        detections = sv.Detections.from_ultralytics(detector._model.predict(frame.image, **detector._args)[0])
        frame.detections = detections[detections.class_id == PERSON]
    return frames


def x264_with(threads: int) -> Callable[..., None]:
    """``H264Writer._open`` with ``threads`` x264 threads (default: auto, 1.5 per core plus lookahead).

    x264's frame threads encode after ``write`` returns, i.e. while the next frames are
    detected; one thread encodes inside ``write``, in the preview node's own time.
    """
    from vizoflow.video import H264Writer

    original = H264Writer._open

    def _open(self: Any, width: int, height: int) -> None:
        original(self, width, height)
        self._stream.thread_count = threads

    return _open


@contextlib.contextmanager
def patched(obj: Any, name: str, value: Any) -> Iterator[None]:
    """Set ``obj.name = value`` for the block (an instance falls back to its class's attribute after)."""
    own = name in vars(obj)
    original = getattr(obj, name)
    setattr(obj, name, value)
    try:
        yield
    finally:
        if own:
            setattr(obj, name, original)
        else:
            delattr(obj, name)


# --------------------------------------------------------------------------- part 1: the detector in the pipeline


def demo_cfg(out: Path, overrides: list[str] | tuple[str, ...] = ()) -> DictConfig:
    """The demo site's config, as ``python -m vizoflow +site=demo`` composes it, writing into ``out``."""
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        return compose("config", overrides=["+site=demo", f"source.path={VIDEO}", f"output_dir={out}",
                                            f"evidence.dir={out}/segments", "runtime.progress=false", *overrides])


def decode_frames(n: int) -> list[Frame]:
    """The clip's first ``n`` frames, decoded once into memory."""
    from vizoflow.video import decode

    frames = []
    with contextlib.closing(decode(VIDEO)) as decoded:
        for index, seconds, image in decoded:
            frames.append(Frame(video=VIDEO.stem, index=index, timestamp=seconds, image=image))
            if len(frames) == n:
                break
    return frames


class MemorySource:
    """Pre-decoded frames as a pipeline source: the pipeline without any decoding.

    ``on_end`` is called after the last frame, before the runtime finishes the nodes
    (the evidence clips are encoded then, after all detection).
    """

    def __init__(self, frames: list[Frame], on_end: Callable[[], None] = lambda: None) -> None:
        self.frames, self.on_end = frames, on_end

    def __iter__(self) -> Iterator[Frame]:
        for f in self.frames:  # fresh frames: nodes write their results into them
            yield Frame(video=f.video, index=f.index, timestamp=f.timestamp, image=f.image, epoch=f.epoch)
        self.on_end()

    def close(self) -> None:
        """Nothing to stop."""


class FirstFrames:
    """The first ``n`` frames of a real source (the file source, decode thread and all).

    ``on_end`` is called after the last frame, while the decode threads still live.
    """

    def __init__(self, source: Any, n: int, on_end: Callable[[], None] = lambda: None) -> None:
        self.source, self.n, self.on_end = source, n, on_end

    def __iter__(self) -> Iterator[Frame]:
        frames = iter(self.source)
        try:
            yield from itertools.islice(frames, self.n)
            self.on_end()
        finally:
            frames.close()  # type: ignore[attr-defined]  # stops the decode thread

    def close(self) -> None:
        """Stop the source."""
        self.source.close()


@dataclass(frozen=True)
class PipeSetup:
    """One way of running the detector inside the pipeline.

    Attributes:
        graph: ``detect`` (the detect node alone), ``track`` (detect and the DeepSORT
            tracker) or ``demo`` (every node of the demo site, as ``python -m vizoflow`` runs it).
        source: ``memory`` (pre-decoded frames) or ``file`` (vizoflow's file source).
        detector: Which detector instance (see :data:`DETECTOR_CONFIGS`).
        embedder: Extra OpenVINO properties for the tracker's embedder.
        decode: ``(thread_type, thread_count)`` for the file decoder; None: vizoflow's own.
        overrides: More config overrides (``runtime.batch_size=1``).
        per_frame: The detector calls ``predict`` once per frame of a batch (:func:`predict_per_frame`).
        x264_threads: Encoder threads of the preview / evidence writers; None: x264's own (auto).
    """

    graph: str
    source: str
    detector: str = "default"
    embedder: tuple[tuple[str, Any], ...] = ()
    decode: tuple[str, int] | None = None
    overrides: tuple[str, ...] = ()
    per_frame: bool = False
    x264_threads: int | None = None


# The detector instances compared: extra OpenVINO properties on top of vizoflow's own.
DETECTOR_CONFIGS: dict[str, dict[str, Any]] = {
    "default": {},
    "1 thread": {"INFERENCE_NUM_THREADS": 1},
    "no pinning": {"ENABLE_CPU_PINNING": False},
}


def build_detectors(names: set[str]) -> dict[str, Any]:
    """One YoloDetector per needed entry of :data:`DETECTOR_CONFIGS`, built as the demo builds it."""
    cfg = demo_cfg(Path(tempfile.gettempdir()))
    detectors = {}
    for name in sorted(names):
        with openvino_config(DETECTOR_CONFIGS[name]):
            detectors[name] = instantiate(cfg.detector, _convert_="all")
    return detectors


def plain_yolo(model_path: str) -> Any:
    """The README's plain loop: ``YOLO(path).predict``, OpenVINO's own settings (no precision pinned).

    On a CPU with bf16 OpenVINO then runs bf16 where vizoflow's detector runs f32: a
    bare loop timed this way is not the same computation as the pipeline's.
    """
    from types import SimpleNamespace

    from ultralytics import YOLO

    plain = SimpleNamespace(_model=YOLO(model_path, task="detect"),
                            _args={"imgsz": 640, "conf": 0.25, "classes": [0], "verbose": False})
    plain._model.predict(np.zeros((640, 640, 3), dtype=np.uint8), **plain._args)  # compiles the model
    return plain


def precision_of(detector: Any) -> str:
    """The precision OpenVINO really runs a detector's model in (``f32``, ``bf16``)."""
    from vizoflow.inference import compiled_precision

    return compiled_precision(detector._model.predictor.model.backend.ov_compiled_model)


def run_bare(detector: Any, images: list[np.ndarray], k: int) -> Sample:
    """The issue's bare loop: ``predict`` over in-memory frames, ``k`` per call."""
    load: dict[str, float] = {}
    before = thread_cpu()
    with SpeedProbe(detector) as probe, others_load(load):
        t0 = time.perf_counter()
        for i in range(0, len(images), k):
            detector._model.predict(images[i:i + k], **detector._args)
        seconds = time.perf_counter() - t0
    return Sample(1000 * seconds / len(images), probe.split, load["others"],
                  cpu=cpu_per_frame(before, thread_cpu(), len(images)))


class BareAfterDetect:
    """A node right after ``detect`` that runs the bare loop on the same images: the in-run reference.

    Whole runs several seconds apart see different load on this shared machine (even
    when no other process shows in /proc/stat); this node runs a bare ``predict`` loop,
    one frame per call, after each batch's detect, on the very images detect just had.
    By then the decode thread has refilled its queue and sleeps, and no other node
    runs, so it times the detector alone, interleaved with the pipeline every half
    second or so. Its calls bypass :class:`SpeedProbe`.
    """

    def __init__(self, detector: Any) -> None:
        self.detector = detector

    def process_batch(self, frames: list[Frame]) -> list[Frame]:
        model = self.detector._model
        for frame in frames:
            type(model).predict(model, frame.image, **self.detector._args)
        return frames

    def process(self, frame: Frame) -> Frame:
        return self.process_batch([frame])[0]


def run_pipe(setup: PipeSetup, frames: list[Frame], n: int, detectors: dict[str, Any]) -> Sample:
    """The detect node's ms/frame over ``n`` frames of the pipeline described by ``setup``."""
    import shutil

    import vizoflow.nodes.sources as sources
    from vizoflow import video

    out = Path(tempfile.mkdtemp(prefix="vizo-bench-detector-"))
    try:
        cfg = demo_cfg(out, setup.overrides)
        keep = {"detect": set(), "track": {"track"}, "demo": set(cfg.graph) - {"detect"}}[setup.graph]
        for name in list(cfg.graph):
            if name not in keep:  # detect too: the shared instance below is used, not a new one
                cfg.graph[name] = None
        with openvino_config(dict(setup.embedder)):
            nodes = build_nodes(cfg.graph)
        detector = detectors[setup.detector]
        nodes = [("detect", detector), ("bare", BareAfterDetect(detector)), *nodes]
        snapshots = [thread_cpu()]
        end = lambda: snapshots.append(thread_cpu())  # noqa: E731
        source = MemorySource(frames[:n], end) if setup.source == "memory" else FirstFrames(build_source(cfg), n, end)
        load: dict[str, float] = {}
        with contextlib.ExitStack() as stack:
            if setup.decode is not None:
                stack.enter_context(patched(sources, "decode", decode_with(*setup.decode)))
            if setup.per_frame:
                stack.enter_context(patched(detector, "process_batch", functools.partial(predict_per_frame, detector)))
            if setup.x264_threads is not None:
                stack.enter_context(patched(video.H264Writer, "_open", x264_with(setup.x264_threads)))
            probe = stack.enter_context(SpeedProbe(detector))
            stack.enter_context(others_load(load))
            stats = Runtime(source, nodes, batch_size=cfg.runtime.batch_size, progress=False).run()
        ms = {k: 1000 * v / stats.frames for k, v in stats.node_seconds.items()}
        note = f"track {ms['track']:.0f} ms" if "track" in ms else ""
        return Sample(ms["detect"], probe.split, load["others"], note, cpu_per_frame(*snapshots[:2], stats.frames),
                      bare=ms["bare"])
    finally:
        shutil.rmtree(out, ignore_errors=True)


# name -> (kind, what): kind "bare" takes frames per call, "pipe" a PipeSetup.
DEMO = PipeSetup("demo", "file")
VARIANTS: dict[str, tuple[str, Any]] = {
    "bare k=1": ("bare", 1),
    "bare k=4": ("bare", 4),
    "bare k=1, plain YOLO": ("plain", 1),
    "pipe detect/memory": ("pipe", PipeSetup("detect", "memory")),
    "pipe detect/file": ("pipe", PipeSetup("detect", "file")),
    "pipe detect+track/memory": ("pipe", PipeSetup("track", "memory")),
    "pipe detect+track/file": ("pipe", PipeSetup("track", "file")),
    "pipe demo/file": ("pipe", DEMO),
    "demo + predict per frame": ("pipe", replace(DEMO, per_frame=True)),
    "demo + decode 1 thread": ("pipe", replace(DEMO, decode=("NONE", 1))),
    "demo + batch_size 1": ("pipe", replace(DEMO, overrides=("runtime.batch_size=1",))),
    "demo + x264 1 thread": ("pipe", replace(DEMO, x264_threads=1)),
    "demo + det 1 thread": ("pipe", replace(DEMO, detector="1 thread")),
    "demo + det no pinning": ("pipe", replace(DEMO, detector="no pinning")),
    "demo + emb 1 thread": ("pipe", replace(DEMO, embedder=(("INFERENCE_NUM_THREADS", 1),))),
    "demo + emb no pinning": ("pipe", replace(DEMO, embedder=(("ENABLE_CPU_PINNING", False),))),
    "demo + per frame + decode 1": ("pipe", replace(DEMO, per_frame=True, decode=("NONE", 1))),
    "demo + per frame + decode 1 + x264 1": ("pipe", replace(DEMO, per_frame=True, decode=("NONE", 1),
                                                              x264_threads=1)),
}
REFERENCE = "bare k=1"  # every ratio is to this row of the same repetition
DEFAULT_VARIANTS = ["bare k=4", "bare k=1, plain YOLO", "pipe detect/file", "pipe demo/file", "demo + predict per frame",
                    "demo + per frame + decode 1"]




# --------------------------------------------------------------------------- part 1b: causes, A/B in alternating blocks


def ab_blocks(a: Callable[[int], float], b: Callable[[int], float], pairs: int) -> tuple[float, float, list[float]]:
    """Run ``a`` and ``b`` in alternating blocks (ABBA order, so drift cancels); each returns ms/frame.

    Blocks of a few frames make both sides see the same load from elsewhere, which whole
    runs of several seconds do not; returns the mean ms/frame of each side and the
    ratio b/a of each adjacent pair.
    """
    ms_a, ms_b, ratios = [], [], []
    for i in range(pairs):
        if i % 2 == 0:
            x, y = a(i), b(i)
        else:
            y, x = b(i), a(i)
        ms_a.append(x)
        ms_b.append(y)
        ratios.append(y / x)
    return statistics.fmean(ms_a), statistics.fmean(ms_b), ratios


def _ab_line(label: str, result: tuple[float, float, list[float]], extra: str = "") -> str:
    a, b, ratios = result
    q = statistics.quantiles(ratios, n=4) if len(ratios) > 1 else [ratios[0]] * 3
    return (f"{label:58s} {a:6.2f} -> {b:6.2f} ms/frame  {b - a:+5.2f} ms  ratio {statistics.median(ratios):.3f}"
            f" (quartiles {q[0]:.2f}-{q[2]:.2f}){extra}")


def causes(args: argparse.Namespace, detector: Any, frames: list[Frame]) -> None:
    """Each suspected cause alone, A/B against the bare loop in alternating blocks of ``BLOCK`` frames."""
    from vizoflow.nodes.sources import VideoFileSource
    from vizoflow.reid import OpenVinoEmbedder

    images = [f.image for f in frames]
    block = 8

    def chunk(i: int) -> list[np.ndarray]:
        start = (i * block) % max(1, len(images) - block)
        return images[start:start + block]

    def predict(batch: list[np.ndarray], k: int, probe: SpeedProbe | None = None) -> float:
        t0 = time.perf_counter()
        for j in range(0, len(batch), k):
            detector._model.predict(batch[j:j + k], **detector._args)
        return 1000 * (time.perf_counter() - t0) / len(batch)

    print(f"\nPart 1b - one suspected cause at a time: bare loop A vs B in alternating blocks of {block} frames,"
          f" {args.pairs} pairs; ratio = B/A per adjacent pair, median and quartiles", flush=True)

    # 1. four frames per predict call, as runtime.batch_size=4 hands them to the detect node
    probes = {1: SpeedProbe(detector), 4: SpeedProbe(detector)}

    def with_probe(k: int) -> Callable[[int], float]:
        def run(i: int) -> float:
            with probes[k]:
                return predict(chunk(i), k)
        return run

    result = ab_blocks(with_probe(1), with_probe(4), args.pairs)
    pre1, pre4 = probes[1].split, probes[4].split
    print(_ab_line("4 frames per predict call (A: 1 per call)", result,
                   f"; pre {pre1[0]:.2f} -> {pre4[0]:.2f}, inf {pre1[1]:.2f} -> {pre4[1]:.2f},"
                   f" post {pre1[2]:.2f} -> {pre4[2]:.2f} ms"), flush=True)

    # 2. frames taken from vizoflow's file source: its decode thread refills behind the detector
    class Puller:
        """Blocks of frames pulled from a live file source (restarted at the end of the clip)."""

        def __init__(self, source: Any) -> None:
            self.source, self.live = source, iter(source)

        def __call__(self, i: int) -> float:
            batch: list[np.ndarray] = []
            while len(batch) < block:
                try:
                    batch.append(next(self.live).image)
                except StopIteration:
                    self.live = iter(self.source)
            return predict(batch, 1)

        def close(self) -> None:
            self.live.close()  # type: ignore[attr-defined]  # its finally stops the decode thread

    auto = Puller(VideoFileSource(str(VIDEO)))
    before = thread_cpu()
    result = ab_blocks(lambda i: predict(chunk(i), 1), auto, args.pairs)
    cpu = cpu_per_frame(before, thread_cpu(), args.pairs * block)
    auto.close()
    print(_ab_line("frames from the file source, decode thread on (A: memory)", result,
                   f"; decode {cpu.get('decode', 0):.2f} + FFmpeg threads {cpu.get('ffmpeg', 0):.2f} ms CPU per"
                   " B frame"), flush=True)
    auto, single = Puller(VideoFileSource(str(VIDEO))), Puller(source_with_decode(str(VIDEO), ("NONE", 1)))
    before = thread_cpu()
    result = ab_blocks(auto, single, args.pairs)
    cpu = cpu_per_frame(before, thread_cpu(), 2 * args.pairs * block)
    auto.close()
    single.close()
    print(_ab_line("decode in 1 thread (A: vizoflow's AUTO, 3 FFmpeg threads)", result,
                   f"; decode+FFmpeg CPU, both sides: {cpu.get('decode', 0) + cpu.get('ffmpeg', 0):.2f} ms/frame"),
          flush=True)

    # 3. the DeepSORT embedder (OpenVINO, its own thread pool) runs between detector calls, as in the pipeline
    embedder = OpenVinoEmbedder()
    crops = []
    for image, result_ in zip(images, detector._model.predict(images[:block], **detector._args)):
        boxes = result_.boxes.xyxy.numpy().astype(int)
        crops.append([image[y1:y2, x1:x2] for x1, y1, x2, y2 in boxes] or [image])

    def after_embedder(i: int) -> float:
        batch, total = chunk(i), 0.0
        for j in range(0, block, 4):  # the pipeline: detect 4 frames, then track them (embedder per frame)
            t0 = time.perf_counter()
            detector._model.predict(batch[j:j + 4], **detector._args)
            total += time.perf_counter() - t0
            for c in crops[j:j + 4]:
                embedder.predict(c)
        return 1000 * total / block

    def plain4(i: int) -> float:
        return predict(chunk(i), 4)

    result = ab_blocks(plain4, after_embedder, args.pairs)
    print(_ab_line("embedder runs between detector calls (A: 4/call, no embedder)", result,
                   f"; {statistics.fmean(len(c) for c in crops):.0f} crops per frame"), flush=True)


# --------------------------------------------------------------------------- part 2: one detector, several cameras


class Hung(RuntimeError):
    """An asynchronous inference did not finish within :data:`TIMEOUT_S`."""


class SharedDetector:
    """The options for k frames per call, all with Ultralytics' own pre- and postprocessing.

    (a) and (c) call ``predict`` on the list (for (c) the detector's compiled model is
    swapped for one compiled otherwise); (b) and the control (a') call the predictor's
    ``preprocess``, run the k letterboxed images through OpenVINO themselves, and call
    its ``postprocess``, so (b) differs from (a') only by how inference runs.
    """

    def __init__(self, detector: Any) -> None:
        import openvino as ov

        from vizoflow.inference import cpu_config

        self.detector = detector
        self.predictor = detector._model.predictor
        self.backend = self.predictor.model.backend
        path = Path(detector.model_path)
        xml = path if path.is_file() else next(path.glob("*.xml"))
        core = ov.Core()
        model = core.read_model(str(xml))
        self.compiled = {
            "latency 1 thread": core.compile_model(model, "CPU", cpu_config(
                "f32", PERFORMANCE_HINT="LATENCY", INFERENCE_NUM_THREADS=1)),
            "latency no pinning": core.compile_model(model, "CPU", cpu_config(
                "f32", PERFORMANCE_HINT="LATENCY", ENABLE_CPU_PINNING=False)),
        }
        self.throughput = core.compile_model(model, "CPU", cpu_config("f32", PERFORMANCE_HINT="THROUGHPUT",
                                                                      NUM_STREAMS=2))
        self.streams = int(self.throughput.get_property("NUM_STREAMS"))
        self.requests = [self.throughput.create_infer_request() for _ in range(self.streams)]
        self.queue = ov.AsyncInferQueue(self.throughput, self.streams)
        self._free = threading.Semaphore(self.streams)
        self._queue_out: dict[int, np.ndarray] = {}
        self._queue_done = threading.Semaphore(0)

        def on_done(request: Any, index: int) -> None:
            self._queue_out[index] = request.get_output_tensor(0).data.copy()  # the request is reused
            self.completed["AsyncInferQueue"] += 1
            self._queue_done.release()
            self._free.release()

        self.queue.set_callback(on_done)
        self.hung: set[str] = set()
        self.completed = {"AsyncInferQueue": 0, "start_async": 0}  # async inferences that finished in time

    # the options: each takes k BGR images, returns k boxes arrays (xyxy, original pixels)

    def predict(self, images: list[np.ndarray]) -> list[np.ndarray]:
        """(a) Ultralytics predict on the list."""
        results = self.detector._model.predict(images, **self.detector._args)
        return [r.boxes.xyxy.numpy() for r in results]

    def predict_with(self, key: str) -> Callable[[list[np.ndarray]], list[np.ndarray]]:
        """(c) Ultralytics predict with the compiled model ``key`` in place of the detector's."""
        def run(images: list[np.ndarray]) -> list[np.ndarray]:
            with patched(self.backend, "ov_compiled_model", self.compiled[key]):
                return self.predict(images)
        return run

    def _manual(self, images: list[np.ndarray], infer: Callable[[list[np.ndarray]], list[np.ndarray]]) -> list[np.ndarray]:
        import torch

        p = self.predictor
        p.batch = ([f"image{i}.jpg" for i in range(len(images))], images, [""] * len(images))  # results' paths
        im = p.preprocess(images)
        blobs = [x[None] for x in im.numpy()]
        preds = torch.from_numpy(np.concatenate(infer(blobs)))
        return [r.boxes.xyxy.numpy() for r in p.postprocess(preds, im, images)]

    def sync_manual(self, images: list[np.ndarray]) -> list[np.ndarray]:
        """(a') control: the manual path, inference by the detector's own compiled model (sync, LATENCY)."""
        compiled = self.backend.ov_compiled_model
        return self._manual(images, lambda blobs: [compiled(b)[0] for b in blobs])

    def async_requests(self, images: list[np.ndarray]) -> list[np.ndarray]:
        """(b) THROUGHPUT, start_async on one InferRequest per stream, every wait with a timeout."""
        def infer(blobs: list[np.ndarray]) -> list[np.ndarray]:
            outs: list[np.ndarray | None] = [None] * len(blobs)
            pending: dict[int, int] = {}  # request -> image index in flight
            for i, blob in enumerate(blobs):
                r = i % len(self.requests)
                if r in pending:
                    outs[pending.pop(r)] = self._wait(self.requests[r])
                self.requests[r].start_async({0: blob})
                pending[r] = i
            for r, i in pending.items():
                outs[i] = self._wait(self.requests[r])
            return outs  # type: ignore[return-value]
        return self._manual(images, infer)

    def _wait(self, request: Any) -> np.ndarray:
        if not request.wait_for(int(TIMEOUT_S * 1000)):
            raise Hung(f"InferRequest not done after {TIMEOUT_S:.0f} s")
        self.completed["start_async"] += 1
        return request.get_output_tensor(0).data.copy()

    def async_queue(self, images: list[np.ndarray]) -> list[np.ndarray]:
        """(b) THROUGHPUT through AsyncInferQueue (the API issue 25923 saw hang), waits with a timeout."""
        def infer(blobs: list[np.ndarray]) -> list[np.ndarray]:
            self._queue_out.clear()
            for i, blob in enumerate(blobs):
                if not self._free.acquire(timeout=TIMEOUT_S):
                    raise Hung(f"no idle request in AsyncInferQueue after {TIMEOUT_S:.0f} s")
                self.queue.start_async({0: blob}, userdata=i)
            for _ in blobs:
                if not self._queue_done.acquire(timeout=TIMEOUT_S):
                    raise Hung(f"AsyncInferQueue callback not called after {TIMEOUT_S:.0f} s")
            return [self._queue_out[i] for i in range(len(blobs))]
        return self._manual(images, infer)


def _box_diff(a: list[np.ndarray], b: list[np.ndarray]) -> tuple[float, int]:
    """Max abs difference (px) between matched boxes of two runs, and frames whose box counts differ."""
    worst, mismatched = 0.0, 0
    for x, y in zip(a, b, strict=True):
        if len(x) != len(y):
            mismatched += 1
            continue
        if len(x):
            d = np.abs(x[:, None, :] - y[None, :, :]).max(axis=2)  # every box against every box
            worst = max(worst, float(d.min(axis=1).max()))
    return worst, mismatched


def part2(args: argparse.Namespace) -> None:
    """The shared-detector options for k = 1, 2, 4, interleaved; frames/s and box agreement."""
    detector = build_detectors({"default"})["default"]
    shared = SharedDetector(detector)
    options: dict[str, Callable[[list[np.ndarray]], list[np.ndarray]]] = {
        "(a) predict, sync LATENCY": shared.predict,
        "(a') manual pre/post, sync LATENCY": shared.sync_manual,
        "(b) THROUGHPUT 2 streams, AsyncInferQueue": shared.async_queue,
        "(b) THROUGHPUT 2 streams, start_async": shared.async_requests,
        "(c) predict, LATENCY 1 thread": shared.predict_with("latency 1 thread"),
        "(c) predict, LATENCY 2 thr no pinning": shared.predict_with("latency no pinning"),
    }
    ks = [int(k) for k in args.k.split(",")]
    n = args.shared_frames - args.shared_frames % max(ks)
    images = [f.image for f in decode_frames(n)]
    print(f"\npart 2: one detector for several cameras, {n} demo frames per option and k, {args.shared_reps} interleaved"
          f" repetitions; THROUGHPUT compiled with {shared.streams} streams", flush=True)
    fps: dict[tuple[str, int], list[float]] = {}
    ratios: dict[tuple[str, int], list[float]] = {}
    boxes: dict[tuple[str, int], list[np.ndarray]] = {}
    others: list[float] = []
    cells = [(o, k) for k in ks for o in options]
    for rep, order in _rotations(cells, args.shared_reps):  # type: ignore[arg-type]
        this: dict[tuple[str, int], float] = {}
        for option, k in order:
            if option in shared.hung:
                continue
            load: dict[str, float] = {}
            out: list[np.ndarray] = []
            try:
                with others_load(load):
                    t0 = time.perf_counter()
                    for i in range(0, n, k):
                        out += options[option](images[i:i + k])
                    seconds = time.perf_counter() - t0
            except Hung as exc:
                shared.hung.add(option)
                print(f"  HUNG: {option} k={k}: {exc}", flush=True)
                continue
            others.append(load["others"])
            this[(option, k)] = n / seconds
            fps.setdefault((option, k), []).append(n / seconds)
            boxes.setdefault((option, k), out)
        base = {k: this.get(("(a) predict, sync LATENCY", k)) for k in ks}
        for (option, k), v in this.items():
            if base[k]:
                ratios.setdefault((option, k), []).append(v / base[k])
        print(f"  rep {rep + 1}/{args.shared_reps} done, others median {100 * statistics.median(others):.0f}%", flush=True)

    print(f"\nPart 2 - frames/s end to end (Ultralytics pre + inference + post), median of {args.shared_reps};"
          " ratio = fps / (a) at the same k, same repetition (median, min-max);\nboxes = max abs difference"
          " from (a) in pixels over all frames (frames whose box count differs)")
    print(f"{'option':42s} {'k':>2s} {'fps':>6s} {'ratio':>6s} {'spread':>10s} {'boxes':>14s}")
    for k in ks:
        for option in options:
            key = (option, k)
            if key not in fps:
                print(f"{option:42s} {k:2d} {'hung' if option in shared.hung else '-':>6s}")
                continue
            worst, mismatched = _box_diff(boxes[key], boxes[("(a) predict, sync LATENCY", k)])
            print(f"{option:42s} {k:2d} {statistics.median(fps[key]):6.1f} {statistics.median(ratios[key]):5.2f}x"
                  f" {_spread(ratios[key]):>10s} {worst:8.4f} ({mismatched})")
    print(f"others during part 2: median {100 * statistics.median(others):.0f}%, max {100 * max(others):.0f}%")
    print("async inferences finished within the timeout (%.0f s each): %s; hung: %s" % (
        TIMEOUT_S, ", ".join(f"{k} {v}" for k, v in shared.completed.items()), ", ".join(sorted(shared.hung)) or "none"))


def _rotations(names: list[str], reps: int) -> Iterator[tuple[int, list[str]]]:
    """Each repetition's run order: the list rotated by one more place each time."""
    for rep in range(reps):
        shift = rep % len(names)
        yield rep, names[shift:] + names[:shift]


def _spread(values: list[float]) -> str:
    return f"{min(values):.2f}-{max(values):.2f}" if len(values) > 1 else ""


def part1(args: argparse.Namespace) -> None:
    """Bare loop vs pipeline vs fixes, interleaved, then the causes one by one; prints the tables."""
    names = [n.strip() for n in args.variants.split(";")] if args.variants else DEFAULT_VARIANTS
    unknown = [n for n in names if n not in VARIANTS]
    if unknown:
        raise SystemExit(f"unknown variants: {unknown}; known: {'; '.join(VARIANTS)}")
    names = [REFERENCE, *(n for n in names if n != REFERENCE)]  # the reference of every ratio first
    frames = decode_frames(max(args.frames, args.pipe_frames))
    images = [f.image for f in frames[:args.frames]]
    needed = {VARIANTS[n][1].detector for n in names if VARIANTS[n][0] == "pipe"} | {"default"}
    detectors = build_detectors(needed)
    detectors["plain"] = plain_yolo(detectors["default"].model_path)
    for name, d in detectors.items():
        print(f"detector '{name}': OpenVINO runs it in {precision_of(d)}", flush=True)
    print(f"\npart 1: demo clip, {args.frames} frames for bare and detect-only rows, {args.pipe_frames} for rows"
          f" with the tracker; {args.reps} interleaved repetitions", flush=True)
    samples: dict[str, list[Sample]] = {n: [] for n in names}
    ratios: dict[str, list[float]] = {n: [] for n in names}
    deltas: dict[str, list[float]] = {n: [] for n in names}
    for rep, order in _rotations(names, args.reps):
        this: dict[str, Sample] = {}
        for name in order:
            kind, what = VARIANTS[name]
            if kind in ("bare", "plain"):
                s = run_bare(detectors["default" if kind == "bare" else "plain"], images, what)
            else:
                s = run_pipe(what, frames, args.frames if what.graph == "detect" else args.pipe_frames, detectors)
            this[name] = s
            samples[name].append(s)
            print(f"  rep {rep + 1}/{args.reps}  {name:36s} {s.ms_per_frame:7.2f} ms/frame  others"
                  f" {100 * s.others:3.0f}%  {s.note}", flush=True)
        base = this[REFERENCE].ms_per_frame
        for name, s in this.items():
            ratios[name].append(s.ms_per_frame / base)
            deltas[name].append(s.ms_per_frame - base)

    print(f"\nPart 1 - detect ms/frame, median of {args.reps} repetitions. 'vs bare k=1': ratio to the bare loop run"
          " whole in the same repetition;\n'in-run': the bare loop interleaved batch by batch in the same run"
          " (BareAfterDetect), its ms/frame and the ratio to it\n(median, min-max over repetitions), the steadier"
          " comparison on this machine; pre/inf/post: Ultralytics' split of detect, ms per image;\nothers: CPU share"
          " other processes took meanwhile (median/max); decode: CPU of the decode and FFmpeg threads, ms per frame")
    print(f"{'variant':30s} {'ms/frame':>8s} {'vs bare k=1':>11s} {'in-run':>6s} {'ratio':>6s} {'spread':>10s}"
          f" {'+ms':>6s} {'pre':>5s} {'inf':>6s} {'post':>5s} {'others':>8s} {'decode':>6s}  note")
    for name in names:
        ss = samples[name]
        splits = [s.split for s in ss if s.split]
        pre, inf, post = (statistics.median(x[i] for x in splits) for i in range(3)) if splits else (0, 0, 0)
        others = [100 * s.others for s in ss]
        decode = statistics.median(s.cpu.get("decode", 0) + s.cpu.get("ffmpeg", 0) for s in ss)
        line = f"{name:30s} {statistics.median(s.ms_per_frame for s in ss):8.2f} {statistics.median(ratios[name]):10.2f}x"
        if ss[0].bare is not None:
            in_run = [s.ms_per_frame / s.bare for s in ss]
            line += (f" {statistics.median(s.bare for s in ss):6.2f} {statistics.median(in_run):5.2f}x"
                     f" {_spread(in_run):>10s} {statistics.median(s.ms_per_frame - s.bare for s in ss):+6.2f}")
        else:
            line += f" {'':6s} {'':6s} {'':10s} {'':6s}"
        print(f"{line} {pre:5.1f} {inf:6.1f} {post:5.1f} {statistics.median(others):3.0f}/{max(others):3.0f}%"
              f" {decode:6.2f}  {ss[-1].note}")
    if args.pairs:
        causes(args, detectors["default"], frames[:max(args.frames, 4 * 8)])


def environment() -> str:
    """Thread settings that matter here, one line each."""
    import cv2
    import torch
    from threadpoolctl import threadpool_info

    from vizoflow.inference import cpu_facts

    pools = ", ".join(f"{p['prefix']}={p['num_threads']}" for p in threadpool_info())
    return (f"cpu: {cpu_facts()['cpu']}, {os.cpu_count()} cores; torch threads {torch.get_num_threads()}"
            f" (OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS')}, set by ultralytics), cv2 threads"
            f" {cv2.getNumThreads()}; thread pools: {pools}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=96, help="frames for bare and detect-only rows")
    parser.add_argument("--pipe-frames", type=int, default=48, help="frames for rows with the tracker")
    parser.add_argument("--reps", type=int, default=3, help="interleaved repetitions of part 1")
    parser.add_argument("--part", choices=("1", "2", "all"), default="all")
    parser.add_argument("--variants", default="", help="part-1 rows, separated by ';' (default: DEFAULT_VARIANTS)")
    parser.add_argument("--pairs", type=int, default=8, help="A/B block pairs per cause in part 1b (0: skip)")
    parser.add_argument("--shared-frames", type=int, default=40, help="frames per option and k in part 2")
    parser.add_argument("--shared-reps", type=int, default=2, help="interleaved repetitions of part 2")
    parser.add_argument("--k", default="1,2,4", help="frames per call in part 2")
    args = parser.parse_args()
    import ultralytics  # noqa: F401 - first, as in vizoflow: it sets OMP_NUM_THREADS=1 before torch loads

    started = time.perf_counter()
    print(environment(), flush=True)
    if args.part in ("1", "all"):
        part1(args)
    if args.part in ("2", "all"):
        part2(args)
    print(f"\nbench took {time.perf_counter() - started:.0f} s", flush=True)
    os._exit(0)  # a hung async request (part 2) must not keep the process alive at exit


if __name__ == "__main__":
    main()
