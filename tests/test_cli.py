import csv
import json
import subprocess
import sys
import warnings

import joblib
import numpy as np
import pytest
from sklearn.datasets import load_iris
from sklearn.ensemble import VotingClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.naive_bayes import GaussianNB
from sklearn.svm import SVC

from skcem import CounterfactualExplainer, GradientSimilarityExplainer
from skcem.__main__ import main

HEADER = ["sepal_length", "sepal_width", "petal_length", "petal_width"]
SPECIES = np.array(["setosa", "versicolor", "virginica"])


def _run(*args):
    return subprocess.run([sys.executable, "-m", "skcem", *args], capture_output=True,
                          text=True, timeout=300)


def _main(capsys, *args):
    """Run the command line in this process: its exit code and its stderr."""
    code = main([str(arg) for arg in args])
    return code, capsys.readouterr().err


def _write_csv(path, header, rows, encoding="utf-8"):
    with open(path, "w", newline="", encoding=encoding) as f:
        writer = csv.writer(f)
        writer.writerow(header)
        writer.writerows(rows)


def _neighbours(model, X_train, y_train, X, k, sim_fn="grad_dot"):
    """What the Python API answers, for the command line to match."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "X does not have valid feature names")
        explainer = GradientSimilarityExplainer(model, sim_fn=sim_fn).fit(X_train, y_train)
        return explainer.kneighbors(X, n_neighbors=k)


def _command(command, folder, model="model.joblib", data="data.csv", train=None,
             out="out.json"):
    """The arguments of ``command`` on files of ``folder``."""
    args = [command, "--model", folder / model, "--data", folder / data, "--out", folder / out,
            "--quiet"]
    if command == "similarity":
        return args + ["--train", folder / (train or "train_target.csv"), "--target", "species"]
    return args + (["--train", folder / train] if train else [])


def _check_neighbours(out, scores, indices):
    rows = json.loads(out.read_text())
    assert [r["row"] for r in rows] == list(range(len(indices)))
    assert [r["neighbors"] for r in rows] == indices.tolist()
    np.testing.assert_allclose([r["scores"] for r in rows], scores, rtol=1e-6)


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    X, y = load_iris(return_X_y=True)
    folder = tmp_path_factory.mktemp("cli")
    model = LogisticRegression(max_iter=1000).fit(X, y)
    joblib.dump(model, folder / "model.joblib")
    joblib.dump(VotingClassifier([("nb", GaussianNB()), ("svc", SVC())]).fit(X, y),
                folder / "hard_voting.joblib")
    joblib.dump(SVC().fit(X, y), folder / "svc.joblib")
    from sklearn.linear_model import LinearRegression

    joblib.dump(LinearRegression().fit(X, y), folder / "regressor.joblib")
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
    assert "PP" in result.stderr  # the summary goes to stderr
    assert "rows" not in result.stderr  # no progress bar where stderr is not a terminal
    rows = json.loads(out.read_text())
    assert [r["row"] for r in rows] == [0, 1, 2]
    assert [r["class"] for r in rows] == model.predict(X[[0, 60, 120]]).tolist()
    n_found = sum(r["found"] for r in rows)
    assert n_found > 0 and f"{n_found} of 3 PPs found" in result.stderr
    for r in rows:
        if r["found"]:
            assert r["PP_class"] == r["class"]
            # What the PP keeps (its other features are at their no-information value).
            assert "changed" not in r and set(r["kept"]) <= set(HEADER)
        else:
            assert r["PP_class"] is None and r["kept"] == {}


def test_explain_csv_output_and_quiet(files):
    folder, model, X = files
    out = folder / "pn.csv"
    result = _run("explain", "--model", str(folder / "model.joblib"), "--data",
                  str(folder / "data.csv"), "--mode", "PN", "--params", "max_iterations=200",
                  "c_steps=4", "clip=(-1000.0, 1000.0)", "--out", str(out), "--quiet")
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    with open(out) as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 3 and set(rows[0]) == {"row", "found", "class", "PN_class", "distance",
                                            "changed"}
    assert [r["row"] for r in rows] == ["0", "1", "2"]
    assert [int(r["class"]) for r in rows] == model.predict(X[[0, 60, 120]]).tolist()
    assert any(r["found"] == "True" for r in rows)
    for r, x in zip(rows, X[[0, 60, 120]]):
        changed = json.loads(r["changed"])
        if r["found"] == "True":
            pn = x.copy()
            pn[[HEADER.index(name) for name in changed]] = list(changed.values())
            assert int(r["PN_class"]) == model.predict(pn[None])[0] != int(r["class"])
        else:
            assert r["found"] == "False" and r["PN_class"] == "" and changed == {}


def test_explain_a_classifier_with_a_decision_function_only(files):
    """An SVC without probabilities: its counterfactuals, in other classes by its predict."""
    folder, _, X = files
    svc = joblib.load(folder / "svc.joblib")
    out = folder / "svc.csv"
    result = _run("explain", "--model", str(folder / "svc.joblib"), "--data",
                  str(folder / "data.csv"), "--train", str(folder / "train.csv"), "--mode", "CF",
                  "--out", str(out), "--quiet")
    assert result.returncode == 0, result.stderr
    with open(out) as f:
        rows = list(csv.DictReader(f))
    assert [int(r["class"]) for r in rows] == svc.predict(X[[0, 60, 120]]).tolist()
    assert all(r["found"] == "True" for r in rows)
    for r, x in zip(rows, X[[0, 60, 120]]):
        answer = x.copy()
        changed = json.loads(r["changed"])
        answer[[HEADER.index(name) for name in changed]] = list(changed.values())
        assert int(r["CF_class"]) == svc.predict(answer[None])[0] != int(r["class"])


@pytest.mark.parametrize("args, message", [
    (["--model", "missing.joblib"], "--model: no such file"),
    (["--model", "data.csv"], "it takes a fitted model saved with joblib.dump"),
    (["--data", "missing.csv"], "--data: no such file"),
    (["--data", "bad_columns.csv"], "3 columns, but the model expects 4"),
    # not the predict_proba hint, which cannot work for a regressor
    (["--model", "regressor.joblib"], "--model: the LinearRegression is a regressor; skcem "
                                      "explains classifiers"),
    (["--model", "hard_voting.joblib"], "--model: the VotingClassifier has neither predict_proba "
                                        "nor a decision_function whose largest score it "
                                        "predicts, which the explainers need: "
                                        "VotingClassifier(voting='soft') gives them"),
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
    y = load_iris(return_X_y=True)[1]
    scores, indices = _neighbours(model, X, y, X[[0, 60, 120]], 4, "grad_cos")
    assert [r["row"] for r in rows] == [0, 1, 2]
    assert [r["neighbors"] for r in rows] == indices.tolist()
    np.testing.assert_allclose([r["scores"] for r in rows], scores, rtol=1e-6)
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
    assert any(row[2] != "-" for row in rows) and any(row[4] != "-" for row in rows)
    assert all(row[1] != row[2] for row in rows if row[2] != "-")  # a PN changes the class
    assert all(row[1] == row[4] for row in rows if row[4] != "-")  # a PP keeps it
    assert figure.stat().st_size > 5000


@pytest.mark.parametrize("args, message", [
    (["-n", "0"], "-n: the test digits to explain, at least 1; got 0"),
    (["-n", "-1"], "-n: the test digits to explain, at least 1; got -1"),
    (["--figure", "no_such_folder/demo.png"],
     "--figure: no folder no_such_folder to write demo.png in"),
    # found by a user: a format matplotlib does not write failed after all the work, and a
    # folder was written to as a hidden ".png"
    (["--figure", "demo.xyz"], "--figure: matplotlib writes no .xyz files; give one of"),
    (["--figure", "."], "--figure: . is a folder; name the image file to write"),
])
def test_demo_options_are_checked_first(capsys, args, message):
    # -n 0 ended in a traceback, -1 explained 449 digits, a missing folder failed at the end
    pytest.importorskip("matplotlib")
    code, err = _main(capsys, "demo", *args)
    assert code == 2 and err.strip().startswith(f"skcem demo: error: {message}")


def test_demo_says_the_file_it_writes_and_no_warning(tmp_path):
    pytest.importorskip("matplotlib")
    result = _run("demo", "-n", "2", "--figure", str(tmp_path / "demo"))
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "demo.png").is_file()
    assert f"written to {tmp_path / 'demo.png'}" in result.stdout
    assert "Warning" not in result.stderr


@pytest.fixture(scope="module")
def species(files):
    """A model fitted on class names, and training files whose target column holds them."""
    folder, _, X = files
    y = SPECIES[load_iris(return_X_y=True)[1]]
    model = LogisticRegression(max_iter=1000).fit(X, y)
    joblib.dump(model, folder / "species.joblib")
    _write_csv(folder / "train_species.csv", HEADER + ["species"],
               [[*x, label] for x, label in zip(X, y)])
    _write_csv(folder / "data_species.csv", ["species"] + HEADER,
               [[y[i], *X[i]] for i in [0, 60, 120]])
    return model, y


@pytest.fixture(scope="module")
def named(files):
    """A model fitted on a DataFrame, which knows the names of its features."""
    pd = pytest.importorskip("pandas")
    folder, _, X = files
    model = LogisticRegression(max_iter=1000).fit(pd.DataFrame(X, columns=HEADER),
                                                  load_iris(return_X_y=True)[1])
    joblib.dump(model, folder / "named.joblib")
    return model


@pytest.mark.parametrize("command", ["explain", "similarity"])
@pytest.mark.parametrize("out, message", [
    ("missing/out.json", "--out: cannot write {out}: No such file or directory"),
    ("train.csv/out.json", "--out: cannot write {out}: Not a directory"),
    ("a_folder.json", "--out: cannot write {out}: Is a directory"),
    ("out.txt", "--out: use a .json or .csv file, or - (standard output), not out.txt"),
    ("not_left_behind.json", "--model: no such file"),
])
def test_out_is_checked_before_anything_else(files, capsys, command, out, message):
    folder, _, _ = files
    (folder / "a_folder.json").mkdir(exist_ok=True)
    # a missing model as well: --out must be the first thing checked
    code, err = _main(capsys, *_command(command, folder, model="missing.joblib", out=out))
    assert code == 2
    assert message.format(out=folder / out) in err and len(err.strip().splitlines()) == 1
    assert not (folder / "not_left_behind.json").exists()


def test_blank_lines_are_ignored(files, capsys):
    folder, model, X = files
    for name in ["data.csv", "train_target.csv"]:
        lines = (folder / name).read_text().splitlines()
        text = "\n".join([lines[0], "", lines[1], " ", *lines[2:]])
        (folder / f"blank_{name}").write_text(text + "\n\n")
    code, err = _main(capsys, *_command("similarity", folder, data="blank_data.csv",
                                        train="blank_train_target.csv"), "-k", "3")
    assert code == 0, err
    y = load_iris(return_X_y=True)[1]
    _check_neighbours(folder / "out.json", *_neighbours(model, X, y, X[[0, 60, 120]], 3))


@pytest.mark.parametrize("row, message", [
    (["5.1", "3.5", "1.4"], "row 1 (line 4) has 3 cells, but the header has 4 columns"),
    (["5.1", "3.5", "abc", "0.2"], "row 1 (line 4), column 'petal_length': not a number: 'abc'"),
    (["5.1", "3.5", "1.4", "0.2", "7"], "row 1 (line 4) has 5 cells, but the header has 4"),
])
def test_bad_cell_is_named_by_row_line_and_column(files, capsys, row, message):
    folder, _, _ = files
    path = folder / "bad_cell.csv"
    path.write_text("\n".join([",".join(HEADER), "", "5.1,3.5,1.4,0.2", ",".join(row)]) + "\n")
    code, err = _main(capsys, *_command("explain", folder, data="bad_cell.csv"))
    assert code == 2 and f"--data: {path} {message}" in err
    assert len(err.strip().splitlines()) == 1


def test_exact_search_writes_the_proven_gap(tmp_path, capsys):
    # a CLI user could not tell a proven optimum from an answer cut by max_time
    from sklearn.tree import DecisionTreeClassifier

    X, y = load_iris(return_X_y=True)
    joblib.dump(DecisionTreeClassifier(max_depth=3, random_state=0).fit(X, y),
                tmp_path / "tree.joblib")
    _write_csv(tmp_path / "train.csv", HEADER, X)
    _write_csv(tmp_path / "data.csv", HEADER, X[[0, 60, 120]])
    code, err = _main(capsys, "explain", "--model", tmp_path / "tree.joblib", "--data",
                      tmp_path / "data.csv", "--train", tmp_path / "train.csv", "--mode", "CF",
                      "--params", "search=exact", "--out", tmp_path / "out.json", "--quiet")
    assert code == 0, err
    rows = json.loads((tmp_path / "out.json").read_text())
    assert [row["gap"] for row in rows] == [0.0, 0.0, 0.0]  # a small tree: proven optimal


def test_a_model_of_category_columns_is_told_that_a_csv_holds_text(tmp_path, capsys):
    lightgbm = pytest.importorskip("lightgbm")
    pd = pytest.importorskip("pandas")
    rng = np.random.RandomState(0)
    frame = pd.DataFrame({"num": rng.normal(size=200).round(3),
                          "col": pd.Categorical(rng.choice(["red", "green", "blue"], 200))})
    y = ((frame.num + (frame.col == "red") * 1.5) > 1.0).astype(int).to_numpy()
    model = lightgbm.LGBMClassifier(n_estimators=5, min_child_samples=5, verbose=-1)
    joblib.dump(model.fit(frame, y), tmp_path / "model.joblib")
    frame.to_csv(tmp_path / "train.csv", index=False)
    frame.iloc[:3].to_csv(tmp_path / "data.csv", index=False)
    code, err = _main(capsys, "explain", "--model", tmp_path / "model.joblib", "--data",
                      tmp_path / "data.csv", "--train", tmp_path / "train.csv", "--out",
                      tmp_path / "out.json", "--quiet")
    assert code == 2 and "lightgbm models trained on pandas category columns take no text" \
        in err


def test_similarity_k_beyond_the_training_rows_names_k(files, capsys):
    folder, _, _ = files
    code, err = _main(capsys, *_command("similarity", folder), "-k", "500")
    assert code == 2 and "-k: must be 1 to the 150 rows of --train; got 500" in err


def test_empty_cells_are_missing_values(tmp_path, capsys):
    # they were refused, even for a Pipeline that imputes them
    pd = pytest.importorskip("pandas")
    from sklearn.compose import make_column_transformer
    from sklearn.impute import SimpleImputer
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder

    rng = np.random.RandomState(0)
    frame = pd.DataFrame({"a": rng.normal(size=150), "n": rng.randint(0, 9, 150),
                          "c": rng.choice(["x", "y", "z"], 150)})
    frame.loc[rng.rand(150) < 0.3, "c"] = None
    frame.loc[rng.rand(150) < 0.2, "n"] = None
    y = (frame.a > 0).astype(int)
    imputed = make_pipeline(make_column_transformer(
        (make_pipeline(SimpleImputer(strategy="most_frequent"), OneHotEncoder()), ["c"]),
        (SimpleImputer(), ["n"]), remainder="passthrough"), LogisticRegression()).fit(frame, y)
    joblib.dump(imputed, tmp_path / "imputed.joblib")
    plain = LogisticRegression().fit(frame[["a"]].assign(n=frame.n.fillna(0)), y)
    joblib.dump(plain, tmp_path / "plain.joblib")
    frame.to_csv(tmp_path / "train.csv", index=False)
    rows = frame[frame.c.isna() & frame.n.isna()].iloc[:3]
    assert len(rows) == 3
    rows.to_csv(tmp_path / "data.csv", index=False)
    assert ",," in (tmp_path / "data.csv").read_text()
    code, err = _main(capsys, "explain", "--model", tmp_path / "imputed.joblib", "--data",
                      tmp_path / "data.csv", "--train", tmp_path / "train.csv", "--mode", "CF",
                      "--out", tmp_path / "out.json", "--quiet")
    assert code == 0, err
    answers = json.loads((tmp_path / "out.json").read_text())
    assert [row["found"] for row in answers] == [True] * 3
    for row in answers:  # the missing cells stay missing: never changed
        assert not {"c", "n"} & set(row["changed"])
    rows[["a", "n"]].to_csv(tmp_path / "numeric.csv", index=False)
    frame[["a", "n"]].to_csv(tmp_path / "numeric_train.csv", index=False)
    code, err = _main(capsys, "explain", "--model", tmp_path / "plain.joblib", "--data",
                      tmp_path / "numeric.csv", "--train", tmp_path / "numeric_train.csv",
                      "--out", tmp_path / "out.json", "--quiet")
    assert code == 2 and "Input X contains NaN (in 'n')" in err and "SimpleImputer" in err


def test_csv_with_a_byte_order_mark(files, named, capsys):
    folder, _, X = files
    y = load_iris(return_X_y=True)[1]
    _write_csv(folder / "bom_train.csv", HEADER + ["species"], np.column_stack([X, y]),
               encoding="utf-8-sig")
    _write_csv(folder / "bom_data.csv", HEADER, X[[0, 60, 120]], encoding="utf-8-sig")
    assert (folder / "bom_data.csv").read_bytes().startswith(b"\xef\xbb\xbf")
    code, err = _main(capsys, *_command("similarity", folder, model="named.joblib",
                                        data="bom_data.csv", train="bom_train.csv"), "-k", "3")
    assert code == 0, err
    _check_neighbours(folder / "out.json", *_neighbours(named, X, y, X[[0, 60, 120]], 3))


@pytest.mark.parametrize("data", ["data.csv", "data_species.csv"])
def test_similarity_with_class_names_as_target(files, species, capsys, data):
    folder, _, X = files
    model, y = species
    code, err = _main(capsys, *_command("similarity", folder, model="species.joblib",
                                        data=data, train="train_species.csv"), "-k", "3")
    assert code == 0, err
    _check_neighbours(folder / "out.json", *_neighbours(model, X, y, X[[0, 60, 120]], 3))


@pytest.mark.parametrize("model_file", ["species.joblib", "model.joblib"])
def test_similarity_takes_the_test_targets_from_data_where_it_has_them(files, species, capsys,
                                                                        model_file):
    folder, numeric_model, X = files
    model, y = species if model_file == "species.joblib" \
        else (numeric_model, load_iris(return_X_y=True)[1])
    rows = [0, 60, 120]
    # labels other than the model's predictions: the scores of another loss
    labels = y[[60, 120, 0]]
    assert not np.any(labels == model.predict(X[rows]))
    _write_csv(folder / "data_relabelled.csv", HEADER + ["species"],
               [[*X[i], label] for i, label in zip(rows, labels)])
    train = "train_species.csv" if model_file == "species.joblib" else None
    code, err = _main(capsys, *_command("similarity", folder, model=model_file,
                                        data="data_relabelled.csv", train=train), "-k", "3")
    assert code == 0, err
    explainer = GradientSimilarityExplainer(model).fit(X, y)
    expected = explainer.kneighbors(X[rows], n_neighbors=3, y=labels)
    _check_neighbours(folder / "out.json", *expected)
    assert not np.array_equal(expected[1], _neighbours(model, X, y, X[rows], 3)[1])
    # a label there that is not a class is named with its file and row
    _write_csv(folder / "data_bad_label.csv", HEADER + ["species"],
               [[*X[i], label] for i, label in zip(rows, [labels[0], "7", labels[2]])])
    code, err = _main(capsys, *_command("similarity", folder, model=model_file,
                                        data="data_bad_label.csv", train=train))
    assert code == 2 and f"--target: '7' in {folder / 'data_bad_label.csv'} row 1 (line 3)" in err


@pytest.mark.parametrize("model, label, classes", [
    ("species.joblib", "virginca", "['setosa', 'versicolor', 'virginica']"),
    ("model.joblib", "1.5", "[0, 1, 2]"),
])
def test_similarity_label_not_a_class(files, species, capsys, model, label, classes):
    folder, _, X = files
    _, y = species
    labels = np.array(y, dtype=object) if model == "species.joblib" \
        else load_iris(return_X_y=True)[1].astype(object)
    labels[2] = label
    path = folder / "unknown_label.csv"
    _write_csv(path, HEADER + ["species"], [[*x, v] for x, v in zip(X, labels)])
    code, err = _main(capsys, *_command("similarity", folder, model=model,
                                        train="unknown_label.csv"))
    assert code == 2 and len(err.strip().splitlines()) == 1
    assert f"--target: '{label}' in {path} row 2 (line 4) is not one of the model's classes " \
           f"{classes}" in err


@pytest.mark.parametrize("command", ["explain", "similarity"])
def test_columns_in_another_order_are_put_in_the_models_order(files, named, capsys, command):
    folder, _, X = files
    y = load_iris(return_X_y=True)[1]
    order = [3, 1, 0, 2]
    _write_csv(folder / "data_shuffled.csv", [HEADER[j] for j in order], X[[0, 60, 120]][:, order])
    _write_csv(folder / "train_shuffled.csv", [HEADER[j] for j in order], X[:, order])
    _write_csv(folder / "train_target_shuffled.csv", [HEADER[j] for j in order[:2]] + ["species"]
               + [HEADER[j] for j in order[2:]],
               np.column_stack([X[:, order[:2]], y, X[:, order[2:]]]))
    train = "train_target_shuffled.csv" if command == "similarity" else "train_shuffled.csv"
    params = ["-k", "3"] if command == "similarity" else \
        ["--params", "max_iterations=200", "c_steps=4", "clip=(-1000.0, 1000.0)"]
    code, err = _main(capsys, *_command(command, folder, model="named.joblib",
                                        data="data_shuffled.csv", train=train), *params)
    assert code == 0, err
    if command == "similarity":
        _check_neighbours(folder / "out.json", *_neighbours(named, X, y, X[[0, 60, 120]], 3))
        return
    rows = json.loads((folder / "out.json").read_text())
    assert [r["class"] for r in rows] == named.predict(_frame(X[[0, 60, 120]])).tolist()
    assert any(r["found"] for r in rows)
    for r, x in zip(rows, X[[0, 60, 120]]):
        if r["found"]:
            pn = x.copy()
            pn[[HEADER.index(name) for name in r["changed"]]] = list(r["changed"].values())
            assert r["PN_class"] == named.predict(_frame(pn[None]))[0] != r["class"]


def _frame(X):
    import pandas as pd

    return pd.DataFrame(X, columns=HEADER)


@pytest.mark.parametrize("command, option, model", [
    ("explain", "--data", "named.joblib"),
    ("explain", "--train", "named.joblib"),
    ("explain", "--train", "model.joblib"),
    ("similarity", "--data", "named.joblib"),
    ("similarity", "--train", "named.joblib"),
    ("similarity", "--data", "model.joblib"),
])
def test_other_column_names_are_listed(files, named, capsys, command, option, model):
    folder, _, X = files
    renamed = HEADER[:3] + ["z"]
    _write_csv(folder / "renamed.csv", renamed, X[:5])
    _write_csv(folder / "renamed_target.csv", renamed + ["species"],
               np.column_stack([X, load_iris(return_X_y=True)[1]]))
    paths = {"data": "data.csv", "train": "train.csv" if command == "explain" else None}
    paths[option[2:]] = "renamed_target.csv" if (command, option) == ("similarity", "--train") \
        else "renamed.csv"
    code, err = _main(capsys, *_command(command, folder, model=model, **paths))
    assert code == 2 and len(err.strip().splitlines()) == 1
    assert f"{option}: missing columns ['petal_width'], unexpected columns ['z']" in err
    assert "--drop z" in err


@pytest.mark.parametrize("command, option", [("explain", "--data"), ("similarity", "--train")])
def test_keras_model_and_csv_of_another_width(files, capsys, command, option):
    keras = pytest.importorskip("keras")
    folder, _, _ = files
    model = keras.Sequential([keras.Input((2, 3)), keras.layers.Flatten(),
                              keras.layers.Dense(3, activation="softmax")])
    model.save(folder / "tiny.keras")
    code, err = _main(capsys, *_command(command, folder, model="tiny.keras"))
    assert code == 2 and len(err.strip().splitlines()) == 1
    assert f"{option}: 4 columns, but the Keras model's input shape (2, 3) takes 6 values " \
           "per row" in err


def test_params_that_belong_to_other_options_or_do_not_exist(tmp_path, capsys):
    from sklearn.datasets import load_iris
    from sklearn.linear_model import LogisticRegression
    import joblib
    from skcem.__main__ import main

    X, y = load_iris(return_X_y=True)
    model = tmp_path / "m.joblib"
    joblib.dump(LogisticRegression(max_iter=500).fit(X, y), model)
    data = tmp_path / "d.csv"
    data.write_text("a,b,c,d\n" + "\n".join(",".join(map(str, row)) for row in X[:3]) + "\n")
    out = str(tmp_path / "o.json")
    assert main(["explain", "--model", str(model), "--data", str(data), "--out", out,
                 "--params", "mode=PP"]) == 2
    assert "set mode with --mode" in capsys.readouterr().err
    assert main(["explain", "--model", str(model), "--data", str(data), "--out", out,
                 "--params", "max_iteration=5"]) == 2
    assert "unknown CEMExplainer parameters ['max_iteration']" in capsys.readouterr().err


def test_explain_a_csv_with_text_columns_and_a_saved_pipeline(tmp_path, capsys):
    from tests.test_tables import CATEGORICAL, make_table, pipeline

    X, y = make_table(300)
    model = pipeline(LogisticRegression(max_iter=1000)).fit(X, y)
    joblib.dump(model, tmp_path / "pipeline.joblib")
    X.assign(label=y).to_csv(tmp_path / "train.csv", index=False)  # with its label column
    X.iloc[:5][X.columns[::-1]].to_csv(tmp_path / "data.csv", index=False)  # other order
    code, err = _main(capsys, "explain", "--model", tmp_path / "pipeline.joblib", "--data",
                      tmp_path / "data.csv", "--train", tmp_path / "train.csv", "--out",
                      tmp_path / "out.json", "--mode", "PN", "--quiet", "--drop", "label")
    assert code == 0, err
    rows = json.loads((tmp_path / "out.json").read_text())
    assert len(rows) == 5 and any(row["found"] for row in rows)
    for i, row in enumerate(rows):
        if not row["found"]:
            continue
        answer = X.iloc[[i]].copy()
        for name, value in row["changed"].items():
            if name in CATEGORICAL:
                before, after = value.split(" → ")
                assert before == X[name].iloc[i] and after in set(X[name])
                value = after
            answer[name] = [value]
        answer = answer.astype(X.dtypes.to_dict())
        assert model.predict(answer)[0] != model.predict(X.iloc[[i]])[0]


def test_an_ordered_text_column_takes_a_direction(tmp_path, capsys):
    """Found by a user: a CSV carries no ordered dtype, so an ordered category's direction
    (education may only rise) could not be given on the command line."""
    import pandas as pd
    from sklearn.compose import make_column_transformer
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder

    rng = np.random.default_rng(0)
    levels = ["low", "mid", "high"]
    grade = rng.choice(levels, 400)
    x = rng.normal(size=400)
    y = (3 * np.array([levels.index(g) for g in grade]) + x > 3).astype(int)
    table = pd.DataFrame({"grade": grade, "x": x})
    model = make_pipeline(make_column_transformer((OneHotEncoder(), ["grade"]),
                                                  remainder="passthrough"),
                          LogisticRegression()).fit(table, y)
    joblib.dump(model, tmp_path / "model.joblib")
    table.to_csv(tmp_path / "train.csv", index=False)
    rows = table[(model.predict(table) == 1) & (table["grade"] != "high")].iloc[:8]
    rows.to_csv(tmp_path / "data.csv", index=False)
    args = ["explain", "--model", tmp_path / "model.joblib", "--data", tmp_path / "data.csv",
            "--train", tmp_path / "train.csv", "--mode", "CF", "--out", tmp_path / "out.json",
            "--quiet", "--params", "directions=grade:increase"]
    code, err = _main(capsys, *args)
    assert code == 2 and "'grade' a direction, but its categories have no order: give " \
        "its levels, lowest first, with --ordered COLUMN=LEVEL,LEVEL" in err, err
    code, err = _main(capsys, *args, "--ordered", "grade=low,mid,high")
    assert code == 0, err
    answers = json.loads((tmp_path / "out.json").read_text())
    assert sum(row["found"] for row in answers) >= 6
    python = CounterfactualExplainer(model, directions={"grade": "increase"}).fit(
        table.astype({"grade": pd.CategoricalDtype(levels, ordered=True)})).explain(
        rows.astype({"grade": pd.CategoricalDtype(levels, ordered=True)}))
    for i, row in enumerate(answers):
        assert row["found"] == python.found[i]
        if "grade" in row["changed"]:
            before, after = row["changed"]["grade"].split(" → ")
            assert levels.index(after) > levels.index(before)
    # without the order, lowering the grade is the cheaper answer for some rows
    free = CounterfactualExplainer(model).fit(table).explain(rows)
    assert any(levels.index(g) < levels.index(before) for g, before, found in zip(
        free.explanation["grade"], rows["grade"], free.found) if found)
    code, err = _main(capsys, *args, "--ordered", "grade=low,high")
    assert code == 2 and "--ordered: column 'grade' of" in err and "'mid'" in err


def test_ordered_levels_are_spelled_alike_in_every_file(tmp_path, capsys):
    """Found by a review: a level absent from a file lost its leading space (" Doctorate"
    became "Doctorate"), so --train and --data held other categories than each other and
    the model; a level spelled two ways made cells missing without a word."""
    import pandas as pd
    from sklearn.compose import make_column_transformer
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder

    rng = np.random.default_rng(0)
    levels = [" low", " mid", " high"]
    grade = rng.choice(levels, 300)
    x = rng.normal(size=300)
    y = (3 * np.array([levels.index(g) for g in grade]) + 0.3 * x > 3.5).astype(int)
    table = pd.DataFrame({"grade": grade, "x": x})
    model = make_pipeline(make_column_transformer((OneHotEncoder(), ["grade"]),
                                                  remainder="passthrough"),
                          LogisticRegression(C=100)).fit(table, y)
    joblib.dump(model, tmp_path / "model.joblib")
    # no " high" row in --train, only " mid" ones in --data: " high" as the model knows it
    table[table["grade"] != " high"].to_csv(tmp_path / "train.csv", index=False)
    rows = table[(table["grade"] == " mid") & (model.predict(table) == 0)
                 & (table["x"] < -0.5)].iloc[:6]
    rows.to_csv(tmp_path / "data.csv", index=False)
    args = ["explain", "--model", tmp_path / "model.joblib", "--data", tmp_path / "data.csv",
            "--train", tmp_path / "train.csv", "--mode", "CF", "--out", tmp_path / "out.json",
            "--quiet", "--params", "directions=grade:increase", "--ordered",
            "grade=low,mid,high"]
    code, err = _main(capsys, *args)
    assert code == 0, err
    answers = json.loads((tmp_path / "out.json").read_text())
    assert sum(row["changed"].get("grade") == " mid →  high" for row in answers) >= 1
    for i, row in enumerate(answers):
        assert row["found"]
        answer = rows.iloc[[i]].copy()
        answer["grade"] = row["changed"].get("grade", " mid →  mid").split(" → ")[1]
        answer["x"] = row["changed"].get("x", answer["x"].iloc[0])
        assert model.predict(answer)[0] == 1
    pd.DataFrame({"grade": [" mid", "mid"], "x": [0.0, 0.0]}).to_csv(tmp_path / "two.csv",
                                                                    index=False)
    code, err = _main(capsys, *(args[:4] + [tmp_path / "two.csv"] + args[5:]))
    assert code == 2 and "--ordered: column 'grade' writes 'mid' in several ways " \
        "(' mid', 'mid')" in err
    code, err = _main(capsys, *args[:-1], "x=1,2")
    assert code == 2 and "--ordered: column 'x' holds numbers, which are ordered already" in err
    code, err = _main(capsys, *args, "--drop", "grade")
    assert code == 2 and "--ordered: column 'grade' is in --drop too" in err


def test_similarity_params_reach_the_explainer(files, capsys):
    folder, model, X = files
    code, err = _main(capsys, *_command("similarity", folder), "-k", "3", "--params",
                      "n_components=8", "random_state=0", "precompute_grads=True")
    assert code == 0, err
    y = load_iris(return_X_y=True)[1]
    projected = GradientSimilarityExplainer(model, n_components=8, random_state=0,
                                            precompute_grads=True).fit(X, y)
    scores, indices = projected.kneighbors(X[[0, 60, 120]], n_neighbors=3)
    _check_neighbours(folder / "out.json", scores, indices)
    code, err = _main(capsys, *_command("similarity", folder), "--params", "sim_fn=grad_cos")
    assert code == 2 and "set sim_fn with --sim-fn" in err
    code, err = _main(capsys, *_command("similarity", folder), "--params", "n_component=8")
    assert code == 2 and "unknown GradientSimilarityExplainer parameters ['n_component']" in err


def test_explain_counterfactuals_with_a_plain_list_parameter(files):
    folder, model, X = files
    out = folder / "cf.json"
    result = _run("explain", "--model", str(folder / "model.joblib"), "--data",
                  str(folder / "data.csv"), "--mode", "CF", "--params", "max_iterations=300",
                  "immutable_features=sepal_length,sepal_width", "--out", str(out), "--quiet")
    assert result.returncode == 0, result.stderr
    rows = json.loads(out.read_text())
    assert sum(r["found"] for r in rows) >= 2
    for r, x in zip(rows, X[[0, 60, 120]]):
        if not r["found"]:
            continue
        assert set(r["changed"]) and not set(r["changed"]) & {"sepal_length", "sepal_width"}
        cf = x.copy()
        cf[[HEADER.index(name) for name in r["changed"]]] = list(r["changed"].values())
        assert r["CF_class"] == model.predict(cf[None])[0] != r["class"]


def test_params_take_python_literals_and_plain_lists():
    from skcem.__main__ import _parse_params

    assert _parse_params(["beta=0.2", "clip=(-5, 5)", "immutable_features=age,sex",
                          "directions={'age': 'increase'}", "no_info_val=None",
                          "categorical_features=[0, 2]", "mode=PN"]) == {
        "beta": 0.2, "clip": (-5, 5), "immutable_features": ["age", "sex"],
        "directions": {"age": "increase"}, "no_info_val": None,
        "categorical_features": [0, 2], "mode": "PN"}
    # One column name alone is a list of one; "auto" stays what it is.
    assert _parse_params(["immutable_features=sex", "categorical_features=job"]) == {
        "immutable_features": ["sex"], "categorical_features": ["job"]}
    assert _parse_params(["categorical_features=auto"]) == {"categorical_features": "auto"}
    # by column as name:value pairs ("must be an instance of 'dict'" before)
    assert _parse_params(["directions=age:increase,hours:decrease",
                          "feature_range=hours:20:60,age:18:70.5", "no_info_val=age:30"]) == {
        "directions": {"age": "increase", "hours": "decrease"},
        "feature_range": {"hours": (20, 60), "age": (18, 70.5)}, "no_info_val": {"age": 30}}


def test_similarity_regression_takes_the_test_targets_from_data(tmp_path, capsys):
    from sklearn.datasets import load_diabetes
    from sklearn.linear_model import Ridge

    X, y = load_diabetes(return_X_y=True)
    header = [f"x{j}" for j in range(X.shape[1])]
    model = Ridge().fit(X[:300], y[:300])
    joblib.dump(model, tmp_path / "ridge.joblib")
    _write_csv(tmp_path / "train.csv", header + ["target"], np.column_stack([X[:300], y[:300]]))
    _write_csv(tmp_path / "data.csv", header + ["target"], np.column_stack([X[300:303],
                                                                            y[300:303]]))
    _write_csv(tmp_path / "rows.csv", header, X[300:303])
    args = ["similarity", "--model", tmp_path / "ridge.joblib", "--train",
            tmp_path / "train.csv", "--target", "target", "--task", "regression", "--out",
            tmp_path / "out.json", "-k", "3", "--quiet"]
    code, err = _main(capsys, *args, "--data", tmp_path / "data.csv")
    assert code == 0, err
    explainer = GradientSimilarityExplainer(model, task="regression").fit(X[:300], y[:300])
    _check_neighbours(tmp_path / "out.json",
                      *explainer.kneighbors(X[300:303], n_neighbors=3, y=y[300:303]))
    code, err = _main(capsys, *args, "--data", tmp_path / "rows.csv")
    assert code == 2 and "--task regression needs each row's target: a column 'target'" in err


def test_a_misspelt_drop_column_is_named(files, capsys):
    folder, _, _ = files
    code, err = _main(capsys, *_command("explain", folder, train="train_target.csv"),
                      "--drop", "specis")
    assert code == 2 and "--drop: no column ['specis'] in --data or --train" in err


def test_an_unfitted_model_file_is_named_first(files, tmp_path, capsys):
    folder, _, _ = files
    joblib.dump(LogisticRegression(), tmp_path / "unfitted.joblib")
    code, err = _main(capsys, *_command("explain", folder, model=tmp_path / "unfitted.joblib"))
    assert code == 2
    assert err.strip() == (f"skcem explain: error: --model: {tmp_path / 'unfitted.joblib'} "
                           "holds an unfitted LogisticRegression; the command line explains a "
                           "fitted model: fit it, then save it (joblib.dump)")


def test_a_saved_explainer_as_the_model_is_named(files, tmp_path, capsys):
    """Found by a user saving a fitted explainer: the error said it was a classifier with
    neither predict_proba nor a decision_function."""
    from skcem import CounterfactualExplainer

    folder, _, _ = files
    model = joblib.load(folder / "model.joblib")
    X, _ = load_iris(return_X_y=True)
    joblib.dump(CounterfactualExplainer(model).fit(X), tmp_path / "explainer.joblib")
    code, err = _main(capsys, *_command("explain", folder, model=tmp_path / "explainer.joblib"))
    assert code == 2
    assert err.strip() == (f"skcem explain: error: --model: {tmp_path / 'explainer.joblib'} "
                           "holds a CounterfactualExplainer, an explainer; --model takes the "
                           "model it explains (a LogisticRegression here: save its "
                           "estimator_ with joblib.dump), and the command line fits the "
                           "explainer itself")


def test_warnings_and_the_missing_train_note_reach_stderr(files, tmp_path, capsys):
    folder, _, _ = files
    args = ["explain", "--model", folder / "model.joblib", "--data", folder / "data.csv",
            "--mode", "PN", "--params", "max_iterations=5", "c_steps=1",
            "--out", tmp_path / "out.json"]
    code, err = _main(capsys, *args)
    assert code == 0
    assert "skcem explain: note: no --train: the no-information values and feature ranges " \
           "are learned from the rows explained" in err
    # Five iterations at one c find no PN: the explainer's warning says so, in one line.
    lines = [line for line in err.splitlines() if line.startswith("skcem explain: warning:")]
    assert any("PN" in line and "found" in line for line in lines), err
    assert "X has feature names" not in err
    code, err = _main(capsys, *args, "--quiet")
    assert code == 0 and err == ""


def test_warnings_name_the_command_lines_options_not_attributes(files, tmp_path, capsys):
    """Found by a review: warnings on the command line named `feature_range_`, "X's rows"
    and `found`, which a user of the command line never sees."""
    folder, _, X = files
    _write_csv(tmp_path / "narrow.csv", HEADER, X[:50])  # one class: a narrower range
    code, err = _main(capsys, "explain", "--model", folder / "model.joblib", "--data",
                      folder / "data.csv", "--train", tmp_path / "narrow.csv", "--mode", "PN",
                      "--params", "max_iterations=5", "c_steps=1", "search=fista",
                      "--out", tmp_path / "out.json")
    assert code == 0
    assert "outside the feature range (the --train rows' range, or --params " \
           "feature_range=...)" in err
    assert "(--data rows 0, 1, 2); their found is false" in err
    assert "feature_range_" not in err and "`found`" not in err and "X's" not in err


def test_similarity_says_it_takes_numeric_columns(files, tmp_path, capsys):
    folder, _, X = files
    _write_csv(tmp_path / "text.csv", HEADER + ["colour", "species"],
               [list(row) + [c, 0] for row, c in zip(X[:6], "rgbrgb")])
    code, err = _main(capsys, "similarity", "--model", folder / "model.joblib", "--train",
                      tmp_path / "text.csv", "--target", "species", "--data",
                      folder / "data.csv", "--out", tmp_path / "out.json", "--quiet")
    assert code == 2
    assert "--train: column 'colour' of" in err and "holds text; similarity compares the " \
        "model's parameter gradients, which need numbers: save a Pipeline that encodes" in err
    assert len(err.strip().splitlines()) == 1


def test_similarity_hands_a_pipeline_the_text_columns(tmp_path, capsys):
    """Found by a user: the command line refused the text columns a saved Pipeline
    encodes itself."""
    import json

    pd = pytest.importorskip("pandas")
    from sklearn.compose import make_column_transformer
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    from skcem import GradientSimilarityExplainer

    rng = np.random.default_rng(0)
    X = pd.DataFrame({"price": rng.normal(10, 2, 80).round(2),
                      "city": rng.choice(["Oslo", "Lima", "Pune"], 80)})
    y = (X["price"] > 10).astype(int).to_numpy()
    model = make_pipeline(make_column_transformer((OneHotEncoder(), ["city"]),
                                                  remainder=StandardScaler()),
                          LogisticRegression()).fit(X, y)
    joblib.dump(model, tmp_path / "pipe.joblib")
    X.assign(label=y).to_csv(tmp_path / "train.csv", index=False)
    X.iloc[:3][["city", "price"]].to_csv(tmp_path / "rows.csv", index=False)
    code, err = _main(capsys, "similarity", "--model", tmp_path / "pipe.joblib", "--train",
                      tmp_path / "train.csv", "--target", "label", "--data",
                      tmp_path / "rows.csv", "-k", "4", "--out", tmp_path / "out.json",
                      "--quiet")
    assert code == 0, err
    written = json.loads((tmp_path / "out.json").read_text())
    scores, indices = GradientSimilarityExplainer(model).fit(X, y).kneighbors(X.iloc[:3], 4)
    assert [row["neighbors"] for row in written] == indices.tolist()
    np.testing.assert_allclose([row["scores"] for row in written], scores, rtol=1e-12)
    # a file written with its index: the unnamed column named, and --drop for it (found by
    # a trial: the advice named an option similarity did not have)
    X.assign(label=y).to_csv(tmp_path / "indexed.csv")
    args = ["similarity", "--model", tmp_path / "pipe.joblib", "--train",
            tmp_path / "indexed.csv", "--target", "label", "--data", tmp_path / "rows.csv",
            "-k", "4", "--out", tmp_path / "out.json", "--quiet"]
    code, err = _main(capsys, *args)
    assert code == 2 and "leave them out with --drop '' (the unnamed one: an index written " \
        "by to_csv" in err
    code, err = _main(capsys, *args, "--drop", "")
    assert code == 0, err
    assert json.loads((tmp_path / "out.json").read_text()) == written


def test_similarity_hands_a_text_pipeline_its_documents(tmp_path, capsys):
    """A saved Pipeline whose first step vectorizes documents gets the CSV's one text
    column as documents (quoted commas kept), and more columns are refused in one line."""
    import json

    pd = pytest.importorskip("pandas")
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.pipeline import make_pipeline

    from skcem import GradientSimilarityExplainer

    rng = np.random.default_rng(1)
    words = np.array(["good,", "bad", "great", "awful", "movie", "plot"])
    documents = [" ".join(rng.choice(words, 4)) for _ in range(40)]
    y = np.array(["pos" if "good," in d else "neg" for d in documents])
    model = make_pipeline(TfidfVectorizer(), LogisticRegression()).fit(documents, y)
    joblib.dump(model, tmp_path / "text.joblib")
    pd.DataFrame({"review": documents, "label": y}).to_csv(tmp_path / "train.csv",
                                                           index=False)
    pd.DataFrame({"review": documents[:3]}).to_csv(tmp_path / "rows.csv", index=False)
    args = ["similarity", "--model", tmp_path / "text.joblib", "--train",
            tmp_path / "train.csv", "--target", "label", "-k", "3", "--out",
            tmp_path / "out.json", "--quiet"]
    code, err = _main(capsys, *args, "--data", tmp_path / "rows.csv")
    assert code == 0, err
    written = json.loads((tmp_path / "out.json").read_text())
    scores, indices = GradientSimilarityExplainer(model).fit(documents, y).kneighbors(
        documents[:3], 3)
    assert [row["neighbors"] for row in written] == indices.tolist()
    np.testing.assert_allclose([row["scores"] for row in written], scores, rtol=1e-12)
    pd.DataFrame({"review": documents[:3], "stars": [1, 2, 3]}).to_csv(
        tmp_path / "two.csv", index=False)
    code, err = _main(capsys, *args, "--data", tmp_path / "two.csv")
    assert code == 2 and "unexpected columns ['stars']" in err
    # an empty document, "" in a one-column file, keeps its row (found by a review: it was
    # skipped as a blank line, and the later rows' answers moved up one), as a document
    # with no words (found by a trial: refused as missing)
    pd.DataFrame({"review": [documents[0], "", documents[1]]}).to_csv(  # writes ""
        tmp_path / "holed.csv", index=False)
    code, err = _main(capsys, *args, "--data", tmp_path / "holed.csv")
    assert code == 0, err
    written = json.loads((tmp_path / "out.json").read_text())
    scores, indices = GradientSimilarityExplainer(model).fit(documents, y).kneighbors(
        [documents[0], "", documents[1]], 3)
    assert [row["neighbors"] for row in written] == indices.tolist()
    pd.DataFrame({"review": documents, "stars": 1, "label": y}).to_csv(
        tmp_path / "train2.csv", index=False)
    args[4] = tmp_path / "train2.csv"
    code, err = _main(capsys, *args, "--data", tmp_path / "rows.csv")
    assert code == 2 and "--train: the model's Pipeline reads one document per row" in err \
        and "got 2: ['review', 'stars']" in err


def test_explain_takes_plausibility_and_refuses_a_bad_one(files, capsys):
    folder, model, X = files
    out = folder / "plausible.json"
    args = [*_command("explain", folder, train="train.csv", out="plausible.json"),
            "--mode", "CF", "--params", "search=neighbors"]
    code, err = _main(capsys, *args, "plausibility=1")
    assert code == 0, err
    rows = json.loads(out.read_text())
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "X does not have valid feature names")
        expected = CounterfactualExplainer(model, search="neighbors", plausibility=1).fit(
            X).explain(X[[0, 60, 120]])
    for r, found, explanation in zip(rows, expected.found, expected.explanation):
        assert r["found"] == found
        changed = [HEADER.index(name) for name in r["changed"]]
        np.testing.assert_allclose(list(r["changed"].values()), explanation[changed])
    code, err = _main(capsys, *args, "plausibility=-1")
    assert code == 2 and "plausibility" in err


def _days_since_2020(frame):  # a model's step that needs dates (module level: picklable)
    import pandas as pd

    return (frame - pd.Timestamp("2020-01-01")).apply(lambda column: column.dt.days)


def test_dates_read_as_dates_for_a_model_that_takes_them(tmp_path, capsys):
    pd = pytest.importorskip("pandas")
    from sklearn.compose import ColumnTransformer
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import FunctionTransformer, StandardScaler

    rng = np.random.default_rng(0)
    X = pd.DataFrame({"signup": pd.Timestamp("2020-01-01")
                      + pd.to_timedelta(rng.integers(0, 1000, 200), unit="D"),
                      "amount": rng.normal(100, 30, 200)})
    days = (X["signup"] - pd.Timestamp("2020-01-01")).dt.days
    model = make_pipeline(ColumnTransformer([
        ("days", FunctionTransformer(_days_since_2020), ["signup"]),
        ("amount", "passthrough", ["amount"])]), StandardScaler(),
        LogisticRegression()).fit(X, (days > 500).astype(int))
    joblib.dump(model, tmp_path / "model.joblib")
    X.to_csv(tmp_path / "train.csv", index=False)
    X.iloc[:4].to_csv(tmp_path / "rows.csv", index=False)
    command = ["explain", "--model", str(tmp_path / "model.joblib"), "--data",
               str(tmp_path / "rows.csv"), "--train", str(tmp_path / "train.csv"), "--mode",
               "CF", "--quiet", "--out", str(tmp_path / "out.json")]
    code, err = _main(capsys, *command)
    assert code == 2 and "give --dates signup" in err  # read as text, the model fails
    code, err = _main(capsys, *command, "--dates", "signup")
    assert code == 0, err
    rows = json.loads((tmp_path / "out.json").read_text())
    for i, row in enumerate(rows):
        assert row["found"] and set(row["changed"]) <= {"signup", "amount"}
        answer = X.iloc[[i]].copy()
        for name, value in row["changed"].items():  # dates in ISO 8601
            answer[name] = pd.Timestamp(value) if name == "signup" else value
        assert model.predict(answer)[0] == row["CF_class"] != row["class"]


def test_explain_keeps_whole_numbers_in_integer_columns_of_a_numeric_csv(tmp_path, capsys):
    """An all-numeric CSV's columns of whole numbers are integer columns, as in a DataFrame
    given to the explainer: the answers hold whole numbers there (before, floats)."""
    import pandas as pd
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    rng = np.random.default_rng(0)
    X = pd.DataFrame({"age": rng.integers(18, 80, 300), "years_edu": rng.integers(1, 17, 300),
                      "score": rng.normal(0, 1, 300).round(3)})
    y = (X.age / 60 + X.years_edu / 16 + X.score / 40 + rng.normal(0, 0.3, 300) > 1.2)
    model = make_pipeline(StandardScaler(), LogisticRegression()).fit(X, y.astype(int))
    joblib.dump(model, tmp_path / "model.joblib")
    X.to_csv(tmp_path / "train.csv", index=False)
    rows = X[~y].iloc[:4]
    rows.to_csv(tmp_path / "data.csv", index=False)
    code, err = _main(capsys, *_command("explain", tmp_path, train="train.csv"),
                      "--mode", "CF")
    assert code == 0, err
    answers = json.loads((tmp_path / "out.json").read_text())
    assert all(answer["found"] for answer in answers)
    changed = [answer["changed"] for answer in answers]
    assert any("age" in c or "years_edu" in c for c in changed)
    for c in changed:
        for name in ("age", "years_edu"):
            if name in c:
                assert float(c[name]) == round(float(c[name])), (name, c[name])
    expected = CounterfactualExplainer(model).fit(X).explain(rows).changes()
    assert changed == expected


def test_a_wide_model_and_a_csv_of_other_columns_get_a_short_line(tmp_path, capsys):
    """Found by a user: a 1,000-column model and a CSV of two other columns printed every
    missing column (8 KB) and advised dropping both, which would leave no column."""
    pd = pytest.importorskip("pandas")
    X = np.random.default_rng(0).normal(size=(40, 300))
    names = [f"f{i}" for i in range(300)]
    model = LogisticRegression().fit(pd.DataFrame(X, columns=names), np.arange(40) % 2)
    joblib.dump(model, tmp_path / "wide.joblib")
    _write_csv(tmp_path / "other.csv", ["review", "stars"], [["good", 4.0], ["bad", 1.0]])
    code, err = _main(capsys, *_command("explain", tmp_path, model="wide.joblib",
                                        data="other.csv"))
    assert code == 2 and len(err.strip().splitlines()) == 1 and len(err) < 600
    assert "missing columns ['f0', 'f1'" in err and "(300 in all)" in err
    assert "--drop" not in err and "none of the file's columns" in err


def test_classes_written_as_digits_are_targeted_as_written(tmp_path, capsys):
    """Found by a user: a model of the classes '1', '2', '3' refused target_class=2 (read
    as the number 2)."""
    X, y = load_iris(return_X_y=True)
    model = LogisticRegression(max_iter=1000).fit(X, (y + 1).astype(str))
    joblib.dump(model, tmp_path / "digits.joblib")
    _write_csv(tmp_path / "data.csv", HEADER, X[[0, 120]])
    _write_csv(tmp_path / "train.csv", HEADER, X)
    code, err = _main(capsys, *_command("explain", tmp_path, model="digits.joblib",
                                        train="train.csv"), "--mode", "CF",
                      "--params", "target_class=2")
    assert code == 0, err
    rows = json.loads((tmp_path / "out.json").read_text())
    assert [row["CF_class"] for row in rows] == ["2", "2"]


def test_without_pandas_the_csvs_column_names_still_name_the_features(tmp_path, capsys,
                                                                       monkeypatch):
    X, y = load_iris(return_X_y=True)
    joblib.dump(LogisticRegression(max_iter=1000).fit(X, y), tmp_path / "model.joblib")
    _write_csv(tmp_path / "data.csv", HEADER, X[[0, 60, 120]])
    _write_csv(tmp_path / "train.csv", HEADER, X)
    import builtins

    real_import = builtins.__import__

    def without_pandas(name, *args, **kwargs):  # as if pandas were not installed
        if name.split(".")[0] == "pandas":
            raise ImportError("No module named 'pandas'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", without_pandas)
    monkeypatch.delitem(sys.modules, "pandas")  # scikit-learn looks for it there
    code, err = _main(capsys, *_command("explain", tmp_path, train="train.csv"), "--mode",
                      "CF", "--params", "immutable_features=sepal_length,sepal_width",
                      "directions=petal_width:increase", "max_iterations=200")
    assert code == 0, err
    rows = json.loads((tmp_path / "out.json").read_text())
    assert all(row["found"] for row in rows)
    for row, x in zip(rows, X[[0, 60, 120]]):
        assert row["changed"] and set(row["changed"]) <= {"petal_length", "petal_width"}
        assert row["fixed"] == {"sepal_length": x[0], "sepal_width": x[1]}
        assert row["changed"].get("petal_width", x[3]) >= x[3]
    code, err = _main(capsys, *_command("explain", tmp_path, train="train.csv"), "--params",
                      "immutable_features=sepal_size")
    assert code == 2 and "immutable_features: no column 'sepal_size'" in err


def test_columns_the_model_knows_as_text_are_read_as_text(tmp_path, capsys):
    # "02139" was read as the number 2139 and grades "1" as 1: a model fitted on the strings
    # could not be explained from the command line.
    pd = pytest.importorskip("pandas")
    from sklearn.compose import ColumnTransformer
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    rng = np.random.default_rng(21)
    n = 400
    zips = ["02139", "00501", "10001", "94105", "60601"]
    frame = pd.DataFrame({"age": rng.integers(18, 80, n), "income": rng.normal(50, 15, n),
                          "zip": rng.choice(zips, n), "grade": rng.choice(["1", "2", "3"], n)}
                         ).astype({"zip": object, "grade": object})
    y = ((frame.age - 45) / 15 + (frame.income - 50) / 15
         + frame.zip.isin(["02139", "00501"]) * 1.2 + (frame.grade == "3") > 0.5).astype(int)
    model = make_pipeline(
        ColumnTransformer([("c", OneHotEncoder(handle_unknown="ignore"), ["zip", "grade"]),
                           ("n", StandardScaler(), ["age", "income"])]),
        RandomForestClassifier(30, random_state=0)).fit(frame, y)
    joblib.dump(model, tmp_path / "model.joblib")
    frame.to_csv(tmp_path / "train.csv", index=False)
    frame.iloc[:6].to_csv(tmp_path / "data.csv", index=False)
    code, err = _main(capsys, "explain", "--model", tmp_path / "model.joblib", "--data",
                      tmp_path / "data.csv", "--train", tmp_path / "train.csv", "--mode", "CF",
                      "--out", tmp_path / "out.json")
    assert code == 0, err
    answers = json.loads((tmp_path / "out.json").read_text())
    changed = [row["changed"] for row in answers if row["found"]]
    assert len(changed) >= 5
    shown = [value for row in changed for name, value in row.items() if name == "zip"]
    assert shown and all(value.split(" → ")[1] in zips for value in shown)


def test_true_and_false_read_as_booleans_for_a_model_fitted_on_them(tmp_path, capsys):
    # A column of True / False (as pandas writes a bool column) was read as text, and a
    # Pipeline fitted on the bool column failed on it, with a message about missing values.
    pd = pytest.importorskip("pandas")
    from sklearn.compose import ColumnTransformer
    from sklearn.pipeline import make_pipeline

    rng = np.random.default_rng(0)
    X = pd.DataFrame({"autopay": rng.random(200) < 0.5, "amount": rng.normal(100, 30, 200)})
    y = ((X["amount"] > 100) ^ X["autopay"]).astype(int)
    model = make_pipeline(ColumnTransformer([("all", "passthrough", ["autopay", "amount"])]),
                          LogisticRegression()).fit(X, y)
    joblib.dump(model, tmp_path / "model.joblib")
    X.to_csv(tmp_path / "train.csv", index=False)
    X.iloc[:4].to_csv(tmp_path / "rows.csv", index=False)
    assert "True" in (tmp_path / "rows.csv").read_text() or \
        "False" in (tmp_path / "rows.csv").read_text()
    code, err = _main(capsys, "explain", "--model", str(tmp_path / "model.joblib"), "--data",
                      str(tmp_path / "rows.csv"), "--train", str(tmp_path / "train.csv"),
                      "--mode", "CF", "--quiet", "--out", str(tmp_path / "out.json"))
    assert code == 0, err
    rows = json.loads((tmp_path / "out.json").read_text())
    assert all(row["found"] for row in rows)
    for i, row in enumerate(rows):
        answer = X.iloc[[i]].copy()
        for name, value in row["changed"].items():  # a category's "from → to"
            value = value.split(" → ")[-1] if isinstance(value, str) else value
            answer[name] = {"True": True, "False": False}.get(value, value)
        assert answer["autopay"].dtype == bool
        assert model.predict(answer)[0] == row["CF_class"] != row["class"]


def test_the_output_holds_each_answers_distance(tmp_path):
    """Found by a user: rank 0 changed 7 features and rank 1 two, and the file did not say
    why (the distance that ranks them)."""
    import joblib
    from sklearn.datasets import load_iris
    from sklearn.linear_model import LogisticRegression

    X, y = load_iris(return_X_y=True)
    model = LogisticRegression(max_iter=1000).fit(X, y)
    joblib.dump(model, tmp_path / "model.joblib")
    np.savetxt(tmp_path / "rows.csv", X[[0, 60]], delimiter=",", header="a,b,c,d",
               comments="")
    np.savetxt(tmp_path / "train.csv", X, delimiter=",", header="a,b,c,d", comments="")
    out = tmp_path / "out.json"
    assert main(["explain", "--model", str(tmp_path / "model.joblib"), "--data",
                 str(tmp_path / "rows.csv"), "--train", str(tmp_path / "train.csv"), "--mode", "CF",
                 "--n-counterfactuals", "2", "--out", str(out), "--quiet"]) == 0
    rows = json.loads(out.read_text())
    explainer = CounterfactualExplainer(model, n_counterfactuals=2).fit(X)
    exp = explainer.explain(X[[0, 60]])
    for row in rows:
        assert row["distance"] == pytest.approx(exp.counterfactual_distance[row["row"],
                                                                            row["rank"]])
    # asked through --params: a row per answer too (its distance was rank 0's for all)
    assert main(["explain", "--model", str(tmp_path / "model.joblib"), "--data",
                 str(tmp_path / "rows.csv"), "--train", str(tmp_path / "train.csv"),
                 "--mode", "CF", "--params", "n_counterfactuals=2", "--out", str(out),
                 "--quiet"]) == 0
    assert json.loads(out.read_text()) == rows


def test_a_row_of_empty_cells_keeps_its_place(tmp_path, capsys):
    """Found by a trial: a row of empty cells (",,,") was skipped, so every later answer was
    written under the row before it ("row" in the output no longer the file's)."""
    pd = pytest.importorskip("pandas")
    from sklearn.ensemble import HistGradientBoostingClassifier

    X, y = load_iris(return_X_y=True)
    model = HistGradientBoostingClassifier(max_iter=20).fit(X, y)  # takes missing values
    joblib.dump(model, tmp_path / "hgb.joblib")
    _write_csv(tmp_path / "train.csv", HEADER, X)
    rows = [X[0], [""] * 4, X[60], X[120]]
    _write_csv(tmp_path / "data.csv", HEADER, rows)
    code, err = _main(capsys, "explain", "--model", tmp_path / "hgb.joblib", "--data",
                      tmp_path / "data.csv", "--train", tmp_path / "train.csv", "--mode", "CF",
                      "--out", tmp_path / "out.json", "--quiet")
    assert code == 0, err
    written = json.loads((tmp_path / "out.json").read_text())
    assert [row["row"] for row in written] == [0, 1, 2, 3]
    assert len(pd.read_csv(tmp_path / "data.csv")) == 4
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        api = CounterfactualExplainer(model).fit(X).explain(X[[0, 60, 120]])
    for row, i in zip([written[0], written[2], written[3]], range(3)):
        assert row["found"] == bool(api.found[i])
        assert row["CF_class"] == int(api.explanation_pred[i])


def test_files_as_exports_have_them_get_one_line(files, tmp_path, capsys):
    """Found by a trial of the command line in shell scripts: a latin-1 file, a .keras file
    that is no archive and ``--dates`` on text raised tracebacks or several lines; a file
    delimited by semicolons, names with spaces and a pickled dict got advice that led
    elsewhere; "NA" in a numeric column was no number; --out could overwrite --data."""
    folder, _, X = files
    command = ["explain", "--model", folder / "model.joblib", "--train", folder / "train.csv",
               "--quiet"]
    latin = tmp_path / "latin.csv"
    latin.write_bytes("sepal_length,sepal_width,petal_length,petal_width\n"
                      "5.1,3.5,1.4,0.2\n5.1,3.5,1.4,0.2 # caf\u00e9\n".encode("latin-1"))
    code, err = _main(capsys, *command, "--data", latin, "--out", tmp_path / "o.json")
    assert code == 2 and err.strip().endswith(
        "--data: " + str(latin) + " is not UTF-8 text (byte 0xe9 on line 3): save it as UTF-8")
    # a binary table is named for what it is, not as text in another encoding
    parquet = tmp_path / "rows.parquet"
    parquet.write_bytes(b"PAR1\x15\x04\x15\xe0")
    code, err = _main(capsys, *command, "--data", parquet, "--out", tmp_path / "p.json")
    assert code == 2 and len(err.strip().splitlines()) == 1 and (
        f"--data: {parquet} is a Parquet file; the command line reads CSV text") in err
    semi = tmp_path / "semi.csv"
    semi.write_text("sepal_length;sepal_width;petal_length;petal_width\n5.1;3.5;1.4;0.2\n")
    code, err = _main(capsys, *command, "--data", semi, "--out", tmp_path / "o.json")
    assert code == 2 and "it seems delimited by ';'; skcem reads comma-separated files" in err
    spaced = tmp_path / "spaced.csv"
    spaced.write_text("sepal_length, sepal_width, petal_length, petal_width\n"
                      "5.1, 3.5, 1.4, 0.2\n")
    code, err = _main(capsys, *command, "--data", spaced, "--out", tmp_path / "o.json")
    assert code == 2 and "the names differ by spaces around them ([' sepal_width'" in err
    marked = tmp_path / "marked.csv"
    marked.write_text("sepal_length,sepal_width,petal_length,petal_width\n5.1,NA,1.4,0.2\n")
    code, err = _main(capsys, *command, "--data", marked, "--out", tmp_path / "o.json")
    assert code == 2 and "Input X contains NaN (in 'sepal_width')" in err  # missing, no typo
    assert "(missing cells in --data rows [0])" in err  # (found by a review: which rows?)
    code, err = _main(capsys, *command, "--data", folder / "data.csv", "--out",
                      folder / "data.csv")
    assert code == 2 and "is the --data file, which it would overwrite" in err
    assert (folder / "data.csv").read_text().startswith("sepal_length")
    code, err = _main(capsys, *command, "--data", folder / "data.csv", "--out",
                      tmp_path / "OUT.JSON")
    assert code == 0, err
    assert len(json.loads((tmp_path / "OUT.JSON").read_text())) == 3
    joblib.dump({"model": 1}, tmp_path / "dict.joblib")
    (tmp_path / "not.keras").write_text("not a zip")
    for model, message in (("dict.joblib", "holds a dict, not a model"),
                            ("not.keras", "is not a .keras archive")):
        code, err = _main(capsys, "explain", "--model", tmp_path / model, "--data",
                          folder / "data.csv", "--out", tmp_path / "o.json")
        assert code == 2 and message in err
    table = tmp_path / "table.csv"
    table.write_text("sepal_length,sepal_width,petal_length,petal_width,city\n"
                     "5.1,3.5,1.4,0.2,Oslo\n")
    code, err = _main(capsys, *command, "--data", table, "--dates", "city", "--out",
                      tmp_path / "o.json")
    assert code == 2 and len(err.strip().splitlines()) == 1 and "such as 'Oslo' (row 0, " \
        "line 2)" in err


def test_missing_values_are_written_as_null(tmp_path, capsys):
    """Found by a trial: a held feature's missing cell was written as a bare NaN, which is
    no JSON (strict parsers refuse it); in a CSV, an empty cell."""
    pytest.importorskip("pandas")
    from sklearn.ensemble import HistGradientBoostingClassifier

    X, y = load_iris(return_X_y=True)
    model = HistGradientBoostingClassifier(max_iter=20).fit(X, y)
    joblib.dump(model, tmp_path / "hgb.joblib")
    _write_csv(tmp_path / "train.csv", HEADER, X)
    _write_csv(tmp_path / "data.csv", HEADER, [[X[0, 0], "", *X[0, 2:]]])
    args = ["explain", "--model", tmp_path / "hgb.joblib", "--data", tmp_path / "data.csv",
            "--train", tmp_path / "train.csv", "--mode", "CF", "--params",
            "immutable_features=sepal_width", "--quiet"]
    code, err = _main(capsys, *args, "--out", tmp_path / "out.json")
    assert code == 0, err
    text = (tmp_path / "out.json").read_text()
    assert "NaN" not in text
    written = json.loads(text, parse_constant=lambda name: pytest.fail(f"bare {name}"))
    assert written[0]["fixed"]["sepal_width"] is None
    code, err = _main(capsys, *args, "--out", tmp_path / "out.csv")
    assert code == 0, err
    assert "NaN" not in (tmp_path / "out.csv").read_text()


def test_an_interrupted_run_says_so_in_one_line(files, capsys, monkeypatch):
    """Found by a trial: Ctrl-C left 50 to 90 lines of traceback."""
    import skcem.__main__ as cli

    def interrupted(args):
        raise KeyboardInterrupt

    monkeypatch.setattr(cli, "_explain", interrupted)
    folder, _, _ = files
    code, err = _main(capsys, *_command("explain", folder))
    assert code == 130 and err == "skcem explain: interrupted\n"


@pytest.mark.parametrize("mode, extra", [("PP", []), ("PN", []),
                                         ("CF", ["--n-counterfactuals", "2"])])
def test_answers_writes_each_answer_whole(files, capsys, mode, extra):
    """Found by a trial: a PP's row could not be rebuilt from the output (its other features
    sit at no-information values written nowhere); --answers writes every answer whole."""
    folder, model, X = files
    code, err = _main(capsys, *_command("explain", folder, train="train.csv"), "--mode", mode,
                      "--answers", *extra)
    assert code == 0, err
    written = json.loads((folder / "out.json").read_text())
    found = [row for row in written if row["found"]]
    assert found and all(row["answer"] is None for row in written if not row["found"])
    from skcem import CEMExplainer

    background = CEMExplainer(model, mode="PP").fit(X).no_info_val_
    for row in found:
        answer = np.array([[row["answer"][name] for name in HEADER]])
        assert model.predict(answer)[0] == row[f"{mode}_class"]
        original = X[[0, 60, 120][row["row"]]]
        changed = row["kept" if mode == "PP" else "changed"]
        for j, name in enumerate(HEADER):  # what changed (or is kept) is the answer's value
            if name in changed:
                assert row["answer"][name] == pytest.approx(changed[name])
            else:  # the instance's value, or a PP's no-information value
                assert row["answer"][name] == pytest.approx(
                    background[j] if mode == "PP" else original[j])


@pytest.mark.parametrize("command", ["explain", "similarity"])
def test_standard_input_and_output(files, capsys, monkeypatch, command):
    """Found by a trial: the command line could not sit in a pipe (``--data -`` was "no such
    file", ``--out -`` refused)."""
    import io

    folder, _, _ = files
    args = [str(a) for a in _command(command, folder)]
    args[args.index("--data") + 1] = "-"
    expected = {}
    for output_format in ("json", "csv"):
        out = folder / f"file_{command}.{output_format}"
        code, err = _main(capsys, *[str(out) if str(a) == str(folder / "out.json") else a
                                    for a in _command(command, folder)])
        assert code == 0, err
        expected[output_format] = out.read_text()
        monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(
            io.BytesIO((folder / "data.csv").read_bytes())))
        piped = [("-" if a == str(folder / "out.json") else a) for a in args]
        code = main(piped + ["--format", output_format])
        captured = capsys.readouterr()
        if output_format == "csv":  # a file's suffix says its format
            code_file, err = _main(capsys, *_command(command, folder), "--format", "csv")
            assert code_file == 2 and "--format csv: it is for --out -" in err
        assert code == 0, captured.err
        assert captured.out.replace("\r\n", "\n") == \
            expected[output_format].replace("\r\n", "\n").rstrip("\n") + "\n"
    code, err = _main(capsys, *[("-" if a == str(folder / "train_target.csv") else a)
                                for a in args])
    if command == "similarity":
        assert code == 2 and "--train: '-' (standard input) is for --data only" in err


