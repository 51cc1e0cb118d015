"""Text cleaning for Bashkir web text (one document at a time, no language decisions).

Steps, in order (:func:`clean_text`):

1. Unicode NFC (composed letters: "ә" is one code point, as the tokenizers expect).
2. Invisible characters: soft hyphens (U+00AD) and zero-width characters are removed;
   non-breaking and other exotic spaces become plain spaces.
3. Markup: HTML comments, ``<script>``/``<style>`` elements, HTML tags (Latin tag names
   only, so the folklore archive's ``<Оҙон көйҙәр>`` titles survive), CSS/JS comments,
   CSS rule blocks (``#gallery-1 { margin: auto; }``), JavaScript statements
   (``var x = ...;``, ``document.getElementById(...)...;``).
4. Legacy keyboards and fonts: Latin ``h``/``H`` inside or next to a Cyrillic word
   becomes ``һ``/``Һ`` ("hыу" -> "һыу"); Latin look-alike letters inside Cyrillic words
   (``c`` in "cайты") become their Cyrillic twins; Latin schwa ``ə``/``Ə`` becomes ``ә``/``Ә``;
   letters of old Bashkir fonts that reuse Serbian/Macedonian code points, as seen in the
   corpus ("Ћәләк", "Љасимов", "үќтерәм"), become ``Һ``, ``Ҡ``, ``ҫ``.
5. Whitespace: runs of spaces/tabs -> one space, lines stripped, at most one blank line.

Every regular expression is linear (no nested quantifiers), so a 20 MB document is safe.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

_CYR = "\u0400-\u04ff\u0500-\u052f"
_INVISIBLE = dict.fromkeys(map(ord, "\u00ad\u200b\u200c\u200d\u2060\ufeff\u200e\u200f"), None)
_SPACES = dict.fromkeys(map(ord, "\u00a0\u2007\u202f\u2009\u200a\u2002\u2003\u2004\u2005\u2006\u2008\u205f\u3000"), " ")

_HAS_INVISIBLE = re.compile("[" + "".join(map(chr, _INVISIBLE)) + "]")
_HAS_SPACES = re.compile("[" + "".join(map(chr, _SPACES)) + "]")
_MARKUP = re.compile(
    r"<!--.*?-->"                                               # HTML comments
    r"|<(script|style)\b[^>]*>.*?</\1\s*>"                      # script / style elements
    r"|/\*.*?\*/"                                               # CSS / JS comments
    r"|</?[A-Za-z][A-Za-z0-9:-]*(?:\s[^<>]{0,500})?/?>"          # HTML tags (Latin names)
    r"|(?:[#.@]?[A-Za-z_][-\w#.:,>*\[\]=\"' ]{0,200})?"          # CSS selector
    r"\{[\x20-\x7a\x7c\x7e\t]{0,2000}?:[\x20-\x7a\x7c\x7e\t]{0,2000}\}"  # {prop: value;} ASCII only
    r"|\b(?:var|let|const)\s+[A-Za-z_$][\w$]*\s*=[\x20-\x7e\t]{0,2000}?;"  # JS declarations
    r"|\b(?:document|window)\.[\x20-\x7e\t]{0,2000}?;"          # DOM statements
    r"|\b[A-Za-z_$][\w$.]*\s*\+?=\s*[\w$'\"][\x20-\x7e\t]{0,2000}?;",  # JS assignments
    re.DOTALL | re.ASCII,
)
_LATIN_H = re.compile(rf"(?<=[{_CYR}])[hH]|[hH](?=[{_CYR}])")
_TWINS_LATIN, _TWINS_CYR = "aceopxyABCEKMOPTX", "асеорхуАВСЕКМОРТХ"
_MIXED = re.compile(rf"[{_CYR}][{_TWINS_LATIN}]|[{_TWINS_LATIN}][{_CYR}]")
_NO_TWIN = re.compile("[" + "".join(c for c in "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
                                    if c not in _TWINS_LATIN) + "]")
_HAS_CYR = re.compile(rf"[{_CYR}]")
_WORDS = re.compile(r"\w+")
_HOMOGLYPHS = str.maketrans(_TWINS_LATIN, _TWINS_CYR)
_LEGACY = str.maketrans("əƏЋћЉљЌќ", "әӘҺһҠҡҪҫ")
_HAS_LEGACY = re.compile("[əƏЋћЉљЌќ]")
_HSPACE = re.compile(r"[ \t\r\f\v]+")
_BLANKS = re.compile(r"\n{3,}")


@dataclass
class CleanStats:
    """What :func:`clean_text` changed in one document (character counts)."""

    markup_chars: int = 0
    invisible_chars: int = 0
    latin_h: int = 0
    homoglyphs: int = 0
    legacy_letters: int = 0


def fix_latin_h(text: str) -> tuple[str, int]:
    """Latin ``h``/``H`` inside or next to a Cyrillic letter -> ``һ``/``Һ``.

    Returns:
        ``(text, number of replacements)``.
    """
    if "h" not in text and "H" not in text:
        return text, 0
    return _LATIN_H.subn(lambda m: "һ" if m.group(0) == "h" else "Һ", text)


def _fix_word(m: re.Match) -> str:
    w = m.group(0)
    if not _HAS_CYR.search(w) or _NO_TWIN.search(w):
        return w  # not mixed, or has Latin letters without a Cyrillic twin: leave it
    return w.translate(_HOMOGLYPHS)


def fix_homoglyphs(text: str) -> tuple[str, int]:
    """Latin look-alikes (a c e o p x y, A B C E K M O P T X) inside Cyrillic words ->
    Cyrillic letters. Words with other Latin letters are left alone.

    Returns:
        ``(text, number of characters changed)``.
    """
    if not _MIXED.search(text):
        return text, 0
    out = _WORDS.sub(_fix_word, text)
    return out, sum(a != b for a, b in zip(text, out))


def remove_markup(text: str) -> tuple[str, int]:
    """Remove HTML/CSS/JS fragments (see the module docstring).

    Returns:
        ``(text, number of characters removed)``.
    """
    if not ("<" in text or "{" in text or "/*" in text or "=" in text):
        return text, 0
    out = _MARKUP.sub(" ", text)
    return out, max(0, len(text) - len(out))


def normalize_whitespace(text: str) -> str:
    """One space between words, stripped lines, at most one blank line in a row."""
    lines = [_HSPACE.sub(" ", line).strip() for line in text.split("\n")]
    return _BLANKS.sub("\n\n", "\n".join(lines)).strip()


def clean_text(text: str, stats: CleanStats | None = None) -> str:
    """Clean one document (steps 1-5 of the module docstring).

    Args:
        text: raw document text.
        stats: if given, the counts of what changed are added to it.

    Returns:
        The cleaned text ("" when nothing is left).
    """
    stats = stats if stats is not None else CleanStats()
    text = unicodedata.normalize("NFC", text)
    if _HAS_INVISIBLE.search(text):
        n = len(text)
        text = text.translate(_INVISIBLE)
        stats.invisible_chars += n - len(text)
    if _HAS_SPACES.search(text):
        text = text.translate(_SPACES)
    text, removed = remove_markup(text)
    stats.markup_chars += removed
    if _HAS_LEGACY.search(text):
        k = len(_HAS_LEGACY.findall(text))
        text = text.translate(_LEGACY)
        stats.legacy_letters += k
    text, k = fix_latin_h(text)
    stats.latin_h += k
    text, k = fix_homoglyphs(text)
    stats.homoglyphs += k
    return normalize_whitespace(text)
