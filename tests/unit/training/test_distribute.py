"""Data-parallel training (distribute mirrored / multi_worker) equals single-device training; refusals; resume."""
import json
import os
import socket
import subprocess
import sys

import numpy as np
import pytest

from state_gradients.core import configuration
from state_gradients.core.errors import UserError
from state_gradients.training import trainer

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
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


def _run(devices, *args, check=True):
    done = subprocess.run([sys.executable, WORKER, str(devices), *map(str, args)], cwd=REPO,
                          capture_output=True, text=True, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
    if check:
        assert done.returncode == 0, done.stdout[-1500:] + done.stderr[-1500:]
    return done


def _weights(folder):
    with np.load(folder / "weights.npz") as f:
        return {k: f[k] for k in f.files if f[k].dtype.kind == "f" and f[k].ndim}    # the trained arrays


# Tolerances. A gradient element is a sum over the n = B*T tokens of each token's contribution
# g_i (the loss is a sum over tokens). One device adds them in one order, R replicas in another
# (per replica in kernels that oneDNN picks per shape and CPU, then across replicas). A
# floating-point sum of n terms in any order is within (n - 1) u sum_i |g_i| of the exact sum
# (Higham, Accuracy and Stability of Numerical Algorithms, 2002, eq. 4.4), so the two are within
# 2 (n - 1) u max sum_i |g_i| of each other, u the unit roundoff (2^-24 in float32). The bound is
# taken norm-wise (the largest sum_i |g_i| of the variable), which also covers the rounding
# inside each token's contribution on this model (measured: the largest difference is 1-9 u of
# it). The worker computes sum_i |g_i| from each token's own gradient.
UNIT_ROUNDOFF = {np.dtype(np.float32): 2.0 ** -24, np.dtype(np.float64): 2.0 ** -53}
UNCLIPPED = 2.0 ** 20     # max_grad_norm: clip_by_global_norm's scale is then exactly 1 (a power of two)


def _compare(root, name, dtype="float32", **keys):
    """distribute_worker --compare on 2 logical CPUs: per-step gradients and final weights of both paths."""
    config = _config(root, name, distribute="mirrored", **keys)
    out = root / f"{name}.npz"
    _run(2, "--compare", config, out, dtype)
    with np.load(out) as f:
        arrays = dict(f)
    steps = len({k.split("/")[1] for k in arrays if k.startswith("abs_sum/")})
    names = sorted(k.split("/", 1)[1] for k in arrays if k.startswith("single/"))
    return arrays, steps, names


def _gradient_tolerances(arrays, steps, names):
    """tol[k][name] = 2 (n - 1) u max sum_i |g_i| (see above)."""
    n = B * T
    u = UNIT_ROUNDOFF[arrays[f"single/{names[0]}"].dtype]
    return [{name: 2 * (n - 1) * u * arrays[f"abs_sum/{k}/{name}"].max() for name in names} for k in range(steps)]


def _check_gradients(arrays, steps, names, tol):
    """The summed replica gradients equal one device's at every step (each path at its own current weights)."""
    for k in range(steps):
        for name in names:
            got, want = arrays[f"mirrored_grad/{k}/{name}"], arrays[f"single_grad/{k}/{name}"]
            assert np.abs(want).max() > 100 * tol[k][name], (k, name)     # the check can tell
            np.testing.assert_allclose(got, want, rtol=0, atol=tol[k][name], err_msg=f"step {k} {name}")


def _sgd_weight_tolerance(arrays, steps, names, tol, learning_rates):
    """|w - w'| after SGD steps: w_(k+1) = w_k - lr_k g_k, so the differences add up to sum_k (lr_k tol_k + 2 u max|w_k+1|)
    (the gradient bound, which _check_gradients asserts at the paths' own weights, and each path's rounding of the update)."""
    u = UNIT_ROUNDOFF[arrays[f"single/{names[0]}"].dtype]
    return {name.split(":")[0]: sum(lr * tol[k][name] + 2 * u * np.abs(arrays[f"single_after/{k}/{name}"]).max()
                      for k, lr in enumerate(learning_rates)) for name in names}


def _assert_weights_close(got, want, tol):
    assert sorted(got) == sorted(want) == sorted(tol)
    for name in want:
        np.testing.assert_allclose(got[name], want[name], rtol=0, atol=tol[name], err_msg=name)


def _by_file_name(arrays, prefix):
    """{weights.npz name: array} of the worker's `prefix/` arrays (variable names end in ':0')."""
    return {k[len(prefix) + 1:].split(":")[0]: v for k, v in arrays.items() if k.startswith(prefix + "/")}


@pytest.mark.parametrize("keys", [dict(), dict(dropout=0.7)], ids=["no-dropout", "dropout"])
def test_mirrored_unclipped_sgd_equals_one_device(tmp_path, keys):
    """Unclipped SGD is linear in the gradients, so it shows what data parallelism must keep: the summed gradients.
    Averaging the replicas' gradients instead of summing them halves every step and fails both checks."""
    keys = dict(optimizer="sgd", learning_rate=1.0, max_grad_norm=UNCLIPPED, **keys)
    _corpus(tmp_path)                                  # 3 training windows: 3 steps
    arrays, steps, names = _compare(tmp_path, "compare", **keys)
    assert steps == 3
    tol = _gradient_tolerances(arrays, steps, names)
    _check_gradients(arrays, steps, names, tol)
    tol = _sgd_weight_tolerance(arrays, steps, names, tol, [1.0] * steps)
    single, initial = _by_file_name(arrays, "single"), _by_file_name(arrays, "initial")
    assert all(np.abs(single[k] - initial[k]).max() > 1e-3 for k in single)        # it trained
    _assert_weights_close(_by_file_name(arrays, "mirrored"), single, tol)
    # and through main.py: the trainer with the strategy, as a user runs it
    done = _run(2, "--config", _config(tmp_path, "mirrored", distribute="mirrored", **keys), "--notest")
    assert "2 replicas of 2 rows" in done.stdout
    _assert_weights_close(_weights(tmp_path / "mirrored"), single, tol)


def _adam_weight_tolerance(arrays, steps, names, tol, lr, max_grad_norm):
    """Per element, first order: how far Adam's steps can move apart when every gradient may differ by tol.

    Clipping scales a step's gradients by c = min(1, clip / |g|), which the bound changes by at most
    |dg| / |g| relative; Adam divides m by sqrt(v) + eps, which magnifies the difference of a small
    component (up to lr / eps for a component near zero): that is why float32 Adam cannot be
    compared tightly, and why this case runs in float64.
    """
    from state_gradients.training.optimizers import ADAM_BETA1 as b1, ADAM_BETA2 as b2, ADAM_EPSILON as eps

    u = UNIT_ROUNDOFF[arrays[f"single/{names[0]}"].dtype]
    bound = {}
    for name in names:
        m = v = dm = dv = total = 0.0
        for k in range(steps):
            grads = {nm: arrays[f"single_grad/{k}/{nm}"] for nm in names}
            norm = np.sqrt(sum((g ** 2).sum() for g in grads.values()))
            norm_error = np.sqrt(sum(t ** 2 * g.size for t, g in zip((tol[k][nm] for nm in names), grads.values())))
            c = min(1.0, max_grad_norm / norm)
            g = c * grads[name]
            dg = c * tol[k][name] + (np.abs(g) * norm_error / norm if c < 1 else 0.0)
            m, dm = b1 * m + (1 - b1) * g, b1 * dm + (1 - b1) * dg
            v, dv = b2 * v + (1 - b2) * g * g, b2 * dv + (1 - b2) * 2 * np.abs(g) * dg
            root = np.sqrt(v)
            d_step = dm / (root + eps) + np.abs(m) * dv / (2 * np.maximum(root, eps) * (root + eps) ** 2)
            alpha = lr * np.sqrt(1 - b2 ** (k + 1)) / (1 - b1 ** (k + 1))
            total = total + 2 * alpha * d_step + 2 * u * np.abs(arrays[f"single_after/{k}/{name}"])
        bound[name.split(":")[0]] = total          # x2 above: room for the second-order terms
    return bound


@pytest.mark.parametrize("model", [dict(), dict(basic_cell="Transformer", num_heads=2)], ids=["LSTM", "Transformer"])
def test_mirrored_adam_with_clipping_equals_one_device_in_float64(tmp_path, model):
    """Adam and clipping, in float64 (the same code in another dtype): the summed gradients, then per-element weights;
    for the LSTM and for a Transformer (whose windows carry no state)."""
    keys = dict(optimizer="adam", learning_rate=0.05, max_grad_norm=0.5, **model)
    _corpus(tmp_path)
    arrays, steps, names = _compare(tmp_path, "compare", "float64", **keys)
    tol = _gradient_tolerances(arrays, steps, names)
    _check_gradients(arrays, steps, names, tol)
    assert np.sqrt(sum((arrays[f"single_grad/0/{n}"] ** 2).sum() for n in names)) > 0.5          # it clips
    bound = _adam_weight_tolerance(arrays, steps, names, tol, 0.05, 0.5)
    single, mirrored = _by_file_name(arrays, "single"), _by_file_name(arrays, "mirrored")
    assert all(np.abs(single[k] - _by_file_name(arrays, "initial")[k]).max() > 1e-3 for k in single)
    for name in single:
        excess = np.abs(mirrored[name] - single[name]) - bound[name]
        assert excess.max() <= 0, (name, float(excess.max()))
        assert bound[name].max() < 1e-9, (name, float(bound[name].max()))    # the bound is tight enough to tell


def test_batch_not_divisible_by_the_replicas_is_refused(tmp_path):
    _corpus(tmp_path)
    done = _run(3, "--config", _config(tmp_path, "bad", distribute="mirrored"), check=False)
    assert done.returncode == 2 and "batch_size 4 is not divisible by the 3 replicas" in done.stderr
    config = configuration.config_from_dict(dict(save_path="s", log_dir="l", data_path="d", vocab=False,
                                                 basic_cell="RNN", num_layers=1, size=2, num_steps=2, batch_size=2,
                                                 init_scale=0.1, softmax="full", distribute="multi_worker"),
                                            train=False)
    from state_gradients.training import distribute

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
    # unclipped SGD (linear in the summed gradients), lr 1 then 0.5: 38 steps compared on the bound of
    # the mirrored test, from the same gradients on 2 logical CPUs (the workers split the rows alike)
    keys = dict(max_max_epoch=2, optimizer="sgd", learning_rate=1.0, max_grad_norm=UNCLIPPED)
    arrays, steps, names = _compare(tmp_path, "compare", **keys)
    assert steps == 38
    tol = _gradient_tolerances(arrays, steps, names)
    _check_gradients(arrays, steps, names, tol)
    rates = [trainer.scheduled_learning_rate(k // 19, 1.0, 0.5, 1) for k in range(steps)]
    weight_tol = _sgd_weight_tolerance(arrays, steps, names, tol, rates)
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
    _assert_weights_close(_weights(tmp_path / "workers"), _by_file_name(arrays, "single"), weight_tol)
