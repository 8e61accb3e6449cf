"""birdgen-ray: synthetic bird and wildlife calls with AudioLDM2 on Ray.

Reading results:

    from birdgen_ray import open_index, read_clip
    index = open_index("out/")                 # pyarrow.Table, one row per clip
    audio, rate = read_clip("out/", index["clip_id"][0].as_py())
"""

__version__ = "0.1.0"

from birdgen_ray.index.reader import open_index, read_clip  # noqa: E402

__all__ = ["open_index", "read_clip", "__version__"]
