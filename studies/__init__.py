"""The studies behind the documentation's numbers, run as modules from the repository root.

python -m studies.frontier --points mimic-gs4-up --eps 0.3   # a study: runs into its committed store
python -m studies.pages                                       # the one generator: pages, README blocks, model card
python -m studies.pages --check                               # writes nothing; exit 1 naming every stale file
"""
