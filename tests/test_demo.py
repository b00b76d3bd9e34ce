import csv

from labeler.demo import CONFUSIONS, DemoSpec, generate


def _rows(path):
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


def test_generator_is_deterministic_and_flips_only_along_confusions(tmp_path):
    spec = DemoSpec(n_images=160, size=32, noise=0.3, duplicates=6, seed=3)
    labels_a = generate(tmp_path / "a", spec, progress=False)
    labels_b = generate(tmp_path / "b", spec, progress=False)
    assert labels_a.read_bytes() == labels_b.read_bytes()
    assert (tmp_path / "a/images/00007.jpg").read_bytes() == (tmp_path / "b/images/00007.jpg").read_bytes()
    given = {r["image"]: r for r in _rows(labels_a)}
    truth = _rows(tmp_path / "a" / "truth.csv")
    assert len(given) == len(truth) == 170  # 160 drawn + 6 near-duplicates + 4 test copies of train images
    flipped = [t for t in truth if t["flipped"] == "1"]
    assert flipped, "some labels must be flipped"
    for t in flipped:
        assert given[t["image"]]["label"] == CONFUSIONS[t["true_label"]]
        assert given[t["image"]]["split"] != "test"
    for t in truth:
        assert (given[t["image"]]["label"] != t["true_label"]) == (t["flipped"] == "1")
    duplicates = [t for t in truth if t["duplicate_of"] and given[t["image"]]["split"] != "test"]
    assert len(duplicates) == 6 and any(t["flipped"] == "1" for t in duplicates)
    copies = [t for t in truth if t["duplicate_of"] and given[t["image"]]["split"] == "test"]
    assert len(copies) == 4 and all(given[t["duplicate_of"]]["split"] == "train" for t in copies)
    assert all(given[t["image"]]["label"] == t["true_label"] for t in copies)


def test_generate_reuses_existing_output_for_the_same_spec(tmp_path):
    spec = DemoSpec(n_images=16, size=32, duplicates=2)
    labels = generate(tmp_path, spec, progress=False)
    stamp = labels.stat().st_mtime_ns
    assert generate(tmp_path, spec, progress=False).stat().st_mtime_ns == stamp
