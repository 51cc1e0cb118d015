"""Parameters of generation (notebook 04, :mod:`bashkir_peft.generate.run`) and the schema of
a prompts file (``params/prompts.yaml``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, model_validator

from bashkir_peft.settings import stage_out_dir
from bashkir_peft.text.codeswitch import MIN_LETTERS
from bashkir_peft.yamlio import StrictModel

BudgetUnit = Literal["words", "characters"]


class GenerateParams(StrictModel):
    """Parameters of the generation stage (the defaults here are the notebook's defaults).

    The model: ``run_dir`` (a finished training run) if given, else ``model`` (zero-shot
    baseline, method ``base``). Given both, ``model`` must be the run's base model.
    The prompts: ``prompts_file`` if given, else the test split of ``data_dir`` (default
    with ``run_dir``: the data folder the run was trained on).
    """

    model: str | None = Field(None, description="base model: registry name, local folder or Hub id",
                              json_schema_extra={"source": "ours: none; the grid runner sets the base model "
                                                 "of a zero-shot cell"})
    run_dir: str | None = Field(None, description="finished training run folder (train.json + final/)",
                                json_schema_extra={"source": "ours: none; the grid runner sets the run folder "
                                                   "of a trained cell"})
    merge: bool = Field(False, description="merge a LoRA adapter into the base before generating",
                        json_schema_extra={"source": "ours: generate as trained (unmerged), as evaluation does"})
    data_dir: str | None = Field(None, description="data-prep output: prompts from its test split",
                                 json_schema_extra={"source": "ours: the run's training data (the grid runner "
                                                    "sets the grid's data folder)"})
    prompts_file: str | None = Field(None, description="or a YAML file of fixed prompts (e.g. params/prompts.yaml)",
                                     json_schema_extra={"source": "ours: none; prompts from the test split"})
    n_prompts: int = Field(200, ge=1, description="how many prompts (the first n of the file / selection)",
                           json_schema_extra={"source": "project choice: >= 200 prompts per run (issue 13) give a "
                                              "95 % interval of about +-0.07 on a rate near 0.5"})
    prompt_words: int = Field(8, ge=1, description="opening words of a test document that form its prompt",
                              json_schema_extra={"source": "project choice: about one clause of Bashkir prose"})
    reference_words: int = Field(30, ge=0, description="the document's next words, kept as a human reference",
                                 json_schema_extra={"source": "project choice: the default budget (30 words), so "
                                                    "reference and continuations are measured on equal lengths"})
    do_sample: bool = Field(True, description="False = greedy decoding (temperature/top_p/top_k unused)",
                            json_schema_extra={"source": "project choice: the paper states no decoding; sampling "
                                               "shows what a model writes, greedy text of small models loops"})
    temperature: float = Field(0.8, gt=0, description="softmax temperature of sampling",
                               json_schema_extra={"source": "project choice: mild sharpening; the paper states none"})
    top_p: float = Field(0.95, gt=0, le=1, description="nucleus sampling mass",
                         json_schema_extra={"source": "Holtzman et al. 2020 (ICLR), 'The Curious Case of Neural "
                                            "Text Degeneration', sec. 6: p = 0.95"})
    top_k: int = Field(50, ge=0, description="top-k filtering; 0 = none",
                       json_schema_extra={"source": "transformers GenerationConfig default (top_k=50)"})
    repetition_penalty: float = Field(
        1.0, gt=0, description="CTRL penalty (Keskar et al. 2019) on tokens already generated (never on the "
        "prompt); 1.0 = none",
        json_schema_extra={"source": "project choice: none (transformers' default 1.0); a penalty over prompt and "
                           "text pushed Bashkir generations into Latin script (issue 13, benchmarks/RESULTS.md)"})
    budget: int = Field(30, ge=1, description="length of a continuation, in budget_unit",
                        json_schema_extra={"source": "project choice: two or three sentences of Bashkir prose, "
                                           "so most continuations hold a sentence of 20+ letters to label"})
    budget_unit: BudgetUnit = Field("words", description="words (whitespace-separated) or characters",
                                    json_schema_extra={"source": "project choice: the same length for every "
                                                       "tokenizer (a token budget gives finer tokenizers fewer words)"})
    max_new_tokens: int = Field(400, ge=1, description="safety cap on new tokens per continuation",
                                json_schema_extra={"source": "project choice: 30 words x 9.0 tokens per word (GPT-2, "
                                                   "the finest tokenizer of the study on the corpus) x 1.5"})
    seed: int = Field(42, description="decoding seed (batch b uses seed + b)",
                      json_schema_extra={"source": "paper: the first seed of its released runs (42)"})
    batch_size: int = Field(8, ge=1, description="prompts per generate() call; sampled text depends on it",
                            json_schema_extra={"source": "project choice: fits a 2-core CPU and any GPU"})
    min_letters: int = Field(MIN_LETTERS, ge=1, description="a sentence of this many letters counts for rates",
                             json_schema_extra={"source": "project choice (generation issue): shorter sentences "
                                                "are too short to identify reliably"})
    output_dir: str | None = Field(None, description="where results go (default: run_dir, or runs/base/<model>)",
                                   json_schema_extra={"source": "ours: the grid runner sets the cell's folder"})
    label: str | None = Field(None, description="name of this run in side-by-side tables",
                              json_schema_extra={"source": "ours: derived from model, method and seed"})
    dtype: Literal["float32", "bfloat16", "float16"] | None = Field(
        None, description="base model only; None: the loader's default",
        json_schema_extra={"source": "ours: float32 on CPU, as trained (models.precision)"})
    num_threads: int | None = Field(None, ge=1, description="torch threads; None: all available cores",
                                    json_schema_extra={"source": "ours: every core the process may use"})
    device: Literal["cpu", "cuda", "mps"] | None = Field(
        None, description="pin the device; None: the accelerator if any",
        json_schema_extra={"source": "ours: the accelerator when there is one (models.device)"})

    @model_validator(mode="after")
    def _sources(self) -> GenerateParams:
        if self.model is None and self.run_dir is None:
            raise ValueError("give model (a base model) or run_dir (a training run)")
        if self.data_dir is None and self.prompts_file is None and self.run_dir is None:
            raise ValueError("give data_dir (prompts from its test split) or prompts_file")
        return self

    @property
    def out_dir(self) -> Path:
        """Where results go (:func:`~bashkir_peft.settings.stage_out_dir`, the rule of every stage)."""
        return stage_out_dir(self.output_dir, self.run_dir, self.model)

    def decoding(self) -> dict:
        """The decoding settings (sampling knobs only when sampling): ``max_new_tokens`` and the
        sampling knobs go to ``GenerationConfig``; the penalty and the budget to
        :mod:`bashkir_peft.generate.decoding`."""
        d = {"max_new_tokens": self.max_new_tokens, "do_sample": self.do_sample,
             "repetition_penalty": self.repetition_penalty, "budget": self.budget, "budget_unit": self.budget_unit}
        if self.do_sample:
            d.update(temperature=self.temperature, top_p=self.top_p, top_k=self.top_k)
        return d


class PromptEntry(StrictModel):
    id: str
    text: str = Field(min_length=1)
    reference: str | None = None


class PromptsFile(StrictModel):
    """Schema of a prompts file (``params/prompts.yaml``)."""

    source: str  # where the prompts come from (provenance, licence)
    prompts: list[PromptEntry] = Field(min_length=1)
