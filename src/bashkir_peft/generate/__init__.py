"""The generation stage (notebooks/04_generate.ipynb): continuations of Bashkir prompts and
their language measures."""
