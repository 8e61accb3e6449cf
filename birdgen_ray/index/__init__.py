"""Index: the Parquet tables that say where every clip is and how it was made."""
