"""Repository rules: our own `official`, pinned stack, one-way imports."""

import os
import re
import sys

import pytest

import official
from tests import testing_utils
from tests.conftest import REPO


def _python_files():
    """Every .py file of the project (tracked or not), repo-relative."""
    files = []
    for root, dirs, names in os.walk(REPO):
        dirs[:] = [
            d
            for d in dirs
            if d not in (".git", ".venv", "__pycache__")
            and not d.endswith(".egg-info")
        ]
        files += [
            os.path.relpath(os.path.join(root, n), REPO)
            for n in names
            if n.endswith(".py")
        ]
    return sorted(files)


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


# The sub-packages of assemble_tf, lowest first: a module imports only from
# lower levels (function-level imports included); one level's members do
# not import each other.
LEVELS = (
    ("layers", "presets"),
    ("models",),
    ("augment",),
    ("data",),
    ("config",),
    ("convert", "runs"),
    ("export",),  # evaluation.run evaluates export.precision's bf16 copy
    ("evaluation", "robustness", "retrieval"),
    ("training",),
)
_LEVEL = {name: i for i, names in enumerate(LEVELS) for name in names}


def _project_imports(text, package):
    """Top-level names of `package` imported by `text` (any indentation)."""
    names = set()
    for m in re.finditer(
        rf"^\s*(?:from|import)\s+{package}\.(\w+)", text, re.M
    ):
        names.add(m.group(1))
    # A parenthesised list may span lines; a bare one ends with its line.
    for m in re.finditer(
        rf"^\s*from\s+{package}\s+import\s+(?:\(([\w, \n]+)\)|([\w, ]+))",
        text,
        re.M,
    ):
        listed = m.group(1) or m.group(2)
        names.update(n.split()[0] for n in listed.split(",") if n.strip())
    return names


def test_assemble_tf_subpackages_import_downwards_only():
    unplaced, upward = [], []
    for path in _python_files():
        parts = path.split("/")
        if (
            parts[0] != "assemble_tf"
            or parts[-1] == "__init__.py"
            and len(parts) == 2
        ):
            continue
        source = parts[1].removesuffix(".py")
        if source not in _LEVEL:
            unplaced.append(path)
            continue
        for target in _project_imports(_read(path), "assemble_tf"):
            if target == source:
                continue
            if target not in _LEVEL:
                unplaced.append(f"{path} -> {target}")
            elif _LEVEL[target] >= _LEVEL[source]:
                upward.append(f"{path} -> {target}")
    assert not unplaced, unplaced
    assert not upward, upward


def test_binaries_do_not_import_binaries():
    for path in _python_files():
        if path.startswith("tools/"):
            assert not _project_imports(_read(path), "tools"), path
            assert not re.search(
                r"^\s*(from|import)\s+tools\b", _read(path), re.M
            ), path


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


LOAD_SCRIPT = """
import sys
import numpy as np
if sys.argv[1] == "assemble_tf_first":
    import assemble_tf  # registers the layers (docs/models.md)
    import keras
else:
    import keras
    import assemble_tf
model = keras.saving.load_model("model.keras")
np.save("out.npy", model(np.load("x.npy"), training=False))
print(assemble_tf.__file__)
"""


