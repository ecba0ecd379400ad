"""The cluster templates in cluster/ are valid and call advent-sweep correctly.

Offline and fast: nothing here starts Ray or reaches a cloud. The Ray cluster launcher
files are checked with the validation `ray up` itself runs before it touches a cloud.
"""

from __future__ import annotations

import argparse
import copy
import json
import math
import re
import shlex
import shutil
import subprocess
from pathlib import Path

import jsonschema
import pytest
import ray
import yaml

from advent_sweep.cli import build_parser

CLUSTER = Path(__file__).resolve().parents[1] / "cluster"
LAUNCHER_FILES = ["aws.yaml", "gcp.yaml"]
YAML_FILES = sorted(p.name for p in CLUSTER.glob("*.yaml")) + sorted(
    p.name for p in CLUSTER.glob("*.yml")
)



def _launch_options() -> dict[str, bool]:
    """Every option string of `advent-sweep launch`, read from the CLI's own parser: takes a value?"""
    commands = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    launch = commands.choices["launch"]
    return {flag: action.nargs != 0 for action in launch._actions for flag in action.option_strings}


LAUNCH_OPTIONS = _launch_options()
# Templates that must show how the sweep is started.
FILES_THAT_LAUNCH = ["aws.yaml", "gcp.yaml", "kuberay.yaml", "slurm.sh", "README.md"]


def load_documents(name: str) -> list:
    return list(yaml.safe_load_all((CLUSTER / name).read_text()))


def validate_launcher_config(config: dict) -> None:
    """Validate a `ray up` config the way `ray up` does, offline.

    `ray up` fills in the provider's defaults (`prepare_config`) and checks the result
    against ray/autoscaler/ray-schema.json plus a few rules (`validate_config`), before it
    loads any cloud SDK. Should that private API move, fall back to the schema alone.
    """
    try:
        from ray.autoscaler._private.util import prepare_config, validate_config
    except ImportError:  # pragma: no cover - depends on the installed Ray
        schema_path = Path(ray.__file__).parent / "autoscaler" / "ray-schema.json"
        jsonschema.validate(config, json.loads(schema_path.read_text()))
        return
    validate_config(prepare_config(copy.deepcopy(config)))


def launch_commands(text: str) -> list[list[str]]:
    """The argument lists of every `advent-sweep launch ...` command line in `text`.

    A command ends at a newline, a backtick, a shell operator or a comment; mentions in
    prose with no arguments (`advent-sweep launch`) are skipped.
    """
    text = text.replace("\\\n", " ")
    commands = []
    for match in re.finditer(r"advent-sweep\s+launch\b([^\n`&;|#]*)", text):
        args = shlex.split(match.group(1))
        if args:
            commands.append(args)
    return commands


def cluster_spec(document: dict) -> dict:
    spec = document["spec"]
    return spec["rayClusterSpec"] if document["kind"] == "RayJob" else spec


def containers(pod_template: dict) -> list[dict]:
    return pod_template["template"]["spec"]["containers"]


# -- every YAML parses ----------------------------------------------------------------


def test_cluster_folder_has_the_templates():
    for name in ["aws.yaml", "gcp.yaml", "kuberay.yaml", "slurm.sh", "README.md"]:
        assert (CLUSTER / name).is_file(), name


@pytest.mark.parametrize("name", YAML_FILES)
def test_yaml_parses(name):
    documents = load_documents(name)
    assert documents, f"{name} is empty"
    assert all(isinstance(d, dict) for d in documents), f"{name}: a document is not a mapping"


# -- Ray cluster launcher (AWS, GCP) --------------------------------------------------


@pytest.mark.parametrize("name", LAUNCHER_FILES)
def test_launcher_config_passes_rays_validation(name):
    (config,) = load_documents(name)
    validate_launcher_config(config)


