"""Image folders (`data: {path: images/, image_size: [H, W]}`): listing, decoding, splits, validate, train, test.

Every test writes its own tiny folder of 8x8 PNGs whose colour depends on the class, so a
small model can learn it in a few epochs and the splits can be checked image by image.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml
from helpers import flat
from PIL import Image
from typer.testing import CliRunner

from regcli.cli import app
from regcli.data import load_dataset
from regcli.data.check import check_data
from regcli.data.images import load_image_folder, scan_folder
from regcli.errors import DataError, SpecError
from regcli.spec import load_experiment_spec, validate_experiment

ROOT = Path(__file__).resolve().parents[1]
COLOURS = {"cat": (220, 40, 40), "dog": (40, 220, 40), "fox": (40, 40, 220)}


def make_folder(root: Path, per_class: int = 12, size: tuple[int, int] = (8, 8), classes=COLOURS) -> Path:
    """`root/images/<class>/NN.png`: noisy images around the class colour (seeded, so byte-stable)."""
    rng = np.random.default_rng(0)
    folder = root / "images"
    for name, colour in classes.items():
        (folder / name).mkdir(parents=True)
        for i in range(per_class):
            pixels = np.clip(np.array(colour) + rng.normal(0, 25, (*size, 3)), 0, 255).astype(np.uint8)
            Image.fromarray(pixels).save(folder / name / f"{i:02d}.png")
    return folder


def spec_for(folder: Path, **data) -> object:
    raw = {"seed": 0, "data": {"path": str(folder), "image_size": [8, 8], **data}}
    return validate_experiment(raw, folder.parent)


def load(folder: Path, seed: int = 0, **data):
    spec = spec_for(folder, **data)
    return load_dataset(spec.data, seed=seed, task=spec.model.task)


def problems(raw_data: dict, base: Path) -> list[str]:
    with pytest.raises(SpecError) as info:
        validate_experiment({"data": raw_data}, base, source="spec.yaml")
    return [line.strip() for line in str(info.value).splitlines()[1:]]


# --- loading -----------------------------------------------------------------------------------


def test_a_folder_loads_as_flat_rows_with_sorted_class_names_and_stratified_splits(tmp_path):
    ds = load(make_folder(tmp_path), standardize=False)
    assert ds.class_names == ["cat", "dog", "fox"] and ds.task == "multiclass" and ds.n_classes == 3
    assert ds.image_shape == (8, 8, 3) and ds.x_train.shape == (22, 192) and ds.x_train.dtype == np.float32
    assert (len(ds.y_train), len(ds.y_val), len(ds.y_test)) == (22, 7, 7)  # 36 images, 0.2 / 0.2 of all
    pixels = np.concatenate([ds.x_train, ds.x_val, ds.x_test])
    assert pixels.min() >= 0.0 and pixels.max() <= 1.0  # x / 255
    # the class colour survives decoding: red cats, green dogs, blue foxes
    mean_rgb = ds.x_train.reshape(-1, 8, 8, 3).mean(axis=(1, 2))
    assert (mean_rgb.argmax(axis=1) == ds.y_train).all()
    info = ds.info
    assert info["class_counts"]["test"] == {"cat": 3, "dog": 2, "fox": 2}
    assert {k: info[k] for k in ("image_size", "color_mode", "image_shape", "n_rows", "n_features")} == {
        "image_size": [8, 8], "color_mode": "rgb", "image_shape": [8, 8, 3], "n_rows": 36, "n_features": 192,
    }
    assert info["pixel_scale"] == "x / 255: pixels in [0, 1]" and "channel_mean" not in info


def test_pixels_are_what_keras_load_img_gives_and_the_layout_is_image_dataset_from_directorys(tmp_path):
    """Decoding matches keras.utils.load_img (bilinear resize, rgb); the classes and the file order
    match keras.utils.image_dataset_from_directory's: nested folders count, other files do not."""
    import keras

    folder = make_folder(tmp_path, per_class=3, size=(10, 12))
    Image.fromarray(np.full((16, 16, 4), 90, np.uint8)).save(folder / "dog" / "big.png")  # rgba, larger
    (folder / "dog" / "nested").mkdir()
    Image.fromarray(np.full((5, 5, 3), 200, np.uint8)).save(folder / "dog" / "nested" / "a.jpg")
    (folder / "cat" / "notes.txt").write_text("not an image")
    raw = load_image_folder(folder, (6, 4), "rgb")
    files = scan_folder(folder, (6, 4), "rgb").files
    assert raw.image_shape == (6, 4, 3) and raw.x.shape == (11, 72) and raw.class_names == ["cat", "dog", "fox"]
    for row, file in zip(raw.x, files, strict=True):
        expected = keras.utils.img_to_array(keras.utils.load_img(file, target_size=(6, 4), interpolation="bilinear"))
        np.testing.assert_array_equal(row.reshape(6, 4, 3), expected / 255)
    listed = keras.utils.image_dataset_from_directory(folder, image_size=(6, 4), shuffle=False, verbose=False)
    assert listed.class_names == raw.class_names
    assert [Path(p) for p in listed.file_paths] == files


