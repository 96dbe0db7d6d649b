"""Reading and writing the conversation log format; nothing unreadable vanishes."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mhsafety.conversation import Conversation, RecordError, parse_record
from mhsafety.logio import (
    Quarantine,
    ReadStats,
    export_csv,
    read_conversations,
    write_conversations,
)
from mhsafety.taxonomy import Category

GOOD = {
    "id": "c-00017",
    "messages": [
        {"role": "user", "content": "i cant do this anymore"},
        {
            "role": "assistant",
            "content": "I'm really glad you told me ...",
            "safety_events": [{"type": "crisis_intervention", "category": "suicide"}],
        },
    ],
    "metadata": {"started_at": "2026-01-05T10:00:00Z", "locale": "en-US"},
}


def write_lines(path: Path, lines: list[str]) -> Path:
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def test_contract_example_reads_and_round_trips(tmp_path: Path) -> None:
    source = write_lines(tmp_path / "log.jsonl", [json.dumps(GOOD)])
    [conversation] = list(read_conversations(source))
    assert conversation.messages[1].intervened_for(Category.SUICIDE)
    assert conversation.to_record() == GOOD


def test_unknown_fields_are_kept(tmp_path: Path) -> None:
    record = GOOD | {"tenant": "x", "messages": [{"role": "user", "content": "hi", "lang": "en"}]}
    conversation = parse_record(record, source="f", line=1)
    assert conversation.to_record()["tenant"] == "x"
    assert conversation.to_record()["messages"][0]["lang"] == "en"


BAD_CASES = [
    ("{not json", "record", "invalid JSON"),
    ("[1, 2]", "record", "expected a JSON object"),
    (json.dumps({"messages": [{"role": "user", "content": "x"}]}), "id", "required"),
    (json.dumps({"id": "a", "messages": []}), "messages", "at least 1"),
    (
        json.dumps({"id": "a", "messages": [{"role": "bot", "content": "x"}]}),
        "messages[0].role",
        "'bot'",
    ),
    (json.dumps({"id": "a", "messages": [{"role": "user"}]}), "messages[0].content", "required"),
    (
        json.dumps({"id": "a", "messages": [{"role": "user", "content": 5}]}),
        "messages[0].content",
        "string",
    ),
    (
        json.dumps(
            {
                "id": "a",
                "messages": [
                    {
                        "role": "assistant",
                        "content": "x",
                        "safety_events": [{"type": "crisis_intervention", "category": "grief"}],
                    }
                ],
            }
        ),
        "messages[0].safety_events[0].category",
        "'grief'",
    ),
    (json.dumps({"id": "  ", "messages": [{"role": "user", "content": "x"}]}), "id", "blank"),
]


@pytest.mark.parametrize(("line", "field", "reason"), BAD_CASES)
def test_bad_record_reported_with_file_line_field_reason(
    tmp_path: Path, line: str, field: str, reason: str
) -> None:
    source = write_lines(tmp_path / "log.jsonl", [json.dumps(GOOD), line])
    stats = ReadStats(str(source))
    errors: list[RecordError] = []
    quarantine_path = tmp_path / "q.jsonl"
    with Quarantine(quarantine_path) as quarantine:
        good = list(read_conversations(source, stats, quarantine, on_error=errors.append))
    assert [c.id for c in good] == ["c-00017"]
    assert (stats.read, stats.processed, stats.quarantined) == (2, 1, 1)
    assert stats.reconciled
    [error] = errors
    assert error.source == str(source)
    assert error.line == 2
    assert error.field == field
    assert reason in error.reason
    [kept] = [json.loads(x) for x in quarantine_path.read_text().splitlines()]
    assert kept["line"] == 2 and kept["raw"] == line and kept["field"] == field


def test_duplicate_id_is_quarantined_not_dropped(tmp_path: Path) -> None:
    source = write_lines(tmp_path / "log.jsonl", [json.dumps(GOOD)] * 2)
    stats = ReadStats(str(source))
    errors: list[RecordError] = []
    assert len(list(read_conversations(source, stats, on_error=errors.append))) == 1
    assert "duplicate id" in errors[0].reason and "line 1" in errors[0].reason
    assert stats.quarantined == 1 and stats.reconciled


def test_blank_lines_are_not_records_and_non_utf8_is_reported(tmp_path: Path) -> None:
    source = tmp_path / "log.jsonl"
    source.write_bytes(json.dumps(GOOD).encode() + b"\n\n   \n" + b'{"id": "\xff"}\n')
    stats = ReadStats(str(source))
    errors: list[RecordError] = []
    list(read_conversations(source, stats, on_error=errors.append))
    assert stats.read == 2 and stats.quarantined == 1
    assert errors[0].line == 4 and "UTF-8" in errors[0].reason


def conversations(n: int) -> list[Conversation]:
    return [
        parse_record(GOOD | {"id": f"c-{i}", "metadata": {"n": i}}, source="t", line=i)
        for i in range(n)
    ]


@pytest.mark.parametrize("name", ["log.jsonl", "log.jsonl.gz", "log.parquet"])
def test_formats_round_trip(tmp_path: Path, name: str) -> None:
    path = tmp_path / name
    original = conversations(2500)  # more than one Parquet batch
    assert write_conversations(path, original) == 2500
    if name.endswith(".gz"):
        with gzip.open(path, "rt") as handle:
            assert json.loads(handle.readline())["id"] == "c-0"
    back = list(read_conversations(path))
    assert back == original


def test_foreign_parquet_with_struct_metadata_reads(tmp_path: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pa.Table.from_pylist([GOOD, GOOD | {"id": "c-2", "metadata": None}])
    pq.write_table(table, tmp_path / "x.parquet")
    back = list(read_conversations(tmp_path / "x.parquet"))
    assert back[0].metadata["locale"] == "en-US"
    assert back[1].metadata == {}
    assert back[1].messages[0].safety_events == ()


def test_csv_export_has_a_row_per_message(tmp_path: Path) -> None:
    path = tmp_path / "out.csv"
    export_csv(path, conversations(3))
    lines = path.read_text().splitlines()
    assert len(lines) == 1 + 3 * 2
    assert "crisis_intervention:suicide" in lines[2]


@settings(max_examples=50, deadline=None)
@given(
    st.lists(
        st.one_of(
            st.just(json.dumps(GOOD)),
            st.text(max_size=30).filter(lambda s: "\n" not in s and "\r" not in s),
            st.just('{"id": 1}'),
        ),
        max_size=30,
    )
)
def test_counts_always_reconcile(lines: list[str]) -> None:
    import tempfile

    with tempfile.TemporaryDirectory() as folder:
        source = Path(folder) / "log.jsonl"
        source.write_text("\n".join(lines) + "\n", encoding="utf-8")
        stats = ReadStats(str(source))
        produced = list(read_conversations(source, stats))
        assert stats.reconciled
        assert stats.processed == len(produced)
        assert stats.read == sum(1 for line in lines if line.encode().strip())
