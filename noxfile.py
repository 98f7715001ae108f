"""The one place that knows how to test, lint, type-check, build, benchmark and demo Aegis.

``nox`` alone runs tests, lint and typecheck. Every session gets a fresh Python 3.11 venv;
uv creates and fills it when uv is installed next to nox (much faster on CI), else the
standard ``venv`` + pip. The README and ``.ci/run`` call these sessions and nothing else.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import nox

PYTHON = "3.11"
ROOT = Path(__file__).resolve().parent
CORE = ROOT / "aegis-core"
EXAMPLE_PLUGIN = ROOT / "tests" / "plugins" / "aegis-example-plugin"
DIST = ROOT / "dist"
TEST_DEPS = ["pytest>=8", "pytest-asyncio>=0.23", "hypothesis>=6.100", "psycopg[binary]>=3.1"]

nox.options.default_venv_backend = "uv|venv"
nox.options.sessions = ["tests", "lint", "typecheck"]
nox.options.error_on_missing_interpreters = True
# uv must use the machine's Python, never fetch one (CI reaches package registries only).
os.environ.setdefault("UV_PYTHON_DOWNLOADS", "never")


def plugin_dists() -> list[Path]:
    """Every plugin distribution in the workspace (a directory with its own pyproject.toml)."""
    found: list[Path] = []
    for group in ("aegis-adapters", "aegis-approvals"):
        found += sorted(p.parent for p in (ROOT / group).glob("*/pyproject.toml"))
    if (ROOT / "aegis-server" / "pyproject.toml").exists():
        found.append(ROOT / "aegis-server")
    return found


def all_dists() -> list[Path]:
    """Every distribution this repository publishes: core, plugins, and the root meta-package."""
    return [CORE, *plugin_dists(), ROOT]


def _editable(paths: list[Path]) -> list[str]:
    args: list[str] = []
    for path in paths:
        args += ["-e", str(path)]
    return args


def _wheel_for(directory: Path, dist_name: str) -> Path:
    normalised = dist_name.replace("-", "_")
    wheels = sorted(directory.glob(f"{normalised}-*.whl"))
    if len(wheels) != 1:
        raise RuntimeError(f"expected one wheel of {dist_name} in {directory}, found {wheels}")
    return wheels[0]


def plugin_tests(dist: Path) -> Path:
    """Where a plugin distribution's own tests live: tests/<area>/<name>/.

    ``aegis-adapters/httpx`` -> ``tests/adapters/httpx``; ``aegis-server`` -> ``tests/server``.
    """
    if dist.parent.name.startswith("aegis-") and dist.parent != ROOT:
        return ROOT / "tests" / dist.parent.name.removeprefix("aegis-") / dist.name
    return ROOT / "tests" / dist.name.removeprefix("aegis-")


def _plugin_ids() -> list[str]:
    return [str(d.relative_to(ROOT)) for d in plugin_dists()]


def _ignore_plugin_tests() -> list[str]:
    """pytest arguments that leave every plugin's tests to that plugin's own session."""
    args: list[str] = []
    for dist in plugin_dists():
        args += ["--ignore", str(plugin_tests(dist))]
    return args


@nox.session(python=PYTHON)
def tests(session: nox.Session) -> None:
    """The default suite: the core, its CLI and packaging (``postgres`` and ``slow`` excluded).

    Each plugin distribution's tests run in its own venv in ``nox -s plugins``: their
    libraries (crewai, openai-agents, mcp 2.x, ...) cannot all share one environment.
    """
    session.install(*_editable([CORE]), *TEST_DEPS)
    session.run("pytest", *(session.posargs or ["-q"]), *_ignore_plugin_tests())


@nox.session(python=PYTHON)
@nox.parametrize("dist", _plugin_ids() or ["none"])
def plugins(session: nox.Session, dist: str) -> None:
    """One plugin distribution in a venv of its own: the core, that plugin and its ``test`` extra.

    Runs mypy --strict over the plugin's sources (against the installed core) and its tests
    under tests/<area>/<name>/, so every plugin is proven to work with nothing else installed.
    ``nox -s plugins`` runs them all; ``nox -s "plugins(dist='aegis-adapters/httpx')"`` one.
    """
    if dist == "none":
        session.skip("no plugin distributions in the workspace yet")
    path = ROOT / dist
    session.install(*_editable([CORE]), "-e", f"{path}[test]", *TEST_DEPS, "mypy>=1.10")
    mypy_path = os.pathsep.join([str(path / "src"), str(CORE / "src")])
    session.run("mypy", "--strict", str(path / "src"), env={"MYPYPATH": mypy_path})
    tests_dir = str(plugin_tests(path))
    # PostgreSQL-marked plugin tests run here too (the fixture starts a server, or fails on CI).
    session.run(
        "pytest", "-q", "-p", "no:cacheprovider", "-m", "not slow", tests_dir, *session.posargs
    )


@nox.session(python=PYTHON)
def lint(session: nox.Session) -> None:
    session.install("ruff")
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")


@nox.session(python=PYTHON)
def typecheck(session: nox.Session) -> None:
    """mypy --strict over the core and the example plugin, one run each.

    Separate runs because every distribution is type-checked as its users see it: the core
    alone, and a plugin against the installed core.
    """
    # No types-jsonschema: the code treats jsonschema as untyped, as in the dev venv.
    session.install(*_editable([CORE, EXAMPLE_PLUGIN]), "mypy>=1.10")
    session.install(*TEST_DEPS)
    session.run("mypy", "--strict", str(CORE / "src"))
    # Plugin distributions are type-checked in their own venvs by `nox -s plugins`.
    for dist in [EXAMPLE_PLUGIN]:
        # The plugin's own src first: its `aegis/adapters/<name>.py` is a portion of the core's
        # package, which mypy must find in the core's src.
        mypy_path = os.pathsep.join([str(dist / "src"), str(CORE / "src")])
        session.run("mypy", "--strict", str(dist / "src"), env={"MYPYPATH": mypy_path})


@nox.session(python=PYTHON)
def build(session: nox.Session) -> None:
    """Wheels and sdists of every distribution into dist/, as they would be published.

    ``AEGIS_BUILD_FOR_INDEX=1``: the root meta-distribution names its core and plugins plainly
    (``agent-aegis-langchain==0.1.0``), not as ``file:`` references into this checkout.
    """
    DIST.mkdir(exist_ok=True)
    session.env["AEGIS_BUILD_FOR_INDEX"] = "1"
    for dist in all_dists():
        _build(session, dist, DIST, wheel_only=False)
    session.log("built: " + ", ".join(sorted(p.name for p in DIST.iterdir())))


@nox.session(python=PYTHON)
def root_install(session: nox.Session) -> None:
    """``pip install .`` and ``pip install '.[EXTRA]'`` (every extra, and ``all``) at the root.

    From a clean copy of the checkout into fresh venvs (pip for the README's command, uv for
    the rest), plus the root's metadata built for the index and from the checkout: the
    ``slow`` tests in tests/repo. The plugins' libraries come from the package index.
    """
    uv = _uv()
    if uv is None and os.environ.get("CI", "").lower() == "true":
        session.error("uv not found: the extras are installed with uv")
    # The core only for tests/conftest.py's shared fixtures: each test builds venvs of its own.
    session.install(*_editable([CORE]), *TEST_DEPS)
    env = {"AEGIS_UV": uv} if uv else {}
    session.run(
        "pytest",
        "-q",
        "-p",
        "no:cacheprovider",
        "-m",
        "slow",
        "tests/repo",
        *session.posargs,
        env=env,
    )


@nox.session(python=PYTHON)
def demo(session: nox.Session) -> None:
    """Install aegis-core as a user would (not editable) and run the quick-start scenario."""
    session.install(str(CORE))
    workdir = session.create_tmp()
    session.chdir(workdir)
    session.run("aegis", "demo", *session.posargs)


def _postgres_available() -> str | None:
    """Where Debian's PostgreSQL server binaries are, if installed."""
    candidates = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"))
    if candidates:
        return str(candidates[-1].parent)
    initdb = shutil.which("initdb")
    return str(Path(initdb).parent) if initdb else None