def test_hidden_entries_are_skipped(tmp_path):
    """Unlike Keras, regcli skips hidden files and folders: macOS's ._x.png junk would not decode."""
    folder = make_folder(tmp_path, per_class=2)
    (folder / "cat" / "._00.png").write_bytes(b"AppleDouble")
    (folder / ".thumbnails").mkdir()  # would be a third class
    (folder / ".thumbnails" / "x.png").write_bytes(b"")
    (folder / "dog" / ".cache").mkdir()
    (folder / "dog" / ".cache" / "y.png").write_bytes(b"")
    listing = scan_folder(folder, (8, 8), "rgb")
    assert listing.class_names == ["cat", "dog", "fox"] and len(listing.files) == 6


def test_grayscale_gives_one_channel(tmp_path):
    ds = load(make_folder(tmp_path), color_mode="grayscale", image_size=[4, 4], standardize=False)
    assert ds.image_shape == (4, 4, 1) and ds.x_train.shape == (22, 16)
    assert ds.info["color_mode"] == "grayscale"


def test_standardize_is_per_channel_and_fitted_on_the_training_split_only(tmp_path):
    folder = make_folder(tmp_path)
    plain, scaled = load(folder, standardize=False), load(folder)
    train = plain.x_train.reshape(-1, 3).astype(np.float64)
    np.testing.assert_allclose(scaled.info["channel_mean"], train.mean(axis=0), rtol=1e-6)
    np.testing.assert_allclose(scaled.info["channel_std"], train.std(axis=0), rtol=1e-6)
    per_channel = scaled.x_train.reshape(-1, 3).astype(np.float64)
    np.testing.assert_allclose(per_channel.mean(axis=0), 0.0, atol=1e-5)
    np.testing.assert_allclose(per_channel.std(axis=0), 1.0, atol=1e-5)
    expected_val = (plain.x_val.reshape(-1, 3) - train.mean(axis=0)) / train.std(axis=0)
    np.testing.assert_allclose(scaled.x_val.reshape(-1, 3), expected_val, atol=1e-5)
    assert scaled.x_train.dtype == np.float32


def test_fingerprints_follow_the_folder_and_the_split_seed(tmp_path):
    folder = make_folder(tmp_path)
    a, again, other_seed = load(folder, split_seed=1), load(folder, split_seed=1, seed=5), load(folder, split_seed=2)
    assert a.info["test_fingerprint"] == again.info["test_fingerprint"]  # split_seed pins the split
    np.testing.assert_array_equal(a.x_test, again.x_test)
    assert a.info["data_fingerprint"] == other_seed.info["data_fingerprint"]  # the same images
    assert a.info["test_fingerprint"] != other_seed.info["test_fingerprint"]  # another test split
    assert not np.array_equal(a.x_test, other_seed.x_test)
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(folder / "fox" / "00.png")  # one image changed
    assert load(folder, split_seed=1).info["data_fingerprint"] != a.info["data_fingerprint"]


def test_train_fraction_and_label_noise_apply_to_the_training_images_only(tmp_path):
    folder = make_folder(tmp_path, per_class=20)
    full, part = load(folder), load(folder, train_fraction=0.5, label_noise=0.2)
    assert len(full.y_train) == 36 and len(part.y_train) == 18 and part.info["label_noise_flipped"] == 4
    np.testing.assert_array_equal(full.y_test, part.y_test)
    assert full.info["test_fingerprint"] == part.info["test_fingerprint"]


def test_an_undecodable_image_is_named_at_train_time(tmp_path):
    folder = make_folder(tmp_path, per_class=3)
    (folder / "dog" / "broken.png").write_bytes(b"not a png")
    with pytest.raises(DataError) as info:
        load(folder, stratify=False, test_fraction=0.0)
    assert str(info.value).startswith(
        f"Image file 'dog/broken.png' of data.path '{folder}' could not be decoded (UnidentifiedImageError: "
    )
    assert str(info.value).endswith("Replace or remove it.")


