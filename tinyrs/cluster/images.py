"""Apptainer images of the GPU stages, with ONE source of pinned versions: ``envs/<image>.yaml``.

``render_definition`` turns an env file into ``containers/<image>.def``; ``agreement_problems`` fails when a
definition no longer says what its env file pins (a pin edited on one side only, a file edited by hand);
``definition_problems`` checks the header and section names against Apptainer's own set, because spython
(which we use to parse the files) accepts unknown sections silently (REFERENCE.md §7). ``build_image`` runs
``apptainer build`` and records the image's sha256 in ``containers/images.lock.json``, which the workflow reads.
"""
from __future__ import annotations

import datetime
import os
import re
import subprocess
from dataclasses import dataclass
from pathlib import Path

import yaml

from tinyrs.io import atomic_open, read_json, sha256_file, write_json

REPO = Path(__file__).resolve().parents[2]
ENVS_DIR = REPO / "envs"
CONTAINERS_DIR = REPO / "containers"
LOCK_PATH = CONTAINERS_DIR / "images.lock.json"
IMAGES = ("sft", "grpo", "eval", "eval-lmdeploy")

# Apptainer definition files: header keywords and sections (apptainer.org/docs/user/latest/definition_files.html)
BOOTSTRAP_AGENTS = {"library", "docker", "shub", "oras", "localimage", "yum", "dnf", "zypper", "debootstrap", "arch",
                    "busybox", "scratch", "docker-daemon", "docker-archive", "oci", "oci-archive"}
AGENTS_NEEDING_FROM = {"library", "docker", "shub", "oras", "localimage", "docker-daemon", "docker-archive", "oci",
                       "oci-archive"}
HEADER_KEYWORDS = {"bootstrap", "from", "stage", "includecmd", "mirrorurl", "updateurl", "osversion", "include",
                   "registry", "namespace", "fingerprints", "confurl", "product", "user", "regcode", "productpgp",
                   "setopt"}
SECTIONS = {"arguments", "setup", "files", "environment", "post", "runscript", "startscript", "test", "labels", "help",
            "appfiles", "appsetup", "appinstall", "appenv", "apprun", "applabels", "apptest", "apphelp", "appstart"}
APP_SECTIONS = {name for name in SECTIONS if name.startswith("app")}

ENV_PREFIX = "/opt/env"
PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)(==?)([^\s=\\]+)$")


class ImageError(RuntimeError):
    """An image cannot be rendered, checked or built as asked; the message names the file."""


@dataclass(frozen=True)
class ImageEnv:
    """What ``envs/<name>.yaml`` pins for one image."""

    name: str
    path: Path
    base: str
    micromamba: str
    conda: dict[str, str]              # conda-forge package -> version (python, pip)
    pip: dict[str, str]                # PyPI package -> version, in install order
    no_build_isolation: tuple[str, ...]
    imports: tuple[str, ...]


def constraint_pins(path: str | os.PathLike) -> dict[str, str]:
    """``name==version`` lines of a pip constraints file (envs/cpu-constraints.txt), by name as written."""
    lines = Path(path).read_text(encoding="utf-8").splitlines()
    return {match.group(1): match.group(3) for match in map(PIN.match, lines) if match and match.group(2) == "=="}


def _parse_pin(text: str, separator: str, where: str) -> tuple[str, str]:
    match = PIN.match(text.strip())
    if not match or match.group(2) != separator:
        raise ImageError(f"{where}: '{text}' is not an exact pin (name{separator}version)")
    return match.group(1), match.group(3)


def read_env(path: str | os.PathLike) -> ImageEnv:
    """Parse an env file; every dependency must be pinned to one exact version."""
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
        image = data["image"]
        conda, pip = {}, {}
        for item in data["dependencies"]:
            if isinstance(item, dict):
                for spec in item["pip"]:
                    name, version = _parse_pin(spec, "==", f"{path}: dependencies.pip")
                    pip[name] = version
            else:
                name, version = _parse_pin(item, "=", f"{path}: dependencies")
                conda[name] = version
        env = ImageEnv(name=path.name.removesuffix(".yaml"), path=path, base=image["from"],
                       micromamba=str(image["micromamba"]), conda=conda, pip=pip,
                       no_build_isolation=tuple(image.get("no_build_isolation", ())),
                       imports=tuple(image["imports"]))
    except (OSError, yaml.YAMLError, KeyError, TypeError) as err:
        raise ImageError(f"{path}: not a valid image env file ({type(err).__name__}: {err})") from err
    if data.get("name") != f"tinyrs-{env.name}":
        raise ImageError(f"{path}: 'name' must be 'tinyrs-{env.name}', got {data.get('name')!r}")
    if data.get("channels") != ["conda-forge"]:
        raise ImageError(f"{path}: 'channels' must be [conda-forge]: the image installs from conda-forge only")
    unknown = sorted(set(env.no_build_isolation) - set(env.pip))
    if unknown:
        raise ImageError(f"{path}: image.no_build_isolation names {unknown}, which dependencies.pip does not pin")
    if "python" not in env.conda:
        raise ImageError(f"{path}: dependencies must pin python (python=X.Y.Z)")
    return env


