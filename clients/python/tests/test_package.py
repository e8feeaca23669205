"""The package as a user gets it: mypy --strict, and a pip install into a new venv."""

import pathlib
import shutil
import subprocess
import sys
import venv

import tecken_identity

PACKAGE_ROOT = pathlib.Path(__file__).resolve().parents[1]
SUBCOMMANDS = ("users", "tokens", "is-blocked")


def test_mypy_strict_passes_on_the_package_and_its_examples():
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "mypy",
            "--strict",
            "--config-file",
            "pyproject.toml",
            "src/tecken_identity",
            "examples",
        ],
        cwd=PACKAGE_ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )

    assert result.returncode == 0, result.stdout + result.stderr
    assert "Success: no issues found" in result.stdout


def test_the_package_ships_its_typing_markers_and_stubs():
    package = pathlib.Path(tecken_identity.__file__).parent

    assert (package / "py.typed").is_file()
    assert (package / "_generated" / "identity_pb2.pyi").is_file()
    assert (package / "_generated" / "identity_pb2_grpc.pyi").is_file()


def copy_of_the_package(destination: pathlib.Path) -> pathlib.Path:
    """Copy the package's sources alone, as an sdist would hold them."""
    shutil.copytree(
        PACKAGE_ROOT,
        destination,
        ignore=shutil.ignore_patterns(
            "*.egg-info", "build", "__pycache__", ".mypy_cache", "tests"
        ),
    )
    return destination


def test_pip_install_into_a_new_venv_needs_nothing_else(tmp_path):
    source = copy_of_the_package(tmp_path / "tecken-identity")
    environment = tmp_path / "venv"
    venv.create(environment, with_pip=True)
    python = environment / "bin" / "python"

    installed = subprocess.run(
        [
            python,
            "-m",
            "pip",
            "install",
            "--quiet",
            "--disable-pip-version-check",
            "--no-input",
            str(source),
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert installed.returncode == 0, installed.stderr

    # Run from an empty directory, so nothing of the checkout can be imported.
    workdir = tmp_path / "elsewhere"
    workdir.mkdir()
    probe = subprocess.run(
        [
            python,
            "-c",
            "import importlib.util, tecken_identity\n"
            "from tecken_identity import IdentityClient, AsyncIdentityClient\n"
            "assert importlib.util.find_spec('grpc_tools') is None\n"
            "assert importlib.util.find_spec('identity_service') is None\n"
            "print(tecken_identity.__file__)",
        ],
        cwd=workdir,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert probe.returncode == 0, probe.stderr
    installed_at = pathlib.Path(probe.stdout.strip()).parent
    assert installed_at.is_relative_to(environment)
    assert (installed_at / "py.typed").is_file()
    assert (installed_at / "_generated" / "identity_pb2.pyi").is_file()

    helped = subprocess.run(
        [environment / "bin" / "identity-admin", "--help"],
        cwd=workdir,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert helped.returncode == 0, helped.stderr
    for name in SUBCOMMANDS:
        assert name in helped.stdout