def test_a_folder_too_large_for_memory_is_refused_before_decoding(tmp_path, monkeypatch):
    import regcli.data.images as images

    folder = make_folder(tmp_path, per_class=2)
    spec = spec_for(folder, image_size=[512, 512], stratify=False)
    monkeypatch.setattr(images, "available_bytes", lambda: 1024**3)
    check_data(spec.data, seed=0)  # 4 x 18 MiB fit in 1 GiB
    monkeypatch.setattr(images, "available_bytes", lambda: 50 * 1024**2)
    with pytest.raises(DataError) as info:
        check_data(spec.data, seed=0)  # validate's check: the folder is listed, nothing decoded
    assert str(info.value) == (
        f"data.path '{folder}' holds 6 images: at data.image_size [512, 512] rgb they are 18.0 MiB as float32 "
        "(6 x 512 x 512 x 3 x 4 bytes), and loading, splitting and training hold about 4 copies of them "
        "(72.0 MiB), more than the 50.0 MiB of memory available here. Lower data.image_size (e.g. [256, 256]), "
        "use data.color_mode: grayscale, or use fewer images."
    )


# --- the spec ----------------------------------------------------------------------------------


def test_the_spec_asks_for_image_size_exactly_with_an_image_folder(tmp_path):
    folder = make_folder(tmp_path, per_class=2)
    assert problems({"path": "images"}, tmp_path) == [
        "data.image_size: is required for an image folder (data.path is a directory): every image is resized "
        "to this [height, width]. For example: image_size: [32, 32]."
    ]
    for bad in ([8], [0, 8], [8, 8.5], 32, [8, 5000], [True, 8]):
        assert problems({"path": "images", "image_size": bad}, tmp_path) == [
            f"data.image_size: must be a pair [height, width] of integers in [1, 4096]. Received: {json.dumps(bad)}. "
            "Every image is resized to it, e.g. image_size: [32, 32]."
        ], bad
    assert problems({"source": "iris", "image_size": [8, 8]}, tmp_path) == [
        "data.image_size: applies only to an image folder (data.path a directory of class subfolders), not to "
        "data.source iris. Received: [8, 8]. Remove data.image_size."
    ]
    assert problems({"source": "iris", "color_mode": "grayscale"}, tmp_path) == [
        "data.color_mode: applies only to an image folder (data.path a directory of class subfolders), not to "
        "data.source iris. Received: 'grayscale'. Remove data.color_mode."
    ]
    assert problems({"path": "images", "image_size": [8, 8], "target": "label"}, tmp_path) == [
        "data.target: applies only to .csv and .parquet files; an image folder's labels are its class subfolder "
        "names. Received: 'label'. Remove data.target."
    ]
    assert problems({"path": "imgs", "image_size": [8, 8]}, tmp_path) == [
        f"data.path: folder not found: {tmp_path / 'imgs'}. Received: 'imgs'. Relative paths are resolved "
        f"against the spec file's directory ({tmp_path})."
    ]
    data = validate_experiment({"data": {"path": "images", "image_size": [8, 8]}}, tmp_path).data
    assert (data.path, data.image_size, data.color_mode) == (str(folder), [8, 8], "rgb")  # rgb filled in
    assert validate_experiment({"data": {"source": "iris"}}, tmp_path).data.color_mode is None


# --- the command line --------------------------------------------------------------------------


def write_spec(tmp_path: Path, data: dict, **sections) -> Path:
    path = tmp_path / "spec.yaml"
    path.write_text(yaml.safe_dump({"seed": 0, "data": data, **sections}))
    return path


def test_validate_lists_the_folder_without_importing_tensorflow_keras_or_pillow(tmp_path):
    folder = make_folder(tmp_path)
    spec = write_spec(tmp_path, {"path": "images", "image_size": [8, 8]})
    proc = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "regcli", "validate", str(spec)],
        capture_output=True, text=True, timeout=120, cwd=ROOT, check=False,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    imported = {line.rsplit("|", 1)[1].strip() for line in proc.stderr.splitlines() if line.startswith("import time:")}
    assert "pydantic" in imported and not {"tensorflow", "keras", "jax", "PIL"} & imported
    notes = [line for line in proc.stderr.splitlines() if not line.startswith("import time:")]
    assert notes == [
        f"data: data.path '{folder}': 36 images, 8x8 rgb (192 features); multiclass (3 classes: cat, dog, fox); "
        "22 train / 7 val / 7 test (image folder: files listed, not decoded)"
    ]
    resolved = yaml.safe_load(proc.stdout)["data"]
    assert (resolved["path"], resolved["image_size"], resolved["color_mode"]) == (str(folder), [8, 8], "rgb")


def _one_class(folder: Path) -> None:
    for name in ("dog", "fox"):
        for file in (folder / name).iterdir():
            file.unlink()
        (folder / name).rmdir()


