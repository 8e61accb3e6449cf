"""BirdCLEF's files, per competition year: metadata names and column orders, the train_audio layout.

A competition folder holds `train_audio/<primary_label>/<file>` and one metadata CSV, a row per
recording, whose `filename` is relative to train_audio. plan reads that CSV (plan/metadata.py),
evaluate reads the folder (evaluate/inputs.py), and export writes clips beside it
(export/birdclef.py): each takes BirdCLEF's names from here.
"""

AUDIO_DIR = "train_audio"
METADATA_FILES = {
    "2021": "train_metadata.csv",
    "2022": "train_metadata.csv",
    "2023": "train_metadata.csv",
    "2024": "train_metadata.csv",
    "2025": "train.csv",
}
LABEL_COLUMN = "primary_label"  # a recording's class, in every year
# Only 2025+ train.csv has it; those years name no taxon class there: taxonomy.csv's `class_name` does.
COLLECTION_COLUMN = "collection"

# Column order of the metadata file (2023 and 2024 share one).
LAYOUTS = {
    "2021": [
        "primary_label",
        "secondary_labels",
        "type",
        "latitude",
        "longitude",
        "scientific_name",
        "common_name",
        "date",
        "filename",
        "license",
        "rating",
        "time",
        "url",
    ],
    "2022": [
        "primary_label",
        "secondary_labels",
        "type",
        "latitude",
        "longitude",
        "scientific_name",
        "common_name",
        "author",
        "license",
        "rating",
        "time",
        "url",
        "filename",
    ],
    "2023": [
        "primary_label",
        "secondary_labels",
        "type",
        "latitude",
        "longitude",
        "scientific_name",
        "common_name",
        "author",
        "license",
        "rating",
        "url",
        "filename",
    ],
    "2025": [
        "primary_label",
        "secondary_labels",
        "type",
        "filename",
        "collection",
        "rating",
        "url",
        "latitude",
        "longitude",
        "scientific_name",
        "common_name",
        "author",
        "license",
    ],
}
LAYOUTS["2024"] = LAYOUTS["2023"]