def test_params_weigh_features_and_list_categories(tmp_path, capsys):
    """feature_weights and a categorical column's feature_range (its categories) as
    name:value pairs on the command line, as in the Python API."""
    from tests.test_tables import make_table, pipeline

    X, y = make_table(300)
    model = pipeline(LogisticRegression(max_iter=1000)).fit(X, y)
    joblib.dump(model, tmp_path / "pipeline.joblib")
    X.to_csv(tmp_path / "train.csv", index=False)
    X.iloc[:20].to_csv(tmp_path / "data.csv", index=False)
    params = ["feature_weights=income:50,age:50", "feature_range=job:farmer:clerk"]
    code, err = _main(capsys, "explain", "--model", tmp_path / "pipeline.joblib", "--data",
                      tmp_path / "data.csv", "--train", tmp_path / "train.csv", "--mode", "CF",
                      "--answers", "--out", tmp_path / "out.json", "--quiet", "--params",
                      *params)
    assert code == 0, err
    rows = json.loads((tmp_path / "out.json").read_text())
    # found by a trial: a key given twice kept the last, dropping a constraint
    code, err = _main(capsys, "explain", "--model", tmp_path / "pipeline.joblib", "--data",
                      tmp_path / "data.csv", "--out", tmp_path / "out2.json", "--params",
                      "immutable_features=job", "immutable_features=sex")
    assert code == 2 and "--params: immutable_features given twice" in err
    api = CounterfactualExplainer(model, feature_weights={"income": 50, "age": 50},
                                  feature_range={"job": ("farmer", "clerk")}).fit(X)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        exp = api.explain(X.iloc[:20])
    # to 12 significant digits (a sum of moves read 6.449999999999999 for 6.45)
    np.testing.assert_allclose([r["distance"] if r["found"] else np.nan for r in rows],
                               exp.distance, rtol=1e-11)
    for row, distance in zip(rows, exp.distance):
        if row["found"]:
            assert row["distance"] == float(f"{distance:.12g}")
    for row, job in zip(rows, X.job.iloc[:20]):
        if row["found"]:
            assert row["answer"]["job"] in ("farmer", "clerk", job)


