"""Programs that act on services beyond the workspace: containers (`docker`), clusters
(`kubectl`, `helm`), infrastructure (`terraform`), cloud CLIs (`aws`, `gcloud`, `az`),
GitHub (`gh`) and databases (`psql -c "DROP ..."`). Reading is routine or close to it;
changing or deleting remote resources needs a human."""

from __future__ import annotations

import re
from collections.abc import Iterator

from keel.guardrails.findings import NETWORK, SECRET, UPLOAD, Finding
from keel.guardrails.invocation import Invocation, Rule

CONTAINERS = frozenset({"docker", "podman", "nerdctl"})
HOST_ACCESS = re.compile(
    r"^--privileged|^--(pid|net|network|ipc|uts|userns)=host$|^--cap-add=(all|sys_admin)$"
    r"|^(-v|--volume=?|--mount=?)?(type=bind,)?(source=|src=)?/(:|,|$)|docker\.sock",
    re.IGNORECASE,
)
CONTAINER_DELETES = frozenset({"rm", "rmi", "prune", "kill"})
CLOUD_CLIS = frozenset({"aws", "gcloud", "az", "doctl", "gsutil", "flyctl", "heroku"})
CLOUD_DELETES = re.compile(r"delete|remove|^rm$|^rb$|terminate|destroy|purge")
CLOUD_READS = re.compile(r"^(describe|list|get|ls|show)")
CLOUD_SECRETS = re.compile(r"token|credential|secret|password|get-login")
GITHUB_WRITES = frozenset(
    {"create", "merge", "close", "delete", "edit", "comment", "review", "reopen", "ready",
     "upload", "fork", "rename", "archive", "transfer", "set", "lock", "sync"}
)  # fmt: skip
DATABASES = frozenset(
    {"psql", "mysql", "mariadb", "sqlite3", "sqlcmd", "clickhouse-client", "cqlsh", "mongo",
     "mongosh", "redis-cli"}
)  # fmt: skip
DESTRUCTIVE_SQL = re.compile(
    r"\b(drop\s+(table|database|schema|collection)|truncate\s+(table\s+)?\w"
    r"|delete\s+from\s+\w+\s*(;|$)|flushall|flushdb|dropdatabase\(|deletemany\(\s*\{\s*\})",
    re.IGNORECASE,
)
_talks = frozenset({NETWORK})
_publishes = frozenset({NETWORK, UPLOAD})


def container(inv: Invocation) -> Iterator[Finding]:
    args = [a for a in inv.args if not a.startswith("-")]
    action = args[0] if args else ""
    shown = inv.shown
    if action in ("run", "create", "exec") and any(HOST_ACCESS.search(a) for a in inv.args):
        yield Finding(85, f"runs a container with access to the host ({shown})")
    elif action in ("run", "create"):
        yield Finding(40, f"runs a container image, pulled from a registry if missing ({shown})")
    elif action == "push":
        yield Finding(75, f"publishes an image to a registry ({shown})", _publishes)
    elif action == "login":
        yield Finding(50, f"stores registry credentials ({shown})")
    elif action in CONTAINER_DELETES or "prune" in args or args[:2] == ["compose", "down"]:
        if action != "compose" or "-v" in inv.args or "--volumes" in inv.args:
            yield Finding(55, f"deletes containers, images or volumes ({shown})")
    elif action in ("pull", "build", "exec") or (action == "compose" and "up" in args):
        yield Finding(30, f"builds, pulls or runs containers ({shown})", _talks)


def kubectl(inv: Invocation) -> Iterator[Finding]:
    action = next((a for a in inv.args if not a.startswith("-")), "")
    if action == "delete":
        yield Finding(75, f"deletes cluster resources ({inv.shown})", _talks)
    elif action in ("apply", "create", "replace", "patch", "scale", "rollout", "edit", "set",
                    "drain", "cordon", "label", "annotate"):  # fmt: skip
        yield Finding(60, f"changes a Kubernetes cluster ({inv.shown})", _talks)
    elif action in ("exec", "cp", "port-forward", "attach", "run"):
        yield Finding(50, f"runs commands in or reaches into a cluster ({inv.shown})", _talks)


def helm(inv: Invocation) -> Iterator[Finding]:
    action = next((a for a in inv.args if not a.startswith("-")), "")
    if action in ("uninstall", "delete", "rollback"):
        yield Finding(75, f"removes or rolls back a release ({inv.shown})", _talks)
    elif action in ("install", "upgrade"):
        yield Finding(60, f"deploys to a Kubernetes cluster ({inv.shown})", _talks)


def terraform(inv: Invocation) -> Iterator[Finding]:
    action = next((a for a in inv.args if not a.startswith("-")), "")
    if action == "destroy" or (action == "apply" and inv.has("-destroy")):
        yield Finding(90, f"destroys infrastructure ({inv.shown})", _talks)
    elif action in ("apply", "up", "import", "taint", "state"):
        yield Finding(70, f"changes real infrastructure ({inv.shown})", _talks)


def cloud(inv: Invocation) -> Iterator[Finding]:
    words = [a for a in inv.args if not a.startswith("-")]
    if any(CLOUD_SECRETS.search(w) for w in words[:4]):
        what = f"reads cloud credentials or secrets ({inv.shown})"
        yield Finding(70, what, frozenset({SECRET, NETWORK}))
    elif any(CLOUD_DELETES.search(w) for w in words[:4]):
        score = 90 if inv.has("--recursive", "-r") else 80
        yield Finding(score, f"deletes cloud resources ({inv.shown})", _talks)
    elif len(words) > 1 and any(CLOUD_READS.match(w) for w in words[1:3]):
        yield Finding(25, f"reads cloud resources ({inv.shown})", _talks)
    elif words[:2] in (["s3", "cp"], ["s3", "sync"], ["s3", "mv"]) or "cp" in words[:2]:
        yield Finding(60, f"copies data to or from the cloud ({inv.shown})", _publishes)
    elif words:
        yield Finding(50, f"acts on cloud resources ({inv.shown})", _talks)


def github(inv: Invocation) -> Iterator[Finding]:
    words = [a for a in inv.args if not a.startswith("-")]
    if words[:2] == ["repo", "delete"]:
        yield Finding(90, f"deletes a GitHub repository ({inv.shown})", _publishes)
    elif words[:2] == ["auth", "token"]:
        yield Finding(70, f"prints your GitHub token ({inv.shown})", frozenset({SECRET}))
    elif words[:1] == ["api"]:
        method = (inv.value("-X", "--method") or "GET").upper()
        sends = method != "GET" or inv.has("-f", "-F", "--field", "--raw-field", "--input")
        if sends:
            yield Finding(50, f"changes GitHub data through the API ({inv.shown})", _publishes)
    elif len(words) > 1 and words[1] in GITHUB_WRITES:
        yield Finding(45, f"acts on GitHub in your name ({inv.shown})", _publishes)


def database(inv: Invocation) -> Iterator[Finding]:
    texts = list(inv.args) + [r.body for r in inv.command.redirects if r.body]
    for text in texts:
        match = DESTRUCTIVE_SQL.search(text)
        if match:
            yield Finding(75, f"destroys database data ({match.group(0).strip()}) ({inv.shown})")
            return


RULES: dict[str, Rule] = {
    **dict.fromkeys(CONTAINERS, container),
    "kubectl": kubectl,
    "helm": helm,
    "terraform": terraform,
    "tofu": terraform,
    "pulumi": terraform,
    **dict.fromkeys(CLOUD_CLIS, cloud),
    "gh": github,
    **dict.fromkeys(DATABASES, database),
}
