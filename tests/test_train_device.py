"""Where training runs: --device parsing and its refusal on a machine without CUDA, the
device-move and autocast helpers every loop calls (the CUDA path exercised on the CPU:
bf16 CPU autocast stands in for CUDA's, the meta device for a GPU copy), and the DataLoader
settings per device."""

import re
import subprocess
import sys

import numpy as np
import pytest
import torch

from edgehar.cli import main
from edgehar.train import ddp, loop


@pytest.fixture
def no_cuda(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.version, "cuda", None)


@pytest.fixture
def two_gpus(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)


def test_auto_is_the_cpu_without_cuda_and_the_first_gpu_with_it(no_cuda, monkeypatch):
    assert loop.resolve_device("auto") == torch.device("cpu")
    assert loop.resolve_device(None) == torch.device("cpu")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    assert loop.resolve_device("auto") == torch.device("cuda")
    assert loop.resolve_device("CPU") == torch.device("cpu")


def test_cuda_specs_are_checked_against_the_machine(two_gpus):
    assert loop.resolve_device("cuda") == torch.device("cuda")
    assert loop.resolve_device("cuda:1") == torch.device("cuda", 1)
    with pytest.raises(ValueError, match=r"no GPU 2 on this machine \(2 found: cuda:0 to cuda:1\)"):
        loop.resolve_device("cuda:2")
    with pytest.raises(ValueError, match="expected cuda:N"):
        loop.resolve_device("cuda:first")
    with pytest.raises(ValueError, match="expected auto, cpu, cuda or cuda:N, got 'tpu'"):
        loop.resolve_device("tpu")


def test_no_cuda_says_why(no_cuda, monkeypatch):
    with pytest.raises(ValueError, match=re.escape(f"CUDA is not available on this machine (torch "
                                                   f"{torch.__version__} is a CPU build)")):
        loop.resolve_device("cuda")
    monkeypatch.setattr(torch.version, "cuda", "12.6")  # a CUDA build on a machine without a GPU
    with pytest.raises(ValueError, match="finds no GPU"):
        loop.resolve_device("cuda:0")


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
def test_device_cuda_without_cuda_is_refused_at_parse_time(tmp_path):
    out = tmp_path / "t.pt"
    r = subprocess.run([sys.executable, "-m", "edgehar", "pretrain", "--method", "harfm", "--data", "synthetic",
                        "--device", "cuda", "--out", str(out)], capture_output=True, text=True)
    assert r.returncode == 2
    assert r.stderr.splitlines()[-1] == (f"edgehar pretrain: error: argument --device: cuda: CUDA is not available "
                                         f"on this machine (torch {torch.__version__} is a CPU build)")
    assert not out.exists() and not (tmp_path / "t.pt.run").exists()


@pytest.mark.parametrize("argv", [["finetune", "teacher.pt"], ["distill", "--teacher", "teacher.pt"], ["demo"]])
def test_every_training_command_takes_and_checks_device(argv, no_cuda, capsys):
    with pytest.raises(SystemExit) as e:
        main([*argv, "--device", "cuda:0"])
    assert e.value.code == 2
    assert "argument --device: cuda:0: CUDA is not available" in capsys.readouterr().err.splitlines()[-1]


def test_cpu_autocast_is_off_and_changes_nothing():
    torch.manual_seed(0)
    layer, x = torch.nn.Linear(8, 4), torch.randn(3, 8)
    with loop.autocast(torch.device("cpu")):
        y = layer(x)
    assert y.dtype == torch.float32 and torch.equal(y, layer(x))


def test_autocast_path_in_bf16_on_the_cpu_as_cuda_would_run_it():
    torch.manual_seed(0)
    layer, x = torch.nn.Linear(8, 4), torch.randn(3, 8)
    with loop.autocast(torch.device("cpu"), enabled=True):
        y = layer(x)
    assert y.dtype == torch.bfloat16
    torch.testing.assert_close(y.float(), layer(x), atol=0.05, rtol=0.05)


def test_to_device_keeps_cpu_tensors_and_moves_nested_batches():
    x, y = torch.randn(2, 3), torch.arange(2)
    batch = {"x": x, "y": y, "step": 3, "generator": None, "pair": (x, None)}
    assert loop.to_device(batch, torch.device("cpu")) is batch  # the CPU path copies nothing
    moved = loop.to_device(batch, torch.device("meta"))  # another device: the copy path GPUs take
    assert moved["x"].device.type == "meta" and moved["y"].device.type == "meta"
    assert moved["step"] == 3 and moved["generator"] is None and moved["pair"][1] is None
    assert moved["pair"][0].device.type == "meta" and x.device.type == "cpu"


