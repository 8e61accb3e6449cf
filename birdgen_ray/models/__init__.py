"""Models: the built-in random models, built offline from configs and seeds; no weights.

`tiny` and `tiny_stable_audio` are the tiny AudioLDM2 and Stable Audio Open that `--model tiny` and
`--model tiny-stable-audio` load; `random_model` and `random_stable_audio` build either family with
random weights (also at full size, from the reference configs, for benchmarks); `tokenizers` holds
their stand-in tokenizers, shipped as files in `birdgen_ray/data/tokenizers/`.
"""