def test_text_cells_are_read_as_written_spaces_and_all(tmp_path, capsys):
    """Found by a user: UCI Adult read with its spaces (" Private") and a model fitted on
    them; the command line stripped every cell, so the encoder met only unknown categories
    and the answers changed numbers alone, silently."""
    pd = pytest.importorskip("pandas")
    from sklearn.compose import make_column_transformer
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder

    rng = np.random.default_rng(0)
    X = pd.DataFrame({"job": rng.choice([" clerk", " manager"], 200),
                      "hours": rng.integers(20, 60, 200).astype(float)})
    y = ((X["job"] == " manager") | (X["hours"] > 55)).astype(int)
    model = make_pipeline(make_column_transformer((OneHotEncoder(handle_unknown="ignore"),
                                                   ["job"]), remainder="passthrough"),
                          LogisticRegression(C=100, max_iter=1000)).fit(X, y)
    joblib.dump(model, tmp_path / "model.joblib")
    X.to_csv(tmp_path / "train.csv", index=False)
    rows = X[(y == 0).to_numpy()].iloc[:3]
    rows.to_csv(tmp_path / "data.csv", index=False)
    code, err = _main(capsys, "explain", "--model", tmp_path / "model.joblib", "--data",
                      tmp_path / "data.csv", "--train", tmp_path / "train.csv", "--mode",
                      "CF", "--answers", "--quiet", "--out", tmp_path / "out.json")
    assert code == 0, err
    written = json.loads((tmp_path / "out.json").read_text())
    assert all(row["found"] for row in written)
    answers = pd.DataFrame([row["answer"] for row in written])
    assert set(answers["job"]) <= {" clerk", " manager"}
    assert (model.predict(answers[X.columns]) == 1).all()
    # the answers of the Python API on the same rows
    api = CounterfactualExplainer(model).fit(X).explain(rows)
    assert [row["changed"] for row in written] == api.changes()