def _continued(command: str, items: list[str]) -> list[str]:
    """``command`` with one item per continuation line (readable, and one pin per line to compare)."""
    return [f"{command} \\"] + [f"    {item} \\" for item in items[:-1]] + [f"    {items[-1]}"]


def render_definition(env: ImageEnv) -> str:
    """The Apptainer definition file of ``env``; deterministic, so re-rendering shows any drift."""
    source = f"envs/{env.path.name}"
    isolated = [f"{n}=={v}" for n, v in env.pip.items() if n not in env.no_build_isolation]
    after = [f"{n}=={v}" for n, v in env.pip.items() if n in env.no_build_isolation]
    labels = [f"org.tinyrs.image {env.name}", f"org.tinyrs.env {source}", f"org.tinyrs.base {env.base}",
              f"org.tinyrs.micromamba {env.micromamba}"]
    labels += [f"org.tinyrs.conda.{n} {v}" for n, v in env.conda.items()]
    labels += [f"org.tinyrs.pip.{n} {v}" for n, v in env.pip.items()]
    post = [
        "set -eu",
        "export DEBIAN_FRONTEND=noninteractive",
        "apt-get update",
        "apt-get install -y --no-install-recommends ca-certificates curl bzip2 build-essential",
        "rm -rf /var/lib/apt/lists/*",
        "export MAMBA_ROOT_PREFIX=/opt/micromamba",
        f"curl -fsSL https://micro.mamba.pm/api/micromamba/linux-64/{env.micromamba} | tar -xj -C /usr/local bin/micromamba",
        *_continued(f"micromamba create -y -p {ENV_PREFIX} --override-channels -c conda-forge",
                    [f"{n}={v}" for n, v in env.conda.items()]),
        "micromamba clean -y --all",
        *_continued(f"{ENV_PREFIX}/bin/pip install --no-cache-dir", isolated),
    ]
    if after:
        post += _continued(f"MAX_JOBS=8 {ENV_PREFIX}/bin/pip install --no-cache-dir --no-build-isolation", after)
    post += [
        "# the tinyrs code is not in the image: it runs from the working tree the job starts in",
        "printf '#!/bin/sh\\nexec python -m tinyrs.cli \"$@\"\\n' > /usr/local/bin/tinyrs",
        "chmod 755 /usr/local/bin/tinyrs",
    ]
    imports = " ".join(env.imports)
    test = [
        "set -eu",
        "python -c 'import importlib, sys; [print(n, getattr(importlib.import_module(n), \"__version__\", \"\")) "
        f"for n in sys.argv[1:]]' {imports}",
        "if command -v nvidia-smi >/dev/null; then",
        "    nvidia-smi",
        "    python -c 'import torch; assert torch.cuda.is_available(), \"torch sees no CUDA device\"; "
        "x = torch.ones(256, 256, device=\"cuda\"); print(\"cuda ok:\", torch.cuda.get_device_name(0), float((x @ x).sum()))'",
        "else",
        "    echo 'no nvidia-smi (no --nv): GPU check skipped; on a GPU node run: apptainer test --nv IMAGE'",
        "fi",
    ]
    help_text = [
        f"TinyRS '{env.name}' image: the pinned stack of {source}. The tinyrs code is not inside: /usr/local/bin/tinyrs",
        "runs it from the working tree the job starts in (Apptainer binds it). GPU check on a GPU node:",
        f"apptainer test --nv containers/{env.name}.sif",
    ]
    sections = [("labels", labels), ("help", help_text),
                ("environment", [f"export PATH={ENV_PREFIX}/bin:$PATH", "export PYTHONNOUSERSITE=1"]),
                ("post", post), ("test", test)]
    lines = ["Bootstrap: docker", f"From: {env.base}", "",
             f"# GENERATED by `tinyrs images render` out of {source}: edit that file, not this one.", ""]
    for name, body in sections:
        lines += [f"%{name}", *(f"    {line}" if line else "" for line in body), ""]
    return "\n".join(lines)


