"""The paper → code index: generated from docstring tags, complete for the chapters' claims."""
import importlib

from poselab import index


def test_every_indexed_function_exists_and_carries_its_tag():
    entries = index.tagged_entries()
    assert len(entries) >= 30
    for e in entries:
        module, name = e.qualname.rsplit(".", 1)
        obj = getattr(importlib.import_module(module), name)
        assert e.paper in obj.__doc__ and callable(obj)


def test_the_tag_pattern():
    found = index._tag_pattern().findall("Bias-compensated soft-argmax (BCIR, Eq. 38); SAR Eq. 7–9 and HDM §3.4")
    assert found == [("BCIR", "Eq. 38"), ("SAR", "Eq. 7–9"), ("HDM", "§3.4")]
    assert index._tag_pattern().findall("no paper here, Eq. 3") == []


def test_every_chapter_claim_is_in_the_index():
    text = index.index_markdown()
    claims = index.chapter_claims()
    assert len(claims) >= 20
    assert not [c for c in claims if f"`{c}`" not in text]


def test_readme_holds_the_current_index():
    assert index.update_readme(check=True), "README index is stale: run poselab index --write-readme"
