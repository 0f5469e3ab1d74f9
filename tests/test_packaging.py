"""Layout and import rules.

The wheel: every module under systolica/, hdl/, testbench/ and synth/ ships under its
``systolica.*`` name (a forgotten subpackage is a failure here, not a user's ImportError), nothing
installs a top-level ``hdl``/``testbench``/``synth``, and every module imports from the installed
wheel alone. The import rules of docs/conventions.md, checked statically (ast) on the sources.
"""

import ast
import importlib.util
import os
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
#: source folder -> installed package
ROOTS = {"systolica": "systolica", "hdl": "systolica.hdl", "testbench": "systolica.testbench",
         "synth": "systolica.synth"}


def source_modules():
    """{installed module name: source path} for every .py file under the package folders."""
    modules = {}
    for folder, package in ROOTS.items():
        for path in sorted((ROOT / folder).rglob("*.py")):
            rel = path.relative_to(ROOT / folder).with_suffix("")
            parts = [p for p in rel.parts if p != "__init__"]
            if folder == "systolica" and parts and parts[0] in ("hdl", "testbench", "synth"):
                continue
            modules[".".join([package, *parts])] = path
    return modules


def pip(*args, cwd=None):
    # pip's own deprecation warnings are not ours: run it without PYTHONWARNINGS=error
    env = {k: v for k, v in os.environ.items() if k != "PYTHONWARNINGS"}
    proc = subprocess.run([sys.executable, "-m", "pip", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-3000:]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory):
    """A wheel built from a copy of the tracked files (the checkout stays clean)."""
    tmp = tmp_path_factory.mktemp("wheel")
    files = subprocess.run(["git", "ls-files", "-co", "--exclude-standard"], cwd=ROOT,
                           capture_output=True, text=True, check=True).stdout.split()
    src = tmp / "src"
    for name in files:
        if (ROOT / name).is_file():
            (src / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, src / name)
    pip("wheel", "-q", "--no-deps", "-w", str(tmp), str(src))
    (path,) = tmp.glob("systolica-*.whl")
    return path


def test_every_module_is_in_the_wheel(wheel):
    names = zipfile.ZipFile(wheel).namelist()
    shipped = {n[:-3].replace("/", ".").removesuffix(".__init__") for n in names
               if n.endswith(".py")}
    missing = sorted(set(source_modules()) - shipped)
    assert not missing, f"modules not in the wheel: {missing}"
    tops = {n.split("/")[0] for n in names if not n.split("/")[0].endswith((".dist-info",
                                                                             ".data"))}
    assert tops == {"systolica"}, f"top-level names in the wheel: {sorted(tops)}"
    for data in ("systolica/default.toml", "systolica/testbench/cxx/harness.cpp",
                 "systolica/testbench/cxx/systolica_harness.h",
                 "systolica/board/cxx/uart_line.cpp"):
        assert data in names, data


def test_every_module_imports_from_the_installed_wheel(wheel, tmp_path):
    target = tmp_path / "site"
    pip("install", "-q", "--no-deps", "--target", str(target), str(wheel))
    modules = sorted(source_modules())
    if importlib.util.find_spec("torch") is None:      # the optional extra "torch"
        modules = [m for m in modules if not m.startswith("systolica.torch")]
    script = (
        "import importlib, sys\n"
        f"for name in {modules!r}:\n"
        "    module = importlib.import_module(name)\n"
        f"    assert module.__file__.startswith({str(target)!r}), (name, module.__file__)\n"
        "print('imported', len(sys.modules))\n")
    # the wheel first, then this environment's dependencies; no .pth (so no editable install)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(target),
                                                        sysconfig.get_paths()["purelib"]]))
    proc = subprocess.run([sys.executable, "-S", "-c", script], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]


# --- import rules ---------------------------------------------------------------------------------

def imports_of(path, module):
    """Absolute names of every module ``path`` (installed as ``module``) imports, anywhere in it
    (lazy imports inside functions included)."""
    package = module if path.name == "__init__.py" else module.rsplit(".", 1)[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[:len(base) - (node.level - 1)]
                name = ".".join(base + ([node.module] if node.module else []))
            else:
                name = node.module
            found.add(name)
            found |= {f"{name}.{alias.name}" for alias in node.names}
    return found


#: (importer prefix, forbidden prefixes) -- docs/conventions.md, "Import rules"
RULES = [
    ("systolica.hdl", ("systolica.model", "systolica.testbench", "systolica.compiler",
                       "systolica.runtime")),
    ("systolica.model", ("systolica.hdl", "systolica.testbench", "systolica.compiler",
                         "systolica.runtime")),
    # the PyTorch backend sits on top: nothing of systolica's own imports it
    ("systolica.compiler", ("systolica.torch",)),
    ("systolica.runtime", ("systolica.torch",)),
    ("systolica.config", ("systolica.hdl", "systolica.model", "systolica.testbench")),
    ("systolica.codes", ("systolica.hdl", "systolica.model", "systolica.testbench")),
    ("systolica.isa", ("systolica.hdl", "systolica.model", "systolica.testbench")),
]


def _within(name, prefix):
    return name == prefix or name.startswith(prefix + ".")


def test_import_rules():
    broken = []
    for module, path in source_modules().items():
        for importer, forbidden in RULES:
            if not _within(module, importer):
                continue
            for name in imports_of(path, module):
                # hdl/ is also importable as its folder name in a source checkout
                name = "systolica." + name if name.split(".")[0] in ("hdl", "testbench") else name
                if any(_within(name, f) for f in forbidden):
                    broken.append(f"{module} imports {name}")
    assert not broken, "import rules (docs/conventions.md) broken:\n" + "\n".join(broken)


def test_import_rule_checker_sees_lazy_and_relative_imports(tmp_path):
    path = tmp_path / "x.py"
    path.write_text("def f():\n    from ..testbench import sim\n    import systolica.model\n")
    found = imports_of(path, "systolica.hdl.x")
    assert "systolica.testbench.sim" in found and "systolica.model" in found