@pytest.mark.parametrize(
    "break_it",
    [
        pytest.param(lambda c: c.update(worker_count=4), id="unknown-top-level-key"),
        pytest.param(lambda c: c.update(max_workers="four"), id="wrong-type"),
        pytest.param(
            lambda c: c["available_node_types"]["worker_gpu"].update(min_worker=1),
            id="unknown-node-type-key",
        ),
        pytest.param(
            lambda c: c["available_node_types"]["worker_gpu"].pop("resources"),
            id="missing-resources",
        ),
    ],
)
@pytest.mark.parametrize("name", LAUNCHER_FILES)
def test_broken_launcher_config_is_rejected(name, break_it):
    (config,) = load_documents(name)
    break_it(config)
    with pytest.raises(jsonschema.ValidationError):
        validate_launcher_config(config)


@pytest.mark.parametrize("name", LAUNCHER_FILES)
def test_launcher_config_has_cpu_head_and_gpu_workers(name):
    (config,) = load_documents(name)
    assert config["provider"]["type"] == name.removesuffix(".yaml")
    node_types = config["available_node_types"]
    head = node_types[config["head_node_type"]]
    assert head["resources"].get("GPU", 0) == 0, "the head should be a CPU machine"
    workers = [t for n, t in node_types.items() if n != config["head_node_type"]]
    gpu_workers = [t for t in workers if t["resources"].get("GPU", 0) >= 1]
    assert gpu_workers, "no GPU worker node type"
    for worker in gpu_workers:
        assert 0 <= worker["min_workers"] <= worker["max_workers"] <= config["max_workers"]
        assert worker["max_workers"] >= 1


def test_aws_gpu_workers_use_gpu_instances():
    (config,) = load_documents("aws.yaml")
    worker = config["available_node_types"]["worker_gpu"]["node_config"]
    assert re.match(r"(g4dn|g5|g6|g6e|p3|p4d|p5)\.", worker["InstanceType"])


def test_gcp_gpu_workers_attach_an_accelerator():
    (config,) = load_documents("gcp.yaml")
    worker = config["available_node_types"]["worker_gpu"]["node_config"]
    assert worker["machineType"].startswith("n1-")
    assert worker["guestAccelerators"][0]["acceleratorCount"] >= 1
    assert worker["scheduling"]["onHostMaintenance"] == "TERMINATE"


@pytest.mark.parametrize("name", LAUNCHER_FILES)
def test_launcher_setup_installs_advent_sweep_and_the_same_ray(name):
    (config,) = load_documents(name)
    commands = config["setup_commands"]
    assert any("pip install" in c and "advent-sweep" in c for c in commands)
    pins = [m for c in commands for m in re.findall(r"ray\[default\]==([\w.]+)", c)]
    assert pins == [ray.__version__], "pin Ray in setup_commands to the installed version"


# -- KubeRay --------------------------------------------------------------------------


def test_kuberay_documents_are_ray_v1_job_and_cluster():
    documents = load_documents("kuberay.yaml")
    assert all(d["apiVersion"] == "ray.io/v1" for d in documents)
    kinds = [d["kind"] for d in documents]
    assert kinds[0] == "RayJob"
    assert set(kinds) <= {"RayJob", "RayCluster"}
    # Told apart by a label, so that `kubectl apply -l ...` starts one of them.
    components = [d["metadata"]["labels"]["app.kubernetes.io/component"] for d in documents]
    assert len(set(components)) == len(components)


@pytest.mark.parametrize("index", range(len(load_documents("kuberay.yaml"))))
def test_kuberay_cluster_has_head_and_gpu_worker_group(index):
    document = load_documents("kuberay.yaml")[index]
    spec = cluster_spec(document)
    assert spec["rayVersion"] == ray.__version__
    (head,) = containers(spec["headGroupSpec"])
    assert "nvidia.com/gpu" not in head.get("resources", {}).get("limits", {})
    gpu_groups = [
        group
        for group in spec["workerGroupSpecs"]
        if any(
            int(c["resources"]["limits"].get("nvidia.com/gpu", 0)) >= 1
            for c in containers(group)
        )
    ]
    assert gpu_groups, "no worker group requests nvidia.com/gpu"
    for group in gpu_groups:
        assert group["minReplicas"] <= group["replicas"] <= group["maxReplicas"]


def test_kuberay_job_runs_advent_sweep_launch_and_shuts_down():
    job = load_documents("kuberay.yaml")[0]
    (args,) = launch_commands(job["spec"]["entrypoint"])
    assert "--storage" in args
    assert job["spec"]["entrypoint"].startswith("advent-sweep launch ")
    assert job["spec"]["shutdownAfterJobFinishes"] is True


