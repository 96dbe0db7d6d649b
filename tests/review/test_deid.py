"""De-identification before review: what is replaced, what is kept, and that it stays offline."""

from __future__ import annotations

import json
import socket
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("presidio_analyzer", reason="de-identification extra not installed")
pytest.importorskip("spacy", reason="de-identification extra not installed")

from mhsafety.interventions import ResourceCatalog
from mhsafety.review import deid
from mhsafety.review.deid import Deidentifier, DeidError, load_deidentifier

MODEL = deid.default_model_path()
pytestmark = pytest.mark.skipif(MODEL is None, reason="no spaCy model package installed")

PERSONAL = (
    "My name is Daniel Okafor, email daniel.okafor@example.com, call me on 07700 900123, "
    "I live at 221 Baker Street"
)
CRISIS_REPLY = (
    "I'm really worried about you. If you're in the US, call or text 988. In the UK, "
    "Samaritans are there any time on 116 123, or text SHOUT to 85258. For eating "
    "disorders, contact Beat on 0808 801 0677. Crisis Text Line: text HOME to 741741."
)


@pytest.fixture(scope="module")
def deidentifier() -> Deidentifier:
    loaded = load_deidentifier()
    assert loaded is not None
    return loaded


def test_personal_details_are_replaced(deidentifier: Deidentifier) -> None:
    result = deidentifier.redact(PERSONAL)
    assert result.text == (
        "My name is [NAME], email [EMAIL], call me on [PHONE], I live at [ADDRESS]"
    )
    assert result.counts == Counter(NAME=1, EMAIL=1, PHONE=1, ADDRESS=1)
    assert result.total == 4


@pytest.mark.parametrize(
    ("text", "gone"),
    [
        ("My sister lives at 42 Oak Avenue, Springfield, IL 62704.", ["42 Oak Avenue", "62704"]),
        ("i live at 12 elm road. nobody visits", ["12 elm road"]),
        ("The flat is in London NW1 6XE, top floor.", ["NW1 6XE"]),
        ("Ring me on (415) 555-2671 or 07911 123456 tonight", ["555-2671", "07911 123456"]),
        ("Write to sad.girl_2009@example.org or @sadgirl2009", ["sad.girl_2009", "@sadgirl2009"]),
    ],
)
def test_addresses_numbers_and_handles_are_replaced(
    deidentifier: Deidentifier, text: str, gone: list[str]
) -> None:
    redacted = deidentifier.redact(text).text
    for fragment in gone:
        assert fragment not in redacted


def test_crisis_numbers_and_service_names_are_kept(deidentifier: Deidentifier) -> None:
    result = deidentifier.redact(CRISIS_REPLY)
    assert result.text == CRISIS_REPLY
    assert result.total == 0


def test_crisis_resources_kept_beside_personal_details(deidentifier: Deidentifier) -> None:
    text = (
        "Daniel Okafor, please call Samaritans on 116 123 or 988 now, "
        "or email jo@samaritans.org. Your number 07700 900123 is not needed."
    )
    result = deidentifier.redact(text)
    assert result.text == (
        "[NAME], please call Samaritans on 116 123 or 988 now, "
        "or email jo@samaritans.org. Your number [PHONE] is not needed."
    )


@pytest.mark.parametrize(
    "text",
    [
        "I feel like I'm drowning. Christmas is the worst time of year for me.",
        "I took 20 pills at 3am on 12/05/2024. I was born in 1998 and I'm so tired.",
        "I walked 3 miles down the road. I've been on 3 different road trips this year.",
        "Ed keeps telling me I'm fat. Ana and Mia are my only friends. Mum doesn't know.",
        "I'm 15 and I live in Texas, in the United States. Is the UK any better?",
        "sh again tonight, kinda numb. kms",
        "ctb soon. ed twt says its fine",
        "I keep hearing voices, Jesus and the devil fighting.",
    ],
)
def test_ordinary_chat_is_left_alone(deidentifier: Deidentifier, text: str) -> None:
    assert deidentifier.redact(text).text == text


def test_city_is_an_address_but_country_is_kept(deidentifier: Deidentifier) -> None:
    result = deidentifier.redact("I moved from Manchester to the UK's south coast.")
    assert "Manchester" not in result.text
    assert "UK" in result.text


def test_every_catalogue_contact_is_kept(deidentifier: Deidentifier) -> None:
    catalog = ResourceCatalog.load()
    for resource in catalog.resources:
        for contact in resource.contacts:
            for text in (
                f"You can contact {resource.name}: {contact.display}.",
                f"Please {contact.display} to reach {resource.name} any time.",
            ):
                assert deidentifier.redact(text).text == text


def test_numbers_near_crisis_numbers(deidentifier: Deidentifier) -> None:
    assert deidentifier.redact("From abroad call Samaritans on +44 116 123.").total == 0
    # A personal number that contains a helpline number is still personal.
    assert deidentifier.redact("Call me on 07700 988 123 tonight").text == (
        "Call me on [PHONE] tonight"
    )
    assert deidentifier.redact("call me on 07911 123456, not 988").text == (
        "call me on [PHONE], not 988"
    )


def test_other_languages_skip_ner_but_keep_patterns(deidentifier: Deidentifier) -> None:
    text = "Ich heiße Anna Schmidt, ruf mich an: 0151 23456789, oder die 0800 111 0 111."
    german = deidentifier.redact(text, language="de-DE")
    assert german.text == ("Ich heiße Anna Schmidt, ruf mich an: [PHONE], oder die 0800 111 0 111.")
    assert not german.names_checked
    assert deidentifier.redact(text, language="en_GB").names_checked
    assert deidentifier.covers_language("en-US")
    assert not deidentifier.covers_language("es")
    record = {"id": "c", "messages": [{"role": "user", "content": text}]}
    _, counts = deidentifier.redact_conversation({**record, "metadata": {"locale": "de-DE"}})
    assert counts == Counter(PHONE=1)
    _, counts = deidentifier.redact_conversation(record)
    assert counts == Counter(NAME=1, PHONE=1)


