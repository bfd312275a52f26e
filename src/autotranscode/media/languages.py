"""Languages as streaming playlists name them: an RFC 5646 (BCP 47) tag and a human name.

Media files tag a stream's language in ISO 639-2 (``fra`` or ``fre``, ``eng``): what MP4
and Matroska hold. An HLS ``LANGUAGE`` is a BCP 47 tag, whose language subtag is the
two-letter ISO 639-1 code wherever one exists (``fr``, ``en``), so a player matches it
against its user's preferences; a three-letter code with no two-letter form stays as it is.
``und`` (undetermined) says nothing and is left out. A rendition's ``NAME`` is what the
player's menu shows, "in that language" (RFC 8216, 4.3.4.1): the language's own name.
"""

from __future__ import annotations

import re

#: ISO 639-1 code and the language's own name, by ISO 639-1 code; ``_ALIASES`` maps each
#: ISO 639-2 code (bibliographic and terminological) to its ISO 639-1 code.
_LANGUAGES: dict[str, str] = {
    "af": "Afrikaans",
    "am": "አማርኛ",
    "ar": "العربية",
    "az": "Azərbaycanca",
    "be": "Беларуская",
    "bg": "Български",
    "bn": "বাংলা",
    "bs": "Bosanski",
    "ca": "Català",
    "cs": "Čeština",
    "cy": "Cymraeg",
    "da": "Dansk",
    "de": "Deutsch",
    "el": "Ελληνικά",
    "en": "English",
    "eo": "Esperanto",
    "es": "Español",
    "et": "Eesti",
    "eu": "Euskara",
    "fa": "فارسی",
    "fi": "Suomi",
    "fr": "Français",
    "ga": "Gaeilge",
    "gl": "Galego",
    "gu": "ગુજરાતી",
    "he": "עברית",
    "hi": "हिन्दी",
    "hr": "Hrvatski",
    "hu": "Magyar",
    "hy": "Հայերեն",
    "id": "Bahasa Indonesia",
    "is": "Íslenska",
    "it": "Italiano",
    "ja": "日本語",
    "ka": "ქართული",
    "kk": "Қазақ тілі",
    "km": "ខ្មែរ",
    "kn": "ಕನ್ನಡ",
    "ko": "한국어",
    "la": "Latina",
    "lt": "Lietuvių",
    "lv": "Latviešu",
    "mk": "Македонски",
    "ml": "മലയാളം",
    "mn": "Монгол",
    "mr": "मराठी",
    "ms": "Bahasa Melayu",
    "mt": "Malti",
    "my": "မြန်မာ",
    "nb": "Norsk bokmål",
    "ne": "नेपाली",
    "nl": "Nederlands",
    "nn": "Norsk nynorsk",
    "no": "Norsk",
    "pa": "ਪੰਜਾਬੀ",
    "pl": "Polski",
    "ps": "پښتو",
    "pt": "Português",
    "ro": "Română",
    "ru": "Русский",
    "si": "සිංහල",
    "sk": "Slovenčina",
    "sl": "Slovenščina",
    "so": "Soomaali",
    "sq": "Shqip",
    "sr": "Српски",
    "sv": "Svenska",
    "sw": "Kiswahili",
    "ta": "தமிழ்",
    "te": "తెలుగు",
    "th": "ไทย",
    "tl": "Tagalog",
    "tr": "Türkçe",
    "uk": "Українська",
    "ur": "اردو",
    "uz": "Oʻzbekcha",
    "vi": "Tiếng Việt",
    "yi": "ייִדיש",
    "zh": "中文",
    "zu": "isiZulu",
}
_ALIASES: dict[str, str] = {
    "afr": "af", "amh": "am", "ara": "ar", "aze": "az", "bel": "be", "bul": "bg",
    "ben": "bn", "bos": "bs", "cat": "ca", "ces": "cs", "cze": "cs", "cym": "cy",
    "wel": "cy", "dan": "da", "deu": "de", "ger": "de", "ell": "el", "gre": "el",
    "eng": "en", "epo": "eo", "spa": "es", "est": "et", "eus": "eu", "baq": "eu",
    "fas": "fa", "per": "fa", "fin": "fi", "fra": "fr", "fre": "fr", "gle": "ga",
    "glg": "gl", "guj": "gu", "heb": "he", "hin": "hi", "hrv": "hr", "hun": "hu",
    "hye": "hy", "arm": "hy", "ind": "id", "isl": "is", "ice": "is", "ita": "it",
    "jpn": "ja", "kat": "ka", "geo": "ka", "kaz": "kk", "khm": "km", "kan": "kn",
    "kor": "ko", "lat": "la", "lit": "lt", "lav": "lv", "mkd": "mk", "mac": "mk",
    "mal": "ml", "mon": "mn", "mar": "mr", "msa": "ms", "may": "ms", "mlt": "mt",
    "mya": "my", "bur": "my", "nob": "nb", "nep": "ne", "nld": "nl", "dut": "nl",
    "nno": "nn", "nor": "no", "pan": "pa", "pol": "pl", "pus": "ps", "por": "pt",
    "ron": "ro", "rum": "ro", "rus": "ru", "sin": "si", "slk": "sk", "slo": "sk",
    "slv": "sl", "som": "so", "sqi": "sq", "alb": "sq", "srp": "sr", "swe": "sv",
    "swa": "sw", "tam": "ta", "tel": "te", "tha": "th", "tgl": "tl", "tur": "tr",
    "ukr": "uk", "urd": "ur", "uzb": "uz", "vie": "vi", "yid": "yi", "zho": "zh",
    "chi": "zh", "zul": "zu",
}  # fmt: skip
#: A language tag as BCP 47 shapes it: a language subtag of 2-3 (or 5-8) letters, then
#: subtags of 1-8 letters and digits (script, region, variants, extensions).
_TAG = re.compile(r"^[A-Za-z]{2,3}(?:-[A-Za-z0-9]{1,8})*$|^[A-Za-z]{5,8}(?:-[A-Za-z0-9]{1,8})*$")
#: Says nothing about the language: left out rather than told to a player.
_UNDETERMINED = frozenset({"und", ""})


def bcp47(code: str | None) -> str | None:
    """The BCP 47 tag for a stream's language tag (``fra`` → ``fr``, ``pt_BR`` → ``pt-BR``);
    None for ``und``, nothing, or text that is no language tag at all."""
    if code is None:
        return None
    value = code.strip().replace("_", "-")
    if not _TAG.match(value):
        return None
    primary, *rest = value.split("-")
    primary = primary.lower()
    if primary in _UNDETERMINED:
        return None
    primary = _ALIASES.get(primary, primary)
    # Conventional case: Latn for scripts, FR for regions; the tag means the same either way.
    tail = [
        s.title() if len(s) == 4 and s.isalpha() else s.upper() if len(s) == 2 else s.lower()
        for s in rest
    ]
    return "-".join([primary, *tail])


def name(code: str | None) -> str | None:
    """The language's own name ("Français" for ``fra`` or ``fr-CA``), None when unknown."""
    tag = bcp47(code)
    return _LANGUAGES.get(tag.split("-")[0]) if tag else None
