"""Generate the Python code for protos/identity.proto into the client package.

The generated modules live in one place, `tecken_identity._generated`, which
both the server and the client import, so the two never disagree about a
message. Run `make protos` after editing the proto; a test fails while the
committed code is stale.

protoc names the generated gRPC module's import of the messages after the
proto file (`import identity_pb2`), which only works from the top level of
sys.path; the import is rewritten to a relative one so the code can live inside
a package.
"""

import argparse
import pathlib
import re
import subprocess
import sys
import tempfile

ROOT = pathlib.Path(__file__).resolve().parent.parent
PROTO_DIR = ROOT / "protos"
PACKAGE_DIR = ROOT / "clients" / "python" / "src" / "tecken_identity" / "_generated"
GENERATED = (
    "identity_pb2.py",
    "identity_pb2.pyi",
    "identity_pb2_grpc.py",
    "identity_pb2_grpc.pyi",
)
HEADER = (
    "# Generated from protos/identity.proto by scripts/generate_protos.py; "
    "do not edit.\n"
)


def run_protoc(out_dir: pathlib.Path) -> None:
    """Run grpcio-tools' protoc with the mypy-protobuf plugins into out_dir."""
    import grpc_tools

    well_known = pathlib.Path(grpc_tools.__file__).parent / "_proto"
    plugins = pathlib.Path(sys.executable).parent
    command = [
        sys.executable,
        "-m",
        "grpc_tools.protoc",
        f"--proto_path={PROTO_DIR}",
        f"--proto_path={well_known}",
        f"--plugin=protoc-gen-mypy={plugins / 'protoc-gen-mypy'}",
        f"--plugin=protoc-gen-mypy_grpc={plugins / 'protoc-gen-mypy_grpc'}",
        f"--python_out={out_dir}",
        f"--grpc_python_out={out_dir}",
        f"--mypy_out={out_dir}",
        f"--mypy_grpc_out={out_dir}",
        str(PROTO_DIR / "identity.proto"),
    ]
    # The command is this interpreter and fixed paths, nothing from outside.
    subprocess.run(command, check=True)  # noqa: S603


def make_relative(text: str) -> str:
    """Rewrite the absolute import of the messages module as a relative one."""
    return re.sub(
        r"^import identity_pb2 as (\w+)$",
        r"from . import identity_pb2 as \1",
        text,
        flags=re.MULTILINE,
    )


def generate() -> dict[str, str]:
    """Return the generated files' names and their final text."""
    with tempfile.TemporaryDirectory() as tmp:
        out_dir = pathlib.Path(tmp)
        run_protoc(out_dir)
        return {
            name: HEADER + make_relative((out_dir / name).read_text())
            for name in GENERATED
        }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--check",
        action="store_true",
        help="exit 1 if the committed code differs from what protoc makes now",
    )
    args = parser.parse_args()

    files = generate()

    if args.check:
        stale = [
            name
            for name, text in files.items()
            if not (PACKAGE_DIR / name).exists()
            or (PACKAGE_DIR / name).read_text() != text
        ]
        for name in stale:
            print(f"stale: {PACKAGE_DIR / name}; run make protos", file=sys.stderr)
        return 1 if stale else 0

    PACKAGE_DIR.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        (PACKAGE_DIR / name).write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
