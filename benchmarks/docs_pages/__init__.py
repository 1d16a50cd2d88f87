"""One module per group of results pages; `benchmarks/render_docs.py` maps file names to them and writes them."""
