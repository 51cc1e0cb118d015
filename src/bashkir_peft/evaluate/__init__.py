"""The evaluation stage (notebooks/03_evaluate.ipynb): perplexity, bits per byte and word
perplexity under the paper and rolling protocols."""
