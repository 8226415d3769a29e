"""The deployment files (Dockerfile, deploy/compose.yaml, deploy/k8s) agree with the CLI, the settings and each other.

Nothing here builds an image or talks to a cluster: the files are parsed and checked
for the structure that a wrong port, a missing probe or a stray variable would break.
"""

from __future__ import annotations

import json
import re
import shlex
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import typer
import yaml

from tipwise.cli import app as cli_app
from tipwise.ml.pipelines import LearnerSettings
from tipwise.settings import Settings

REPO = Path(__file__).resolve().parents[3]
DEPLOY = REPO / "deploy"
K8S = DEPLOY / "k8s"
K8S_DEV = DEPLOY / "k8s-dev"
COMPOSE = DEPLOY / "compose.yaml"
DOCKERFILE = REPO / "Dockerfile"
DOCKERIGNORE = REPO / ".dockerignore"

# The processes of the scaled topology (docs/deploy.md); all but `migrate` keep running.
SUBCOMMANDS = {"migrate", "serve", "relay", "learner", "ml-serve"}
ONE_SHOT = {"migrate"}
# The port each long-running process listens on, and the option that sets it.
LISTEN_PORTS = {"serve": 8000, "relay": 8101, "learner": 8102, "ml-serve": 8100}
PORT_OPTIONS = ("--port", "--health-port")
DATA_DIR = "/var/lib/tipwise"
MODELS_DIR = f"{DATA_DIR}/models"

# `relay` and `learner` come with the scaled topology, implemented on another branch.

# The TIPWISE_* variables the deployment may set: those the scaled topology documents.
ALLOWED_ENV = {
    "TIPWISE_DATABASE_URL",
    "TIPWISE_EVENT_BUS",
    "TIPWISE_SCORER_URL",
    "TIPWISE_SECRET_KEY",
    "TIPWISE_DATA_DIR",
    "TIPWISE_LOG_FORMAT",
    "TIPWISE_EMBEDDED_WORKER",
    "TIPWISE_LEARNER_SNAPSHOT_EVERY_SECONDS",
}

Doc = dict[str, Any]


# --- loading ---------------------------------------------------------------------------


def k8s_documents() -> list[tuple[str, Doc]]:
    """Return (file, document) for every Kubernetes object in deploy/k8s and deploy/k8s-dev."""
    found = []
    for folder in (K8S, K8S_DEV):
        for path in sorted(folder.glob("*.yaml")):
            if path.name == "kustomization.yaml":
                continue
            for doc in yaml.safe_load_all(path.read_text()):
                if doc is not None:
                    found.append((f"{folder.name}/{path.name}", doc))
    return found


K8S_DOCS = k8s_documents()


def k8s_of_kind(kind: str) -> list[Doc]:
    return [doc for _, doc in K8S_DOCS if doc["kind"] == kind]


def k8s_object(kind: str, name: str) -> Doc:
    matches = [doc for doc in k8s_of_kind(kind) if doc["metadata"]["name"] == name]
    assert len(matches) == 1, f"expected one {kind} {name}, found {len(matches)}"
    return matches[0]


def pod_spec(workload: Doc) -> Doc:
    spec: Doc = workload["spec"]["template"]["spec"]
    return spec


def only_container(workload: Doc) -> Doc:
    containers = pod_spec(workload)["containers"]
    assert len(containers) == 1, f"{workload['metadata']['name']}: one container per pod"
    container: Doc = containers[0]
    return container


ENV_EXAMPLE = DEPLOY / ".env.example"
INTERPOLATION = re.compile(r"\$\{(?P<name>[A-Z_][A-Z0-9_]*)(?:(?P<op>:\?|:-)(?P<arg>[^}]*))?\}")


def example_env() -> dict[str, str]:
    """Return the variables deploy/.env.example sets (what docker compose would read from deploy/.env)."""
    pairs = [line.split("=", 1) for line in ENV_EXAMPLE.read_text().splitlines() if line and not line.startswith("#")]
    return {name: value for name, value in pairs}


