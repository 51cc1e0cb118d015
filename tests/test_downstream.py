"""The downstream stage: label scoring picks the label its model prefers, acc_norm undoes
the preference for short labels, the probe learns labels its features encode and nothing
from shuffled ones, the measures match scikit-learn, bad input fails in one line before any
model loads, and a small real run writes records of the contract."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from bashkir_peft.config.downstream import DownstreamParams
from bashkir_peft.downstream.measures import accuracy_macro_f1, scores_with_intervals
from bashkir_peft.downstream.probe import fit_probe
from bashkir_peft.downstream.prompts import choice_requests, prompt_format
from bashkir_peft.downstream.run import run_downstream
from bashkir_peft.downstream.scoring import choose, loglikelihoods
from bashkir_peft.errors import ConfigError, DataError
from bashkir_peft.records import DOWNSTREAM_PREDICTION_COLUMNS, DownstreamRecord, RunFiles, read_record, read_table
from bashkir_peft.yamlio import validate


@pytest.fixture(scope="module")
def sib200_dir(shared_dir):
    return shared_dir / "eval" / "sib200" / "bak_Cyrl"


class _CopyModel:
    """A causal 'LM' that predicts the tokens it has already read: the logit of token t at
    position i is 5 x (count of t in positions <= i) (a constructed case with a known
    preference: the label written most often in the prompt is the most likely continuation).
    Its 'cache' is the counts so far, so both scoring paths (shared context, whole) work."""

    def __init__(self, vocab: int):
        import torch

        self.vocab = vocab
        self._p = torch.nn.Parameter(torch.zeros(1))

    def parameters(self):
        return iter([self._p])

    def __call__(self, input_ids, attention_mask=None, logits_to_keep=0, past_key_values=None, use_cache=False):
        import torch

        mask = torch.ones_like(input_ids) if attention_mask is None else attention_mask[:, -input_ids.shape[1]:]
        counts = (torch.nn.functional.one_hot(input_ids, self.vocab).float() * mask[..., None]).cumsum(1)
        if past_key_values is not None:
            counts = counts + past_key_values.counts[:, None]
        logits = 5 * counts
        if isinstance(logits_to_keep, torch.Tensor):
            logits = logits[torch.arange(len(logits))[:, None], logits_to_keep]
        elif logits_to_keep:
            logits = logits[:, -logits_to_keep:]
        return SimpleNamespace(logits=logits, past_key_values=_Counts(counts[:, -1]))


class _Counts:
    def __init__(self, counts):
        self.counts = counts

    def batch_repeat_interleave(self, n: int) -> None:
        self.counts = self.counts.repeat_interleave(n, 0)


def test_label_scoring_picks_the_label_the_model_prefers():
    from transformers import AutoTokenizer

    from bashkir_peft.settings import tokenizers_root

    tok = AutoTokenizer.from_pretrained(tokenizers_root() / "gpt2")
    labels = ["science/technology", "travel", "politics", "sports", "health", "entertainment", "geography"]
    fmt = prompt_format(labels, "eng")
    texts = ["They watched sports all day: sports, sports and more sports.",
             "We travel by train; travel is slow but travel is cheap.",
             "Health first, said the health minister about health and health care."]
    requests = choice_requests(fmt, labels, [("A trip to the sea: travel", "travel")], texts)
    assert requests[0][0].startswith("Text: A trip to the sea: travel\nTopic: travel\n\nText: They")
    lls = loglikelihoods(_CopyModel(len(tok)), tok, requests, max_length=1024, batch_size=4).reshape(3, 7)
    # scored whole (a max_length the prompts do not fit in, truncating the shot only): the same choices
    whole = loglikelihoods(_CopyModel(len(tok)), tok, requests, max_length=30, batch_size=4).reshape(3, 7)
    assert (choose(whole, labels)[0] == choose(lls, labels)[0]).all()
    pred, pred_norm = choose(lls, labels)
    assert [labels[i] for i in pred] == ["sports", "travel", "health"]
    assert [labels[i] for i in pred_norm] == ["sports", "travel", "health"]
    assert (lls <= 0).all()


def test_acc_norm_divides_by_label_characters():
    lls = np.array([[-2.0, -3.0], [-5.0, -4.0]])
    pred, pred_norm = choose(lls, ["ab", "abcdefgh"])
    assert pred.tolist() == [0, 1]          # plain log-likelihood: the short label first
    assert pred_norm.tolist() == [1, 1]     # -2/2 = -1 < -3/8: the long label per character
    with pytest.raises(ConfigError, match=r"shape \(2, 2\), expected \(items, 3\)"):
        choose(lls, ["a", "b", "c"])


def _features(y: np.ndarray, rng, noise: float = 0.05) -> np.ndarray:
    return np.eye(7)[y] + noise * rng.standard_normal((len(y), 7))


def test_probe_learns_encoded_labels_and_nothing_from_shuffled_ones():
    rng = np.random.default_rng(0)
    y_train, y_dev, y_test = (rng.integers(0, 7, n) for n in (700, 100, 1000))
    x_train, x_dev, x_test = (_features(y, rng) for y in (y_train, y_dev, y_test))
    fit = fit_probe(x_train, y_train, x_dev, y_dev, x_test)
    assert (fit.pred == y_test).mean() == 1.0
    assert fit.dev_accuracy == 1.0
    shuffled = fit_probe(x_train, rng.permutation(y_train), x_dev, rng.permutation(y_dev), x_test)
    chance = 1 / 7
    assert abs((shuffled.pred == y_test).mean() - chance) < 0.05  # 1000 items: 4.5 standard errors


def test_pooled_states_do_not_depend_on_batching_or_padding(sib200_dir):
    from bashkir_peft.data.sib200 import read_sib200_split
    from bashkir_peft.downstream.probe import mean_pooled_states
    from bashkir_peft.models.loading import load_model

    loaded = load_model("tiny-gpt2", "full")
    texts = list(read_sib200_split(sib200_dir, "dev")["text"][:5])
    batched = mean_pooled_states(loaded.model.eval(), loaded.tokenizer, texts, layers=[0, -1], batch_size=3)
    alone = np.concatenate([mean_pooled_states(loaded.model, loaded.tokenizer, [t], layers=[0, -1]) for t in texts],
                           axis=1)
    assert batched.shape == (2, 5, 32)
    np.testing.assert_allclose(batched, alone, atol=1e-5)
    ids = loaded.tokenizer(texts[0], add_special_tokens=False)["input_ids"]
    embeddings = loaded.model.get_input_embeddings().weight[ids].detach() + \
        loaded.model.transformer.wpe.weight[:len(ids)].detach()
    np.testing.assert_allclose(batched[0, 0], embeddings.mean(0).numpy(), atol=1e-6)  # layer 0: input embeddings


def test_measures_match_scikit_learn_and_intervals_hold_the_estimate():
    from sklearn.metrics import accuracy_score, f1_score

    rng = np.random.default_rng(1)
    t = rng.integers(0, 7, 204)
    p = np.where(rng.random(204) < 0.6, t, rng.integers(0, 6, 204))  # class 6 under-predicted
    acc, f1 = accuracy_macro_f1(t, p, 7)
    assert acc == pytest.approx(accuracy_score(t, p))
    assert f1 == pytest.approx(f1_score(t, p, average="macro", labels=range(7), zero_division=0))
    labels = [f"c{i}" for i in range(7)]
    s = scores_with_intervals([labels[i] for i in t], [labels[i] for i in p], labels, n_resamples=200)
    assert s["accuracy_low"] < s["accuracy"] < s["accuracy_high"]
    assert s["macro_f1_low"] < s["macro_f1"] < s["macro_f1_high"]
    assert s["accuracy_high"] - s["accuracy_low"] < 0.2
    with pytest.raises(ConfigError, match="not among the labels: x"):
        scores_with_intervals(["x"], ["c0"], labels)


@pytest.mark.parametrize("settings, message", [
    ({"k_shots": [-1]}, "k_shots"),
    ({"k_shots": [0, 0]}, "distinct shot counts"),
    ({"label_language": "tat"}, "label_language"),
    ({"model": None}, "give model"),
])
def test_bad_parameters_get_one_clear_line(settings, message):
    with pytest.raises(ConfigError, match=message) as err:
        validate(DownstreamParams, {"model": "tiny-gpt2", **settings}, "downstream")
    assert "\n" not in str(err.value)


def test_bad_input_fails_in_one_line_before_any_scoring(tmp_path, sib200_dir):
    # a model name that cannot load: reaching the model would raise another error
    params = DownstreamParams(model="no-such-model", sib200_dir=str(tmp_path), output_dir=str(tmp_path / "out"))
    with pytest.raises(DataError, match="labels.txt: not found"):
        run_downstream(params)
    params = DownstreamParams(model="no-such-model", sib200_dir=str(sib200_dir), max_train=3, k_shots=[5])
    with pytest.raises(ConfigError, match="k_shots 5 exceeds the 3 train sentences"):
        run_downstream(params)
    # tiny-gpt2 has 3 hidden states (embeddings + 2 layers): found before any scoring
    params = DownstreamParams(model="tiny-gpt2", sib200_dir=str(sib200_dir), max_train=14, max_test=7,
                              probe_layers=[3], output_dir=str(tmp_path / "out"))
    with pytest.raises(ConfigError, match=r"probe layer 3 out of range: the model has 3 hidden states"):
        run_downstream(params, progress=False)
    assert not (tmp_path / "out").exists()


def test_small_run_writes_the_record_and_tables(tmp_path, sib200_dir):
    params = DownstreamParams(model="tiny-gpt2", sib200_dir=str(sib200_dir), k_shots=[1], max_train=40,
                              max_dev=14, max_test=14, probe_layers=[0], n_resamples=100, output_dir=str(tmp_path))
    record = run_downstream(params, progress=False)
    assert read_record(tmp_path / RunFiles.DOWNSTREAM, DownstreamRecord) == record
    settings = [(r.approach, r.setting) for r in record.results]
    assert settings == [("majority", "most frequent train category"),
                        ("char_tfidf", "char 1-4-gram TF-IDF + logistic regression"),
                        ("in_context", "1-shot, acc"), ("in_context", "1-shot, acc_norm"),
                        ("probe", "layer 2 (fixed)"), ("probe", f"layer {record.probe.best_layer} (best on dev)")]
    assert record.probe.layers_searched == [0, 2]
    assert (record.task.train, record.task.dev, record.task.test) == (40, 14, 14)
    preds = read_table(tmp_path / RunFiles.DOWNSTREAM_PREDICTIONS, DOWNSTREAM_PREDICTION_COLUMNS)
    assert len(preds) == 6 * 14
    assert preds["category"].nunique() == 7  # the evenly spaced subset keeps every class
    majority = record.results[0]
    assert majority.accuracy == pytest.approx((preds.query("approach == 'majority'")["category"]
                                               == "science/technology").mean())
    assert record.prompt.label_language == "eng" and record.prompt.template == "Text: {text}\nTopic:"