def _loose_images(folder: Path) -> None:
    _one_class(folder)
    for file in list((folder / "cat").iterdir()):
        file.rename(folder / file.name)
    (folder / "cat").rmdir()


def _empty_classes(folder: Path) -> None:
    for name in ("dog", "fox"):
        for file in (folder / name).iterdir():
            file.rename(file.with_suffix(".txt"))


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (_one_class, "error: data.path '{f}' has 1 class subfolder ('cat'); an image folder needs at least 2, one "
                     "per class, each holding that class's images (e.g. images/cat/1.png, images/dog/1.png)."),
        (_loose_images, "error: data.path '{f}' has 0 class subfolders; an image folder needs at least 2, one per "
                        "class, each holding that class's images (e.g. images/cat/1.png, images/dog/1.png). Its 2 "
                        "image files directly inside belong in class subfolders."),
        (_empty_classes, "error: Class subfolders 'dog', 'fox' of data.path '{f}' hold no image file (.bmp, .gif, "
                         ".jpeg, .jpg, .png); every class needs at least one. Add images, or remove those subfolders."),
    ],
)
def test_validate_refuses_a_folder_train_could_not_use(tmp_path, damage, message):
    folder = make_folder(tmp_path, per_class=2)
    damage(folder)
    result = CliRunner().invoke(app, ["validate", str(write_spec(tmp_path, {"path": "images", "image_size": [8, 8]}))])
    assert result.exit_code == 2, result.output
    assert flat(result.output) == message.format(f=folder)


def test_validate_refuses_a_class_too_small_to_stratify_as_train_would(tmp_path):
    folder = make_folder(tmp_path, per_class=5, classes={"cat": (200, 0, 0), "dog": (0, 200, 0)})
    (folder / "rare").mkdir()
    (folder / "cat" / "00.png").rename(folder / "rare" / "00.png")
    result = CliRunner().invoke(app, ["validate", str(write_spec(tmp_path, {"path": "images", "image_size": [8, 8]}))])
    assert result.exit_code == 2, result.output
    assert flat(result.output) == (
        f"error: data.stratify: class 'rare' of data.path '{folder}' has only 1 row among the 10 rows split by "
        "data.test_fraction; a stratified split needs at least 2 rows of every class. Set data.stratify: false, "
        "or drop or merge that class."
    )


# --- training ----------------------------------------------------------------------------------

CONV = [
    {"type": "conv2d", "filters": 4, "kernel_size": 3, "padding": "same", "activation": "relu"},
    {"type": "maxpool2d", "pool_size": 2},
    {"type": "flatten"},
]


@pytest.mark.slow
@pytest.mark.parametrize(
    "model",
    [{"layers": CONV}, {"hidden": [16], "batchnorm": False, "dropout": 0.0}],
    ids=["conv2d", "shorthand"],
)
def test_an_image_folder_trains_ships_and_is_tested_once(tmp_path, model):
    make_folder(tmp_path, per_class=20)
    # 5 epochs at lr 0.01: enough for colour classes to separate; this test checks wiring, not convergence
    training = {"epochs": 5, "batch_size": 8, "learning_rate": 0.01, "early_stopping": {"enabled": False}}
    spec = write_spec(tmp_path, {"path": "images", "image_size": [8, 8], "split_seed": 7}, model=model,
                      training=training)
    runner = CliRunner()
    result = runner.invoke(app, ["train", str(spec), "--out", str(tmp_path / "runs"), "--quiet"])
    assert result.exit_code == 0, result.output
    run = Path(result.output.splitlines()[0])
    summary = json.loads((run / "summary.json").read_text())
    assert (summary["n_train"], summary["n_val"], summary["n_test"]) == (36, 12, 12)
    data = summary["data"]
    assert data["class_names"] == ["cat", "dog", "fox"] and data["image_shape"] == [8, 8, 3]
    assert data["class_counts"]["val"] == {"cat": 4, "dog": 4, "fox": 4}
    assert summary["metrics"]["train"]["accuracy"] > 0.5  # chance is 1/3
    loaded = load_experiment_spec(spec)
    assert data["test_fingerprint"] == load_dataset(loaded.data, seed=5).info["test_fingerprint"]  # split_seed pins it
    tested = runner.invoke(app, ["test", str(run), "--json"])
    assert tested.exit_code == 0, tested.output
    report = json.loads(tested.output[tested.output.index("{"):])
    assert report["n_test"] == 12 and report["test_fingerprint"] == data["test_fingerprint"]
    ledger = [json.loads(line) for line in (tmp_path / "runs" / "test_ledger.jsonl").read_text().splitlines()]
    assert [entry["test_fingerprint"] for entry in ledger] == [data["test_fingerprint"]]
