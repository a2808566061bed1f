"""`segue doctor`: everything a support thread would ask, each problem with its fix in one line.

Each check returns `Finding`s; nothing here changes a file or a setting. The panel's Setup page
shows the same findings (gui/setup_page.py), so the CLI and the panel never disagree.
"""

import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from bridge.errors import SegueError
from bridge.settings import DawSettings, load_settings
from bridge.setup import ableton as ableton_setup
from bridge.setup import reaper as reaper_setup
from bridge.setup.changes import SetupError, pending_steps
from bridge.setup.locations import find_reaper_resource_dir, find_remote_scripts_dir
from bridge.setup.processes import udp_port_state

if TYPE_CHECKING:
    from bridge.daw.link import DawLink

OK, PROBLEM, INFO = "ok", "problem", "info"
SERVE_PORT = 9030  # `segue serve`'s default OSC port
DAW_ANSWER_SECONDS = 3.0


@dataclass(frozen=True)
class Finding:
    topic: str   # "DAW", "Ports", "Companions", "Audio", "Models", "Engine"
    status: str  # OK, PROBLEM or INFO
    message: str
    fix: str = ""

    def line(self) -> str:
        mark = {OK: "ok ", PROBLEM: "!! ", INFO: "-- "}[self.status]
        fix = f"\n      fix: {self.fix}" if self.fix else ""
        return f"{mark} {self.topic:10} {self.message}{fix}"


def run_checks(
    daw: str | None = None,
    resource_dir: Path | None = None,
    remote_scripts_dir: Path | None = None,
    answer_seconds: float = DAW_ANSWER_SECONDS,
    check_link: bool = True,
) -> list[Finding]:
    """All checks, in the order a producer fixes things: DAW, ports, companions, audio, models, engine."""
    choice = load_settings().daw
    if daw is not None:
        choice.daw = daw
    findings: list[Finding] = []
    steps: list[Callable[[], list[Finding]]] = [
        lambda: check_daw(choice, answer_seconds) if check_link else [],
        lambda: check_ports(choice),
        lambda: check_companions(choice.daw, resource_dir, remote_scripts_dir),
        check_audio,
        check_models,
        check_engine,
    ]
    for step in steps:
        try:
            findings.extend(step())
        except SegueError as error:  # a check that cannot run is itself a finding, never a crash
            findings.append(Finding("Segue", PROBLEM, str(error)))
    return findings


def check_daw(choice: DawSettings, answer_seconds: float) -> list[Finding]:
    from bridge.daw.ableton import reply_port
    from bridge.daw.connect import open_link

    listen_port = reply_port() if choice.daw == "ableton" else choice.reaper_listen_port
    port = udp_port_state(listen_port) if choice.daw != "none" else None  # before the link binds it
    if port is not None and not port.free:
        owner = port.owner or "another program"
        return [Finding("DAW", PROBLEM, f"port {port.port}, where Segue hears the DAW, is taken by {owner}",
                        f"quit {owner}, or change the port in Settings and in the DAW")]
    with open_link(choice) as link:
        deadline = time.monotonic() + answer_seconds
        while not _has_answered(link.transport.snapshot(), choice.daw) and time.monotonic() < deadline:
            time.sleep(0.05)
        return link_findings(link)


def link_findings(link: "DawLink") -> list[Finding]:
    """What an open link says about the DAW and its companion (the panel passes its own link)."""
    from bridge.errors import DawError

    if link.name == "none":
        return [Finding("DAW", INFO, "no DAW chosen: clips go to the export folder",
                        "choose Ableton Live or REAPER in Settings (or segue serve --daw ...)")]
    if not link.connected:
        return [Finding("DAW", PROBLEM, f"{link.describe()}", link._not_connected_hint())]
    snapshot = link.transport.snapshot()
    version = f" {snapshot.daw_version}" if snapshot.daw_version else ""
    found = [Finding("DAW", OK, f"{link.display_name}{version} answers at "
                     f"{link.daw_address[0]}:{link.daw_address[1]} (tempo {snapshot.tempo_bpm or '?'} BPM)")]
    if link.name == "reaper":
        try:
            info = link.project_info()
            found.append(Finding("DAW", OK, "Segue's REAPER scripts answer (project info: "
                                 f"{info.get('signature_numerator', '?')}/{info.get('signature_denominator', '?')})"))
        except DawError as error:
            found.append(Finding("DAW", PROBLEM, str(error), "quit REAPER, run: segue setup reaper"))
    return found


def _has_answered(snapshot, daw: str) -> bool:
    # Connected is the first message; Live's version and REAPER's tempo follow within moments.
    detail = snapshot.daw_version if daw == "ableton" else snapshot.tempo_bpm
    return snapshot.connected and detail is not None


def check_ports(choice: DawSettings) -> list[Finding]:
    state = udp_port_state(SERVE_PORT)
    if state.free:
        return [Finding("Ports", OK, f"port {SERVE_PORT} for `segue serve` is free")]
    return [Finding("Ports", INFO, f"port {SERVE_PORT} for `segue serve` is taken by {state.owner or 'another program'}",
                    "that is fine if it is your own `segue serve`; else: segue serve --osc-port 9040")]


