"""Lab start: seconds from the README's lab command to a served JupyterLab page (budget ≤ 20 s).

Starts ``poselab lab --no-browser --port P -- --IdentityProvider.token=T`` (the README's command,
on a free local port) in a clean process group, polls ``http://127.0.0.1:P/lab?token=T`` until it
answers 200 with JupyterLab's page, then stops the server. Repeats and reports every start and the
median; a start that does not answer within the timeout counts as a failure (exit code 1).

    python benchmarks/lab_start.py [--quick] [--repeats N] [--timeout S]
"""
from __future__ import annotations

import argparse
import os
import secrets
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

BUDGET_S = 20.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def poselab_command() -> list[str]:
    exe = Path(sys.executable).with_name("poselab")
    return [str(exe)] if exe.is_file() else [sys.executable, "-m", "poselab.cli"]


def one_start(timeout: float) -> float | None:
    """Seconds until the lab page is served, or None if it was not within ``timeout``."""
    port, token = free_port(), secrets.token_hex(8)
    cmd = poselab_command() + ["lab", "--no-browser", "--port", str(port), "--",
                               f"--IdentityProvider.token={token}"]
    url = f"http://127.0.0.1:{port}/lab?token={token}"
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    try:
        while time.perf_counter() - t0 < timeout and proc.poll() is None:
            try:
                with urllib.request.urlopen(url, timeout=2) as resp:
                    if resp.status == 200 and b"JupyterLab" in resp.read():
                        return time.perf_counter() - t0
            except (urllib.error.URLError, ConnectionError, OSError):
                pass
            time.sleep(0.1)
        return None
    finally:
        try:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(timeout=10)
        except (ProcessLookupError, subprocess.TimeoutExpired):
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="one start instead of three")
    ap.add_argument("--repeats", type=int, default=3, help="starts to time (default 3)")
    ap.add_argument("--timeout", type=float, default=60.0, help="seconds before a start counts as failed")
    args = ap.parse_args(argv)
    if args.repeats < 1 or not 0 < args.timeout < 3600:
        ap.error("--repeats must be >= 1 and --timeout in (0, 3600) seconds")
    if shutil.which("jupyter", path=str(Path(sys.executable).parent)) is None:
        print("jupyter is not installed in this environment: skipped")
        return 0
    repeats = 1 if args.quick else args.repeats
    times = [one_start(args.timeout) for _ in range(repeats)]
    ok = [t for t in times if t is not None]
    print(f"load average at the end: {', '.join(f'{v:.1f}' for v in os.getloadavg())}")
    print()
    print("| start | seconds to a served /lab page |")
    print("| --- | --- |")
    for i, t in enumerate(times, 1):
        print(f"| {i} | {'no answer within %.0f s' % args.timeout if t is None else f'{t:.2f}'} |")
    if ok:
        med = statistics.median(ok)
        print()
        print(f"median {med:.2f} s over {len(ok)} start(s); budget {BUDGET_S:.0f} s: "
              f"{'met' if med <= BUDGET_S else 'MISSED'}")
    return 0 if len(ok) == len(times) else 1


if __name__ == "__main__":
    sys.exit(main())
