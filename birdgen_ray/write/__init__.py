"""Write: shards of WAV clips and their index, published atomically, on local disk or object storage."""