def interpolate(text: str, env: dict[str, str]) -> str:
    """Substitute ${VAR}, ${VAR:-default} and ${VAR:?error} as docker compose does."""

    def substitute(match: re.Match[str]) -> str:
        name, op, arg = match.group("name", "op", "arg")
        if env.get(name):
            return env[name]
        if op == ":-":
            return str(arg)
        raise AssertionError(f"compose needs {name}: {arg or 'unset'}")

    return INTERPOLATION.sub(substitute, text)


def compose() -> Doc:
    """Return deploy/compose.yaml as docker compose sees it with the variables of deploy/.env.example."""
    loaded: Doc = yaml.safe_load(interpolate(COMPOSE.read_text(), example_env()))
    return loaded


def compose_services() -> dict[str, Doc]:
    services: dict[str, Doc] = compose()["services"]
    return services


def tipwise_services() -> dict[str, Doc]:
    """Return the compose services that run the Tipwise image (the ones built from the Dockerfile)."""
    return {name: service for name, service in compose_services().items() if "build" in service}


def dockerfile_instructions() -> list[tuple[str, str]]:
    """Return (INSTRUCTION, arguments) pairs, continuation lines joined, comments dropped."""
    instructions = []
    pending = ""
    for raw in DOCKERFILE.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        keyword, _, rest = (pending + line).partition(" ")
        instructions.append((keyword.upper(), rest.strip()))
        pending = ""
    assert not pending, "the Dockerfile ends inside a continuation line"
    return instructions


def dockerfile_stages() -> list[list[tuple[str, str]]]:
    stages: list[list[tuple[str, str]]] = []
    for keyword, rest in dockerfile_instructions():
        if keyword == "FROM":
            stages.append([])
        assert stages, "the Dockerfile starts with FROM"
        stages[-1].append((keyword, rest))
    return stages


def dockerfile_json(keyword: str) -> list[str]:
    values = [rest for key, rest in dockerfile_stages()[-1] if key == keyword]
    assert len(values) == 1, f"the runtime stage has one {keyword}"
    parsed: list[str] = json.loads(values[0])  # exec form, or this raises
    return parsed


# --- command lines ---------------------------------------------------------------------


def listen_port(args: list[str]) -> int:
    """Return the port a tipwise command line listens on, from its --port/--health-port option."""
    for option in PORT_OPTIONS:
        if option in args:
            return int(args[args.index(option) + 1])
        for arg in args:
            if arg.startswith(option + "="):
                return int(arg.split("=", 1)[1])
    raise AssertionError(f"{args}: no {' or '.join(PORT_OPTIONS)}; deployments name their port explicitly")


def k8s_args(workload: Doc) -> list[str]:
    container = only_container(workload)
    assert container.get("command") == ["tipwise"], f"{workload['metadata']['name']}: runs the tipwise CLI"
    args: list[str] = container["args"]
    return args


def tipwise_workloads() -> list[Doc]:
    return [
        doc for doc in [*k8s_of_kind("Deployment"), *k8s_of_kind("Job")] if "tipwise" in only_container(doc)["image"]
    ]


def command_lines() -> Iterator[tuple[str, list[str]]]:
    """Yield (where, args after `tipwise`) for every Tipwise process the deployment files start."""
    yield "Dockerfile:CMD", dockerfile_json("CMD")
    for name, service in tipwise_services().items():
        yield f"compose:{name}", list(service["command"])
    for workload in tipwise_workloads():
        yield f"k8s:{workload['kind']}/{workload['metadata']['name']}", k8s_args(workload)


def real_cli() -> typer.core.TyperGroup:
    group = typer.main.get_command(cli_app)
    assert isinstance(group, typer.core.TyperGroup)
    return group


# --- the CLI ---------------------------------------------------------------------------