@nox.session(python=PYTHON)
def postgres(session: nox.Session) -> None:
    """The audit store against a real PostgreSQL (the fixture starts Debian's server locally).

    On CI (``CI=true``) a missing server is a failure, here as well as in the fixture: a run that
    skipped every PostgreSQL test must not look green.
    """
    bindir = _postgres_available()
    if bindir is None:
        message = "PostgreSQL server binaries not found (apt-get install postgresql)"
        if os.environ.get("CI", "").lower() == "true":
            session.error(message)
        session.skip(message)
    session.log(f"PostgreSQL binaries: {bindir}")
    session.install(*_editable([CORE]), *TEST_DEPS)
    session.run("pytest", "-m", "postgres", "-q", "-rs", *session.posargs, *_ignore_plugin_tests())


@nox.session(python=PYTHON)
@nox.parametrize("install", ["wheel", "editable"])
def plugin_wheel(session: nox.Session, install: str) -> None:
    """A third-party plugin, installed like a user would, extends the CLI and the Runtime.

    ``wheel``: aegis-core and tests/plugins/aegis-example-plugin are built as wheels and installed
    (no editable, no source tree on the path) into this session's fresh venv. ``editable``: both
    installed editable, which exercises the other half of the namespace-portion recipe.
    """
    if install == "wheel":
        wheelhouse = Path(session.create_tmp()).resolve() / "wheelhouse"
        shutil.rmtree(wheelhouse, ignore_errors=True)
        for dist in (CORE, EXAMPLE_PLUGIN):
            _build(session, dist, wheelhouse, wheel_only=True)
        core_wheel = _wheel_for(wheelhouse, "agent-aegis-core")
        plugin_wheel_file = _wheel_for(wheelhouse, "aegis-example-plugin")
        session.install(str(core_wheel), str(plugin_wheel_file), *TEST_DEPS)
        env = {"AEGIS_EXPECT_INSTALL": "wheel", "AEGIS_WHEELHOUSE": str(wheelhouse)}
    else:
        session.install(*_editable([CORE, EXAMPLE_PLUGIN]), *TEST_DEPS)
        env = {"AEGIS_EXPECT_INSTALL": "editable"}
    env["AEGIS_REQUIRE_EXAMPLE_PLUGIN"] = "1"
    # Run from a scratch directory so that nothing in the repository is importable by accident.
    workdir = session.create_tmp()
    session.chdir(workdir)
    session.run(
        "pytest",
        "-q",
        "-p",
        "no:cacheprovider",
        "--rootdir",
        str(ROOT),
        "-c",
        str(ROOT / "pyproject.toml"),
        str(ROOT / "tests" / "plugins"),
        str(ROOT / "tests" / "packaging"),
        *session.posargs,
        env=env,
    )


