"""The committed Python code under amoroute/v1 matches protos/ (run `make proto`)."""

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_generated_code_is_up_to_date_with_the_protos(tmp_path: Path) -> None:
    protos = sorted(str(p.relative_to(REPO / "protos")) for p in (REPO / "protos").rglob("*.proto"))
    subprocess.run(
        [sys.executable, "-m", "grpc_tools.protoc", "-I", "protos",
         f"--python_out={tmp_path}", f"--pyi_out={tmp_path}", f"--grpc_python_out={tmp_path}",
         *protos],
        cwd=REPO, check=True,
    )
    fresh = {p.relative_to(tmp_path): p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()}
    assert fresh, "protoc produced nothing"
    committed = {
        p.relative_to(REPO): p.read_bytes()
        for p in (REPO / "amoroute" / "v1").glob("*_pb2*")
    }
    stale = sorted(str(k) for k in fresh if committed.get(k) != fresh[k])
    extra = sorted(str(k) for k in committed if k not in fresh)
    assert not stale and not extra, f"run `make proto`: stale {stale}, without proto {extra}"