# -- SLURM ----------------------------------------------------------------------------


def test_slurm_script_passes_bash_syntax_check():
    bash = shutil.which("bash")
    if bash is None:  # pragma: no cover
        pytest.skip("bash not installed")
    result = subprocess.run(
        [bash, "-n", str(CLUSTER / "slurm.sh")], capture_output=True, text=True, timeout=30
    )
    assert result.returncode == 0, result.stderr


def test_slurm_script_starts_and_stops_its_own_ray_nodes():
    script = (CLUSTER / "slurm.sh").read_text()
    assert not re.search(r"ray\s+stop", script), "end nodes by PID, never with Ray's machine-wide stop command"
    for directive in ["--nodes=", "--gpus", "--cpus-per-task=", "--time="]:
        assert re.search(rf"^#SBATCH {directive}", script, re.M), directive
    assert re.search(r"srun .*\\\n\s*ray start --head --node-ip-address=\"\$head_ip\"", script)
    assert re.search(r"srun .*\\\n\s*ray start --address=", script)
    assert script.count("--block &") == 2
    assert "export RAY_AUTH_MODE=" in script
    assert "trap cleanup EXIT" in script


# -- advent-sweep command lines ---------------------------------------------------------


def launch_problems(args: list[str]) -> list[str]:
    """What is wrong with one `advent-sweep launch` argument list: unknown flags, flags without a value,
    not exactly one SPACE.yaml."""
    problems, positional = [], []
    tokens = iter(args)
    for token in tokens:
        if not token.startswith("-"):
            positional.append(token)
            continue
        flag = token.split("=", 1)[0]
        if flag not in LAUNCH_OPTIONS:
            problems.append(f"unknown flag {flag}")
        elif LAUNCH_OPTIONS[flag] and "=" not in token and not next(tokens, "").strip():
            problems.append(f"{flag} without value")
    if len(positional) != 1:
        problems.append(f"expected one SPACE.yaml, got {positional}")
    return problems


@pytest.mark.parametrize("name", sorted(p.name for p in CLUSTER.iterdir() if p.is_file()))
def test_advent_sweep_commands_use_only_known_flags(name):
    commands = launch_commands((CLUSTER / name).read_text())
    if name in FILES_THAT_LAUNCH:
        assert commands, f"{name} shows no `advent-sweep launch` command"
    for args in commands:
        assert launch_problems(args) == [], f"{name}: {args}"


def test_launch_flags_come_from_the_parser():
    assert {"--address", "--storage", "--resume", "--dry-run"} <= set(LAUNCH_OPTIONS)
    assert (LAUNCH_OPTIONS["--storage"], LAUNCH_OPTIONS["--resume"]) == (True, False)


def test_launch_checker_catches_bad_command_lines():
    (args,) = launch_commands("advent-sweep launch s.yaml --storge /x --address auto")
    assert launch_problems(args) == ["unknown flag --storge", "expected one SPACE.yaml, got ['s.yaml', '/x']"]
    assert launch_problems(["s.yaml", "--resume"]) == []
    assert launch_problems(["s.yaml", "--storage"]) == ["--storage without value"]
    assert launch_problems(["a.yaml", "b.yaml"]) == ["expected one SPACE.yaml, got ['a.yaml', 'b.yaml']"]


# -- the space files the templates name, and how many of their trials the templates hold -------

SPACES = CLUSTER.parent / "search_spaces"
GPU_SPACES = sorted(p.name for p in SPACES.glob("*.yaml") if p.name.startswith(("gta5", "synthia")))


def named_space_files(text: str) -> list[str]:
    """Every ``search_spaces/NAME.yaml`` path a text names."""
    return re.findall(r"search_spaces/[\w.-]+\.ya?ml", text)


@pytest.mark.parametrize("name", sorted(p.name for p in CLUSTER.iterdir() if p.is_file()))
def test_every_space_file_the_cluster_files_name_exists(name):
    for path in named_space_files((CLUSTER / name).read_text()):
        assert (CLUSTER.parent / path).is_file(), f"cluster/{name} names {path}, which does not exist"


