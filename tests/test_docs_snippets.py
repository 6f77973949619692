"""Every shell snippet of the documentation runs, or says why it cannot here (tests/docsnippets.py has the kinds).

Plain ```sh blocks run page by page as one session, on SQLite as written and on PostgreSQL with its URL instead
of the SQLite file; the plan hashes a page shows are the ones the commands print now.
"""

from __future__ import annotations

import ast
import re
import shlex
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.controlplane.cluster import Cluster
from tests.docsnippets import (
    KINDS,
    MISTYPED,
    REPO,
    RUNNERS,
    SHOWN_HASH,
    ClusterSession,
    approval_hash,
    approval_hashes,
    blocks,
    example_hashes,
    lines,
    pages,
    run_page,
    runnable,
    session_hashes,
)
from tests.helpers import load_core


@pytest.mark.parametrize("page", pages())
def test_every_shell_block_is_of_a_documented_kind(page: str) -> None:
    for block in blocks(page):
        if block.language in ("bash", "shell", "console", "zsh"):
            raise AssertionError(f"{page}:{block.line}: write ```sh (a documented kind), not ```{block.language}")
        elif block.language != "sh":  # a shell session in an output block would be left unrun
            prompt = re.search(r"^\$ .*", block.body, re.MULTILINE)
            assert not prompt, f"{page}:{block.line}: {prompt.group()}: show commands in a ```sh block"
        if block.language == "sh":
            assert block.kind in KINDS, f"{page}:{block.line}: ```sh {block.kind} is none of {sorted(KINDS)}"


def test_the_kinds_are_documented_in_the_index() -> None:
    index = (REPO / "docs" / "index.md").read_text()
    section = index[index.index("## Snippets") :]
    for kind in KINDS:
        row = f"| ```` ```sh{' ' + kind if kind else ''} ```` |"
        assert row in section, f"docs/index.md#snippets does not explain {kind!r}"


@pytest.mark.parametrize("page", sorted(RUNNERS))
def test_a_page_with_its_own_runner_is_run_by_it(page: str) -> None:
    """The test named for the page exists and reads that page (so no page is left unrun silently)."""
    path, _, name = RUNNERS[page].partition("::")
    source = (REPO / path).read_text()
    (function,) = [
        node for node in ast.walk(ast.parse(source)) if isinstance(node, ast.FunctionDef) and node.name == name
    ]
    assert Path(page).name in ast.get_source_segment(source, function) + source, (page, RUNNERS[page])
    assert any(b.language == "sh" and b.kind == "" for b in blocks(page)), f"{page} has nothing for its runner"


def _session(page: str, backend: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, url: str | None) -> None:
    shutil.copytree(REPO / "examples", tmp_path / "examples")
    monkeypatch.chdir(tmp_path)
    if url is None:
        monkeypatch.delenv("EXTSCHEMA_DATABASE_URL", raising=False)  # the default: sqlite:///extschema.db here
    else:
        monkeypatch.setenv("EXTSCHEMA_DATABASE_URL", url)
    session = run_page(page, tmp_path, url)
    assert not session.stale, (
        f"{page} shows plan hashes that are no longer printed ({backend}): "
        + ", ".join(f"{old} is now {new}" for old, new in session.stale)
        + "; run `python -m tests.docs_refresh` to write the current ones into the pages"
    )


RUN = [page for page in pages() if runnable(page)]


