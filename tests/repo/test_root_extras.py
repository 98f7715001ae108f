"""``pip install '.[EXTRA]'`` at the root, from a clean copy, in fresh venvs: every extra and `all`.

None of the plugin distributions is on the package index, so the metadata hook (hatch_build.py)
turns each extra into direct references to the distributions in the checkout; a build for the
index (``AEGIS_BUILD_FOR_INDEX=1``, or a wheel built from the sdist) keeps plain names. The
plugins' own libraries come from the package index. ``slow`` (real resolves and builds): run by
``nox -s root_install``.
"""

from __future__ import annotations

import json
import sys
import tarfile
import zipfile
from email.parser import Parser
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from repo_copy import clean_copy, root_extras, run, uv

pytestmark = pytest.mark.slow

EXTRAS = root_extras()


@pytest.fixture(scope="module")
def checkout(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return clean_copy(tmp_path_factory.mktemp("extras") / "clone")


def _fresh_venv(path: Path) -> Path:
    made = run([uv(), "venv", "--quiet", "--python", sys.executable, str(path)])
    assert made.returncode == 0, made.stderr
    return path / "bin" / "python"


def _plugins(venv: Path) -> dict[str, object]:
    listed = run([str(venv / "bin" / "aegis"), "plugins", "--format", "json"], timeout=120)
    assert listed.returncode == 0, listed.stdout + listed.stderr
    report: dict[str, object] = json.loads(listed.stdout)
    return report


def _distributions(report: dict[str, object]) -> set[str]:
    plugins = report["plugins"]
    assert isinstance(plugins, list)
    return {p["distribution"] for p in plugins}


def test_langchain_extra_with_plain_pip(checkout: Path, tmp_path: Path) -> None:
    """The README's command, with pip (uv could find the core through [tool.uv.sources])."""
    venv = tmp_path / "venv"
    made = run([sys.executable, "-m", "venv", str(venv)], timeout=300)
    assert made.returncode == 0, made.stderr
    python = venv / "bin" / "python"
    pip = [str(python), "-m", "pip", "install", "-q", "--disable-pip-version-check"]
    install = run([*pip, ".[langchain]"], cwd=checkout)
    assert install.returncode == 0, install.stderr
    probe = (
        "import importlib.metadata as m, json;"
        "from aegis.adapters.langchain import AegisTool, LangChainExecutor;"
        "from langchain.agents import create_agent;"  # the [agents] extra came along
        "print(json.dumps([AegisTool.__module__,"
        " json.loads(m.distribution('agent-aegis-langchain').read_text('direct_url.json'))]))"
    )
    done = run([str(python), "-c", probe], timeout=120)
    assert done.returncode == 0, done.stderr
    module, direct_url = json.loads(done.stdout)
    assert module == "aegis.adapters.langchain"
    # Installed from the checkout, not found on an index.
    assert direct_url["url"] == (checkout / "aegis-adapters" / "langchain").resolve().as_uri()
    report = _plugins(venv)
    assert report["failures"] == []
    plugins = report["plugins"]
    assert isinstance(plugins, list)
    langchain = [p for p in plugins if p["name"] == "langchain"]
    assert langchain == [
        {
            "name": "langchain",
            "distribution": "agent-aegis-langchain",
            "version": "0.1.0",
            "builtin": False,
            "registers": {"executors": ["langchain"]},
        }
    ]


@pytest.mark.parametrize("extra", sorted(EXTRAS))
def test_every_extra_installs_from_the_checkout(checkout: Path, tmp_path: Path, extra: str) -> None:
    venv = tmp_path / "venv"
    python = _fresh_venv(venv)
    install = run([uv(), "pip", "install", "--python", str(python), f".[{extra}]"], cwd=checkout)
    assert install.returncode == 0, install.stderr
    wanted = {Requirement(r).name for r in EXTRAS[extra]}
    report = _plugins(venv)
    assert report["failures"] == []
    assert wanted <= _distributions(report), f"{extra}: {wanted} not all listed"


def _requires(metadata_text: str) -> list[str]:
    return Parser().parsestr(metadata_text).get_all("Requires-Dist") or []


def _published(extras: dict[str, list[str]]) -> set[str]:
    lines = {"agent-aegis-core==0.1.0"}
    for extra, requirements in extras.items():
        lines |= {f'{Requirement(r)} ; extra == "{extra}"' for r in requirements}
    return lines


def _normalised(lines: list[str]) -> set[str]:
    return {str(Requirement(line)) for line in lines}


def test_a_build_for_the_index_carries_plain_names(checkout: Path, tmp_path: Path) -> None:
    out = tmp_path / "dist"
    built = run(
        [uv(), "build", "--quiet", "--out-dir", str(out), str(checkout)],
        env={"AEGIS_BUILD_FOR_INDEX": "1"},
    )
    assert built.returncode == 0, built.stderr
    (wheel,) = out.glob("agent_aegis-*.whl")
    (sdist,) = out.glob("agent_aegis-*.tar.gz")
    with zipfile.ZipFile(wheel) as zf:
        wheel_requires = _requires(zf.read("agent_aegis-0.1.0.dist-info/METADATA").decode())
    with tarfile.open(sdist) as tf:
        pkg_info = tf.extractfile("agent_aegis-0.1.0/PKG-INFO")
        assert pkg_info is not None
        sdist_requires = _requires(pkg_info.read().decode())
    expected = {str(Requirement(line)) for line in _published(EXTRAS)}
    assert _normalised(wheel_requires) == expected
    # The wheel built from the sdist takes its metadata from the sdist's PKG-INFO.
    assert _normalised(sdist_requires) == expected
    assert not [r for r in wheel_requires + sdist_requires if "file:" in r]


def test_a_build_from_the_checkout_points_into_it(checkout: Path, tmp_path: Path) -> None:
    out = tmp_path / "dist"
    built = run([uv(), "build", "--quiet", "--wheel", "--out-dir", str(out), str(checkout)])
    assert built.returncode == 0, built.stderr
    (wheel,) = out.glob("agent_aegis-*.whl")
    with zipfile.ZipFile(wheel) as zf:
        requires = [
            Requirement(r)
            for r in _requires(zf.read("agent_aegis-0.1.0.dist-info/METADATA").decode())
        ]
    assert requires, "no Requires-Dist at all"
    for req in requires:
        assert req.url is not None, f"{req} names no checkout directory"
        directory = Path(req.url.removeprefix("file://"))
        assert directory.is_relative_to(checkout.resolve()), req
        assert (directory / "pyproject.toml").is_file(), req
    langchain = next(r for r in requires if r.name == "agent-aegis-langchain")
    assert langchain.extras == {"agents"}


def test_an_extra_whose_version_the_checkout_does_not_have_fails_the_build(
    tmp_path: Path,
) -> None:
    copy = clean_copy(tmp_path / "clone")
    plugin = copy / "aegis-adapters" / "httpx" / "pyproject.toml"
    plugin.write_text(plugin.read_text().replace('version = "0.1.0"', 'version = "0.2.0"', 1))
    # Not --quiet: uv then shows the backend's output, where the hook's message is.
    built = run([uv(), "build", "--wheel", "--out-dir", str(tmp_path / "d"), str(copy)])
    assert built.returncode != 0
    assert "the checkout's agent-aegis-httpx is version 0.2.0" in built.stdout + built.stderr


def test_an_editable_root_install_with_an_extra(checkout: Path, tmp_path: Path) -> None:
    """The developer's form, ``pip install -e '.[httpx]'``: the root editable, the plugin (and the
    core) from the checkout, as copies (CONTRIBUTING says to install a plugin editable by path
    to work on it)."""
    venv = tmp_path / "venv"
    python = _fresh_venv(venv)
    install = run([uv(), "pip", "install", "--python", str(python), "-e", ".[httpx]"], cwd=checkout)
    assert install.returncode == 0, install.stderr
    report = _plugins(venv)
    assert report["failures"] == []
    assert {"agent-aegis-core", "agent-aegis-httpx"} <= _distributions(report)
    probe = "import aegis.adapters.httpx_adapter as m; print(m.HttpxExecutor.__name__)"
    done = run([str(python), "-c", probe], timeout=120)
    assert (done.returncode, done.stdout.strip()) == (0, "HttpxExecutor"), done.stderr
