"""Data-parallel training (distribute mirrored / multi_worker) equals single-device training; refusals; resume."""
import json
import os
import socket
import subprocess
import sys

import numpy as np
import pytest

from tf_scripts import configuration
from tf_scripts.errors import UserError

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
WORKER = os.path.join(REPO, "tests", "distribute_worker.py")
B, T = 4, 5


def _corpus(root, train_ids=84):
    rng = np.random.default_rng(3)
    words = [f"w{i}" for i in range(17)]
    data = root / "data"
    data.mkdir()
    for name, n in (("train", train_ids), ("valid", 50), ("test", 20)):   # 84 ids: 3 training windows of 4 x 5
        tokens = list(rng.choice(words, size=n - n // 7))
        lines = [" ".join(tokens[i:i + 6]) for i in range(0, len(tokens), 6)]
        (data / f"{name}.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return data


def _config(root, name, **keys):
    values = dict(save_path=root / name, log_dir=root / "logs", data_path=root / "data", vocab=False,
                  basic_cell="LSTM", num_layers=2, embedding_size=6, size=8, num_steps=T, batch_size=B,
                  init_scale=0.3, learning_rate=0.05, max_grad_norm=0.5, forget_bias=0.5, dropout=1.0,
                  max_epoch=1, max_max_epoch=1, lr_decay=0.5, optimizer="adam", trainer="trainer", softmax="full")
    values.update(keys)
    path = root / f"{name}.config"
    path.write_text("".join(f"{k} {v}\n" for k, v in values.items()), encoding="utf-8")
    return path


def _run(devices, config, env=None, check=True):
    done = subprocess.run([sys.executable, WORKER, str(devices), "--config", str(config), "--notest"], cwd=REPO,
                          capture_output=True, text=True, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", **(env or {})})
    if check:
        assert done.returncode == 0, done.stdout[-1500:] + done.stderr[-1500:]
    return done


def _weights(folder):
    with np.load(folder / "weights.npz") as f:
        return {k: f[k] for k in f.files if f[k].dtype.kind == "f"}


def _assert_close(a, b, tol=1e-6):
    assert sorted(a) == sorted(b)
    for name in a:
        np.testing.assert_allclose(a[name], b[name], rtol=0, atol=tol, err_msg=name)


@pytest.mark.parametrize("keys", [dict(), dict(dropout=0.7, optimizer="sgd", learning_rate=1.0)])
def test_mirrored_on_two_logical_cpus_equals_one_device(tmp_path, keys):
    _corpus(tmp_path)
    _run(1, _config(tmp_path, "single", **keys))
    done = _run(2, _config(tmp_path, "mirrored", distribute="mirrored", **keys))
    assert "2 replicas of 2 rows" in done.stdout
    single, mirrored = _weights(tmp_path / "single"), _weights(tmp_path / "mirrored")
    assert any(np.abs(single[k] - _weights_initial(tmp_path, k)).max() > 1e-3 for k in single)   # it trained
    _assert_close(single, mirrored)


def _weights_initial(root, name):
    """The seeded initial value of weights.npz array `name` (main.py --notrain --fresh_weights --export_weights)."""
    folder = root / "initial"
    if not (folder / "weights.npz").exists():
        config = _config(root, "initial")
        subprocess.run([sys.executable, WORKER, "1", "--config", str(config), "--notrain", "--fresh_weights",
                        "--export_weights"], cwd=REPO, check=True, capture_output=True)
    return _weights(folder)[name]


def test_batch_not_divisible_by_the_replicas_is_refused(tmp_path):
    _corpus(tmp_path)
    done = _run(3, _config(tmp_path, "bad", distribute="mirrored"), check=False)
    assert done.returncode == 2 and "batch_size 4 is not divisible by the 3 replicas" in done.stderr
    config = configuration.config_from_dict(dict(save_path="s", log_dir="l", data_path="d", vocab=False,
                                                 basic_cell="RNN", num_layers=1, size=2, num_steps=2, batch_size=2,
                                                 init_scale=0.1, softmax="full", distribute="multi_worker"),
                                            train=False)
    from tf_scripts import distribute

    os.environ.pop("TF_CONFIG", None)
    with pytest.raises(UserError, match="distribute multi_worker needs the TF_CONFIG"):
        distribute.make_strategy(config)


def _free_ports(n):
    sockets = [socket.socket() for _ in range(n)]
    for s in sockets:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


def _tf_config(ports, index):
    return json.dumps({"cluster": {"worker": [f"127.0.0.1:{p}" for p in ports]},
                       "task": {"type": "worker", "index": index}})


def _start_workers(config, ports):
    return [subprocess.Popen([sys.executable, WORKER, "1", "--config", str(config), "--notest"], cwd=REPO,
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                             env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "TF_CONFIG": _tf_config(ports, i)})
            for i in range(len(ports))]


def test_two_local_workers_equal_one_device_and_a_killed_run_resumes(tmp_path):
    _corpus(tmp_path, train_ids=404)                   # 19 training windows of 4 x 5 per epoch
    # SGD: over 38 steps Adam's division by sqrt(v) magnifies float32 summation-order noise to 1e-5
    keys = dict(max_max_epoch=2, optimizer="sgd", learning_rate=1.0)
    _run(1, _config(tmp_path, "single", **keys))
    config = _config(tmp_path, "workers", distribute="multi_worker", **keys)
    procs = _start_workers(config, _free_ports(2))
    # kill both workers as soon as the chief has saved epoch 1 (a lost worker stalls the other)
    chief_out = []
    for line in procs[0].stdout:
        chief_out.append(line)
        if line.startswith("Saved checkpoint"):
            break
    for p in procs[::-1]:
        p.kill()
    rest = [p.communicate(timeout=60)[0] for p in procs]
    assert "".join(chief_out).count("Saved checkpoint") == 1 and "not the chief" in rest[1]
    assert all(p.returncode != 0 for p in procs)            # killed, not finished
    procs = _start_workers(config, _free_ports(2))
    outs = [p.communicate(timeout=240)[0] for p in procs]
    assert all(p.returncode == 0 for p in procs), outs[0][-2000:] + outs[1][-2000:]
    assert "Restored checkpoint" in outs[0] and "(1 epoch(s) done)" in outs[0]   # killed during epoch 2
    _assert_close(_weights(tmp_path / "single"), _weights(tmp_path / "workers"))