@pytest.mark.parametrize("backend", ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
@pytest.mark.parametrize("page", RUN)
def test_the_snippets_of_the_page_run_as_written(
    page: str, backend: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest
) -> None:
    url = str(request.getfixturevalue("pg_url")) if backend == "postgresql" else None
    _session(page, backend, tmp_path, monkeypatch, url)


def test_the_pages_known_to_run_are_run() -> None:
    """A page that showed sessions stays run (a block marked away by mistake shows here)."""
    expected = {"docs/plugin-authors.md", "docs/evolution.md", "docs/operations.md", "examples/evolution/README.md"}
    assert expected <= set(RUN), sorted(expected - set(RUN))


CLUSTER = [page for page in pages() if any(b.language == "sh" and b.kind == "cluster" for b in blocks(page))]


@pytest.mark.k8s
@pytest.mark.parametrize("backend", ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
@pytest.mark.parametrize("page", CLUSTER)
def test_the_cluster_snippets_of_the_page_run_against_the_api_server(
    page: str, backend: str, kube_cluster: Cluster, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    """In a copy of the repository's crds/, deploy/ and examples/; every operator the page starts runs on a
    database holding the example application's core tables (examples/core/load.py), as the host's would."""
    url = str(request.getfixturevalue("sqlite_url" if backend == "sqlite" else "pg_url"))
    load_core(url)
    for folder in ("crds", "deploy", "examples", "charts"):
        shutil.copytree(REPO / folder, tmp_path / folder)
    # The CRDs are there (install.md takes over CRDs applied before); what an earlier run left is not.
    kube_cluster.kubectl("apply", "--server-side", "--force-conflicts", "-f", str(REPO / "crds"))
    kube_cluster.kubectl("wait", "--for=condition=Established", "crd", "--all", "--timeout=60s")
    kube_cluster.kubectl("-n", "extschema-system", "delete", "secret", "app-db", "--ignore-not-found")
    session = ClusterSession(page, tmp_path, url, kube_cluster.kubeconfig, kube_cluster.kubectl_bin)
    try:
        assert session.run() > 0
        if session.operators:  # the operator takes its finalizers off what the page applied
            kube_cluster.kubectl("delete", "exts", "--all", "-A", "--timeout=60s", timeout=90)
    finally:
        session.stop()


def test_the_pages_known_to_need_a_cluster_run_against_one() -> None:
    assert {"README.md", "docs/install.md", "docs/operator.md"} <= set(CLUSTER), CLUSTER


@pytest.mark.parametrize("backend", ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def test_the_approval_blocks_show_the_hash_of_their_plan(
    backend: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    """```sh approval blocks show the hash `extschema plan` gives for their resource (tests/test_kubectl_plugin.py
    checks that the operator waits on that same hash)."""
    url = str(request.getfixturevalue("sqlite_url" if backend == "sqlite" else "pg_url"))
    now = approval_hash(tmp_path, url)
    shown = {page: approval_hashes(page) for page in pages()}
    stale = {page: sorted(hashes - {now}) for page, hashes in shown.items() if hashes - {now}}
    assert not stale, f"{stale} are not {now}: run `python -m tests.docs_refresh`"
    assert shown["docs/kubectl-plugin.md"] == {now}


@pytest.mark.parametrize("backend", ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def test_every_hash_a_page_shows_is_one_extschema_prints(
    backend: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    """A plan hash anywhere in the docs (prose, JSON samples, statuses) is a session's (checked as it runs), or
    the hash of one of the example plans, made now; or the mistyped one."""
    url = str(request.getfixturevalue("sqlite_url" if backend == "sqlite" else "pg_url"))
    examples = example_hashes(tmp_path, url)
    known = {MISTYPED, *examples.values()}.union(*(session_hashes(page) for page in pages()))
    unknown = {
        page: sorted(set(SHOWN_HASH.findall((REPO / page).read_text())) - known)
        for page in pages()
        if set(SHOWN_HASH.findall((REPO / page).read_text())) - known
    }
    assert not unknown, f"hashes no plan has now: {unknown}; the example plans' hashes now: {examples}"


def _shell_commands(page: str, kinds: set[str]) -> list[str]:
    return [line for b in blocks(page) if b.language == "sh" and b.kind in kinds for line, _ in lines(b.body)]


@pytest.mark.parametrize("page", pages())
def test_the_make_targets_the_docs_name_exist(page: str) -> None:
    makefile = (REPO / "Makefile").read_text()
    for line in _shell_commands(page, set(KINDS)):
        for target in re.findall(r"(?:^|&& )make ([\w-]+)", line):
            assert re.search(rf"^{re.escape(target)}:", makefile, re.MULTILINE), f"{page}: {line}: no such target"


def _helm_template(line: str) -> list[str] | None:
    """`helm install|upgrade` of a chart in this repository as `helm template` with the same values, or None."""
    args = shlex.split(line.partition(" # ")[0])
    if args[:1] != ["helm"] or args[1] not in ("install", "upgrade"):
        return None
    words = [a for a in args[2:] if a not in ("--install", "--reuse-values", "--wait", "--create-namespace")]
    at = 0
    kept: list[str] = []
    while at < len(words):
        if words[at] == "--timeout":
            at += 2
            continue
        kept.append(words[at])
        at += 1
    name, chart, *options = kept
    if not (REPO / chart / "Chart.yaml").exists():
        return None  # a packaged chart the page builds (field-notes-2.0.0.tgz)
    return ["template", name, str(REPO / chart), *options]


CHART_COMMANDS = [
    (page, line)
    for page in pages()
    for line in _shell_commands(page, {"cluster", "full-cluster"})
    if _helm_template(line) is not None
]


@pytest.mark.helm
@pytest.mark.parametrize(("page", "line"), CHART_COMMANDS)
def test_the_helm_commands_of_the_docs_render_with_the_values_they_set(page: str, line: str) -> None:
    """What a cluster block installs renders: every value it sets is one the chart's values.schema.json knows."""
    from tests.controlplane.helm import ensure_helm

    args = _helm_template(line)
    assert args is not None
    done = subprocess.run([str(ensure_helm()), *args], capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, f"{page}: {line}\n{done.stderr}"
    assert "kind: Deployment" in done.stdout


def test_the_docs_install_charts() -> None:
    assert {page for page, _ in CHART_COMMANDS} >= {"docs/install.md", "docs/helm-plugins.md"}
