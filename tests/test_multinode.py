"""`advent-sweep launch --address` on a real three-node Ray cluster that loses a worker mid-sweep.

A head (127.0.0.2, no CPUs: it runs the control plane and the sweep driver) and two workers
(127.0.0.3 and 127.0.0.4, two CPUs each) are started as child processes with
`ray start --block`; the sweep runs as the `advent-sweep` console script against the head.
Once the first report is in Parquet, one worker node (the one that produced it) is killed:
SIGKILL to its `ray start` process group and to every other process of that session (Ray
puts each worker process, the node's trials included, in a process group of its own).
The sweep must still end normally: every trial completed or stopped by ASHA, the trial
that was running on the lost node retried from its checkpoint on the other worker, and
no (trial, iteration) report lost or duplicated.

Isolation. Ray's gRPC servers (GCS, raylets, workers) listen on 127.0.0.1 only when the node
IP is exactly 127.0.0.1; with any other node IP -- 127.0.0.2 included -- they listen on
every interface ("::"). So the cluster and the driver run in a network namespace of their
own that holds nothing but the loopback interface: nothing they open is reachable from
outside this namespace, and they reach nothing outside it. The namespace also keeps their
ports apart from every other Ray on the machine. Where a namespace cannot be made
(`unshare` missing, or forbidden for this user) the test is skipped rather than open ports
to the network.

Every process is started here and stopped here by its process (group) id, never by Ray's
machine-wide stop command. The teardown checks that no process of the test is left: none whose command
line names the test's temporary folder, none in its network namespace.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq
import pytest
import yaml

from tests.ray_results import ray_iterations

pytestmark = [
    pytest.mark.slow,
    # above the sum of the bounded waits below, so those fail first with their own message;
    # pytest-timeout's default (signal) method still runs the fixture's teardown
    pytest.mark.timeout(900),
    pytest.mark.skipif(not sys.platform.startswith("linux"), reason="needs Linux network namespaces and 127.0.0.x addresses"),
]

BIN = Path(sys.executable).parent
HEAD_IP, WORKER_IPS = "127.0.0.2", ("127.0.0.3", "127.0.0.4")
GCS_PORT = 6379  # free by construction: the namespace is new
SWEEP = "multinode"
ITERATIONS, EVAL_INTERVAL = 6, 2

# Bounded waits (seconds); the machine may be shared, so they are generous.
CLUSTER_UP_S = 120
FIRST_REPORT_S = 150
SWEEP_END_S = 300
EXIT_S = 20

SPACE = {
    "name": SWEEP,
    "storage": "set-by---storage",
    "data": {"synthetic": {"seed": 0, "size": [32, 32], "num_train": 8, "num_val": 4}},
    "trainer": {
        "backbone": "resnet18", "multi_level": False, "param_repeats": "unique",
        "iterations": ITERATIONS, "poly_horizon": ITERATIONS, "eval_interval": EVAL_INTERVAL,
        "batch_size_source": 2, "batch_size_target": 2, "eval_batch_size": 4, "device": "cpu",
    },
    "space": {"lr": {"type": "categorical", "choices": [1.0e-3, 2.0e-3, 5.0e-3, 1.0e-2, 2.0e-2, 5.0e-2]}},  # 6 distinct: repeats are not trained
    "searcher": {"sampler": "random", "seed": 0},
    "scheduler": {"type": "asha", "grace_period": EVAL_INTERVAL, "reduction_factor": 2, "max_t": ITERATIONS},
    "num_samples": 6,
    "max_concurrent": 4,
    "resources": {"cpu": 1, "gpu": 0},
    "metric": "target_miou",
    "mode": "max",
    # Until Ray's health checks mark the killed node dead, an attempt placed on it (a cached worker there, or a new
    # one) fails at once: one trial spent 4 attempts so in that window in one CI run out of several.
    "max_failures": 8,
}

# Each node's own ports. Inside the namespace every Ray gRPC server listens on "::", so
# nodes on different 127.0.0.x addresses still need different ports from one another.
def node_ports(index: int) -> list[str]:
    base = 21000 + 1000 * index
    return [
        f"--node-manager-port={base}", f"--object-manager-port={base + 1}",
        f"--dashboard-agent-listen-port={base + 2}", f"--dashboard-agent-grpc-port={base + 3}",
        f"--metrics-export-port={base + 4}", f"--runtime-env-agent-port={base + 5}",
        f"--min-worker-port={base + 100}", f"--max-worker-port={base + 199}",
    ]


WAIT_FOR_NODES = textwrap.dedent("""
    import json, sys, time
    import ray
    address, expected, timeout = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
    ray.init(address=address, log_to_driver=False, logging_level="ERROR", configure_logging=False)
    deadline = time.monotonic() + timeout
    while True:
        alive = sorted(n["NodeManagerAddress"] for n in ray.nodes() if n["Alive"])
        if len(alive) >= expected or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    print(json.dumps({"alive": alive, "resources": ray.cluster_resources()}))