def test_named_space_files_finds_paths():
    assert named_space_files("SPACE=${SPACE:-search_spaces/a_b.yaml} and search_spaces/x-y.yml.") == [
        "search_spaces/a_b.yaml", "search_spaces/x-y.yml"
    ]


def trials_held(nodes: list[tuple[int, float, float]], cpu: float, gpu: float) -> int:
    """How many trials of ``cpu`` CPUs and ``gpu`` GPUs fit on (count, CPUs, GPUs) nodes, as Ray packs them."""

    def per_node(cpus: float, gpus: float) -> float:
        return min(math.floor(cpus / cpu) if cpu else math.inf, math.floor(gpus / gpu) if gpu else math.inf)

    return sum(count * per_node(cpus, gpus) for count, cpus, gpus in nodes)


def template_gpu_nodes() -> dict[str, list[tuple[int, float, float]]]:
    """The GPU nodes each template can have at most: (count, CPUs, GPUs) per node kind."""
    nodes = {}
    for name in LAUNCHER_FILES:
        (config,) = load_documents(name)
        workers = config["available_node_types"]["worker_gpu"]
        count = min(workers["max_workers"], config["max_workers"])
        nodes[name] = [(count, workers["resources"]["CPU"], workers["resources"]["GPU"])]
    for index, document in enumerate(load_documents("kuberay.yaml")):
        groups = cluster_spec(document)["workerGroupSpecs"]
        nodes[f"kuberay.yaml#{index}"] = [
            (group["maxReplicas"], float(limits["cpu"]), float(limits["nvidia.com/gpu"]))
            for group in groups
            for limits in [containers(group)[0]["resources"]["limits"]]
        ]
    sbatch = dict(re.findall(r"^#SBATCH --([\w-]+)=(\S+)", (CLUSTER / "slurm.sh").read_text(), re.MULTILINE))
    nodes["slurm.sh"] = [(int(sbatch["nodes"]), float(sbatch["cpus-per-task"]), float(sbatch["gpus-per-node"]))]
    return nodes


def test_trials_held_packs_by_the_scarcer_resource():
    assert trials_held([(8, 4, 1)], cpu=4, gpu=0.5) == 8  # CPU-bound: one a node
    assert trials_held([(8, 8, 1)], cpu=4, gpu=0.5) == 16
    assert trials_held([(3, 16, 4), (1, 8, 1)], cpu=4, gpu=1) == 13
    assert trials_held([(4, 4, 1)], cpu=4, gpu=1) < 8  # the templates before they held 8


@pytest.mark.parametrize("space", GPU_SPACES)
def test_every_template_holds_max_concurrent_trials_of_each_gpu_space(space):
    spec = yaml.safe_load((SPACES / space).read_text())
    cpu, gpu = spec["resources"]["cpu"], spec["resources"]["gpu"]
    assert gpu > 0
    for template, nodes in template_gpu_nodes().items():
        held = trials_held(nodes, cpu, gpu)
        assert held >= spec["max_concurrent"], (
            f"{template} holds {held} trials of {space} ({cpu} CPU, {gpu} GPU each), "
            f"fewer than its max_concurrent {spec['max_concurrent']}"
        )


def test_the_readme_table_of_trials_at_once_matches_the_templates():
    rows = {
        match[0]: (int(match[1]), int(match[2]))
        for match in re.findall(r"^\| `([\w.]+)` \|[^|]*\|[^|]*: (\d+) \|[^|]*: (\d+) \|$",
                                (CLUSTER / "README.md").read_text(), re.MULTILINE)
    }
    nodes = template_gpu_nodes()
    expected = {
        name: (trials_held(nodes[key], 4, 1), trials_held(nodes[key], 4, 0.5))
        for name, key in [("aws.yaml", "aws.yaml"), ("gcp.yaml", "gcp.yaml"), ("kuberay.yaml", "kuberay.yaml#0"),
                          ("slurm.sh", "slurm.sh")]
    }
    assert rows == expected
    for space in GPU_SPACES:
        resources = yaml.safe_load((SPACES / space).read_text())["resources"]
        assert (resources["cpu"], resources["gpu"]) in ((4, 1), (4, 0.5)), f"{space}: the README table has no column for it"