class TestTheCliHasWhatTheDeploymentRuns:
    @pytest.mark.parametrize("name", sorted(SUBCOMMANDS))
    def test_subcommand_exists(self, name: str) -> None:
        assert name in real_cli().commands

    @pytest.mark.parametrize("args", [pytest.param(args, id=where) for where, args in command_lines()])
    def test_command_line_parses_with_the_real_cli(self, args: list[str]) -> None:
        group = real_cli()
        command = group.commands.get(args[0])
        assert command is not None, f"tipwise has no subcommand {args[0]!r}"
        # Parsing only: an unknown option or a bad value raises a UsageError here.
        with command.make_context(args[0], list(args[1:])) as context:
            assert context.command is command


# --- environment -----------------------------------------------------------------------


def real_settings() -> set[str]:
    names: set[str] = set()
    for model in (Settings, LearnerSettings):
        prefix = model.model_config.get("env_prefix", "")
        names |= {f"{prefix}{field}".upper() for field in model.model_fields}
    return names


class TestEnvironmentNames:
    @pytest.mark.parametrize("name", sorted(ALLOWED_ENV))
    def test_each_allowed_variable_is_a_setting(self, name: str) -> None:
        assert name in real_settings()

    def test_kubernetes_sets_only_known_tipwise_variables(self) -> None:
        names = set()
        for doc in k8s_of_kind("ConfigMap"):
            names |= set(doc.get("data", {}))
        for doc in k8s_of_kind("Secret"):
            names |= set(doc.get("stringData", {})) | set(doc.get("data", {}))
        for workload in [*k8s_of_kind("Deployment"), *k8s_of_kind("Job"), *k8s_of_kind("StatefulSet")]:
            for container in pod_spec(workload)["containers"]:
                names |= {env["name"] for env in container.get("env", [])}

        tipwise_names = {name for name in names if name.startswith("TIPWISE_")}
        assert tipwise_names, "the manifests configure Tipwise through TIPWISE_* variables"
        assert tipwise_names <= ALLOWED_ENV, f"unknown: {sorted(tipwise_names - ALLOWED_ENV)}"

    def test_compose_sets_only_known_tipwise_variables(self) -> None:
        names = {name for service in compose_services().values() for name in service.get("environment", {})}

        tipwise_names = {name for name in names if name.startswith("TIPWISE_")}
        assert tipwise_names, "compose configures Tipwise through TIPWISE_* variables"
        assert tipwise_names <= ALLOWED_ENV, f"unknown: {sorted(tipwise_names - ALLOWED_ENV)}"

    def test_dockerfile_sets_only_known_tipwise_variables(self) -> None:
        env_lines = " ".join(rest for keyword, rest in dockerfile_instructions() if keyword == "ENV")
        names = {pair.split("=", 1)[0] for pair in shlex.split(env_lines)}

        tipwise_names = {name for name in names if name.startswith("TIPWISE_")}
        assert tipwise_names == {"TIPWISE_DATA_DIR", "TIPWISE_LOG_FORMAT"}


# --- Kubernetes ------------------------------------------------------------------------


def k8s_doc_id(item: tuple[str, Doc]) -> str:
    path, doc = item
    return f"{path}:{doc.get('kind')}/{doc.get('metadata', {}).get('name')}"


DEPLOYMENTS = k8s_of_kind("Deployment")


def deployment_params() -> list[Any]:
    return [pytest.param(doc, id=doc["metadata"]["name"]) for doc in DEPLOYMENTS]


def port_number(container: Doc, port: int | str) -> int:
    """Resolve a probe's or Service's port, a number or the name of a container port."""
    if isinstance(port, int):
        return port
    named = [entry["containerPort"] for entry in container.get("ports", []) if entry.get("name") == port]
    assert named, f"{container['name']} has no port named {port!r}"
    number: int = named[0]
    return number