""")

BRING_LOOPBACK_UP = textwrap.dedent("""
    import fcntl, socket, struct
    SIOCGIFFLAGS, SIOCSIFFLAGS, IFF_UP, IFREQ = 0x8913, 0x8914, 0x1, "16sh22x"
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        flags = struct.unpack(IFREQ, fcntl.ioctl(s, SIOCGIFFLAGS, struct.pack(IFREQ, b"lo", 0)))[1]
        fcntl.ioctl(s, SIOCSIFFLAGS, struct.pack(IFREQ, b"lo", flags | IFF_UP))
""")


# -- processes ----------------------------------------------------------------------------

def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def _netns(pid: int) -> str | None:
    try:
        return os.readlink(f"/proc/{pid}/ns/net")
    except OSError:
        return None


def _sid(pid: int) -> int | None:
    try:
        return os.getsid(pid)
    except OSError:
        return None


def _is_zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except (OSError, IndexError):
        return True


def _all_pids() -> list[int]:
    return [int(name) for name in os.listdir("/proc") if name.isdigit()]


def _ancestors() -> set[int]:
    """This process and its parents: never to be signalled, whatever they look like."""
    pids, pid = set(), os.getpid()
    while pid > 1:
        pids.add(pid)
        try:
            pid = int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            break
    return pids | {1}


def _tail(path: Path, lines: int = 40) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


class Cluster:
    """The namespace, the nodes and the driver this test starts; each a session of its own.

    What is "ours" is decided by one fact that nothing else on the machine shares: membership
    of the network namespace made here, verified to differ from this process's own. Process
    groups are signalled only through a leader not yet reaped (so its group id cannot have
    been reused).
    """

    def __init__(self, root: Path, logs: Path) -> None:
        self.root, self.logs = root, logs
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("RAY_")}
        self.env.update(RAY_AUTH_MODE="disabled", RAY_USAGE_STATS_ENABLED="0", PYTHONUNBUFFERED="1")
        self.groups: dict[str, subprocess.Popen] = {}  # name -> process (its pid is its group id)
        self.holder: subprocess.Popen | None = None
        self.host_netns = _netns(os.getpid())
        self.netns: str | None = None  # set only once verified to be a new namespace
        self.enter: list[str] = []

    # the namespace
    def make_namespace(self) -> None:
        if not (shutil.which("unshare") and shutil.which("nsenter") and shutil.which("sleep")):
            pytest.skip("needs util-linux unshare and nsenter to keep the cluster off the network")
        assert self.host_netns is not None
        sleep = os.path.realpath(shutil.which("sleep"))
        user = [] if os.geteuid() == 0 else ["--user", "--map-root-user"]
        with open(self.logs / "unshare.log", "w") as log:
            self.holder = subprocess.Popen(["unshare", *user, "--net", sleep, "900"], stdout=subprocess.DEVNULL,
                                           stderr=log, stdin=subprocess.DEVNULL, start_new_session=True)
        deadline = time.monotonic() + 10
        while True:  # ready once unshare has made the namespace and exec'd sleep inside it
            namespace = _netns(self.holder.pid)
            try:
                executable = os.readlink(f"/proc/{self.holder.pid}/exe")
            except OSError:
                executable = None
            if executable == sleep and namespace is not None and namespace != self.host_netns:
                break
            if self.holder.poll() is not None:
                pytest.skip(f"cannot make a network namespace here: {_tail(self.logs / 'unshare.log', 3)}")
            if time.monotonic() > deadline:
                pytest.fail("unshare did not make its network namespace within 10 s")
            time.sleep(0.05)
        self.netns = namespace
        self.enter = ["nsenter", f"--target={self.holder.pid}", "--net"]
        if user:
            self.enter += ["--user", "--preserve-credentials"]
        subprocess.run([*self.enter, "--", sys.executable, "-c", BRING_LOOPBACK_UP], check=True, env=self.env, timeout=30)
        interfaces = [line.split(":")[0].strip() for line in Path(f"/proc/{self.holder.pid}/net/dev").read_text().splitlines()[2:]]
        assert interfaces == ["lo"], f"the namespace should hold only the loopback interface, not {interfaces}"

    # processes inside it
    def start(self, name: str, command: list[str]) -> subprocess.Popen:
        assert self.netns is not None and self.enter
        with open(self.logs / f"{name}.log", "w") as log:
            process = subprocess.Popen(
                [*self.enter, "--", *command], env=self.env, stdout=log, stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL, start_new_session=True, cwd=self.root,
            )
        self.groups[name] = process
        return process

    def start_node(self, name: str, ip: str, index: int, *args: str) -> None:
        self.start(name, [
            str(BIN / "ray"), "start", "--block", "--disable-usage-stats", f"--node-ip-address={ip}",
            f"--temp-dir={self.root / name}", "--object-store-memory=100000000", *node_ports(index), *args,
        ])

    def wait_listening(self, port: int, timeout: float) -> None:
        """Until something in the namespace listens on ``port`` (read from /proc: nothing outside can connect)."""
        deadline = time.monotonic() + timeout
        while True:
            for table in ("tcp", "tcp6"):
                for line in Path(f"/proc/{self.holder.pid}/net/{table}").read_text().splitlines()[1:]:
                    local, state = line.split()[1], line.split()[3]
                    if state == "0A" and int(local.rsplit(":", 1)[1], 16) == port:  # 0A: LISTEN
                        return
            self.check_alive()
            if time.monotonic() > deadline:
                pytest.fail(f"nothing listens on port {port} after {timeout} s:\n{self.logs_tail()}")
            time.sleep(0.2)

    def _session(self, leader: int) -> list[int]:
        """Processes of the session ``leader`` started, in this test's namespace."""
        return [pid for pid in _all_pids() if _sid(pid) == leader and self.netns is not None and _netns(pid) == self.netns]

    def _kill_session(self, process: subprocess.Popen) -> None:
        """SIGKILL what ``process`` started: its process group and the rest of its session.

        Ray gives each worker process a process group of its own (in the node's session), so
        the group of `ray start` alone would leave a node's trials running. Done only while the
        leader is unreaped, so its pid -- the group and session id -- cannot have been reused.
        """
        if process.poll() is None:
            for _ in range(2):  # again, for anything forked meanwhile
                members = self._session(process.pid)
                for kill, target in [(os.killpg, process.pid)] + [(os.kill, pid) for pid in members]:
                    try:
                        kill(target, signal.SIGKILL)
                    except (ProcessLookupError, PermissionError):
                        pass
                time.sleep(0.1)
        try:
            process.wait(timeout=EXIT_S)
        except subprocess.TimeoutExpired:
            pass

    def kill(self, name: str) -> None:
        self._kill_session(self.groups[name])

    def check_alive(self) -> None:
        for name, process in self.groups.items():
            if name.startswith(("head", "worker")) and process.poll() is not None:
                pytest.fail(f"node {name} exited early (code {process.returncode}):\n{_tail(self.logs / f'{name}.log')}")

    def logs_tail(self) -> str:
        return "\n".join(f"--- {name} ---\n{_tail(self.logs / f'{name}.log', 25)}" for name in self.groups)

    # what is left
    def in_namespace(self) -> list[int]:
        """Live processes in this test's own network namespace (none when it was never made)."""
        if self.netns is None or self.netns == self.host_netns:
            return []
        spared = _ancestors()
        return [pid for pid in _all_pids() if pid not in spared and _netns(pid) == self.netns and not _is_zombie(pid)]

    def named(self) -> list[int]:
        """Live processes whose command line names this test's temporary folder."""
        spared = _ancestors()
        return [pid for pid in _all_pids() if pid not in spared and str(self.root) in _cmdline(pid) and not _is_zombie(pid)]

    def teardown(self) -> list[str]:
        """Stop everything started here, the driver first and the head last; return what survived."""
        for name in sorted(self.groups, key=lambda n: (n != "driver", n.startswith("head"))):
            self._kill_session(self.groups[name])
        if self.holder is not None:
            self._kill_session(self.holder)
        deadline = time.monotonic() + EXIT_S
        while (self.in_namespace() or self.named()) and time.monotonic() < deadline:
            time.sleep(0.2)
        left = sorted(set(self.in_namespace()) | set(self.named()))
        survivors = [f"{pid}: {_cmdline(pid)[:160]}" for pid in left]
        for pid in self.in_namespace():  # descendants of what this test started: ours to stop
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        return survivors


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[Cluster]:
    # Ray's Unix socket paths must stay under ~107 characters: a short folder in /tmp.
    root = Path(tempfile.mkdtemp(prefix="rt"))
    logs = tmp_path / "logs"
    logs.mkdir()
    started = Cluster(root, logs)
    try:
        yield started
    finally:
        survivors = started.teardown()
        shutil.rmtree(root, ignore_errors=True)
        assert not survivors, "processes of the test outlived its teardown:\n" + "\n".join(survivors)


