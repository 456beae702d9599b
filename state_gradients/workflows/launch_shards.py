"""sg-launch-shards: run the N shards of a gradient pass on a Dask cluster, retry failed shards, then merge."""
# Each shard is an independent job: `main.py --config C --notrain --notest --shard i/N` in a
# fresh process on some worker (a fresh TensorFlow per shard; the worker only waits for it).
# The shards write into GRAD_DIR/shards/i-of-N/, so GRAD_DIR must be on storage that every
# worker and this process see (NFS, Lustre, ...). A shard that fails is resubmitted by Dask
# (--retries); a rerun resumes from the shard's own progress record. When all N are complete
# the shards are merged here (sg-merge-gradients), which writes what one pass writes.
#
# Dask distributed rather than Ray: pure-Python wheels, no daemon of its own, the same Client
# for a LocalCluster (tests, one big machine) and for an existing cluster by its scheduler
# address (dask-jobqueue starts one on Slurm/PBS/SGE, dask-kubernetes on Kubernetes), and
# per-task retries.
import os
import shlex
import subprocess
import sys

from state_gradients.core import configuration
from state_gradients.core.errors import UserError
from state_gradients.files import gradient_files

PROG = "sg-launch-shards"
DEFAULT_MAIN = f"{shlex.quote(sys.executable)} -m tf_scripts.main"
CONNECT_TIMEOUT = 30   # seconds to wait for a --scheduler (Dask's own default)


class ShardFailed(Exception):
    """A shard's process exited with a non-zero status (Dask retries the task)."""


def run_shard(main_command, config_path, index, count, cwd):
    """Run one shard as its own process; returns its last output lines, raises ShardFailed on failure."""
    argv = shlex.split(main_command) + ["--config", config_path, "--notrain", "--notest", "--shard",
                                        f"{index}/{count}"]
    done = subprocess.run(argv, cwd=cwd, capture_output=True, text=True, check=False)
    tail = (done.stdout + done.stderr).strip().splitlines()[-3:]
    if done.returncode != 0:
        raise ShardFailed(f"shard {index}/{count} exited with {done.returncode}: {' | '.join(tail)}")
    return tail


def launch(config_path, count, *, scheduler=None, local_workers=2, retries=2, main_command=DEFAULT_MAIN, log=print,
           connect_timeout=CONNECT_TIMEOUT):
    """Run shards 1..count of config_path's gradient pass on a Dask cluster, then merge; returns the perplexity.

    connect_timeout: seconds to wait for the scheduler at `scheduler` before giving up (UserError).
    """
    try:
        from distributed import Client, LocalCluster
    except ImportError:
        raise UserError("the Dask engine is not installed: pip install 'state-gradients[cluster]' "
                        "(or pip install 'dask[distributed]')") from None

    config = configuration.load_config(config_path, train=False, valid=True, test=False, warn=lambda m: None)
    if not config.grad_interm:
        raise UserError(f"{config_path} has no grad_interm: it is not a gradient config")
    config_path, cwd = os.path.abspath(config_path), os.getcwd()
    cluster = None
    if scheduler is None:
        cluster = LocalCluster(n_workers=local_workers, threads_per_worker=1, processes=True,
                               dashboard_address=None)
    try:
        try:
            client = Client(scheduler or cluster, timeout=connect_timeout)
        except (OSError, TimeoutError) as err:
            raise UserError(f"no Dask scheduler answered at {scheduler} within {connect_timeout:g} s ({err}); is it "
                            "running, and is the address (tcp://HOST:PORT) reachable from here?") from None
        with client:
            log(f"{count} shard(s) of {config_path} on {client.scheduler.address} "
                f"({len(client.scheduler_info()['workers'])} worker(s), up to {retries} retries each)")
            futures = {i: client.submit(run_shard, main_command, config_path, i, count, cwd, retries=retries,
                                        pure=False, key=f"sg-shard-{i}-of-{count}-{os.getpid()}")
                       for i in range(1, count + 1)}
            failed = []
            for i, future in futures.items():
                try:
                    future.result()
                    log(f"shard {i}/{count} complete")
                except ShardFailed as err:
                    failed.append(str(err))
    finally:
        if cluster is not None:
            cluster.close()
    if failed:
        raise UserError(f"{len(failed)} shard(s) failed after {retries} retries, nothing merged: "
                        + "; ".join(failed) + f"; rerun {PROG} (complete shards are not recomputed)")
    return gradient_files.merge_shards(config.grad_dir, log=log)
