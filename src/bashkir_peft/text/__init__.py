"""Text measures shared by the stages: cleaning, language identification, de-duplication,
code-switching (used by notebooks/01_data_prep.ipynb and notebooks/04_generate.ipynb)."""
