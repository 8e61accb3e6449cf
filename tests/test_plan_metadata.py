"""Reading real training sets: each BirdCLEF column layout, label+count files, and bad input."""

from __future__ import annotations

import csv

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from birdgen_ray.plan.metadata import parse_list, read_classes
from birdgen_ray.plan.tables import InputError
from tests.example_data import (
    LAYOUTS,
    ExampleClass,
    example_classes,
    write_counts,
    write_recordings,
    write_taxonomy,
)


def write_csv(path, header, rows):
    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(header)
        writer.writerows(rows)
    return path


@pytest.mark.parametrize("layout", ["2021", "2022", "2023", "2024"])
def test_birdclef_2021_to_2024_metadata_counts_rows_per_primary_label(tmp_path, layout):
    classes = example_classes(12, seed=3, high=40)
    path = write_recordings(tmp_path / "train_metadata.csv", classes, layout)

    stats = read_classes(path)

    assert [s.label for s in stats] == sorted(c.label for c in classes)
    by_label = {s.label: s for s in stats}
    for c in classes:
        s = by_label[c.label]
        assert s.real_count == c.count
        assert s.taxon_class == "Aves"
        assert s.scientific_name == c.scientific_name
        assert s.common_name == c.common_name  # unicode kept, empty stays empty
        assert sum(s.call_types.values()) <= 3 * c.count


def test_birdclef_2025_train_with_taxonomy_takes_class_and_names_from_taxonomy(tmp_path):
    classes = example_classes(10, high=30, taxa=("Aves", "Amphibia", "Insecta", "Mammalia", "Reptilia"))
    train = write_recordings(tmp_path / "train.csv", classes, "2025")
    taxonomy = write_taxonomy(tmp_path / "taxonomy.csv", classes)

    stats = {s.label: s for s in read_classes(train, taxonomy)}

    assert set(stats) == {c.label for c in classes}
    for c in classes:
        assert stats[c.label].real_count == c.count
        assert stats[c.label].taxon_class == c.taxon_class
        assert stats[c.label].common_name  # the taxonomy fills names the recordings left empty
    assert any(label.isdigit() for label in stats)  # iNaturalist numeric ids stay labels


def test_type_lists_are_counted_per_recording(tmp_path):
    header = LAYOUTS["2023"]
    row = dict.fromkeys(header, "")
    rows = []
    for label, types in [
        ("wren", "['song']"),
        ("wren", "['call', 'flight call']"),
        ("wren", "['Song']"),
        ("wren", ""),
        ("wren", "[]"),
        ("owl", "call, song"),
    ]:
        rows.append([{**row, "primary_label": label, "type": types}[c] for c in header])
    stats = {s.label: s for s in read_classes(write_csv(tmp_path / "m.csv", header, rows))}

    assert stats["wren"].real_count == 5
    assert dict(stats["wren"].call_types) == {"song": 2, "call": 1, "flight call": 1}
    assert dict(stats["owl"].call_types) == {"call": 1, "song": 1}


@pytest.mark.parametrize(
    "text, expected",
    [
        ("['call', 'flight call']", ["call", "flight call"]),
        ("[]", []),
        ("", []),
        ("song", ["song"]),
        ("['call', 'song'", ["call", "song"]),
        ('["alarm call"]', ["alarm call"]),
    ],
)
def test_parse_list_reads_python_list_strings_and_plain_text(text, expected):
    assert parse_list(text) == expected


@pytest.mark.parametrize("suffix", ["csv", "parquet"])
def test_label_count_file_with_names_and_classes(tmp_path, suffix):
    classes = [
        ExampleClass("a", 3, "Aves", "Grünfink", "Chloris chloris"),
        ExampleClass("b", 500, "Insecta", "", "Gryllus campestris"),
    ]
    stats = read_classes(write_counts(tmp_path / f"counts.{suffix}", classes))
    assert [(s.label, s.real_count, s.taxon_class, s.common_name) for s in stats] == [
        ("a", 3, "Aves", "Grünfink"),
        ("b", 500, "Insecta", ""),
    ]


def test_label_count_file_without_optional_columns_defaults_to_birds(tmp_path):
    path = write_csv(tmp_path / "c.csv", ["label", "count"], [["x", "7"], ["y", "1"]])
    stats = read_classes(path)
    assert [(s.label, s.real_count, s.taxon_class) for s in stats] == [("x", 7, "Aves"), ("y", 1, "Aves")]


def test_missing_required_column_names_file_and_column(tmp_path):
    path = write_csv(tmp_path / "meta.csv", ["species", "type"], [["a", "[]"]])
    with pytest.raises(InputError) as err:
        read_classes(path)
    assert "meta.csv" in str(err.value) and "'primary_label'" in str(err.value)


def test_taxonomy_missing_class_name_column(tmp_path):
    train = write_recordings(tmp_path / "train.csv", example_classes(3, high=5), "2025")
    taxonomy = write_csv(tmp_path / "taxonomy.csv", ["primary_label", "common_name"], [["a", "A"]])
    with pytest.raises(InputError) as err:
        read_classes(train, taxonomy)
    assert "taxonomy.csv" in str(err.value) and "'class_name'" in str(err.value)


def test_2025_train_without_taxonomy_asks_for_it(tmp_path):
    train = write_recordings(tmp_path / "train.csv", example_classes(3, high=5), "2025")
    with pytest.raises(InputError, match="--taxonomy"):
        read_classes(train)