# -- results ------------------------------------------------------------------------------

def read_reports(folder: Path) -> pd.DataFrame:
    """Rows of the Parquet report files written so far (dot-files are writes in progress)."""
    parts = sorted((folder / "reports").glob("part-*.parquet"))
    if not parts:
        return pd.DataFrame()
    return pd.concat([pq.read_table(part).to_pandas() for part in parts], ignore_index=True)


def test_sweep_survives_a_lost_worker_node(cluster: Cluster, tmp_path: Path) -> None:
    started = time.monotonic()
    cluster.make_namespace()
    address = f"{HEAD_IP}:{GCS_PORT}"

    # 1. head, then two workers; wait until all three are alive
    cluster.start_node("head", HEAD_IP, 0, "--head", f"--port={GCS_PORT}", "--num-cpus=0",
                       "--include-dashboard=false", "--dashboard-port=20265")
    cluster.wait_listening(GCS_PORT, CLUSTER_UP_S)
    for index, ip in enumerate(WORKER_IPS, start=1):
        cluster.start_node(f"worker{index}", ip, index, f"--address={address}", "--num-cpus=2")
    probe = subprocess.run(
        [*cluster.enter, "--", sys.executable, "-c", WAIT_FOR_NODES, address, "3", str(CLUSTER_UP_S)],
        env=cluster.env, capture_output=True, text=True, timeout=CLUSTER_UP_S + 60,
    )
    cluster.check_alive()
    assert probe.returncode == 0, f"could not query the cluster:\n{probe.stderr[-3000:]}\n{cluster.logs_tail()}"
    nodes = json.loads(probe.stdout.strip().splitlines()[-1])
    assert nodes["alive"] == sorted([HEAD_IP, *WORKER_IPS]), f"nodes alive after {CLUSTER_UP_S} s: {nodes}\n{cluster.logs_tail()}"
    assert nodes["resources"].get("CPU") == 4.0
    cluster_up_s = time.monotonic() - started

    # 2. the sweep, driven by the console script against the head
    space = cluster.root / "space.yaml"
    space.write_text(yaml.safe_dump(SPACE))
    storage = cluster.root / "results"
    folder = storage / SWEEP
    driver = cluster.start("driver", [str(BIN / "advent-sweep"), "launch", str(space), "--address", address, "--storage", str(storage)])

    # 3. at the first report, kill the worker node that produced it
    deadline = time.monotonic() + FIRST_REPORT_S
    reports = read_reports(folder)
    while reports.empty:
        assert driver.poll() is None, f"the sweep ended before any report:\n{_tail(cluster.logs / 'driver.log', 60)}"
        cluster.check_alive()
        assert time.monotonic() < deadline, f"no report within {FIRST_REPORT_S} s:\n{cluster.logs_tail()}"
        time.sleep(0.25)
        reports = read_reports(folder)
    first = reports.sort_values("timestamp").iloc[0]
    assert first.node in WORKER_IPS, f"a trial ran on {first.node}, which is not a worker node (the head has no CPUs)"
    lost = f"worker{WORKER_IPS.index(first.node) + 1}"
    # the driver is in the namespace like every node, so it reaches the cluster on loopback only
    assert _netns(driver.pid) == cluster.netns
    killed_at = time.monotonic()
    cluster.kill(lost)

    # 4. the sweep ends by itself
    try:
        driver.wait(timeout=SWEEP_END_S)
    except subprocess.TimeoutExpired:
        pytest.fail(f"the sweep did not end within {SWEEP_END_S} s of losing {lost}:\n{cluster.logs_tail()}")
    output = (cluster.logs / "driver.log").read_text(errors="replace")
    assert driver.returncode == 0, f"advent-sweep launch exited {driver.returncode}:\n{output[-5000:]}"
    sweep_s = time.monotonic() - killed_at

    reports, trials = read_reports(folder), pd.read_parquet(folder / "trials.parquet")
    assert len(trials) == SPACE["num_samples"] and trials.trial_id.is_unique
    assert set(trials.status) <= {"completed", "stopped"}, trials[["trial_id", "status", "error"]].to_string()
    assert (trials[trials.status == "completed"].iterations == ITERATIONS).all()
    for trial in trials.itertuples():
        got = sorted(reports[reports.trial_id == trial.trial_id].iteration)
        assert got == list(range(EVAL_INTERVAL, trial.iterations + 1, EVAL_INTERVAL)), f"{trial.trial_id}: reports at {got}"
    assert len(reports) == trials.num_reports.sum()
    assert set(reports.node) <= set(WORKER_IPS) and reports.node.nunique() == 2, reports.node.value_counts()
    # the trial that was running on the lost node went on from its checkpoint on the other one
    retried = reports[reports.attempt > 0]
    assert not retried.empty, f"no trial was retried after {lost} ({first.node}) was lost:\n{output[-3000:]}"
    assert first.node not in set(retried.node)
    for trial_id in trials.trial_id:  # Ray's own log (the sink drops a repeated row): no trial reported an iteration twice
        iterations = ray_iterations(folder, trial_id)
        assert iterations == sorted(set(iterations)), f"{trial_id} went back instead of on from its checkpoint: {iterations}"
    assert f"sweep {SWEEP!r}: {SPACE['num_samples']} trials" in output

    print(f"\ncluster up in {cluster_up_s:.0f} s; first report after {killed_at - started - cluster_up_s:.0f} s; "
          f"sweep ended {sweep_s:.0f} s after losing {lost} ({first.node}); statuses {trials.status.value_counts().to_dict()}; "
          f"{len(retried)} report(s) from retried attempts")