def test_loader_pins_and_reads_ahead_on_cuda_only():
    data = torch.utils.data.TensorDataset(torch.arange(10.0))
    cpu = loop.loader(data, torch.device("cpu"), batch_size=4)
    assert cpu.num_workers == 0 and not cpu.pin_memory
    assert torch.cat([b[0] for b in cpu]).tolist() == list(map(float, range(10)))
    gpu = loop.loader(data, torch.device("cuda"), batch_size=4, workers=2)
    assert gpu.num_workers == 2 and gpu.pin_memory and gpu.persistent_workers


def test_loader_reads_the_memory_mapped_corpus(tmp_path):
    from test_corpus import _own

    from edgehar.data.corpus import build_corpus, corpus_dataset, stream

    a = _own(tmp_path / "a", range(1, 5))
    build_corpus([a], rate=25, window=50, out=tmp_path / "c", shard_windows=7)
    got = list(loop.loader(corpus_dataset(tmp_path / "c", "train"), torch.device("cpu"), batch_size=5))
    x = torch.cat([b[0] for b in got])
    want = np.concatenate([xb for xb, _ in stream(tmp_path / "c", "train", 0, 1)])
    assert x.shape == want.shape and np.array_equal(x.numpy(), want)


def test_session_sets_the_device_of_every_loop_and_explicit_wins(two_gpus):
    assert loop.device_for() == torch.device("cpu")  # outside a command: the CPU, as always
    with loop.session(device="cuda:1"):
        assert loop.device_for() == torch.device("cuda", 1)
        assert loop.device_for("cpu") == torch.device("cpu")
    assert loop.device_for() == torch.device("cpu")
    ctx = ddp.setup("cpu")
    assert ctx == ddp.Context(device=torch.device("cpu")) and not ctx.distributed


def test_a_loop_runs_under_bf16_autocast_and_returns_the_model_on_the_cpu(monkeypatch):
    """The CUDA code path of a loop (autocast on) run on the CPU: it trains, and the weights
    come back in float32 on the CPU, different from the fp32 run."""
    from edgehar.recipes import TeacherRecipe, pretrain_teacher
    from edgehar.train.pretrain import synthetic_windows

    w = synthetic_windows(n=64)
    recipe = TeacherRecipe(family="harfm", config="tiny", pretrain_steps=6, pretrain_batch_size=16)
    fp32, _, _ = pretrain_teacher(recipe, w, progress=False)
    real = loop.autocast
    monkeypatch.setattr(loop, "autocast", lambda device, **kw: real(device, enabled=True))
    bf16, _, r16 = pretrain_teacher(recipe, w, progress=False)
    assert all(np.isfinite(p[1]) for p in r16.loss_curve)
    params = dict(bf16.named_parameters())
    assert all(p.device.type == "cpu" and p.dtype == torch.float32 for p in params.values())
    assert any(not torch.equal(p, params[n]) for n, p in fp32.named_parameters())


@pytest.mark.parametrize("family", ["harfm", "relcon", "selfpab", "language"])
def test_losses_make_their_tensors_on_the_models_device(family):
    """Every family's pre-training loss, run on the meta device (no data, but device checks as
    on a GPU) inside `device_scope`: masks, noise and index tensors the loss makes itself land
    beside the model's, so the only failure left is meta's lack of data-dependent operations
    (`.item()`, `nonzero`), never a device mismatch. Outside the scope HAR-FM's masks are made
    on the host and do mismatch."""
    from edgehar.models import build
    from edgehar.recipes import family_config
    from edgehar.train.pretrain import synthetic_windows

    w = synthetic_windows(n=32)
    teacher = build({"name": family, "config": family_config(family, "tiny", w)})
    teacher.fit_statistics(torch.from_numpy(w.x))
    meta = torch.device("meta")
    teacher.to(meta)
    batch = loop.to_device({"x": torch.from_numpy(w.x[:16]), "y": torch.from_numpy(w.y[:16]),
                            "subject": torch.from_numpy(w.subject[:16]), "step": 0, "total_steps": 10,
                            "generator": None}, meta)
    with pytest.raises((RuntimeError, NotImplementedError)) as e, loop.device_scope(meta):
        teacher.pretrain_loss(batch)
    assert "meta" in str(e.value) and "expected device" not in str(e.value)
    if family == "harfm":
        with pytest.raises(RuntimeError, match="expected device"):
            teacher.pretrain_loss(batch)
