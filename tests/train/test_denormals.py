"""Denormals flushed to zero in CPU training (dse.train.denormals), each case in a fresh
interpreter: the mode is a thread's state, and this test process's must not be touched."""

from __future__ import annotations

import json
import platform
import subprocess
import sys

import pytest

from tests.conftest import subprocess_env

pytestmark = pytest.mark.skipif(
    platform.machine() not in ("x86_64", "AMD64"), reason="FTZ/DAZ are x86 modes"
)

# A trial thread that exists before training is prepared (as a pool's worker thread does):
# after prepare_device, its arithmetic reads a denormal as zero, and an Adam step on a weight
# with no gradient takes a denormal first moment to zero rather than to 0.9 times it.
CHECK = """
import json, threading, torch
from dse.config import TrialConfig
from dse.train.trainer import prepare_device
go, out = threading.Event(), {}
def trial():
    go.wait()
    x = torch.full((4,), 1e-39)
    out["before"] = float((x * 0.5)[0])
    prepare_device(TrialConfig(), torch.device("cpu"))
    out["after"] = float((x * 0.5)[0])
    weight = torch.nn.Parameter(torch.ones(4))
    adam = torch.optim.Adam([weight], lr=1e-3)
    weight.grad = torch.ones(4)
    adam.step()
    adam.state[weight]["exp_avg"].fill_(1e-38)
    weight.grad = torch.zeros(4)
    adam.step()
    out["moment"] = float(adam.state[weight]["exp_avg"][0])
    x = torch.full((1 << 20,), 1e-39)
    torch.set_num_threads(2)  # the intra-op threads take the mode too
    out["threads"] = int(((x * 0.5) != 0).sum())
thread = threading.Thread(target=trial)
thread.start()
go.set()
thread.join()
print(json.dumps(out))
"""


def _run(env_extra: dict[str, str]) -> dict[str, float]:
    env = {**subprocess_env(), **env_extra}
    done = subprocess.run(
        [sys.executable, "-c", CHECK], capture_output=True, text=True, env=env, timeout=120
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_a_trial_thread_flushes_denormals_once_training_is_prepared():
    out = _run({})
    assert out["before"] == pytest.approx(5e-40, rel=1e-3)  # not flushed before
    assert out["after"] == 0.0
    assert out["moment"] == 0.0  # 0.9 * 1e-38 is denormal: flushed
    assert out["threads"] == 0


def test_dse_flush_denormals_0_leaves_them():
    out = _run({"DSE_FLUSH_DENORMALS": "0"})
    assert out["after"] == pytest.approx(5e-40, rel=1e-3)
    assert out["moment"] == pytest.approx(9e-39, rel=1e-3)
    assert out["threads"] == 1 << 20