def test_answers_and_csvs_are_written_whole_with_missing_integers_and_rows_without_gap(
        tmp_path, capsys):
    """Found by a user: --answers with a missing cell in an integer column stopped on
    pandas's NA (no JSON), and a CSV whose first row had no answer lost the `gap` column
    of the later ones (a traceback, a half-written file)."""
    pd = pytest.importorskip("pandas")
    from sklearn.tree import DecisionTreeClassifier

    X, y = load_iris(return_X_y=True)
    whole = pd.DataFrame((X * 10).round().astype(int), columns=HEADER)
    model = DecisionTreeClassifier(max_depth=3, random_state=0).fit(whole, y)
    joblib.dump(model, tmp_path / "tree.joblib")
    whole.to_csv(tmp_path / "train.csv", index=False)
    data = whole.iloc[[120, 0, 60]].astype(object)  # the first already of class 2
    data.iloc[1, 1] = ""  # a missing sepal width, which the tree takes
    data.to_csv(tmp_path / "data.csv", index=False)
    (tmp_path / "out.csv").write_text("kept unless all is written\n")
    base = ["explain", "--model", tmp_path / "tree.joblib", "--data", tmp_path / "data.csv",
            "--train", tmp_path / "train.csv", "--mode", "CF", "--quiet"]
    code, err = _main(capsys, *base, "--answers", "--out", tmp_path / "out.json")
    assert code == 0, err
    written = json.loads((tmp_path / "out.json").read_text())
    assert written[1]["answer"]["sepal_width"] is None
    code, err = _main(capsys, *base, "--params", "search=exact", "target_class=2",
                      "--n-counterfactuals", "2", "--out", tmp_path / "out.csv")
    assert code == 0, err
    table = list(csv.DictReader(open(tmp_path / "out.csv", encoding="utf-8")))
    assert "gap" in table[0] and table[0]["found"] == "False" and table[0]["gap"] == ""
    assert any(row["gap"] == "0.0" for row in table)


