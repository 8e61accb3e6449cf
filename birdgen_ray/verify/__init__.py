"""Species verification: BirdNET v2.4 judges whether a clip sounds like its species.

`birdnet` runs the model (the optional extra `birdgen-ray[birdnet]`), `species` maps a class to a
BirdNET label, `score` turns per-window probabilities into the index's species columns, and
`passing` says which clips passed their species (the rule report, export and evaluate share).
"""
