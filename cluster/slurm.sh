#!/bin/bash
# advent-sweep on SLURM: one Ray cluster per batch job, one sweep per cluster.
#
#   sbatch cluster/slurm.sh                                     # new sweep
#   RESUME=1 sbatch cluster/slurm.sh                            # resume it (same SPACE, same STORAGE)
#   SPACE=search_spaces/gta5_cityscapes_resnet101.yaml STORAGE=/shared/me/sweeps sbatch cluster/slurm.sh
#
# The Ray head runs on the first node of the allocation, one Ray worker on each other
# node (one `srun` job step per node); the sweep driver (`advent-sweep launch`) runs in
# this batch script on the first node and talks to the head. When the driver ends, or
# the job is cancelled or reaches its time limit, the script stops what it started: it
# asks the driver to save the sweep state, then ends the srun job steps by their PIDs
# (workers first, then the head). It does not use Ray's stop command: that one ends every
# Ray process on the node, other users' included.
#
# Edit the #SBATCH lines for your site (partition, account, GPUs per node) and the three
# settings below. Everything that must be seen by every node lives on the shared
# filesystem: the Python environment, the sweep storage and the datasets.
#
#SBATCH --job-name=advent-sweep
#SBATCH --nodes=3
#SBATCH --ntasks-per-node=1
#SBATCH --cpus-per-task=16
#SBATCH --gpus-per-node=4
# Every node runs trials (the head too): 3 nodes x 4 GPUs hold 12 trials of 1 GPU and 4 CPUs,
# more than the shipped GPU spaces' max_concurrent 8 (see cluster/README.md).
#SBATCH --exclusive
#SBATCH --time=24:00:00
#SBATCH --output=advent-sweep-%j.out
# Ask SLURM for USR1 five minutes before the time limit, so the sweep state is saved
# before SLURM's own TERM/KILL arrive; resume it with RESUME=1 in a new job.
#SBATCH --signal=B:USR1@300
# (optional) #SBATCH --partition=gpu
# (optional) #SBATCH --account=my-project
# (optional, resume automatically after a node failure) #SBATCH --requeue

set -eo pipefail

# ---- edit these ------------------------------------------------------------------
SPACE=${SPACE:-search_spaces/gta5_cityscapes_resnet101.yaml}                # the sweep's space.yaml
STORAGE=${STORAGE:-/shared/${USER:-$(id -un)}/advent-sweeps}  # shared by every node
VENV=${VENV:-$HOME/advent-venv}                         # has advent-sweep and ray; on the shared FS
# -----------------------------------------------------------------------------------
port=6379

# shellcheck disable=SC1091
source "$VENV/bin/activate"   # srun exports this environment to every job step

# Ray 2.60 token authentication. `ray start --head` turns token authentication on by
# itself whenever it finds a token (for example ~/.ray/auth_token, which any earlier
# local `ray.init()` leaves in your shared home), while `ray start --address=...` (the
# workers) and `ray.init(address="HOST:PORT")` (the driver) use it only when
# RAY_AUTH_MODE=token is set: left implicit, the head may require a token the workers
# never send, and they fail to join. So the mode is set once, here, for every node and
# the driver (srun passes the environment on).
# We choose token mode: the nodes and the network of a SLURM cluster are shared with
# other users' jobs, and anyone who can reach the Ray ports could run code as you. The
# token is made fresh for each job and lives only in this job's environment (readable
# by you alone), not in a file. On a private network where only you run jobs you may
# opt out, for every node at once:  RAY_AUTH_MODE=disabled sbatch cluster/slurm.sh
export RAY_AUTH_MODE=${RAY_AUTH_MODE:-token}
if [[ $RAY_AUTH_MODE == token && -z ${RAY_AUTH_TOKEN:-} ]]; then
    RAY_AUTH_TOKEN=$(python -c 'import secrets; print(secrets.token_hex(32))')
    export RAY_AUTH_TOKEN
fi

head_pid=""       # PID of the srun job step that runs the Ray head
worker_pids=()    # PIDs of the srun job steps that run the Ray workers
driver_pid=""     # PID of advent-sweep launch

# Send TERM to the given PIDs, give them up to $1 seconds, then KILL what is left.
# TERM to srun is forwarded to its task, `ray start --block`, which stops its node.
# shellcheck disable=SC2329  # used by cleanup
stop_pids() {
    local grace=$1 pid t alive
    shift
    for pid in "$@"; do kill -TERM "$pid" 2>/dev/null || true; done
    for ((t = 0; t < grace; t++)); do
        alive=0
        for pid in "$@"; do kill -0 "$pid" 2>/dev/null && alive=1; done
        ((alive)) || break
        sleep 1
    done
    for pid in "$@"; do
        kill -KILL "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
    done
}