@nox.session(python=PYTHON)
def bench(session: nox.Session) -> None:
    """BENCH.md's workload against this project and against agent-aegis==1.0.0, side by side.

    Each side runs in its own venv and process (both import as ``aegis``). ``nox -s bench --
    --smoke`` runs a reduced workload to prove the harness works; its figures mean little.
    """
    session.install(str(CORE))
    peer_dir = Path(session.create_tmp()).resolve() / "peer-venv"
    shutil.rmtree(peer_dir, ignore_errors=True)
    peer_python = _fresh_venv(session, peer_dir, ["agent-aegis==1.0.0"])
    session.run(
        "python",
        str(ROOT / "bench" / "run.py"),
        "--peer-python",
        str(peer_python),
        "--out",
        str(ROOT / "bench-results"),
        *session.posargs,
    )


def _uv() -> str | None:
    """The uv executable nox itself would use, if any."""
    try:
        from nox.virtualenv import find_uv
    except ImportError:  # an older nox without uv support
        return shutil.which("uv")
    has_uv, uv, _version = find_uv()
    return uv if has_uv else None


def _build(session: nox.Session, dist: Path, outdir: Path, *, wheel_only: bool) -> None:
    kind = ["--wheel"] if wheel_only else []
    uv = _uv()
    if uv:
        out = ["--out-dir", str(outdir)]
        session.run(uv, "build", "--quiet", *kind, *out, str(dist), external=True)
    else:
        session.install("build")
        session.run("python", "-m", "build", *kind, "--outdir", str(outdir), str(dist))


def _fresh_venv(session: nox.Session, path: Path, requirements: list[str]) -> Path:
    """A venv outside nox's management (for the peer), filled with uv when there is one."""
    uv = _uv()
    python = path / "bin" / "python"
    if uv:
        session.run(uv, "venv", "--quiet", "--python", PYTHON, str(path), external=True)
        session.run(uv, "pip", "install", "--python", str(python), *requirements, external=True)
    else:
        session.run(f"python{PYTHON}", "-m", "venv", str(path), external=True)
        session.run(str(python), "-m", "pip", "install", "-q", *requirements, external=True)
    return python


@nox.session(python=PYTHON)
def original_suite(session: nox.Session) -> None:
    """agent-aegis 0.1.4's own test suite (from its sdist) run against this project's core.

    A migration check, not a gate: it prints pass/fail counts (issue 12 asks for them) and
    never fails the session. Adapter and server tests are left out (they need the plugins).
    """
    import tarfile

    session.install(*_editable([CORE]), *TEST_DEPS, "pyyaml", "pytest-timeout", "pip")
    work = Path(session.create_tmp()).resolve() / "original"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    session.run(
        "python",
        "-m",
        "pip",
        "download",
        "--no-deps",
        "--no-binary",
        ":all:",
        "-d",
        str(work),
        "agent-aegis==0.1.4",
        external=False,
        silent=True,
    )
    (sdist,) = work.glob("agent_aegis-0.1.4.tar.gz")
    with tarfile.open(sdist) as tar:
        tar.extractall(work, filter="data")
    tests_dir = work / "agent_aegis-0.1.4" / "tests"
    skip = ("adapter", "server", "httpx", "playwright", "mcp", "webhook", "examples")
    chosen = sorted(
        str(p) for p in tests_dir.glob("test_*.py") if not any(s in p.name for s in skip)
    )
    session.chdir(work)
    session.run(
        "pytest",
        "-q",
        "-p",
        "no:cacheprovider",
        "--noconftest",  # its conftest builds policies from internals (PolicyRule) we do not have
        "--continue-on-collection-errors",
        "--timeout",
        "30",
        "-o",
        "addopts=",
        "--rootdir",
        str(work),
        *chosen,
        *session.posargs,
        success_codes=[0, 1, 2, 3, 4, 5],
    )