def test_labels_absent_from_taxonomy_name_the_train_lines(tmp_path):
    header = LAYOUTS["2025"]
    blank = dict.fromkeys(header, "")
    rows = [[{**blank, "primary_label": lb}[c] for c in header] for lb in ["a", "b", "zz", "a", "zz"]]
    train = write_csv(tmp_path / "train.csv", header, rows)
    taxonomy = write_csv(tmp_path / "taxonomy.csv", ["primary_label", "class_name"], [["a", "Aves"], ["b", "Aves"]])
    with pytest.raises(InputError) as err:
        read_classes(train, taxonomy)
    message = str(err.value)
    assert "train.csv" in message and "column 'primary_label' lines 4, 6" in message
    assert "'zz'" in message and "taxonomy.csv" in message


def test_labels_listed_twice_in_the_taxonomy_name_both_lines(tmp_path):
    header = LAYOUTS["2025"]
    blank = dict.fromkeys(header, "")
    train = write_csv(tmp_path / "train.csv", header, [[{**blank, "primary_label": "a"}[c] for c in header]])
    taxonomy = write_csv(
        tmp_path / "taxonomy.csv",
        ["primary_label", "class_name"],
        [["a", "Aves"], ["b", "Aves"], ["a", "Aves"], ["b", "Insecta"]],
    )
    with pytest.raises(
        InputError, match=r"lines 4, 5: label listed twice \(line 4 repeats line 2, line 5 repeats line 3\)"
    ):
        read_classes(train, taxonomy)


def test_non_utf8_text_names_column_and_lines(tmp_path):
    path = tmp_path / "meta.csv"
    good = "primary_label,common_name,type\nwren,Wren,[]\n".encode()
    path.write_bytes(good + "owl,Chouette hulotte,[]\n".encode("latin-1") + "tit,Mésange,[]\n".encode("latin-1"))
    # latin-1 'é' is not UTF-8; line 3 is pure ASCII and fine
    with pytest.raises(InputError) as err:
        read_classes(path)
    assert "meta.csv" in str(err.value) and "column 'common_name' line 4" in str(err.value)
    assert "UTF-8" in str(err.value)


def test_empty_labels_and_bad_counts_name_lines(tmp_path):
    path = write_csv(
        tmp_path / "counts.csv",
        ["label", "count"],
        [["a", "3"], ["", "4"], ["b", "x"], ["c", "-1"], ["a", "2"], ["d", "2.5"]],
    )
    with pytest.raises(InputError) as err:
        read_classes(path)
    message = str(err.value)
    assert "column 'label' line 3: empty label" in message
    assert "column 'count' lines 4, 5, 7" in message
    assert "column 'label' line 6: label listed twice (first at line 2)" in message


def test_labels_unusable_as_folder_or_list_value_name_lines(tmp_path):
    counts = write_csv(tmp_path / "counts.csv", ["label", "count"], [["a", "3"], ["b,c", "4"], ["../x", "1"]])
    with pytest.raises(InputError, match=r"(?s)counts.csv.*column 'label' lines 3, 4: label is not 1-64 letters"):
        read_classes(counts)
    header = LAYOUTS["2023"]
    blank = dict.fromkeys(header, "")
    rows = [[{**blank, "primary_label": lb}[c] for c in header] for lb in ["a", "b/c", "", "d"]]
    with pytest.raises(InputError) as err:
        read_classes(write_csv(tmp_path / "m.csv", header, rows))
    assert "column 'primary_label' line 3: label is not 1-64 letters, digits" in str(err.value)
    assert "column 'primary_label' line 4: empty label" in str(err.value)


def test_empty_primary_label_in_recordings_names_lines(tmp_path):
    header = LAYOUTS["2023"]
    blank = dict.fromkeys(header, "")
    rows = [[{**blank, "primary_label": lb}[c] for c in header] for lb in ["a", "", "b", ""]]
    with pytest.raises(InputError, match=r"column 'primary_label' lines 3, 5: empty label"):
        read_classes(write_csv(tmp_path / "m.csv", header, rows))


def test_ragged_rows_and_unreadable_parquet_are_reported(tmp_path):
    path = tmp_path / "m.csv"
    path.write_text("primary_label,type\na,[]\nb,[],extra\n", encoding="utf-8")
    with pytest.raises(InputError, match="line 3: field count differs"):
        read_classes(path)
    broken = tmp_path / "counts.parquet"
    broken.write_bytes(b"not parquet at all")
    with pytest.raises(InputError, match="counts.parquet"):
        read_classes(broken)


def test_parquet_counts_report_rows(tmp_path):
    path = tmp_path / "counts.parquet"
    pq.write_table(pa.table({"label": ["a", None, "c"], "count": [1, 2, None]}), path)
    with pytest.raises(InputError) as err:
        read_classes(path)
    assert "column 'label' row 1" in str(err.value) and "column 'count' row 2" in str(err.value)


def test_utf8_bom_and_blank_lines_are_accepted(tmp_path):
    path = tmp_path / "m.csv"
    path.write_bytes("\ufeffprimary_label,common_name\nkōkako,Kōkako\n\nkōkako,Kōkako\n".encode("utf-8"))
    (stats,) = read_classes(path)
    assert (stats.label, stats.real_count, stats.common_name) == ("kōkako", 2, "Kōkako")
