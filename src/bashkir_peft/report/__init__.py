"""The report stage (notebooks/05_report.ipynb, book chapter "Results"): run folders read
through the record contract, tables, paired bootstrap intervals and figures."""