# shellcheck disable=SC2329  # runs from the EXIT trap
cleanup() {
    trap - EXIT TERM INT USR1
    if [[ -n $driver_pid ]] && kill -0 "$driver_pid" 2>/dev/null; then
        # SIGUSR1 makes Ray Tune save the experiment state and stop; resume it later
        # with --resume (RESUME=1 sbatch ...).
        echo "slurm.sh: stopping the sweep driver (state is saved; resume with RESUME=1)"
        kill -USR1 "$driver_pid" 2>/dev/null || true
        for ((t = 0; t < 120; t++)); do kill -0 "$driver_pid" 2>/dev/null || break; sleep 1; done
        stop_pids 30 "$driver_pid"
    fi
    if ((${#worker_pids[@]})); then
        echo "slurm.sh: stopping ${#worker_pids[@]} Ray worker(s)"
        stop_pids 60 "${worker_pids[@]}"
    fi
    if [[ -n $head_pid ]]; then
        echo "slurm.sh: stopping the Ray head"
        stop_pids 60 "$head_pid"
    fi
}
trap cleanup EXIT
trap 'exit 143' TERM   # scancel / SLURM: the EXIT trap then cleans up
trap 'exit 130' INT
trap 'exit 138' USR1   # --signal=B:USR1@300 above: time limit is near

# The first IPv4 address node $1 gives for its own host name (as in Ray's SLURM guide).
# On nodes with several networks, make sure this is the one the nodes share.
node_ip() {
    local addr
    for addr in $(srun --nodes=1 --ntasks=1 --nodelist="$1" hostname --ip-address); do
        if [[ $addr == *.*.*.* && $addr != 127.* ]]; then
            echo "$addr"
            return 0
        fi
    done
    echo "slurm.sh: no usable IPv4 address for node $1" >&2
    return 1
}

# Wait until $1 Ray nodes are alive (at most $2 seconds); fail early if one of the
# srun job steps given after that (PIDs) has ended, i.e. a node could not start.
wait_for_nodes() {
    python - "$head_ip:$port" "$@" <<'EOF'
import sys
import time

import ray

address, wanted, timeout = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
steps = [int(pid) for pid in sys.argv[4:]]


def ended(pid: int) -> bool:  # gone, or a zombie not yet reaped by the batch shell
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rpartition(")")[2].split()[0] == "Z"
    except FileNotFoundError:
        return True


deadline = time.monotonic() + timeout
alive, error = 0, None
while time.monotonic() < deadline:
    if any(ended(pid) for pid in steps):
        sys.exit("slurm.sh: a Ray node ended while starting; see its log above")
    try:
        if not ray.is_initialized():
            ray.init(address=address, logging_level="ERROR", log_to_driver=False)
        alive = sum(1 for node in ray.nodes() if node["Alive"])
        if alive >= wanted:
            print(f"slurm.sh: {alive} Ray node(s) up")
            sys.exit(0)
    except Exception as exc:  # the head may not be listening yet: try again
        error = exc
    time.sleep(3)
sys.exit(f"slurm.sh: {alive} of {wanted} Ray node(s) up after {timeout:.0f} s"
         + (f"; last error: {error!r}" if error else ""))
EOF
}

mapfile -t nodes < <(scontrol show hostnames "$SLURM_JOB_NODELIST")
head_node=${nodes[0]}
head_ip=$(node_ip "$head_node")
worker_ips=()
for node in "${nodes[@]:1}"; do
    ip=$(node_ip "$node")
    worker_ips+=("$ip")
done
echo "slurm.sh: Ray head on $head_node ($head_ip:$port), ${#worker_ips[@]} worker node(s)"

# GPUs: Ray counts the ones SLURM gives the job step (CUDA_VISIBLE_DEVICES).
srun --nodes=1 --ntasks=1 --nodelist="$head_node" \
    ray start --head --node-ip-address="$head_ip" --port=6379 \
    --num-cpus="$SLURM_CPUS_PER_TASK" --block &
head_pid=$!
wait_for_nodes 1 300 "$head_pid"

for i in "${!worker_ips[@]}"; do
    srun --nodes=1 --ntasks=1 --nodelist="${nodes[i + 1]}" \
        ray start --address="$head_ip:$port" --node-ip-address="${worker_ips[i]}" \
        --num-cpus="$SLURM_CPUS_PER_TASK" --block &
    worker_pids+=($!)
done
wait_for_nodes "${#nodes[@]}" 600 "$head_pid" "${worker_pids[@]}"

# Resume when asked to, or when SLURM requeued this job (#SBATCH --requeue).
if [[ ${RESUME:-0} == 1 || ${SLURM_RESTART_COUNT:-0} -gt 0 ]]; then
    advent-sweep launch "$SPACE" --address "$head_ip:$port" --storage "$STORAGE" --resume &
else
    advent-sweep launch "$SPACE" --address "$head_ip:$port" --storage "$STORAGE" &
fi
driver_pid=$!
status=0
wait "$driver_pid" || status=$?
driver_pid=""
echo "slurm.sh: the sweep driver exited with status $status"
exit "$status"