def test_empty_and_blank_texts(deidentifier: Deidentifier) -> None:
    assert deidentifier.redact("").text == ""
    assert deidentifier.redact("  \n ").counts == Counter()


def test_conversation_counts_and_input_untouched(deidentifier: Deidentifier) -> None:
    record: dict[str, Any] = {
        "id": "c-1",
        "messages": [
            {"role": "user", "content": PERSONAL},
            {"role": "assistant", "content": CRISIS_REPLY, "safety_events": []},
            {"role": "user", "content": "Thanks. My mum Sarah would kill me, I'm at 07911 123456"},
        ],
        "metadata": {"user_name": "Daniel Okafor", "locale": "en-GB"},
    }
    before = json.loads(json.dumps(record))
    redacted, counts = deidentifier.redact_conversation(record)
    assert record == before
    assert counts == Counter(NAME=2, EMAIL=1, PHONE=2, ADDRESS=1)
    assert redacted["messages"][1]["content"] == CRISIS_REPLY
    assert [m["role"] for m in redacted["messages"]] == ["user", "assistant", "user"]
    assert redacted["messages"][2]["content"] == (
        "Thanks. My mum [NAME] would kill me, I'm at [PHONE]"
    )
    assert redacted["metadata"] == record["metadata"]
    assert redacted["metadata"] is not record["metadata"]


def test_describe_records_the_model(deidentifier: Deidentifier) -> None:
    info = deidentifier.describe()
    assert info["model_path"] == str(MODEL)
    assert info["model_version"]
    assert info["entities"] == ["ADDRESS", "EMAIL", "IP", "NAME", "PHONE"]
    assert len(info["model_sha256"]) == 64
    assert info["model_lang"] == "en"
    assert info == deidentifier.describe()
    assert info["presidio_analyzer_version"]


def test_default_model_path_is_a_pipeline_directory() -> None:
    assert MODEL is not None
    assert (MODEL / "meta.json").is_file()
    assert (MODEL / "config.cfg").is_file()


def test_missing_path_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(DeidError, match="does not exist"):
        load_deidentifier(tmp_path / "nowhere")


def test_directory_that_is_not_a_model_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(DeidError, match="not a spaCy pipeline"):
        load_deidentifier(tmp_path)
    (tmp_path / "meta.json").write_text("{}", encoding="utf-8")
    (tmp_path / "config.cfg").write_text("not a config", encoding="utf-8")
    with pytest.raises(DeidError, match="cannot load"):
        load_deidentifier(tmp_path)


def test_user_supplied_pipeline_directory(tmp_path: Path) -> None:
    spacy = pytest.importorskip("spacy")
    nlp = spacy.blank("en")
    nlp.add_pipe("ner").add_label("PERSON")
    nlp.initialize()
    nlp.to_disk(tmp_path / "mine")
    own = load_deidentifier(tmp_path / "mine")
    assert own is not None
    assert own.redact("mail daniel.okafor@example.com or ring 07700 900123").text == (
        "mail [EMAIL] or ring [PHONE]"
    )
    assert own.describe()["model_path"] == str(tmp_path / "mine")
    spacy.blank("en").to_disk(tmp_path / "no-ner")
    with pytest.raises(DeidError, match="no 'ner'"):
        load_deidentifier(tmp_path / "no-ner")


def test_env_var_names_the_model(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv(deid.MODEL_ENV, str(tmp_path / "nowhere"))
    assert deid.unavailable_reason() is not None
    with pytest.raises(DeidError):
        load_deidentifier()
    monkeypatch.setenv(deid.MODEL_ENV, str(MODEL))
    assert deid.unavailable_reason() is None


def test_off_without_error_when_not_installed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(deid.MODEL_ENV, raising=False)
    monkeypatch.setattr(deid, "MODEL_PACKAGES", ("no_such_model_package",))
    assert load_deidentifier() is None
    assert "no spaCy model" in (deid.unavailable_reason() or "")
    monkeypatch.setitem(sys.modules, "presidio_analyzer", None)  # as if not installed
    assert load_deidentifier() is None
    assert "presidio-analyzer not installed" in (deid.unavailable_reason() or "")
    with pytest.raises(DeidError, match="presidio-analyzer not installed"):
        load_deidentifier(MODEL)


def test_loads_and_redacts_without_network(monkeypatch: pytest.MonkeyPatch) -> None:
    spacy_cli = pytest.importorskip("spacy.cli")
    attempts: list[str] = []

    def refuse(name: str) -> Any:
        def blocked(*args: Any, **kwargs: Any) -> Any:
            attempts.append(f"{name}{args!r}")
            raise OSError(f"network disabled in test ({name})")

        return blocked

    monkeypatch.setattr(spacy_cli, "download", refuse("spacy.cli.download"))
    monkeypatch.setattr(socket.socket, "connect", refuse("connect"))
    monkeypatch.setattr(socket, "getaddrinfo", refuse("getaddrinfo"))
    monkeypatch.setattr(socket, "create_connection", refuse("create_connection"))
    fresh = Deidentifier(MODEL) if MODEL is not None else None
    assert fresh is not None
    # The e-mail check is where Presidio would fetch the public suffix list.
    assert fresh.redact("write to daniel.okafor@example.co.uk").text == "write to [EMAIL]"
    assert attempts == []