def test_the_missing_rows_hint_names_only_the_columns_the_model_refuses(tmp_path, capsys):
    pd = pytest.importorskip("pandas")
    from sklearn.compose import make_column_transformer
    from sklearn.impute import SimpleImputer
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder

    rng = np.random.default_rng(0)
    X = pd.DataFrame({"job": rng.choice(["clerk", "manager"], 100).astype(object),
                      "hours": rng.integers(20, 60, 100).astype(float)})
    y = ((X["job"] == "manager") | (X["hours"] > 50)).astype(int)
    model = make_pipeline(make_column_transformer(
        (make_pipeline(SimpleImputer(strategy="most_frequent"), OneHotEncoder()), ["job"]),
        remainder="passthrough"), LogisticRegression()).fit(X, y)
    joblib.dump(model, tmp_path / "model.joblib")
    train = X.copy()
    train.loc[[3, 7], "job"] = None  # taken: imputed
    train.to_csv(tmp_path / "train.csv", index=False)
    data = X.iloc[:3].copy()
    data.loc[0, "job"] = None
    data.loc[1, "hours"] = np.nan  # refused: no imputer on the numbers
    data.to_csv(tmp_path / "data.csv", index=False)
    code, err = _main(capsys, "explain", "--model", tmp_path / "model.joblib", "--data",
                      tmp_path / "data.csv", "--train", tmp_path / "train.csv", "--quiet",
                      "--out", tmp_path / "out.json")
    assert code == 2 and "(in 'hours')" in err
    assert "(missing cells in --data rows [1])" in err and "--train" not in err.split("(in")[1]


