"""Generate: turn plan rows into audio inside one actor (model loading, engine, quality gate)."""