class TestKubernetesManifests:
    @pytest.mark.parametrize("item", K8S_DOCS, ids=k8s_doc_id)
    def test_document_names_api_version_kind_name_and_namespace(self, item: tuple[str, Doc]) -> None:
        _, doc = item
        assert doc.get("apiVersion")
        assert doc.get("kind")
        assert doc["metadata"].get("name")
        if doc["kind"] != "Namespace":
            assert doc["metadata"].get("namespace") == "tipwise"

    @pytest.mark.parametrize("folder", [K8S, K8S_DEV], ids=lambda folder: folder.name)
    def test_kustomization_lists_every_manifest_in_its_folder(self, folder: Path) -> None:
        kustomization = yaml.safe_load((folder / "kustomization.yaml").read_text())
        listed = {entry for entry in kustomization["resources"] if not entry.startswith("..")}
        present = {path.name for path in folder.iterdir() if path.is_file() and path.name != "kustomization.yaml"}

        assert listed == present

    def test_dev_overlay_adds_to_the_base(self) -> None:
        kustomization = yaml.safe_load((K8S_DEV / "kustomization.yaml").read_text())

        assert "../k8s" in kustomization["resources"]

    @pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl is not installed")
    @pytest.mark.parametrize("folder", [K8S, K8S_DEV], ids=lambda folder: folder.name)
    def test_kustomize_renders_every_object(self, folder: Path) -> None:
        rendered = subprocess.run(  # noqa: S603 - a fixed command on files of this repository
            ["kubectl", "kustomize", str(folder)],  # noqa: S607
            check=True,
            capture_output=True,
            text=True,
            timeout=60,
        ).stdout
        objects = {(doc["kind"], doc["metadata"]["name"]) for doc in yaml.safe_load_all(rendered) if doc}
        expected = {
            (doc["kind"], doc["metadata"]["name"])
            for path, doc in K8S_DOCS
            if path.startswith(f"{K8S.name}/") or folder == K8S_DEV
        }

        assert objects == expected

    @pytest.mark.parametrize("deployment", deployment_params())
    def test_probes_ask_healthz_and_readyz_on_the_port_the_command_listens_on(self, deployment: Doc) -> None:
        container = only_container(deployment)
        port = listen_port(k8s_args(deployment))

        assert port == LISTEN_PORTS[k8s_args(deployment)[0]]
        assert port in {entry["containerPort"] for entry in container["ports"]}
        for probe, path in (("livenessProbe", "/healthz"), ("readinessProbe", "/readyz")):
            http_get = container[probe]["httpGet"]
            assert http_get["path"] == path, probe
            assert port_number(container, http_get["port"]) == port, probe

    @pytest.mark.parametrize("workload", [pytest.param(doc, id=doc["metadata"]["name"]) for doc in tipwise_workloads()])
    def test_runs_as_non_root_on_a_read_only_root_with_a_writable_tmp(self, workload: Doc) -> None:
        spec = pod_spec(workload)
        container = only_container(workload)
        pod_security = spec["securityContext"]
        security = container["securityContext"]

        assert pod_security["runAsNonRoot"] is True
        assert pod_security["runAsUser"] not in (0, None)
        assert security["allowPrivilegeEscalation"] is False
        assert security["readOnlyRootFilesystem"] is True
        assert security["capabilities"]["drop"] == ["ALL"]
        tmp = next(mount for mount in container["volumeMounts"] if mount["mountPath"] == "/tmp")  # noqa: S108 - the pod's emptyDir
        volume = next(volume for volume in spec["volumes"] if volume["name"] == tmp["name"])
        assert "emptyDir" in volume

    @pytest.mark.parametrize(
        "workload",
        [pytest.param(doc, id=doc["metadata"]["name"]) for doc in [*tipwise_workloads(), *k8s_of_kind("StatefulSet")]],
    )
    def test_requests_and_limits_cpu_and_memory(self, workload: Doc) -> None:
        resources = only_container(workload)["resources"]

        for bound in ("requests", "limits"):
            assert set(resources[bound]) >= {"cpu", "memory"}, bound

    @pytest.mark.parametrize("deployment", deployment_params())
    def test_has_time_to_stop_gracefully_on_sigterm(self, deployment: Doc) -> None:
        assert pod_spec(deployment)["terminationGracePeriodSeconds"] >= 30

    @pytest.mark.parametrize("deployment", deployment_params())
    def test_deployment_selects_its_own_pods(self, deployment: Doc) -> None:
        labels = deployment["spec"]["template"]["metadata"]["labels"]

        assert deployment["spec"]["selector"]["matchLabels"].items() <= labels.items()

    def test_runs_each_long_running_process_as_a_deployment(self) -> None:
        assert {k8s_args(doc)[0] for doc in DEPLOYMENTS} == SUBCOMMANDS - ONE_SHOT

    def test_migrates_in_a_job_that_retries_on_failure(self) -> None:
        (job,) = k8s_of_kind("Job")

        assert k8s_args(job) == ["migrate"]
        assert pod_spec(job)["restartPolicy"] in {"OnFailure", "Never"}

    def test_one_learner_and_never_two_during_a_rollout(self) -> None:
        learner = k8s_object("Deployment", "learner")

        assert k8s_args(learner)[0] == "learner"
        assert learner["spec"]["replicas"] == 1
        assert learner["spec"]["strategy"]["type"] == "Recreate"

    def test_learner_and_ml_serve_share_the_models_volume(self) -> None:
        config = k8s_object("ConfigMap", "tipwise-config")
        claims = {}
        for name in ("learner", "ml-serve"):
            deployment = k8s_object("Deployment", name)
            mount = next(m for m in only_container(deployment)["volumeMounts"] if m["mountPath"] == MODELS_DIR)
            volume = next(v for v in pod_spec(deployment)["volumes"] if v["name"] == mount["name"])
            claims[name] = (volume["persistentVolumeClaim"]["claimName"], mount.get("readOnly", False))

        assert config["data"]["TIPWISE_DATA_DIR"] == DATA_DIR
        assert claims["learner"][0] == claims["ml-serve"][0]
        assert claims["learner"][1] is False, "the learner writes the snapshots"
        assert claims["ml-serve"][1] is True, "ml-serve only reads them"
        claim = k8s_object("PersistentVolumeClaim", claims["learner"][0])
        assert claim["spec"]["accessModes"] == ["ReadWriteMany"]

    @pytest.mark.parametrize(
        "service", [pytest.param(doc, id=doc["metadata"]["name"]) for doc in k8s_of_kind("Service")]
    )
    def test_service_routes_to_a_port_its_pods_listen_on(self, service: Doc) -> None:
        selector = service["spec"]["selector"]
        workloads = [
            doc
            for doc in [*k8s_of_kind("Deployment"), *k8s_of_kind("StatefulSet")]
            if selector.items() <= doc["spec"]["template"]["metadata"]["labels"].items()
        ]
        assert len(workloads) == 1, f"{service['metadata']['name']} selects {len(workloads)} workloads"
        container = only_container(workloads[0])
        declared = {entry["containerPort"] for entry in container["ports"]}

        for port in service["spec"]["ports"]:
            assert port_number(container, port.get("targetPort", port["port"])) in declared

    def test_services_for_api_and_ml_serve(self) -> None:
        assert k8s_object("Service", "api")["spec"]["ports"][0]["port"] == LISTEN_PORTS["serve"]
        assert k8s_object("Service", "ml-serve")["spec"]["ports"][0]["port"] == LISTEN_PORTS["ml-serve"]

    def test_api_scores_through_the_ml_serve_service(self) -> None:
        api = only_container(k8s_object("Deployment", "api"))
        env = {entry["name"]: entry.get("value") for entry in api["env"]}
        scorer = urlsplit(env["TIPWISE_SCORER_URL"])

        service = k8s_object("Service", str(scorer.hostname))
        assert scorer.port in {port["port"] for port in service["spec"]["ports"]}

    @pytest.mark.parametrize("workload", [pytest.param(doc, id=doc["metadata"]["name"]) for doc in tipwise_workloads()])
    def test_referenced_config_maps_and_secrets_exist(self, workload: Doc) -> None:
        container = only_container(workload)
        references = [
            ("ConfigMap", ref["configMapRef"]["name"]) for ref in container.get("envFrom", []) if "configMapRef" in ref
        ]
        references += [
            ("Secret", ref["secretRef"]["name"]) for ref in container.get("envFrom", []) if "secretRef" in ref
        ]
        for env in container.get("env", []):
            source = env.get("valueFrom", {})
            if "configMapKeyRef" in source:
                references.append(("ConfigMap", source["configMapKeyRef"]["name"]))

        for kind, name in references:
            assert k8s_object(kind, name)

    def test_dev_database_url_matches_the_dev_postgres(self) -> None:
        url = urlsplit(k8s_object("Secret", "tipwise-secrets")["stringData"]["TIPWISE_DATABASE_URL"])
        postgres = only_container(k8s_object("StatefulSet", "postgres"))
        env = {entry["name"]: entry for entry in postgres["env"]}
        password_ref = env["POSTGRES_PASSWORD"]["valueFrom"]["secretKeyRef"]
        password = k8s_object("Secret", password_ref["name"])["stringData"][password_ref["key"]]

        assert url.scheme == "postgresql+psycopg"
        assert (url.hostname, url.port) == ("postgres", 5432)
        assert url.username == env["POSTGRES_USER"]["value"]
        assert url.password == password
        assert url.path == "/" + env["POSTGRES_DB"]["value"]

    def test_event_bus_points_at_the_nats_service(self) -> None:
        bus = urlsplit(k8s_object("ConfigMap", "tipwise-config")["data"]["TIPWISE_EVENT_BUS"])

        assert bus.scheme == "nats"
        service = k8s_object("Service", str(bus.hostname))
        assert bus.port in {port["port"] for port in service["spec"]["ports"]}


