import csv
import json
import subprocess
import sys

import joblib
import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.svm import SVC

HEADER = ["sepal_length", "sepal_width", "petal_length", "petal_width"]


def _run(*args):
    return subprocess.run([sys.executable, "-m", "skcem", *args], capture_output=True,
                          text=True, timeout=300)


def _write_csv(path, header, rows):
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(header)
        writer.writerows(rows)


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    from sklearn.datasets import load_iris

    X, y = load_iris(return_X_y=True)
    folder = tmp_path_factory.mktemp("cli")
    model = LogisticRegression(max_iter=1000).fit(X, y)
    joblib.dump(model, folder / "model.joblib")
    joblib.dump(SVC().fit(X, y), folder / "svc.joblib")
    _write_csv(folder / "train.csv", HEADER, X)
    _write_csv(folder / "data.csv", HEADER, X[[0, 60, 120]])
    _write_csv(folder / "train_target.csv", HEADER + ["species"], np.column_stack([X, y]))
    _write_csv(folder / "bad_columns.csv", HEADER[:3], X[:2, :3])
    return folder, model, X


def test_explain_writes_one_row_per_instance(files):
    folder, model, X = files
    out = folder / "pp.json"
    result = _run("explain", "--model", str(folder / "model.joblib"), "--data",
                  str(folder / "data.csv"), "--train", str(folder / "train.csv"), "--mode",
                  "PP", "--params", "max_iterations=300", "c_steps=5", "--out", str(out))
    assert result.returncode == 0, result.stderr
    assert "PP" in result.stderr  # the progress bar and summary go to stderr
    rows = json.loads(out.read_text())
    assert [r["row"] for r in rows] == [0, 1, 2]
    assert [r["class"] for r in rows] == model.predict(X[[0, 60, 120]]).tolist()
    for r in rows:
        if r["found"]:
            assert r["PP_class"] == r["class"]
            assert set(r["changed"]) <= set(HEADER) and r["changed"]


def test_explain_csv_output_and_quiet(files):
    folder, _, _ = files
    out = folder / "pn.csv"
    result = _run("explain", "--model", str(folder / "model.joblib"), "--data",
                  str(folder / "data.csv"), "--mode", "PN", "--params", "max_iterations=200",
                  "c_steps=4", "clip=(-1000.0, 1000.0)", "--out", str(out), "--quiet")
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    with open(out) as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 3 and set(rows[0]) == {"row", "found", "class", "PN_class", "changed"}


@pytest.mark.parametrize("args, message", [
    (["--model", "missing.joblib"], "--model: no such file"),
    (["--data", "missing.csv"], "--data: no such file"),
    (["--data", "bad_columns.csv"], "3 columns, but the model expects 4"),
    (["--model", "svc.joblib"], "--model: the model has no predict_proba"),
    (["--params", "beta"], "--params: expected key=value"),
    (["--params", "beta=-1"], "'beta' parameter"),
])
def test_explain_bad_input_exits_2_with_one_line(files, args, message):
    folder, _, _ = files
    options = {"--model": "model.joblib", "--data": "data.csv"}
    extra = []
    for i in range(0, len(args), 2):
        if args[i] in options:
            options[args[i]] = args[i + 1]
        else:
            extra += args[i:i + 2]
    command = ["explain", "--model", str(folder / options["--model"]), "--data",
               str(folder / options["--data"]), "--out", str(folder / "x.json"), *extra]
    result = _run(*command)
    assert result.returncode == 2
    assert message in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_similarity_writes_neighbours(files):
    folder, model, X = files
    out = folder / "sim.json"
    result = _run("similarity", "--model", str(folder / "model.joblib"), "--train",
                  str(folder / "train_target.csv"), "--target", "species", "--data",
                  str(folder / "data.csv"), "-k", "4", "--sim-fn", "grad_cos", "--out",
                  str(out))
    assert result.returncode == 0, result.stderr
    rows = json.loads(out.read_text())
    assert len(rows) == 3 and all(len(r["neighbors"]) == 4 for r in rows)
    assert all(np.all(np.diff(r["scores"]) <= 1e-12) for r in rows)
    # a training row that is also a test row is (one of) its own most similar
    assert rows[0]["scores"][0] == pytest.approx(1.0, abs=1e-3)


def test_similarity_unknown_target_column(files):
    folder, _, _ = files
    result = _run("similarity", "--model", str(folder / "model.joblib"), "--train",
                  str(folder / "train_target.csv"), "--target", "label", "--data",
                  str(folder / "data.csv"), "--out", str(folder / "s.json"))
    assert result.returncode == 2 and "--target: no column 'label'" in result.stderr


def test_demo_prints_the_table_and_writes_the_figure(tmp_path):
    figure = tmp_path / "demo.png"
    result = _run("demo", "-n", "2", "--figure", str(figure))
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].startswith("MLPClassifier(32,) on digits: test accuracy")
    header = next(i for i, line in enumerate(lines) if line.strip().startswith("instance"))
    rows = [line.split() for line in lines[header + 2:header + 4]]
    assert [row[0] for row in rows] == ["0", "1"]
    assert all(row[1] != row[2] for row in rows if row[2] != "-")  # a PN changes the class
    assert all(row[1] == row[4] for row in rows if row[4] != "-")  # a PP keeps it
    assert figure.stat().st_size > 5000
