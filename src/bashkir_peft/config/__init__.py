"""Configuration: every stage's parameter model (the single source of defaults and of their
sources), the tokenizer adaptation settings, external test sets, the grid file (its model,
expansion and loading) and the study design. It imports nothing above the text floor, so
the record contract (:mod:`bashkir_peft.records`) types each record's parameters by them.
"""