# --- docker compose --------------------------------------------------------------------


def compose_healthcheck_url(service: Doc) -> str:
    test = service["healthcheck"]["test"]
    match = re.search(r"https?://[^'\"\s]+", " ".join(test))
    assert match, f"no URL in healthcheck {test}"
    return match.group(0)


class TestCompose:
    def test_tipwise_services_run_subcommands_of_the_scaled_topology(self) -> None:
        commands = {name: service["command"][0] for name, service in tipwise_services().items()}

        assert set(commands.values()) == SUBCOMMANDS

    @pytest.mark.parametrize("name", sorted(compose_services()))
    def test_depends_on_existing_services_with_a_known_condition(self, name: str) -> None:
        services = compose_services()
        depends_on = services[name].get("depends_on", {})

        for other, rule in depends_on.items():
            assert other in services
            assert other != name
            assert rule["condition"] in {"service_started", "service_healthy", "service_completed_successfully"}
            if rule["condition"] == "service_healthy":
                assert not services[other]["healthcheck"].get("disable", False), other

    @pytest.mark.parametrize("name", sorted(set(compose_services()) - {"migrate"}))
    def test_long_running_service_has_a_healthcheck(self, name: str) -> None:
        healthcheck = compose_services()[name]["healthcheck"]

        assert not healthcheck.get("disable", False)
        assert healthcheck["test"][0] in {"CMD", "CMD-SHELL"}
        assert len(healthcheck["test"]) > 1

    @pytest.mark.parametrize("name", sorted(set(tipwise_services()) - {"migrate"}))
    def test_tipwise_healthcheck_asks_the_port_the_command_listens_on(self, name: str) -> None:
        service = tipwise_services()[name]
        url = urlsplit(compose_healthcheck_url(service))

        assert service["healthcheck"]["test"][:2] == ["CMD", "python"], "the slim image has no curl"
        assert url.port == listen_port(service["command"]) == LISTEN_PORTS[service["command"][0]]
        assert url.path in {"/healthz", "/readyz"}

    def test_migrate_runs_once_before_the_processes_that_need_the_schema(self) -> None:
        services = tipwise_services()

        assert services["migrate"]["command"] == ["migrate"]
        assert services["migrate"]["restart"] == "no"
        for name, service in services.items():
            if service["command"][0] in {"serve", "relay", "learner"}:
                assert service["depends_on"]["migrate"]["condition"] == "service_completed_successfully", name

    @pytest.mark.parametrize("name", sorted(tipwise_services()))
    def test_tipwise_service_has_time_to_stop_gracefully(self, name: str) -> None:
        grace = tipwise_services()[name]["stop_grace_period"]

        assert re.fullmatch(r"\d+s", grace)
        assert int(grace[:-1]) >= 30

    def test_learner_and_ml_serve_share_the_models_volume(self) -> None:
        spec = compose()
        mounts = {}
        for name in ("learner", "ml-serve"):
            for volume in spec["services"][name]["volumes"]:
                source, target, *mode = volume.split(":")
                if target == MODELS_DIR:
                    mounts[name] = (source, mode)

        assert mounts["learner"] == ("models", [])
        assert mounts["ml-serve"] == ("models", ["ro"])
        assert "models" in spec["volumes"]

    def test_every_required_variable_has_an_example(self) -> None:
        required = {m.group("name") for m in INTERPOLATION.finditer(COMPOSE.read_text()) if m.group("op") == ":?"}

        assert required == {"POSTGRES_PASSWORD", "TIPWISE_SECRET_KEY"}
        assert required <= set(example_env())
        assert all("example" in example_env()[name] for name in required), "example values say so"

    def test_only_the_api_publishes_a_port(self) -> None:
        published = {name for name, service in compose_services().items() if service.get("ports")}

        assert published == {"api"}

    def test_api_scores_in_ml_serve(self) -> None:
        services = compose_services()
        scorer = urlsplit(services["api"]["environment"]["TIPWISE_SCORER_URL"])

        assert scorer.hostname in services
        assert scorer.port == listen_port(services[str(scorer.hostname)]["command"])
        assert services["api"]["environment"]["TIPWISE_EMBEDDED_WORKER"] == "false"

    def test_database_url_matches_the_postgres_service(self) -> None:
        services = compose_services()
        url = urlsplit(services["api"]["environment"]["TIPWISE_DATABASE_URL"])
        postgres = services["postgres"]

        assert url.scheme == "postgresql+psycopg"
        assert (url.hostname, url.port) == ("postgres", 5432)
        assert url.username == postgres["environment"]["POSTGRES_USER"]
        assert url.password == postgres["environment"]["POSTGRES_PASSWORD"]
        assert url.path == "/" + postgres["environment"]["POSTGRES_DB"]
        assert postgres["image"].startswith("postgres:16")
        assert "pg_isready" in " ".join(postgres["healthcheck"]["test"])

    def test_nats_runs_jetstream_on_a_volume_and_is_checked_on_its_monitoring_port(self) -> None:
        services = compose_services()
        nats = services["nats"]
        command = nats["command"]
        bus = urlsplit(services["api"]["environment"]["TIPWISE_EVENT_BUS"])

        assert (bus.scheme, bus.hostname, bus.port) == ("nats", "nats", 4222)
        assert "-js" in command
        assert command[command.index("-m") + 1] == "8222"
        store = command[command.index("-sd") + 1]
        assert any(volume.split(":")[1] == store for volume in nats["volumes"])
        assert urlsplit(compose_healthcheck_url(nats))[1:3] == ("127.0.0.1:8222", "/healthz")


