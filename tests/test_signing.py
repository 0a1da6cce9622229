"""Optional ed25519 signatures: a forger who recomputes every digest is still caught."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from orchestrator.digests import document_sha256
from orchestrator.testing import Project

serialization = pytest.importorskip(
    "cryptography.hazmat.primitives.serialization",
    reason="cryptography is in the test extra (pip install -e '.[test]')",
)
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey  # noqa: E402

# what these commands decide and print: the CLI runs in-process (orchestrator.testing)
pytestmark = pytest.mark.in_process

PIPELINE = '[pipelines.bad]\nstages = [{ id = "a", command = "exit 1" }]\n'


def _keys(folder: Path) -> tuple[Path, Path]:
    key = Ed25519PrivateKey.generate()
    private = folder / "signing.pem"
    public = folder / "signing.pub.pem"
    private.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    public.write_bytes(
        key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    return private, public


def _forge(project: Project, summary: dict[str, Any]) -> None:
    """What a forger with write access to .runs and out does: turn the failed run into a
    succeeded one and recompute every digest and record that mentions it."""
    path = project.root / summary["manifest"]
    manifest = json.loads(path.read_text())
    manifest["status"] = "succeeded"
    manifest["status_detail"] = None
    for stage in manifest["commands"]:
        stage["status"], stage["exit_code"], stage["error_file"] = "succeeded", 0, None
        stage["error_file_sha256"] = None
    path.write_text(json.dumps(manifest, indent=2))
    for error_file in (project.run_dir(summary) / "errors").iterdir():
        error_file.unlink()
    digest = document_sha256(manifest)
    run_id = summary["run_id"]
    state_dir = project.out_dir / "0101"
    for name in ("state.json", "state.journal"):
        target = state_dir / name
        if target.exists():
            target.write_text(
                target.read_text()
                .replace('"failed"', '"succeeded"')
                .replace(_recorded_digest(project, run_id), digest)
            )
    metrics = project.runs_dir / "0101" / "metrics.json"
    metrics.write_text(
        metrics.read_text()
        .replace('"failed"', '"succeeded"')
        .replace(_recorded_digest(project, run_id), digest)
        .replace('"stages_failed":1', '"stages_failed":0')
    )
    log = project.run_dir(summary) / "runner.ndjson"
    log.write_text(log.read_text().replace('"status":"failed"', '"status":"succeeded"'))


def _recorded_digest(project: Project, run_id: str) -> str:
    line = next(m for m in project.metrics() if m["run_id"] == run_id)
    return str(line["manifest_sha256"])


def test_a_forger_who_recomputes_every_digest_passes_verify_unless_runs_are_signed(
    project: Project, tmp_path: Path
) -> None:
    private, public = _keys(tmp_path)
    project.write_config(PIPELINE)
    unsigned = project.start_json("bad", expect=1)
    _forge(project, unsigned)
    forged = project.run("verify", unsigned["run_id"])
    assert forged.returncode == 0, forged.stdout  # digests alone do not stop a forger

    project.write_config(PIPELINE + f'[signing]\nprivate_key = "{private}"\n')
    signed = project.start_json("bad", expect=1)
    entry = next(e for e in project.state()["runs"] if e["run_id"] == signed["run_id"])
    assert entry["manifest_signature"]["alg"] == "ed25519"
    assert project.run("verify", signed["run_id"]).stdout.count("signatures included") == 1

    _forge(project, signed)
    # the reviewer's side only needs the public key
    project.write_config(PIPELINE + f'[signing]\npublic_key = "{public}"\n')
    caught = project.run("verify", signed["run_id"])
    assert caught.returncode == 1, caught.stdout
    assert "signature: the history entry: signature does not match the manifest" in caught.stdout
    assert "signature: the metrics line: signature does not match the manifest" in caught.stdout
    unsigned_now = project.run("verify", unsigned["run_id"])
    assert unsigned_now.returncode == 1 and "carries no signature" in unsigned_now.stdout


def test_a_key_inside_the_runs_folder_or_missing_is_refused(
    project: Project, tmp_path: Path
) -> None:
    project.runs_dir.mkdir()
    private, _ = _keys(project.runs_dir)
    project.write_config(PIPELINE + f'[signing]\nprivate_key = "{private}"\n')
    inside = project.run("start", "bad")
    assert inside.returncode == 2 and "keep the key outside the runs" in inside.stderr
    assert len(inside.stderr.splitlines()) == 1
    assert not (project.runs_dir / "0101").exists()
    project.write_config(PIPELINE + f'[signing]\nprivate_key = "{tmp_path / "nope.pem"}"\n')
    missing = project.run("start", "bad")
    assert missing.returncode == 2 and "cannot be read" in missing.stderr