def definition_problems(path: str | os.PathLike) -> list[str]:
    """Header and section names of a definition file, checked against Apptainer's set (spython does not)."""
    path = Path(path)
    problems: list[str] = []
    header: dict[str, str] = {}
    seen_sections: set[str] = set()
    in_header = True
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        stripped = line.strip()
        if line.startswith("%"):
            in_header = False
            section = re.split(r"\s+", line[1:].split("#", 1)[0].strip(), maxsplit=1)[0].lower()
            if section not in SECTIONS:
                problems.append(f"{path}:{number}: unknown section '%{section}' (Apptainer knows: "
                                f"{', '.join('%' + s for s in sorted(SECTIONS))})")
            elif section in seen_sections and section not in APP_SECTIONS:
                problems.append(f"{path}:{number}: section '%{section}' appears twice")
            seen_sections.add(section)
        elif in_header and stripped and not stripped.startswith("#"):
            key, colon, value = stripped.partition(":")
            if not colon or key.strip().lower() not in HEADER_KEYWORDS:
                problems.append(f"{path}:{number}: '{stripped}' is not a header keyword line (expected one of "
                                f"{', '.join(sorted(HEADER_KEYWORDS))})")
                continue
            if not header and key.strip().lower() != "bootstrap":
                problems.append(f"{path}:{number}: the first header line must be 'Bootstrap: <agent>'")
            header[key.strip().lower()] = value.strip()
    agent = header.get("bootstrap", "").lower()
    if "bootstrap" not in header:
        problems.append(f"{path}: no 'Bootstrap:' header")
    elif agent not in BOOTSTRAP_AGENTS:
        problems.append(f"{path}: unknown bootstrap agent '{header['bootstrap']}'")
    elif agent in AGENTS_NEEDING_FROM and not header.get("from"):
        problems.append(f"{path}: bootstrap agent '{agent}' needs a 'From:' header")
    return problems


def parse_definition(path: str | os.PathLike):
    """The spython recipe of a single-stage definition file."""
    from spython.main.parse.parsers import SingularityParser

    try:
        recipes = SingularityParser(str(path)).recipe
    except (NotImplementedError, ValueError, IndexError) as err:
        raise ImageError(f"{path}: spython cannot parse it ({type(err).__name__}: {err})") from err
    if len(recipes) != 1:
        raise ImageError(f"{path}: expected one build stage, spython found {len(recipes)}")
    return next(iter(recipes.values()))


def _installed_pins(install_lines: list[str], marker: str, separator: str) -> dict[str, str]:
    """Pins of the %post command(s) starting with ``marker``, through their continuation lines."""
    pins: dict[str, str] = {}
    active = False
    for line in install_lines:
        active = active or marker in line
        if active:
            for token in line.rstrip("\\").split():
                match = PIN.match(token)
                if match and match.group(2) == separator:
                    pins[match.group(1)] = match.group(3)
            active = line.endswith("\\")
    return pins


def _compare(what: str, declared: dict[str, str], found: dict[str, str], env_path: Path, def_path: Path) -> list[str]:
    problems = []
    for name in sorted(set(declared) | set(found)):
        if name not in found:
            problems.append(f"{def_path}: {what} lacks {name} (pinned {declared[name]} in {env_path})")
        elif name not in declared:
            problems.append(f"{def_path}: {what} has {name} {found[name]}, which {env_path} does not pin")
        elif declared[name] != found[name]:
            problems.append(f"{def_path}: {what} has {name} {found[name]} but {env_path} pins {declared[name]}")
    return problems


def agreement_problems(env_path: str | os.PathLike, def_path: str | os.PathLike) -> list[str]:
    """Where a definition file disagrees with its env file: base image, labels, installed pins, text."""
    env_path, def_path = Path(env_path), Path(def_path)
    env = read_env(env_path)
    if not def_path.exists():
        return [f"{def_path}: missing; run `tinyrs images render {env.name}`"]
    recipe = parse_definition(def_path)
    problems = []
    if (recipe.fromHeader or "").lower() != env.base.lower():  # spython lower-cases the From line
        problems.append(f"{def_path}: From is '{recipe.fromHeader}' but {env_path} says image.from '{env.base}'")
    labels = dict(label.split(None, 1) for label in recipe.labels if " " in label)
    declared_labels = {f"org.tinyrs.pip.{n}": v for n, v in env.pip.items()}
    declared_labels |= {f"org.tinyrs.conda.{n}": v for n, v in env.conda.items()}
    declared_labels["org.tinyrs.base"] = env.base
    found_labels = {key: value for key, value in labels.items() if key in declared_labels or
                    key.startswith(("org.tinyrs.pip.", "org.tinyrs.conda."))}
    problems += _compare("%labels", declared_labels, found_labels, env_path, def_path)
    problems += _compare("%post (pip)", env.pip, _installed_pins(recipe.install, "/bin/pip install", "=="),
                         env_path, def_path)
    problems += _compare("%post (conda)", env.conda, _installed_pins(recipe.install, "micromamba create", "="),
                         env_path, def_path)
    if def_path.read_text(encoding="utf-8") != render_definition(env):
        problems.append(f"{def_path}: differs from the rendering of {env_path} (edited by hand, or the env file "
                        f"changed): run `tinyrs images render {env.name}`")
    return problems


