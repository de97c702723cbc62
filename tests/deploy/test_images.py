"""The Dockerfiles, parsed with dockerfile-parse: one image whose command picks the role, and a CUDA worker."""

from __future__ import annotations

import io
import json
import re
import string
import tomllib

from dockerfile_parse import DockerfileParser

from tests.support.deploy import DEPLOY, parse_command, unknown_settings

ROOT = DEPLOY.parent


def dockerfile(name: str) -> DockerfileParser:
    parser = DockerfileParser(fileobj=io.BytesIO((DEPLOY / "docker" / name).read_bytes()))
    assert parser.baseimage, f"{name} has no FROM"
    return parser


def instructions(parser: DockerfileParser, kind: str) -> list[str]:
    """Values of every `kind` instruction, with the build args' defaults substituted."""
    return [string.Template(i["value"]).safe_substitute(parser.args) for i in parser.structure
            if i["instruction"] == kind]


def exec_form(parser: DockerfileParser, kind: str) -> list[str]:
    (value,) = instructions(parser, kind)[-1:]
    return json.loads(value)


def test_one_image_whose_command_picks_the_role():
    image = dockerfile("Dockerfile")
    assert exec_form(image, "ENTRYPOINT") == ["stackyard"]
    default = parse_command(exec_form(image, "CMD"))
    assert (default.command, default.host, default.port) == ("web", "0.0.0.0", 8000)
    assert "8000" in instructions(image, "EXPOSE")
    for role in (["worker", "--queues", "cpu", "--concurrency", "4"], ["beat"], ["migrate"]):
        assert parse_command(role).command == role[0]
    assert not instructions(image, "HEALTHCHECK"), \
        "workers, beat and migrate run this image too and serve no HTTP: they would all be 'unhealthy'"
    assert image.envs["STACKYARD_LOG_FORMAT"] == "json"
    assert not unknown_settings(set(image.envs))


def test_cpu_image_installs_cpu_torch_and_flower():
    image = dockerfile("Dockerfile")
    runs = instructions(image, "RUN")
    assert any(re.search(r"torch==[\d.]+ --index-url https://download\.pytorch\.org/whl/cpu\b", run) for run in runs)
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    assert any(dep.startswith("flower") for dep in extras["deploy"])
    assert any('pip install ".[deploy]"' in run for run in runs), "compose's flower service runs the CPU image"


def test_cuda_variant_runs_the_gpu_queue_on_cuda_torch():
    image = dockerfile("Dockerfile.cuda")
    base = re.fullmatch(r"nvidia/cuda:(\d+)\.(\d+)\.\d+-(cudnn-)?runtime-ubuntu[\d.]+", image.baseimage)
    assert base, f"{image.baseimage} is not an nvidia/cuda runtime image"
    assert exec_form(image, "ENTRYPOINT") == ["stackyard"]
    command = parse_command(exec_form(image, "CMD"))
    assert (command.command, command.queues, command.concurrency) == ("worker", "gpu", 1)
    (index,) = [m for run in instructions(image, "RUN")
                for m in re.findall(r"torch==[\d.]+ --index-url https://download\.pytorch\.org/whl/(\S+)", run)]
    assert index == f"cu{base[1]}{base[2]}", f"torch's {index} build on a CUDA {base[1]}.{base[2]} base image"
    assert not unknown_settings(set(image.envs))


def test_images_pin_the_projects_torch_and_copy_every_package():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    (torch,) = [dep for dep in project["project"]["dependencies"] if dep.startswith("torch")]
    packages = {name.rstrip("*") for name in project["tool"]["setuptools"]["packages"]["find"]["include"]}
    for name in ("Dockerfile", "Dockerfile.cuda"):
        image = dockerfile(name)
        assert any(torch in run for run in instructions(image, "RUN")), f"{name} does not install {torch}"
        copied = {source for value in instructions(image, "COPY") for source in value.split()[:-1]}
        assert packages | {"pyproject.toml", project["project"]["readme"]} <= copied, f"{name} misses files"


def test_build_context_leaves_out_secrets_and_the_venv():
    ignored = set((ROOT / ".dockerignore").read_text().splitlines())
    assert {"deploy/stackyard.env", ".venv", ".git"} <= ignored
