"""Fixtures: the package from this source tree, the built `icl` tool, and a
small retrieval checkpoint trained by the tool."""
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "python"))
os.environ.setdefault("OMP_NUM_THREADS", "2")
# Sleep rather than spin at OpenMP barriers: a loaded machine slows spinning threads badly.
os.environ.setdefault("OMP_WAIT_POLICY", "passive")

TASK = "retrieval:A=8,L=4,tasks=3,n=4"


@pytest.fixture(scope="session")
def icl_tool():
    tool = ROOT / "build" / "bin" / "icl"
    assert tool.exists(), "build/bin/icl is missing: run make first"
    return str(tool)


def run_tool(tool, *args):
    r = subprocess.run([tool, *map(str, args)], capture_output=True, text=True)
    assert r.returncode == 0, "icl %s failed: %s" % (" ".join(map(str, args)), r.stderr)
    return r


@pytest.fixture(scope="session")
def ckpt(icl_tool, tmp_path_factory):
    """A 2-layer retrieval model after 30 training steps of the tool."""
    path = tmp_path_factory.mktemp("model") / "model.safetensors"
    run_tool(icl_tool, "train", "--task", TASK, "--layers", "2", "--d-model", "32", "--heads", "4", "--steps", "30",
             "--batch", "8", "--seed", "3", "--quiet", "--save", path)
    return str(path)


@pytest.fixture()
def model(ckpt):
    import libicl
    m = libicl.Model.load(ckpt)
    yield m
    m.close()


@pytest.fixture()
def family():
    import libicl
    f = libicl.TaskFamily(TASK)
    yield f
    f.close()