def env_path(name: str, envs_dir: Path = ENVS_DIR) -> Path:
    return envs_dir / f"{name}.yaml"


def definition_path(name: str, containers_dir: Path = CONTAINERS_DIR) -> Path:
    return containers_dir / f"{name}.def"


def render(name: str, envs_dir: Path = ENVS_DIR, containers_dir: Path = CONTAINERS_DIR) -> Path:
    """Write ``containers/<name>.def`` from ``envs/<name>.yaml``."""
    target = definition_path(name, containers_dir)
    with atomic_open(target, "w", encoding="utf-8") as handle:
        handle.write(render_definition(read_env(env_path(name, envs_dir))))
    return target


def read_lock(lock_path: Path = LOCK_PATH) -> dict:
    return read_json(lock_path) if Path(lock_path).exists() else {}


def _image_file(entry: dict, lock_path: Path) -> Path:
    return (Path(lock_path).parent / entry["image"]).resolve()


def lock_problems(name: str, lock_path: Path = LOCK_PATH, containers_dir: Path = CONTAINERS_DIR,
                  digests: bool = False) -> list[str]:
    """Whether the recorded image of ``name`` exists, matches its definition and (``digests``) its sha256."""
    entry = read_lock(lock_path).get(name)
    if entry is None:
        return [f"{lock_path}: no image '{name}' recorded; run `make images` (or `tinyrs images build {name}`)"]
    image = _image_file(entry, lock_path)
    if not image.exists():
        return [f"{lock_path}: image '{name}' is recorded at {image}, which does not exist; run `make images`"]
    problems = []
    definition = definition_path(name, containers_dir)
    if definition.exists() and sha256_file(definition) != entry["definition_sha256"]:
        problems.append(f"{definition} changed since {image} was built; run `make images`")
    if image.stat().st_size != entry["size"]:
        problems.append(f"{image} is not the file recorded in {lock_path} (size differs); run `make images`")
    elif digests and sha256_file(image) != entry["sha256"]:
        problems.append(f"{image}: sha256 differs from {lock_path}; run `make images`")
    return problems


def image_path(name: str, configured: str | None, lock_path: Path = LOCK_PATH,
               containers_dir: Path = CONTAINERS_DIR) -> Path:
    """The .sif the workflow runs image ``name`` from: the configured path, else the one the lock records."""
    if configured:
        path = Path(configured).resolve()
        if not path.exists():
            raise ImageError(f"resources.images.{name}: {path} does not exist")
        return path
    problems = lock_problems(name, lock_path, containers_dir)
    if problems:
        raise ImageError("\n".join(problems))
    return _image_file(read_lock(lock_path)[name], lock_path)


def build_image(name: str, apptainer: str = "apptainer", build_args: tuple[str, ...] = (), force: bool = False,
                envs_dir: Path = ENVS_DIR, containers_dir: Path = CONTAINERS_DIR,
                lock_path: Path = LOCK_PATH) -> dict:
    """Build ``containers/<name>.sif`` (unless the recorded one is current) and record its digest."""
    definition = definition_path(name, containers_dir)
    problems = agreement_problems(env_path(name, envs_dir), definition) + definition_problems(definition)
    if problems:
        raise ImageError("refusing to build:\n  " + "\n  ".join(problems))
    if not force and not lock_problems(name, lock_path, containers_dir):
        return read_lock(lock_path)[name]
    image = containers_dir / f"{name}.sif"
    partial = containers_dir / f".{name}.sif.partial"
    command = [apptainer, "build", "--force", *build_args, str(partial), str(definition)]
    print("+", " ".join(command), flush=True)
    if subprocess.run(command).returncode != 0:
        partial.unlink(missing_ok=True)
        raise ImageError(f"apptainer build of {definition} failed (output above)")
    os.replace(partial, image)
    version = subprocess.run([apptainer, "--version"], capture_output=True, text=True).stdout.strip()
    entry = {
        "image": os.path.relpath(image, Path(lock_path).parent),
        "sha256": sha256_file(image),
        "size": image.stat().st_size,
        "definition": os.path.relpath(definition, Path(lock_path).parent),
        "definition_sha256": sha256_file(definition),
        "apptainer": version,
        "built_at": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    }
    lock = read_lock(lock_path)
    lock[name] = entry
    write_json(lock_path, dict(sorted(lock.items())))
    return entry
