"""Running the ``gpuinit`` command in tests: in a subprocess, or in this process with its one-line errors."""
import os
import re
import subprocess
import sys
from pathlib import Path

from gpuinit import cli

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"


def gpuinit(*args, **env):
    return subprocess.run([sys.executable, "-m", "gpuinit", *args], capture_output=True, text=True, timeout=600,
                          check=False, env={**os.environ, **env})


def fails(capsys, *argv, match):
    """Run the command in this process: exit status 2 and one line on stderr that matches ``match``."""
    code = cli.main(list(argv))
    err = capsys.readouterr().err
    assert code == 2, err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err, err
    assert re.search(match, err), err
    return err


def one_line(r, match):
    """A subprocess that failed as a user mistake: exit status 2, one line on stderr matching ``match``."""
    assert r.returncode == 2, r.stderr
    assert len(r.stderr.strip().splitlines()) == 1 and "Traceback" not in r.stderr, r.stderr
    assert re.search(match, r.stderr), r.stderr
