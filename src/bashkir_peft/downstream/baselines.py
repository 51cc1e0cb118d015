"""What a model must beat: a majority-class guess and a character n-gram classifier.

- ``majority``: the most frequent category of train, for every test sentence.
- ``char_tfidf``: TF-IDF of character 1-4-grams within word boundaries (scikit-learn
  ``TfidfVectorizer(analyzer="char_wb", sublinear_tf=True)``, fitted on train) and a
  logistic regression, its ``C`` chosen on dev (accuracy; ties: the smaller ``C``).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

from bashkir_peft.downstream.probe import C_GRID, choose_on_dev


def majority_baseline(train_labels: Sequence[str], n_test: int) -> list[str]:
    """The most frequent train category (first in train order among ties), ``n_test`` times."""
    counts = Counter(train_labels)
    top = max(counts.values())
    return [next(c for c in train_labels if counts[c] == top)] * n_test


def char_tfidf_baseline(train_texts: Sequence[str], train_labels: Sequence[str], dev_texts: Sequence[str],
                        dev_labels: Sequence[str], test_texts: Sequence[str], *, ngram_range=(1, 4),
                        c_grid: Sequence[float] = C_GRID, seed: int = 0) -> tuple[list[str], float]:
    """Predict test categories with character n-gram TF-IDF + logistic regression.

    Returns:
        ``(predictions, C)``: one category per test text, and the ``C`` chosen on dev.
    """
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression

    vec = TfidfVectorizer(analyzer="char_wb", ngram_range=ngram_range, sublinear_tf=True)
    x_train = vec.fit_transform(train_texts)
    x_dev, x_test = vec.transform(dev_texts), vec.transform(test_texts)
    clf, c, _ = choose_on_dev(lambda c: LogisticRegression(C=c, max_iter=2000, random_state=seed),
                              x_train, list(train_labels), x_dev, list(dev_labels), c_grid)
    return [str(x) for x in clf.predict(x_test)], c