def test_one_position_is_a_list_of_one():
    from skcem.__main__ import _parse_params

    assert _parse_params(["immutable_features=3"]) == {"immutable_features": [3]}
    assert list(_parse_params(["immutable_features=3,1"])["immutable_features"]) == [3, 1]


def test_the_missing_rows_hint_reads_every_refused_column_from_the_error():
    """Found by a review: the hint read the columns back from the message, which names ten
    and quotes a name holding a quote otherwise."""
    pd = pytest.importorskip("pandas")
    from skcem.__main__ import _missing_rows_hint
    from skcem._validation import missing_values_refused

    names = [f"c{j}" for j in range(11)] + ["owner's age", "job"]
    data = pd.DataFrame(np.ones((4, len(names))), columns=names)
    data.loc[1, "owner's age"] = np.nan  # refused
    data.loc[2, "c10"] = np.nan  # refused, the eleventh named
    data.loc[3, "job"] = np.nan  # taken (imputed)
    try:
        try:
            raise missing_values_refused("CounterfactualExplainer", None, names[:12])
        except ValueError as exc:
            raise ValueError(f"wrapped: {exc}") from exc
    except ValueError as exc:
        hint = _missing_rows_hint(exc, {"--data": data})
    assert hint == " (missing cells in --data rows [1, 2])"


