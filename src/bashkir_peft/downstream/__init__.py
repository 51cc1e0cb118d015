"""The downstream stage (notebook 06, book chapter "Beyond perplexity"): SIB-200 Bashkir topic
classification by in-context label scoring and by a linear probe, with baselines and
bootstrap intervals."""