# --- Dockerfile ------------------------------------------------------------------------


class TestDockerfile:
    def test_builds_in_a_builder_stage_and_runs_on_python_slim(self) -> None:
        stages = dockerfile_stages()

        assert len(stages) >= 2
        assert stages[0][0][1].split() == ["python:3.11-slim", "AS", "builder"]
        assert stages[-1][0][1].split()[0] == "python:3.11-slim"
        copies = [rest for keyword, rest in stages[-1] if keyword == "COPY"]
        assert any(rest.startswith("--from=builder ") for rest in copies)

    def test_installs_the_hash_locked_dependencies_then_tipwise_without_dependencies(self) -> None:
        runs = [rest for keyword, rest in dockerfile_stages()[0] if keyword == "RUN"]
        lock_install = next(i for i, run in enumerate(runs) if "-r requirements/app.lock" in run)
        self_install = next(i for i, run in enumerate(runs) if "pip install --no-deps ." in run)

        assert "--require-hashes" in runs[lock_install].split()
        assert lock_install < self_install

    def test_the_mlflow_client_is_installed_from_its_hash_lock_only_when_asked(self) -> None:
        builder = dockerfile_stages()[0]
        runs = [rest for keyword, rest in builder if keyword == "RUN"]
        mlflow_install = next(i for i, run in enumerate(runs) if "-r requirements/mlflow.lock" in run)
        app_install = next(i for i, run in enumerate(runs) if "-r requirements/app.lock" in run)

        assert ("ARG", "TIPWISE_MLFLOW=0") in builder
        assert runs[mlflow_install].startswith('if [ "$TIPWISE_MLFLOW" = 1 ]; then')
        assert "--require-hashes" in runs[mlflow_install].split()
        assert app_install < mlflow_install
        app_lock = (REPO / "requirements/app.lock").read_text()
        mlflow_lock = (REPO / "requirements/mlflow.lock").read_text()
        pinned = {line.split(" ")[0] for line in app_lock.splitlines() if "==" in line and not line.startswith("#")}
        assert pinned <= {line.split(" ")[0] for line in mlflow_lock.splitlines() if "==" in line}, (
            "the MLflow lock must pin every package of the app lock at the same version"
        )
        assert "mlflow-skinny==" in mlflow_lock

    def test_runs_as_a_fixed_non_root_user(self) -> None:
        users = [rest for keyword, rest in dockerfile_stages()[-1] if keyword == "USER"]

        assert users
        uid = users[-1].split(":")[0]
        assert uid.isdigit(), "a numeric UID, so Kubernetes can verify runAsNonRoot"
        assert int(uid) != 0
        manifests_uids = {pod_spec(doc)["securityContext"]["runAsUser"] for doc in tipwise_workloads()}
        assert manifests_uids == {int(uid)}

    def test_entrypoint_is_tipwise_and_serves_by_default(self) -> None:
        assert dockerfile_json("ENTRYPOINT") == ["tipwise"]
        assert dockerfile_json("CMD")[0] == "serve"

    def test_data_dir_is_a_volume_and_port_8000_is_exposed(self) -> None:
        runtime = dockerfile_stages()[-1]
        volumes = [json.loads(rest) for keyword, rest in runtime if keyword == "VOLUME"]
        env = dict(
            pair.split("=", 1) for pair in shlex.split(" ".join(rest for keyword, rest in runtime if keyword == "ENV"))
        )

        assert env["TIPWISE_DATA_DIR"] == DATA_DIR
        assert volumes == [[DATA_DIR]]
        assert any(keyword == "RUN" and f"chown -R tipwise:tipwise {DATA_DIR}" in rest for keyword, rest in runtime)
        assert ("EXPOSE", "8000") in runtime

    def test_healthcheck_uses_python(self) -> None:
        checks = [rest for keyword, rest in dockerfile_stages()[-1] if keyword == "HEALTHCHECK"]

        assert len(checks) == 1
        command = json.loads(checks[0].split(" CMD ", 1)[1])
        assert command[:2] == ["python", "-c"]
        assert "/healthz" in command[2]

    def test_dockerignore_keeps_local_state_out_of_the_build_context(self) -> None:
        ignored = {
            line.strip() for line in DOCKERIGNORE.read_text().splitlines() if line.strip() and not line.startswith("#")
        }

        assert {".git", ".venv", "var", "**/.env"} <= ignored
        assert not {"src", "requirements", "pyproject.toml", "README.md"} & ignored
