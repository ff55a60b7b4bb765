"""The site file: the study's name, example questions and the emergency and crisis messages of the
clinic's country are data a clinic sets, not code."""

from __future__ import annotations

from pathlib import Path

import pytest

from assistant.site import Site, SiteFileError, load_site

ROOT = Path(__file__).resolve().parents[1]


def test_without_a_site_file_nothing_names_a_study_or_a_country() -> None:
    site = load_site(None)
    text = " ".join([site.title, site.intro, site.emergency, site.crisis, site.not_advice, *site.patient_examples])
    assert "CELLTOP" not in text and "911" not in text and "988" not in text
    assert load_site(ROOT / "no-such-site.yaml") == Site()


def test_the_shipped_site_file_is_about_the_shipped_study() -> None:
    site = load_site(ROOT / "site.yaml")
    assert "CELLTOP" in site.title and "911" in site.emergency and "988" in site.crisis
    assert site.patient_examples and site.clinician_examples


def test_a_clinic_file_replaces_what_it_names_and_keeps_the_rest(tmp_path: Path) -> None:
    path = tmp_path / "site.yaml"
    path.write_text(
        'title: "NIGHTLIGHT study assistant"\n'
        'emergency: "**Call 999 now.** Do not wait for this chat."\n'
        "patient_examples: ['Is the app as good as the group?']\n"
    )
    site = load_site(path)
    assert site.title == "NIGHTLIGHT study assistant" and "999" in site.emergency
    assert site.patient_examples == ("Is the app as good as the group?",)
    assert site.crisis == Site().crisis


@pytest.mark.parametrize(
    ("body", "named"),
    [
        ("titel: x\n", "titel"),
        ("emergency: ''\n", "emergency"),
        ("patient_examples: 'one question'\n", "patient_examples"),
        ("- a list\n", "mapping"),
        ("title: [unclosed\n", "cannot be read"),
    ],
)
def test_a_wrong_site_file_is_named_with_what_is_wrong(tmp_path: Path, body: str, named: str) -> None:
    path = tmp_path / "site.yaml"
    path.write_text(body)
    with pytest.raises(SiteFileError, match=named):
        load_site(path)


def test_safety_answers_and_the_alert_use_the_site_messages() -> None:
    from assistant.presentation import safety_answer
    from assistant.ui import alert_html

    site = Site(emergency="**Call 112 now.** <b>not markup</b>", crisis="**Call 116 123.**")
    emergency = safety_answer("help", "patient", "emergency", {}, 0.0, site)
    assert emergency.preamble == site.emergency
    alert = alert_html(emergency)
    assert "<strong>Call 112 now.</strong>" in alert and "&lt;b&gt;" in alert and "911" not in alert
    assert "116 123" in safety_answer("help", "patient", "crisis", {}, 0.0, site).preamble
