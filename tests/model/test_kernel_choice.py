"""Kernel choices: timed once per machine and shape, recorded, reused by later processes."""

import json
import subprocess
import sys
import time

import pytest
import torch

from dse.errors import ConfigError
from dse.model import kernel_choice
from dse.model.conv import AS_FORWARD, KERNELS, ONEDNN, PHASES, Conv2d
from dse.model.kernel_choice import ENV, choices_file, choose, machine_identity
from tests.conftest import subprocess_env

NAMES = ("slow", "fast")


def _timed_pair(calls: list[str]):
    def candidates():
        def slow():
            calls.append("slow")
            time.sleep(0.02)

        return {"slow": slow, "fast": lambda: calls.append("fast")}

    return candidates


def test_the_fastest_is_timed_once_and_recorded_for_this_machine():
    calls: list[str] = []
    assert choose("key a", NAMES, _timed_pair(calls)) == "fast"
    assert calls.count("slow") == 1 + kernel_choice.TIMED_CALLS  # a warm-up, then timed
    recorded = json.loads(choices_file().read_text())
    assert recorded == {machine_identity(): {"key a": "fast"}}

    def never():
        raise AssertionError("a recorded key is not timed again")

    assert choose("key a", NAMES, never) == "fast"


def test_a_recorded_choice_is_taken_even_where_timing_would_differ():
    """What the file says wins: a retrain on this machine runs the kernels of the first run."""
    choices_file().parent.mkdir(parents=True, exist_ok=True)
    choices_file().write_text(json.dumps({machine_identity(): {"key b": "slow"}}))
    assert choose("key b", NAMES, _timed_pair([])) == "slow"


def test_another_process_recording_first_wins():
    """Two processes timing one shape at once: the first to write wins, the other takes it."""

    def racing():
        path = choices_file()  # another process writes while this one times
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps({machine_identity(): {"key c": "slow"}}))
        return _timed_pair([])()

    assert choose("key c", NAMES, racing) == "slow"
    assert json.loads(choices_file().read_text())[machine_identity()] == {"key c": "slow"}


def test_another_machines_choices_are_not_taken():
    choices_file().parent.mkdir(parents=True, exist_ok=True)
    choices_file().write_text(json.dumps({"another CPU [avx2] torch 0": {"key d": "slow"}}))
    assert choose("key d", NAMES, _timed_pair([])) == "fast"
    assert set(json.loads(choices_file().read_text())) == {
        "another CPU [avx2] torch 0",
        machine_identity(),
    }


def test_a_forced_kernel_is_not_timed_and_a_wrong_one_is_one_line(monkeypatch):
    monkeypatch.setenv(ENV, "slow")
    assert choose("key e", NAMES, _timed_pair([])) == "slow"
    assert not choices_file().exists()
    monkeypatch.setenv(ENV, "fastest")
    with pytest.raises(ConfigError, match=f"{ENV}=fastest: expected one of slow, fast"):
        choose("key e", NAMES, _timed_pair([]))


def test_several_forced_kernels_each_apply_where_they_are_candidates(monkeypatch):
    """DSE_KERNELS=a,b: each choice takes the forced one among its own candidates; a choice
    with none of them among its candidates is timed; a name no choice knows is refused."""
    monkeypatch.setenv(ENV, "slow,other")
    assert choose("key g", NAMES, _timed_pair([]), known=("other",)) == "slow"
    assert choose("key h", ("other", "more"), _timed_pair([]), known=NAMES) == "other"
    calls: list[str] = []
    monkeypatch.setenv(ENV, "other")
    assert choose("key i", NAMES, _timed_pair(calls), known=("other",)) == "fast" and calls
    monkeypatch.setenv(ENV, "slow,bogus")
    with pytest.raises(ConfigError, match=f"{ENV}=bogus: expected one of slow, fast, other"):
        choose("key j", NAMES, _timed_pair([]), known=("other",))


def test_a_strided_convolution_takes_its_forced_input_gradient_kernel(monkeypatch):
    conv = Conv2d(3, 4, kernel_size=3, stride=2)
    x = torch.rand(2, 3, 9, 9, requires_grad=True)
    for forced, backward in [
        (ONEDNN, "ConvolutionBackward0"),
        (f"{PHASES},{ONEDNN}", "_Conv2dFunctionBackward"),  # input: phases; weight: oneDNN
    ]:
        monkeypatch.setenv(ENV, forced)
        assert type(conv(x).grad_fn).__name__ == backward
    monkeypatch.setenv(ENV, "onednn,as_fast")
    with pytest.raises(ConfigError, match=f"{ENV}=as_fast: expected one of ") as refused:
        conv(x)
    assert set(str(refused.value).split("of ")[1].split(", ")) == set(KERNELS)
    assert not choices_file().exists()  # forced: nothing timed, nothing recorded


def test_an_unwritable_cache_warns_once_and_still_chooses(monkeypatch, tmp_path):
    blocked = tmp_path / "file"
    blocked.write_text("")  # a file where the cache folder should be
    monkeypatch.setenv("DSE_CACHE_DIR", str(blocked / "cache"))
    monkeypatch.setattr(kernel_choice, "_unrecordable", False)
    with pytest.warns(UserWarning, match="cannot record kernel choices"):
        assert choose("key f", NAMES, _timed_pair([])) == "fast"
    assert choose("key f", NAMES, _timed_pair([])) == "fast"  # kept in the process


def test_a_convolution_records_its_weight_gradient_kernel(monkeypatch):
    conv = Conv2d(1, 8, kernel_size=5)
    x = torch.rand(4, 1, 12, 12)
    out = conv(x)
    ((key, choice),) = json.loads(choices_file().read_text())[machine_identity()].items()
    assert (
        key == f"conv2d weight grad: x [4, 1, 12, 12] w [8, 1, 5, 5] stride 1 groups 1 "
        f"torch.float32 threads {torch.get_num_threads()}"
    )
    backward = {ONEDNN: "ConvolutionBackward0", AS_FORWARD: "_Conv2dFunctionBackward"}
    assert type(out.grad_fn).__name__ == backward[choice]
    for forced, name in backward.items():
        monkeypatch.setenv(ENV, forced)
        assert type(conv(x).grad_fn).__name__ == name
    with torch.no_grad():  # evaluation takes F.conv2d as it is
        assert conv(x).grad_fn is None


def test_a_new_process_reads_the_recorded_choices():
    """The file written by one process decides for the next (same machine, same shape)."""
    script = (
        "import torch; from dse.model.conv import weight_grad_kernel; "
        "print(weight_grad_kernel(torch.rand(2, 3, 9, 9), torch.rand(4, 3, 3, 3), 2, 1))"
    )
    first = subprocess.run(
        [sys.executable, "-c", script], env=subprocess_env(), capture_output=True, text=True
    )
    assert first.returncode == 0, first.stderr
    (choice,) = json.loads(choices_file().read_text())[machine_identity()].values()
    assert first.stdout.strip() == choice
    other = ONEDNN if choice == AS_FORWARD else AS_FORWARD
    content = {
        machine_identity(): {
            k: other for k in json.loads(choices_file().read_text())[machine_identity()]
        }
    }
    choices_file().write_text(json.dumps(content))
    second = subprocess.run(
        [sys.executable, "-c", script], env=subprocess_env(), capture_output=True, text=True
    )
    assert second.stdout.strip() == other