def test_explain_hands_a_text_pipeline_its_documents(tmp_path, capsys):
    """Found by a user: `similarity` read a CSV's one column as documents for a Pipeline
    whose first step is a text vectorizer; `explain` refused it with advice only Python
    can follow."""
    pd = pytest.importorskip("pandas")
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.pipeline import make_pipeline

    rng = np.random.default_rng(0)
    words = np.array(["good", "bad", "great", "awful", "movie", "plot"])
    documents = [" ".join(rng.choice(words, 4)) for _ in range(80)]
    y = np.array(["pos" if ("good" in d) or ("great" in d) else "neg" for d in documents])
    model = make_pipeline(TfidfVectorizer(), LogisticRegression()).fit(documents, y)
    joblib.dump(model, tmp_path / "text.joblib")
    pd.DataFrame({"text": documents, "label": y}).to_csv(tmp_path / "train.csv", index=False)
    pd.DataFrame({"text": documents[:4]}).to_csv(tmp_path / "data.csv", index=False)
    code, err = _main(capsys, "explain", "--model", tmp_path / "text.joblib", "--data",
                      tmp_path / "data.csv", "--train", tmp_path / "train.csv", "--drop",
                      "label", "--mode", "CF", "--answers", "--quiet", "--out",
                      tmp_path / "out.json")
    assert code == 0, err
    rows = json.loads((tmp_path / "out.json").read_text())
    assert all(row["found"] for row in rows)
    answers = [row["answer"]["text"] for row in rows]
    assert set(answers) <= set(documents)  # another row's text, whole
    assert np.all(model.predict(answers) != model.predict(documents[:4]))


