"""The pure core stays pure: DESIGN.md section 1, enforced."""

from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parents[2] / "src" / "simple_ntpd"
SHELL_PACKAGES = {"runtime", "daemon"}
FORBIDDEN_MODULES = {
    "socket",
    "asyncio",
    "ssl",
    "signal",
    "subprocess",
    "select",
    "selectors",
    "mmap",
    "threading",
    "multiprocessing",
    "OpenSSL",
}
FORBIDDEN_CALLS = {
    ("time", "time"),
    ("time", "time_ns"),
    ("time", "monotonic"),
    ("time", "monotonic_ns"),
    ("time", "clock_gettime"),
    ("time", "clock_gettime_ns"),
    ("time", "perf_counter"),
    ("time", "sleep"),
    ("os", "urandom"),
    ("os", "environ"),
    ("os", "getenv"),
}
# config/load.py is the configuration's single file and environment reader (DESIGN.md section 4).
ALLOWED_IO_FILES = {SRC / "config" / "load.py"}


def pure_modules() -> list[Path]:
    out = []
    for path in SRC.rglob("*.py"):
        rel = path.relative_to(SRC)
        if rel.parts[0] in SHELL_PACKAGES or path in ALLOWED_IO_FILES:
            continue
        out.append(path)
    return out


def test_there_are_pure_modules() -> None:
    names = {p.relative_to(SRC).as_posix() for p in pure_modules()}
    assert "server/pipeline.py" in names
    assert "served_clock.py" in names


def test_pure_core_imports_no_io() -> None:
    problems = []
    for path in pure_modules():
        tree = ast.parse(path.read_text(), filename=str(path))
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                names = [a.name.split(".")[0] for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names = [node.module.split(".")[0]]
                if node.module == "simple_ntpd" or node.module.startswith("simple_ntpd."):
                    parts = node.module.split(".")
                    if len(parts) > 1 and parts[1] in SHELL_PACKAGES:
                        problems.append(f"{path}:{node.lineno} imports the shell {node.module}")
            else:
                names = []
            for name in names:
                if name in FORBIDDEN_MODULES:
                    problems.append(f"{path}:{node.lineno} imports {name}")
            if (
                isinstance(node, ast.Attribute)
                and isinstance(node.value, ast.Name)
                and (node.value.id, node.attr) in FORBIDDEN_CALLS
            ):
                problems.append(f"{path}:{node.lineno} uses {node.value.id}.{node.attr}")
            if (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Name)
                and node.func.id == "open"
            ):
                problems.append(f"{path}:{node.lineno} opens a file")
    assert problems == []
