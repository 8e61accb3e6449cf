"""Column order of BirdCLEF's metadata files, per competition year (2023 and 2024 share one)."""

LAYOUTS = {
    "2021": ["primary_label", "secondary_labels", "type", "latitude", "longitude", "scientific_name",
             "common_name", "date", "filename", "license", "rating", "time", "url"],
    "2022": ["primary_label", "secondary_labels", "type", "latitude", "longitude", "scientific_name",
             "common_name", "author", "license", "rating", "time", "url", "filename"],
    "2023": ["primary_label", "secondary_labels", "type", "latitude", "longitude", "scientific_name",
             "common_name", "author", "license", "rating", "url", "filename"],
    "2025": ["primary_label", "secondary_labels", "type", "filename", "collection", "rating", "url",
             "latitude", "longitude", "scientific_name", "common_name", "author", "license"],
}
LAYOUTS["2024"] = LAYOUTS["2023"]
