"""The embedded local model (SmolLM2-135M-Instruct GGUF via llama-cpp-python), for real."""

from __future__ import annotations

from pathlib import Path

import pytest

from mhsafety.bench.bundles import load_set
from mhsafety.bench.models import LOCAL_GGUF_SHA256, ModelFileError, check_sha256, local_model_path
from mhsafety.bench.runner import parse_system, rows_from_logs, run_bench


def test_the_model_file_is_pinned(tmp_path: Path) -> None:
    check_sha256(local_model_path(), LOCAL_GGUF_SHA256)
    fake = tmp_path / "model.gguf"
    fake.write_bytes(b"not the model")
    with pytest.raises(ModelFileError, match="is not the pinned"):
        check_sha256(fake, LOCAL_GGUF_SHA256)


@pytest.mark.slow
def test_smoke_local_raw_and_guarded(tmp_path: Path) -> None:
    """One graded query and one refusal item through the local model, raw and guarded."""
    sets = [load_set("graded-queries"), load_set("refusal-robustness")]
    systems = [parse_system("local"), parse_system("local+guard")]
    run_bench(sets, systems, tmp_path, display="none", limit=1, max_tokens=48)
    frame, problems = rows_from_logs(tmp_path)
    assert problems == [] and len(frame) == 4
    assert set(frame.label) <= {"harmful", "safe", "over_refusal", "judge_error"}
