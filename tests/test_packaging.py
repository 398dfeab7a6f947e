"""Repository rules: our own `official`, pinned stack, one-way imports."""

import os
import re
import subprocess

import official
from tests.conftest import REPO


def _python_files():
    out = subprocess.run(
        ["git", "ls-files", "*.py"],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    files = out.split() or []
    for root, _, names in os.walk(REPO):
        if ".venv" in root or ".git" in root:
            continue
        files += [
            os.path.relpath(os.path.join(root, n), REPO)
            for n in names
            if n.endswith(".py")
        ]
    return sorted(set(files))


def _read(path):
    with open(os.path.join(REPO, path), encoding="utf-8") as f:
        return f.read()


def test_official_is_our_package():
    assert os.path.dirname(official.__file__) == os.path.join(REPO, "official")


def test_requirements_pin_the_decided_stack():
    lines = _read("requirements.txt").splitlines()
    pins = dict(
        line.split("==")
        for line in lines
        if "==" in line and not line.startswith("#")
    )
    assert pins["tensorflow"] == "2.21.0"
    assert pins["tensorflow-probability"] == "0.25.0"
    assert pins["tf-keras"] == "2.21.0"
    assert pins["keras"].startswith("3.")
    for name in (
        "tensorflow-datasets",
        "importlib_resources",
        "absl-py",
        "numpy",
    ):
        assert name in pins
    for banned in ("tensorflow-addons", "tensorflow-cpu", "tf-models-official"):
        assert banned not in pins


def test_no_banned_imports_and_no_shared_reads():
    banned = re.compile(
        r"^\s*(import|from)\s+(tensorflow_addons|tf_keras)\b", re.M
    )
    for path in _python_files():
        text = _read(path)
        assert not banned.search(text), path
        if not path.startswith("tests/"):
            assert "../shared" not in text, path


def test_dependencies_point_one_way():
    rules = {
        "official/": ("assemble_tf", "flags", "tools"),
        "assemble_tf/": ("flags", "tools"),
        "flags/": ("tools",),
    }
    for path in _python_files():
        text = _read(path)
        for prefix, forbidden in rules.items():
            if path.startswith(prefix):
                for pkg in forbidden:
                    assert not re.search(
                        rf"^\s*(from|import)\s+{pkg}\b", text, re.M
                    ), f"{path} imports {pkg}"
        if path.startswith("assemble_tf/"):
            assert "FLAGS" not in text and "absl" not in text, path
