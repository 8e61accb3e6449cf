"""Schedule: split the pending plan into shards and drive GPU actors over them."""