@pytest.mark.slow
@pytest.mark.parametrize("order", ["assemble_tf_first", "keras_first"])
def test_keras_file_loads_in_a_fresh_process_from_another_folder(
    tmp_path, order
):
    """The installed package (make venv: pip install -e .) registers every
    layer on `import assemble_tf`, in either import order."""
    import numpy as np

    from assemble_tf.models import build_model

    model = build_model(
        "assemble_resnet50",
        base_width=8,
        block_sizes=(2, 2, 2, 1),
        num_classes=4,
        image_size=32,
    )
    testing_utils.randomize_bn(model)
    model.save(tmp_path / "model.keras")
    x = testing_utils.random_images((2, 32, 32, 3), low=-100, high=100)
    np.save(tmp_path / "x.npy", x)
    (tmp_path / "load.py").write_text(LOAD_SCRIPT)
    result = testing_utils.run_command(
        [sys.executable, "load.py", order], cwd=tmp_path, unset=["PYTHONPATH"]
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.strip().endswith(
        os.path.join("assemble_tf", "__init__.py")
    )
    want = model(x, training=False).numpy()
    assert np.abs(want).max() > 0.1
    np.testing.assert_allclose(np.load(tmp_path / "out.npy"), want, atol=1e-5)


@pytest.mark.slow
def test_importing_the_package_does_not_load_keras():
    """Corruptions and the builder's workers stay free of TensorFlow."""
    code = (
        "import sys, assemble_tf, assemble_tf.robustness.corruptions, "
        "assemble_tf.data.builder, assemble_tf.config; "
        "print(sorted(m for m in ('keras', 'tensorflow') if m in sys.modules))"
    )
    result = testing_utils.run_command([sys.executable, "-c", code])
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip() == "[]"


@pytest.mark.slow
def test_binaries_run_from_another_folder(tmp_path):
    result = testing_utils.run_binary(
        "tools.preset_table", "--help", cwd=tmp_path, unset=["PYTHONPATH"]
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert "--output_dir" in result.stdout


# Calls that start processes: binaries, subprocesses, worker pools.
_STARTS_PROCESS = (
    "subprocess.",
    "run_binary(",
    "run_command(",
    "Popen(",
    "workers=2",
)


def _tests_starting_processes(path):
    """(test name, marked slow) of the tests in `path` that start a
    process, directly or through a module-level helper."""
    import ast

    text = _read(path)
    lines = text.splitlines()
    tree = ast.parse(text)
    funcs = {n.name: n for n in tree.body if isinstance(n, ast.FunctionDef)}

    def source(node):
        return "\n".join(lines[node.lineno - 1 : node.end_lineno])

    def starts(node, seen=()):
        if any(k in source(node) for k in _STARTS_PROCESS):
            return True
        return any(
            isinstance(c, ast.Call)
            and isinstance(c.func, ast.Name)
            and c.func.id in funcs
            and c.func.id not in seen + (node.name,)
            and starts(funcs[c.func.id], seen + (node.name,))
            for c in ast.walk(node)
        )

    module_slow = "pytestmark = pytest.mark.slow" in text
    return [
        (
            n.name,
            module_slow
            or any("mark.slow" in source(d) for d in n.decorator_list),
        )
        for n in tree.body
        if isinstance(n, ast.FunctionDef)
        and n.name.startswith("test_")
        and starts(n)
    ]


def test_every_test_that_starts_a_process_is_marked_slow():
    """`make test-fast` (-m "not slow") runs no binary and no subprocess."""
    found, unmarked = 0, []
    for path in _python_files():
        if path.startswith("tests/") and os.path.basename(path).startswith(
            "test_"
        ):
            for name, slow in _tests_starting_processes(path):
                found += 1
                if not slow:
                    unmarked.append(f"{path}::{name}")
    assert found >= 18  # the scan sees them
    assert not unmarked, unmarked


def test_no_citation_of_documents_outside_the_repository():
    """A user's clone has no ../shared: cite papers and repositories."""
    outside = re.compile(r"ASSEMBLE_SPEC|REFERENCE\.md|DECISIONS\.md|STYLE\.md")
    docs = sorted(
        os.path.join("docs", f)
        for f in os.listdir(os.path.join(REPO, "docs"))
        if f.endswith(".md")
    )
    assert "docs/models.md" in docs
    for path in _python_files() + ["README.md"] + docs:
        if path == "tests/test_packaging.py":
            continue
        assert not outside.search(_read(path)), path


def test_relative_links_of_the_docs_resolve():
    """Every relative link (and image) of README.md and docs/*.md names a
    file of the repository, and a #anchor a heading of that file."""
    pages = ["README.md"] + [
        os.path.join("docs", f)
        for f in sorted(os.listdir(os.path.join(REPO, "docs")))
        if f.endswith(".md")
    ]
    link = re.compile(r"\]\(([^)\s]+)\)")
    checked, broken = 0, []
    for page in pages:
        prose = re.sub(r"```.*?```", "", _read(page), flags=re.S)
        for target in link.findall(re.sub(r"`[^`\n]*`", "", prose)):
            if target.startswith(("http://", "https://", "mailto:")):
                continue
            path, _, anchor = target.partition("#")
            full = os.path.normpath(
                os.path.join(os.path.dirname(page), path) if path else page
            )
            checked += 1
            if not os.path.exists(os.path.join(REPO, full)):
                broken.append(f"{page}: {target}")
            elif anchor and full.endswith(".md"):
                if anchor not in _anchors(_read(full)):
                    broken.append(f"{page}: {target} (no such heading)")
    assert checked >= 30
    assert not broken, broken


def _anchors(markdown):
    """GitHub's heading anchors: lower case, punctuation dropped, spaces
    to hyphens."""
    out, in_code = set(), False
    for line in markdown.splitlines():
        if line.startswith("```"):
            in_code = not in_code
        if in_code or not line.startswith("#"):
            continue
        text = line.lstrip("#").strip().lower()
        text = re.sub(r"[^\w\- ]", "", text)
        out.add(text.replace(" ", "-"))
    return out


def test_the_training_guide_lists_every_config_flag():
    """docs/training.md's flag table names every field of the config (15
    were missing: the transfer and classifier ones)."""
    import dataclasses

    from assemble_tf import config as config_lib

    text = open(os.path.join(REPO, "docs", "training.md")).read()
    section = text.split("### Flags", 1)[1].split("Weight decay follows", 1)[0]
    missing = [
        f.name
        for group in config_lib.GROUPS.values()
        for f in dataclasses.fields(group)
        if f"`--{f.name}`" not in section
    ]
    assert missing == []


def test_pip_install_alone_gets_every_runtime_requirement():
    """`pip install .` (without requirements.txt) must give a working
    environment: before, tensorboard (every training run's summaries),
    importlib_resources (tfds) and imageio-ffmpeg (ImageNet-P) came only
    from requirements.txt, and a run crashed after its first epoch."""
    import tomllib

    project = tomllib.loads(_read("pyproject.toml"))["project"]

    def names(specs):
        return {
            re.split(r"[<>=!\[; ]", spec, maxsplit=1)[0].lower()
            for spec in specs
        }

    pinned = names(
        line
        for line in _read("requirements.txt").splitlines()
        if line and not line.startswith("#")
    )
    tools = {"pytest", "pytest-xdist", "pytest-timeout", "ruff"}
    extras = names(project["optional-dependencies"]["jax"])
    assert extras == {"jax", "jaxlib"}
    assert pinned - tools - extras == names(project["dependencies"])
    # tensorflow==2.21.0 has no wheel for Python 3.14.
    assert project["requires-python"] == ">=3.11,<3.14"
