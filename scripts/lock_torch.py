"""Re-make requirements-torch.lock: what the `torch` extra adds to requirements.lock, with hashes.

torch is pinned to the CPU build of 2.13.0, which pip finds where the machine keeps it (pip's own
`find-links`); uv does not look there, so this passes pip's find-links on to `uv pip compile`.
Packages already in requirements.lock are left out: `make test` installs this file on top of it.
"""

from __future__ import annotations

import re
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
HEADER = """# The `torch` extra (image classifiers), on top of requirements.lock: only what torch adds to it.
# `make test` installs it with pip (which finds the CPU build of torch 2.13.0 where the machine
# keeps it). Re-made by `make lock`.
"""


def main() -> int:
    uv = Path(sys.executable).with_name("uv")
    links = subprocess.run([sys.executable, "-m", "pip", "config", "get", "global.find-links"],
                           capture_output=True, text=True).stdout.split()
    in_main = {line.split("==")[0].lower() for line in (ROOT / "requirements.lock").read_text().splitlines()
               if re.match(r"^[a-z0-9]", line)}
    with tempfile.TemporaryDirectory() as tmp:
        wanted, out = Path(tmp) / "torch.in", Path(tmp) / "torch.lock"
        wanted.write_text("torch==2.13.0\n")
        cmd = [str(uv), "pip", "compile", "--quiet", str(wanted), "-c", str(ROOT / "requirements.lock"), "--generate-hashes",
               "--python-version", "3.11", "--no-header", "--annotation-style", "line", "-o", str(out)]
        for link in links:
            cmd += ["--find-links", link]
        subprocess.run(cmd, check=True)
        blocks = re.split(r"\n(?=[a-z0-9])", out.read_text())
    keep = [re.sub(r"\s*# via.*", "", b.strip()) for b in blocks if b.split("==")[0].lower() not in in_main]
    (ROOT / "requirements-torch.lock").write_text(HEADER + "\n".join(keep) + "\n")
    print(f"requirements-torch.lock: {', '.join(b.split(' ')[0] for b in keep)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