def check_companions(daw: str, resource_dir: Path | None, remote_scripts_dir: Path | None) -> list[Finding]:
    found: list[Finding] = []
    if daw in ("reaper", "none") or resource_dir is not None:
        found += _reaper_companions(resource_dir, quiet=daw == "none" and resource_dir is None)
    if daw in ("ableton", "none") or remote_scripts_dir is not None:
        found += _ableton_companions(remote_scripts_dir, quiet=daw == "none" and remote_scripts_dir is None)
    return found


def _reaper_companions(resource_dir: Path | None, quiet: bool) -> list[Finding]:
    try:
        root = find_reaper_resource_dir(resource_dir)
    except SetupError as error:
        return [] if quiet else [Finding("Companions", PROBLEM, str(error).split(";")[0],
                                         "segue setup reaper --resource-dir DIR")]
    stale = [step.relative_path for step in pending_steps(reaper_setup.build_plan(root))]
    found = []
    if stale:
        found.append(Finding("Companions", PROBLEM, f"REAPER ({root}): missing or from another Segue version: "
                             f"{', '.join(stale)}", "quit REAPER, run: segue setup reaper"))
    else:
        found.append(Finding("Companions", OK, f"REAPER ({root}): scripts installed and registered, current"))
    if reaper_setup.segue_surface_configured(root):
        found.append(Finding("Companions", OK, "REAPER's OSC control surface uses the Segue pattern on 8000/9000"))
    else:
        found.append(Finding("Companions", PROBLEM, "reaper.ini has no OSC control surface with the Segue pattern",
                             reaper_setup.step_left(root).removeprefix("One step left, in REAPER: ")))
    return found


def _ableton_companions(remote_scripts_dir: Path | None, quiet: bool) -> list[Finding]:
    try:
        root = find_remote_scripts_dir(remote_scripts_dir)
    except SetupError as error:
        return [] if quiet else [Finding("Companions", PROBLEM, str(error).split(";")[0],
                                         "segue setup ableton --remote-scripts-dir DIR")]
    track = root / ableton_setup.SCRIPT_FOLDER / "abletonosc" / "track.py"
    if not track.is_file():
        return [] if quiet else [Finding("Companions", PROBLEM, f"AbletonOSC is not in {root}", "segue setup ableton")]
    if b'"create_audio_clip"' not in track.read_bytes():
        return [Finding("Companions", PROBLEM, "AbletonOSC is installed without Segue's patch: clips cannot be placed",
                        "segue setup ableton")]
    return [Finding("Companions", OK, f"AbletonOSC with Segue's patch is in {root}")]


def check_audio() -> list[Finding]:
    from bridge.audio.calibration import saved_round_trip
    from bridge.audio.devices import chosen_device

    audio = load_settings().audio
    if audio.input_device is None and audio.output_device is None:
        return [Finding("Audio", INFO, "no loopback devices chosen (needed for capture and live play)",
                        'segue devices --input "BlackHole 2ch" --output "BlackHole 16ch" (see README, Audio setup)')]
    try:
        input_device, output_device = chosen_device("input"), chosen_device("output")
    except SegueError as error:
        return [Finding("Audio", PROBLEM, str(error).split(";")[0], "segue devices --input NAME --output NAME")]
    found = [Finding("Audio", OK, f"loopback input {input_device.label}, output {output_device.label}")]
    frames = saved_round_trip(input_device, output_device, input_device.default_sample_rate)
    if frames is None:
        found.append(Finding("Audio", PROBLEM, f"not calibrated at {input_device.default_sample_rate} Hz",
                             "segue devices --calibrate (route the output into the input first)"))
    else:
        found.append(Finding("Audio", OK, f"calibrated: round trip {frames} frames"))
    return found


def check_models() -> list[Finding]:
    from bridge.models.store import all_model_statuses

    ready = [status for status in all_model_statuses() if status.usable_offline and status.disk_bytes > 0]
    if not ready:
        return [Finding("Models", PROBLEM, "no model on this computer yet",
                        "segue models download facebook/musicgen-small (about 2.2 GB)")]
    names = ", ".join(f"{s.model_id} ({s.disk_bytes / 2**30:.2f} GiB)" for s in ready)
    return [Finding("Models", OK, f"on disk: {names}")]


def check_engine() -> list[Finding]:
    flags = _cpu_flags()
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else None
    machine = f"CPU flags {flags or 'unknown'}" + (f", load average {load:.1f}" if load is not None else "")
    try:  # the per-machine kernel choice fast mode measures at a model's first load (cached)
        from bridge.engine.cpu_kernels import choices_for_this_cpu
    except ImportError:
        choices = {}
    else:
        choices = choices_for_this_cpu()
    if not choices:
        return [Finding("Engine", INFO, f"fast mode's kernel and speed on this machine: not measured yet ({machine})",
                        "measured once, the first time a model loads here (or: python bench/engine_speed.py)")]
    measured = "; ".join(f"{model}: {choice.describe()}" for model, choice in choices.items())
    return [Finding("Engine", OK, f"fast mode's kernel on this machine: {measured} ({machine})")]


def _cpu_flags() -> str:
    """The CPU features that decide the engine's speed (Linux: /proc/cpuinfo; elsewhere unknown)."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return ""
    flags = next((line.split(":", 1)[1].split() for line in text.splitlines() if line.startswith("flags")), [])
    wanted = ("avx2", "avx512f", "avx512_bf16", "avx512_vnni", "amx_tile", "amx_bf16")
    return " ".join(flag for flag in wanted if flag in flags)
