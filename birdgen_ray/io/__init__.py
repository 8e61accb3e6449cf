"""The ground floor: storage, the output layout and audio I/O. It imports no other part of birdgen_ray."""
