"""Aggregate py-spy's ``--format raw`` output (collapsed stacks) of a worker's task process.

Each line is ``frame;frame;...;frame count`` from the outermost frame to the innermost,
a frame being ``function (path:line)``. Three views, each in % of all samples:

- **self**: the innermost frame, per function;
- **areas**: each sample counted once, in the area of its innermost frame that belongs
  to a named area (asyncio, the standard library and C frames charge their caller: an
  ``asyncio.timeout`` entered by the pipeline is the pipeline's cost); a sample with no
  such frame is the event loop's own;
- **inclusive**: per function, the samples with it anywhere on the stack, shown under
  the area of the function; plus a few named spots the issue estimates on its own.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field

LOOP = "asyncio/uvloop (the loop itself)"
BENCH = "task body + bench recorder"
OTHER = "other"
# (area, pattern on "function (path:line)"), first match wins: result store before the
# pipeline (its writes go through it), dependency resolution before taskiq's receiver.
AREAS: tuple[tuple[str, str], ...] = (
    # The manager's frames above the fork, and taskiq's CLI that runs the loop: no area
    # (a sample whose innermost Python frame is ``start_listen`` is the loop in C).
    ("", r"taskiq/__main__|taskiq/cli/|multiprocessing/|<frozen runpy>"),
    ("result store write", r"asyncjobs/brokers/\w+/results\.py|\bsave \(asyncjobs/worker/"),
    ("result store write", r"set_result \(|result_backend"),
    ("redis-py pipeline / ack", r"^\S+ \(redis/|asyncjobs/brokers/redis/(batch|pipelining)"),
    ("redis-py pipeline / ack", r"asyncjobs/brokers/redis/delivery"),
    ("broker fetch / delivery (asyncjobs)", r"asyncjobs/brokers/"),
    ("aio-pika / aiormq / pamqp", r"aio_pika/|aiormq/|pamqp/"),
    ("dependency resolution", r"taskiq_dependencies/"),
    ("message decode + pydantic build", r"pydantic|taskiq/message\.py|formatters/|codec\.py"),
    ("taskiq receiver / run_task", r"taskiq/receiver/|taskiq/"),
    ("logging", r"logging/"),
    ("asyncjobs runs / settling / hooks", r"asyncjobs/"),
    ("task body + bench recorder", r"bench/"),
)
# Named spots the issue estimates, and the big entry points, counted inclusively (any
# frame on the stack matches): they overlap the areas and each other.
SPOTS: tuple[tuple[str, str], ...] = (
    ("asyncio.timeout (asyncio/timeouts.py)", r"asyncio/timeouts\.py"),
    ("redis-py experimental_args check", r"_check_experimental_args|experimental_args"),
    ("redis-py Pipeline.execute", r"Pipeline\.execute \(redis/"),
    ("TaskiqMessage.parse_labels", r"parse_labels \(taskiq/"),
    ("asyncio.current_task", r"current_task"),
    ("asyncjobs codec: message decode (JsonFormatter.loads)", r"JsonFormatter\.loads \("),
    ("result store: Settling.save (build + submit)", r"Settling\.save \("),
    ("write pipeline flush: PipelineBatcher._send_all", r"PipelineBatcher\._send_all \("),
    ("fetch: <broker>.fetch", r"Broker\.fetch \("),
    ("taskiq Receiver.run_task", r"Receiver\.run_task \("),
    ("per message: MessageRunner.process", r"MessageRunner\.process \("),
    ("logging", r"logging/"),
)
_LOOP_FILES = re.compile(r"\((asyncio/|uvloop/|<frozen|contextlib\.py|typing\.py|abc\.py)")
_LINE = re.compile(r"^(?P<stack>.*) (?P<count>\d+)$")


@dataclass
class Profile:
    samples: int = 0
    self_time: Counter[str] = field(default_factory=Counter)
    inclusive: Counter[str] = field(default_factory=Counter)
    areas: Counter[str] = field(default_factory=Counter)
    spots: Counter[str] = field(default_factory=Counter)

    def pct(self, count: int) -> float:
        return 100.0 * count / self.samples if self.samples else 0.0


def area_of(frame: str) -> str | None:
    """The named area of one frame, or None (the loop, the standard library)."""
    for area, pattern in AREAS:
        if re.search(pattern, frame):
            return area or None
    return None


def parse(lines: Iterable[str], skip_threads: bool = True) -> Profile:
    profile = Profile()
    for raw in lines:
        match = _LINE.match(raw.strip())
        if not match:
            continue
        frames = match["stack"].split(";")
        if skip_threads and frames and frames[0].startswith(("process ", "thread ")):
            frames = [f for f in frames if not f.startswith(("process ", "thread "))]
        if not frames:
            continue
        count = int(match["count"])
        profile.samples += count
        profile.self_time[_short(frames[-1])] += count
        for name in {_short(f) for f in frames}:
            profile.inclusive[name] += count
        profile.areas[_area_of_stack(frames)] += count
        for spot, pattern in SPOTS:
            if any(re.search(pattern, f) for f in frames):
                profile.spots[spot] += count
    return profile


def _area_of_stack(frames: list[str]) -> str:
    # The bench's own ledger flush uses redis-py too: not the worker's cost.
    if any("bench/recorder.py" in f for f in frames):
        return BENCH
    for frame in reversed(frames):
        area = area_of(frame)
        if area is not None:
            return area
    return LOOP if any(_LOOP_FILES.search(f) for f in frames) else OTHER


def _short(frame: str) -> str:
    """``function (path:line)`` -> ``function (path)``: py-spy's ``--function`` gives the
    first line already; the path alone keeps one row per function."""
    return re.sub(r":\d+\)$", ")", frame)


def report(profile: Profile, top: int = 25, per_area: int = 5) -> str:
    out = [f"{profile.samples:,} samples (active only: idle waits are not sampled)", ""]
    out += ["### Self time, top functions", "", "| % | function (file) |", "|---:|---|"]
    for name, count in profile.self_time.most_common(top):
        out.append(f"| {profile.pct(count):.1f} | `{name}` |")
    out += ["", "### By area (each sample once: its innermost frame in a named area)", ""]
    out += ["| % | area | top inclusive frames in the area (%) |", "|---:|---|---|"]
    for area, count in profile.areas.most_common():
        frames = _top_frames(profile, area, per_area)
        out.append(f"| {profile.pct(count):.1f} | {area} | {frames} |")
    out += ["", "### Named spots (inclusive: anywhere on the stack)", "", "| % | spot |"]
    out.append("|---:|---|")
    for spot, _ in SPOTS:
        out.append(f"| {profile.pct(profile.spots[spot]):.1f} | {spot} |")
    return "\n".join(out)


def _top_frames(profile: Profile, area: str, n: int) -> str:
    found = [(name, c) for name, c in profile.inclusive.most_common() if area_of(name) == area]
    return "; ".join(f"`{_func(name)}` {profile.pct(c):.0f}" for name, c in found[:n])


def _func(name: str) -> str:
    """``run_task (taskiq/receiver/receiver.py)`` -> ``receiver.run_task``."""
    match = re.match(r"^(?P<func>\S+) \((?P<path>[^)]*)\)$", name)
    if not match:
        return name
    stem = match["path"].rsplit("/", 1)[-1].removesuffix(".py")
    return f"{stem}.{match['func']}"
