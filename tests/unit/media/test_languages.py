"""Languages told to players: BCP 47 tags from the ISO 639-2 codes files hold, and the
languages' own names in an HLS master playlist."""

from __future__ import annotations

import pytest

from autotranscode.media import hls, languages
from autotranscode.media.probe import Track


@pytest.mark.parametrize(
    ("code", "tag"),
    [
        ("fra", "fr"),
        ("fre", "fr"),  # ISO 639-2/B, as many MKVs say it
        ("eng", "en"),
        ("GER", "de"),
        ("en", "en"),
        ("pt_br", "pt-BR"),
        ("zh-hant-tw", "zh-Hant-TW"),
        ("haw", "haw"),  # no two-letter code: kept as given
        ("fil", "fil"),
        ("und", None),
        ("", None),
        (None, None),
        ('fr",X', None),  # not a language tag at all
        ("e", None),
        ("english", "english"),  # 5-8 letters: a registered-language shape, kept
    ],
)
def test_bcp47_tags(code: str | None, tag: str | None) -> None:
    assert languages.bcp47(code) == tag


def test_names_are_the_languages_own() -> None:
    assert languages.name("fra") == "Français"
    assert languages.name("fr-CA") == "Français"
    assert languages.name("jpn") == "日本語"
    assert languages.name("haw") is None
    assert languages.name("und") is None


@pytest.mark.parametrize(
    ("language", "title", "name"),
    [
        ("eng", None, "English"),
        ("fra", "Commentaire", "Français (Commentaire)"),
        ("fra", "français", "Français"),  # the title says nothing more
        ("und", "Director", "Director"),
        ("haw", None, "haw"),
        (None, None, None),
    ],
)
def test_rendition_names(language: str | None, title: str | None, name: str | None) -> None:
    track = Track(index=1, kind="audio", codec="aac", language=language, title=title)
    assert hls.rendition_name(track) == name


def test_a_subtitle_rendition_line() -> None:
    track = Track(index=3, kind="subtitle", codec="subrip", language="ger")
    line = hls.media_line(track, 0, False, set(), "0/index_vtt.m3u8")
    assert line == (
        '#EXT-X-MEDIA:TYPE=SUBTITLES,GROUP-ID="subs",NAME="Deutsch",LANGUAGE="de",DEFAULT=NO,'
        'AUTOSELECT=YES,FORCED=NO,URI="0/index_vtt.m3u8"'
    )
    unnamed = Track(index=4, kind="subtitle", codec="subrip")
    assert 'NAME="Subtitles 2"' in hls.media_line(unnamed, 1, False, set(), "1/index_vtt.m3u8")
