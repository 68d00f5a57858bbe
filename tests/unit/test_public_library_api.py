"""Production code uses only public library API: an underscore attribute of another
package's object (SQLAlchemy's Connection._handle_dbapi_exception, a Falcon or grpc
internal) breaks on the library's next release without a word."""

import ast
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
PACKAGES = ("amoroute", "edge", "router_svc", "referral_svc", "traffic_svc", "notifier_svc")

# Underscore names that are a library's documented public API, with why.
PUBLIC_UNDERSCORE_NAMES = {
    # SQLAlchemy names Row's accessors with an underscore only so that they never
    # clash with a column's name; they are documented public API.
    "_mapping": "sqlalchemy Row._mapping",
    "_asdict": "sqlalchemy Row._asdict / namedtuple",
    "_fields": "sqlalchemy Row._fields / namedtuple",
}


def _production_modules() -> list[Path]:
    modules = []
    for package in PACKAGES:
        for path in sorted((REPO / package).rglob("*.py")):
            # Generated protobuf/grpc code and migrations are not ours to write by hand.
            if path.name.endswith(("_pb2.py", "_pb2_grpc.py")) or "migrations" in path.parts:
                continue
            modules.append(path)
    return modules


def _own_names(tree: ast.Module) -> set[str]:
    """Underscore names the module itself defines: its functions, methods, classes,
    attributes it assigns, so `self._lock` or `handler._forget_parent()` of its own
    objects are allowed."""
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            names.add(node.name)
        elif isinstance(node, ast.Attribute) and isinstance(node.ctx, ast.Store):
            names.add(node.attr)
        elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
            names.add(node.id)
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            names.add(node.target.id)
    return names


def private_uses(path: Path, root: Path = REPO) -> list[str]:
    """`file:line attribute` for each underscore attribute the module reads off an
    object that is not its own."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    own = _own_names(tree)
    found = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.Attribute) or not node.attr.startswith("_"):
            continue
        name = node.attr
        if name.startswith("__") and name.endswith("__"):
            continue  # dunders are the language's protocol, not a library's internals
        if name in own or name in PUBLIC_UNDERSCORE_NAMES:
            continue
        found.append(f"{path.relative_to(root)}:{node.lineno} .{name}")
    return found


def test_production_code_reads_no_private_attribute_of_a_library() -> None:
    found = [use for path in _production_modules() for use in private_uses(path)]
    assert not found, (
        "private library API used (replace it with public API, or list a documented "
        f"underscore name in PUBLIC_UNDERSCORE_NAMES with why): {found}"
    )


def test_the_scan_finds_a_library_private_call_and_allows_the_modules_own(
    tmp_path: Path,
) -> None:
    module = tmp_path / "example.py"
    module.write_text(
        "class Pool:\n"
        "    def _renew(self): ...\n"
        "def f(conn, pool: Pool):\n"
        "    pool._renew()\n"
        "    conn._handle_dbapi_exception(None)\n"
    )
    assert private_uses(module, tmp_path) == ["example.py:5 ._handle_dbapi_exception"]