def test_similarity_of_a_regressor_names_the_task_option(files, capsys):
    """Found by a new user: the error said "set task='regression'", a parameter of the
    Python API, where the command line's option is --task."""
    folder, _, _ = files
    code, err = _main(capsys, "similarity", "--model", folder / "regressor.joblib", "--train",
                      folder / "train_target.csv", "--target", "species", "--data",
                      folder / "data.csv", "--out", folder / "s.json")
    assert code == 2
    assert "--model is a regressor (LinearRegression): set --task regression" in err
    assert "task='" not in err


def test_the_command_line_speaks_its_own_options(files, capsys):
    """Found by a new user: a column named twice in one --params value dropped the first
    constraint silently; an unknown option got the top-level usage, with no word of
    --params; warnings advised Python's distance='mad'."""
    folder, _, X = files
    common = ["explain", "--model", folder / "model.joblib", "--data", folder / "data.csv",
              "--train", folder / "train.csv", "--out", folder / "o.json"]
    code, err = _main(capsys, *common, "--params",
                      "directions=sepal_length:increase,sepal_length:decrease")
    assert code == 2 and "directions names column 'sepal_length' twice" in err
    with pytest.raises(SystemExit):
        main([str(a) for a in common] + ["--target-class", "1"])
    err = capsys.readouterr().err
    assert "usage: skcem explain" in err and "go in --params key=value" in err
    scaled = folder / "scaled.csv"
    _write_csv(scaled, HEADER, np.c_[X[:, :3], X[:, 3] * 1e5])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # (lbfgs on unscaled features)
        model = LogisticRegression(max_iter=1000).fit(np.c_[X[:, :3], X[:, 3] * 1e5],
                                                      load_iris(return_X_y=True)[1])
    joblib.dump(model, folder / "scaled.joblib")
    code, err = _main(capsys, "explain", "--model", folder / "scaled.joblib", "--data", scaled,
                      "--out", folder / "o.json", "--params", "max_iterations=20")
    assert "differ in scale" in err and "--params distance=mad measures" in err
    assert "distance='mad'" not in err


def test_only_the_explainers_own_settings_become_params():
    """Found by a review: a model's repr (SGDRegressor(loss="squared_error")) and a column
    named "device=mobile" were rewritten as --params."""
    from skcem.__main__ import _in_flags

    said = _in_flags('such as SGDRegressor(alpha=1, loss="squared_error")',
                     GradientSimilarityExplainer)
    assert said == 'such as SGDRegressor(alpha=1, loss="squared_error")'
    said = _in_flags("`directions['device=mobile']` must be", CounterfactualExplainer)
    assert said == "`directions['device=mobile']` must be"
    said = _in_flags("a larger c_init (search='fista', with clip=(-1000, 1000))",
                     CounterfactualExplainer)
    assert said == "a larger c_init (--params search=fista, with --params clip=-1000,1000)"
    # nor a column named "X's rows" (found by a review)
    said = _in_flags("columns are ['found', \"X's rows\"]", CounterfactualExplainer)
    assert said == "columns are ['found', \"X's rows\"]"
