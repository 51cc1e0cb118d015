"""The data stage (notebooks/01_data_prep.ipynb, book chapter "The data"): corpus reading,
splitting, preparation, the data-folder readers, packing, statistics and tokenizer fertility."""
