"""The one page generator (`python -m studies.pages [--check]`, see `generate.py`) and its page functions,
one module per group of pages; the templates they fill are in `studies/templates/`."""
