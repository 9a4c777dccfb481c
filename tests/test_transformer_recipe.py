"""The text recipe (experiments/transformer_mr.py `TextRecipe`), the mean+max pooling option of FlexiBERT
encoders, and the baselines of experiments/transformer_recipe.py, on small synthetic text."""

from __future__ import annotations

import sys
from dataclasses import replace
from pathlib import Path

import pytest
import torch

from nas.datasets import TextSplits
from nas.errors import ConfigError
from nas.spaces.transformer import FlexiBertConfig, FlexiBertSpace, TransformerClassifier, _max_pool

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "experiments"))
from transformer_mr import (TextRecipe, add_nb_direction, bigram_prior, nb_direction, nb_log_ratio,  # noqa: E402
                            recipe_splits, train_recipe)
from transformer_recipe import ARCHS, BASE, KimCNN, tfidf_lr, tfidf_teacher  # noqa: E402

pytestmark = pytest.mark.usefixtures("one_thread")
ARCH = {"depth": 1, "layers": [{"op": "attention", "hidden": 16, "heads": 2, "ffn_depth": 1, "ffn": [{"dim": 16}]}]}
TINY = FlexiBertConfig(vocab_size=30, max_len=8, depths=(1,), hidden=(16,), heads=(2,), ffn_depths=(1,), ffn_dims=(16,),
                       dropout=0.0)


def synthetic(n: int = 400, seed: int = 0) -> TextSplits:
    """Sentences of random filler words (ids 4..29, lengths 3..8); label 1 iff word 2 ("good") occurs, else word 3
    ("bad") does."""
    g = torch.Generator().manual_seed(seed)
    vocab = ("<pad>", "<unk>", "good", "bad", *(f"w{i}" for i in range(4, 30)))

    def make(m: int) -> tuple[torch.Tensor, torch.Tensor]:
        x = torch.randint(4, 29, (m, 10), generator=g)
        lengths = torch.randint(3, 9, (m, 1), generator=g)
        y = torch.randint(0, 2, (m,), generator=g)
        x[torch.arange(m), torch.randint(0, 3, (m,), generator=g)] = torch.where(y == 1, 2, 3)
        return x.masked_fill(torch.arange(10)[None, :] >= lengths, 0), y

    tx, ty = make(n)
    sx, sy = make(n // 4)
    return TextSplits(tx, ty, sx, sy, vocab)


def test_pooling_default_is_mean_and_unknown_pooling_is_named():
    assert FlexiBertConfig().pooling == "mean"
    model = FlexiBertSpace(TINY).build(ARCH)
    assert model.pooling == "mean" and model.head.in_features == 16
    with pytest.raises(ConfigError, match="pooling"):
        FlexiBertConfig(pooling="cls")


def test_mean_max_pooling_doubles_the_head_and_ignores_padding():
    space = FlexiBertSpace(replace(TINY, pooling="mean_max"))
    model = space.build(ARCH).eval()
    assert isinstance(model, TransformerClassifier) and model.head.in_features == 32
    tokens = torch.tensor([[5, 6, 7, 0, 0, 0, 0, 0]])
    x = torch.randn(1, 8, 16)
    mask = tokens != 0
    # the max part is over real tokens only: huge values at padded positions do not leak into it
    x[0, 3:] = 1e6
    assert torch.equal(_max_pool(x, mask), x[0, :3].amax(0, keepdim=True))
    assert torch.equal(_max_pool(x, torch.zeros_like(mask)), torch.zeros(1, 16))
    logits = model(tokens)
    assert logits.shape == (1, 2) and torch.isfinite(logits).all()


def test_recipe_splits_builds_the_vocabulary_from_the_training_part_only():
    data = synthetic()
    s = recipe_splits(TextRecipe(min_count=2, max_len=10), data, valid_fraction=0.25, seed=0)
    assert len(s.valid_y) == 100 and len(s.train_y) == 300 and len(s.test_y) == len(data.test_y)
    assert s.vocab[:2] == ("<pad>", "<unk>")
    # every kept word is seen >= 2 times in the training part (so none comes from valid or test only)
    counts = torch.bincount(s.train_x.flatten(), minlength=len(s.vocab))
    assert bool((counts[2:] >= 2).all())
    short = recipe_splits(TextRecipe(min_count=1, max_len=6), data, valid_fraction=0.25, seed=0)
    assert short.train_x.shape[1] == short.valid_x.shape[1] == short.test_x.shape[1] == 6
    capped = recipe_splits(TextRecipe(min_count=1, vocab_size=6, max_len=6), data, valid_fraction=0.25, seed=0)
    assert len(capped.vocab) == 6 and int(capped.train_x.max()) == 5
    assert set(capped.vocab[2:4]) == {"good", "bad"}  # the most frequent words come first


def test_train_recipe_learns_and_keeps_the_best_epoch():
    data = recipe_splits(TextRecipe(min_count=1, max_len=8), synthetic(), valid_fraction=0.25, seed=0)
    recipe = TextRecipe(min_count=1, max_len=8, dropout=0.0, word_dropout=0.05, max_epochs=8, patience=3, batch_size=32,
                        lr=5e-3)
    space = FlexiBertSpace(recipe.config(TINY, len(data.vocab)))
    model = space.build(ARCH)
    out = train_recipe(model, data, recipe, seed=0)
    assert out["valid_accuracy"] == max(out["valid_curve"]) > 0.9
    assert out["test_accuracy"] > 0.9
    model.eval()
    with torch.no_grad():
        again = float((model(data.valid_x).argmax(1) == data.valid_y).float().mean())
    assert again == pytest.approx(out["valid_accuracy"])  # the best epoch's weights were restored
    assert out["epochs"] <= 8 and 1 <= out["best_epoch"] <= out["epochs"]


def test_baselines_learn_the_keyword_task():
    data = recipe_splits(TextRecipe(min_count=1, max_len=8), synthetic(), valid_fraction=0.25, seed=0)
    lr = tfidf_lr(data)
    assert lr["test_accuracy"] > 0.95 and lr["C"] > 0
    cnn = KimCNN(len(data.vocab), embed=16, maps=8)
    out = train_recipe(cnn, data, TextRecipe(min_count=1, max_len=8, max_epochs=6, lr=5e-3, batch_size=32), seed=0)
    assert out["test_accuracy"] > 0.9


def test_experiment_architectures_fit_the_space():
    space = FlexiBertSpace(TextRecipe().config(BASE, 100))
    ops = {name: {layer["op"] for layer in space.validate(a)["layers"]} for name, a in ARCHS.items()}
    assert ops["attention"] == {"attention"} and ops["conv"] == {"conv"} and len(ops["conv+attention"]) == 2
    assert space.config.pooling == "mean_max" and space.config.max_len == 40


def test_found_rows_retrain_the_tables_best_architecture_by_validation(tmp_path):
    import csv
    import json

    from transformer_recipe import FOUND, arch_spec, jobs, table_best

    table = tmp_path / "movie_review.csv"
    archs = [ARCHS["attention"], ARCHS["conv"]]
    with table.open("w", newline="") as f:  # the second architecture leads on valid by the mean of its seeds
        w = csv.writer(f)
        w.writerow(["arch", "seed", "valid_acc", "test_acc"])
        for arch, valid in ((archs[0], (0.81, 0.77)), (archs[1], (0.79, 0.80))):
            for seed, v in enumerate(valid):
                w.writerow([json.dumps(arch), seed, v, 0.7])
    assert table_best(tmp_path) == archs[1]
    space = FlexiBertSpace(TextRecipe().config(BASE, 100))
    assert space.validate(arch_spec(FOUND))  # the committed table's best fits the recipe's space
    assert jobs([0, 1], ["conv"], [], found=True)[-6:] == [
        ("recipe+bow", FOUND, 0), ("recipe+bow", FOUND, 1), ("recipe+bow2", FOUND, 0), ("cnn+bow2", "-", 0),
        ("recipe+bow2", FOUND, 1), ("cnn+bow2", "-", 1)]
    # the bigram lever's check: both recipes on each resampled validation split k >= 1 (never split 0)
    assert jobs([0], ["conv"], [], lever_cv=2)[-4:] == [
        ("cv/recipe+bow", FOUND, 1), ("cv/recipe+bow2", FOUND, 1), ("cv/recipe+bow", FOUND, 2),
        ("cv/recipe+bow2", FOUND, 2)]
    assert all(j[1] != FOUND for j in jobs([0, 1], ["conv"], []))


def test_quick_experiment_writes_every_row(tmp_path):
    from nas.tabular import data_dir

    if not (data_dir() / "movie-review-polarity").is_dir():
        pytest.skip("Movie Review data not in the shared data folder")
    import json

    import transformer_recipe

    out = tmp_path / "quick.json"
    assert transformer_recipe.main(["--quick", "--out", str(out)]) == 0
    doc = json.loads(out.read_text())
    rows = {r["row"]: r for r in doc["rows"]}
    assert set(rows) == {"tfidf_lr", "cnn", "current/conv+attention", "recipe/conv+attention", "cnn+bow",
                         "recipe+bow/conv+attention"}
    assert rows["tfidf_lr"]["test_mean"] > 0.55  # 630 training sentences already carry signal for TF-IDF
    assert (tmp_path / "transformer_recipe_quick_cache.jsonl").exists()  # resumable: a rerun reads the finished trainings back
    assert transformer_recipe.main(["--quick", "--out", str(out)]) == 0
    assert len((tmp_path / "transformer_recipe_quick_cache.jsonl").read_text().splitlines()) == 6


def test_nb_log_ratio_counts_each_word_once_per_sentence():
    x = torch.tensor([[2, 2, 4, 0], [2, 5, 0, 0], [3, 4, 0, 0], [3, 1, 1, 0]])
    y = torch.tensor([1, 1, 0, 0])
    r = nb_log_ratio(x, y, vocab_size=6, alpha=1.0)
    # positive presences: 2 twice (its repeat in sentence 0 counts once), 4 and 5 once; <pad>, <unk> never
    pos = torch.tensor([1, 1, 3, 1, 2, 2], dtype=torch.float64)
    neg = torch.tensor([1, 1, 1, 3, 2, 1], dtype=torch.float64)
    expected = (pos / pos.sum()).log() - (neg / neg.sum()).log()
    assert torch.allclose(r[2:].double(), expected[2:], atol=1e-6)
    assert r[0] == 0 and r[1] == 0
    assert r[2] > 0 > r[3]  # "good" leans positive, "bad" negative


def test_nb_direction_moves_embeddings_along_one_direction_only():
    emb = torch.nn.Embedding(6, 8)
    before = emb.weight.detach().clone()
    ratio = torch.tensor([0.0, 0.0, 1.0, -2.0, 0.5, 0.0])
    add_nb_direction(emb, ratio, scale=3.0)
    delta = emb.weight.detach() - before
    assert torch.linalg.matrix_rank(delta) == 1  # one shared direction
    assert torch.allclose(delta.norm(dim=1), 3.0 * ratio.abs(), atol=1e-5)


def test_bigram_prior_scores_word_order_that_unigrams_cannot():
    """Class 1 says "a b", class 0 "b a": the same words, so a unigram Naive Bayes score is 0 for both; the
    bigram prior, before any training, scores every sentence on its class's side (+ scale x ratio at "b" for
    "a b", - at "a" for "b a"), adds nothing where the bigram was never seen or involves <unk>/<pad>."""
    a, b, c = 2, 3, 4
    x = torch.tensor([[a, b, 0, 0]] * 5 + [[b, a, 0, 0]] * 5)
    y = torch.tensor([1] * 5 + [0] * 5)
    emb = torch.nn.Embedding(5, 8, padding_idx=0)
    torch.nn.init.zeros_(emb.weight)
    add_nb_direction(emb, nb_log_ratio(x, y, 5), scale=1.0)
    prior = bigram_prior(emb, x, y, scale=2.0)
    u = nb_direction(8)
    with torch.no_grad():
        assert torch.allclose(emb(x) @ u, torch.zeros(10, 4), atol=1e-6)  # unigrams: no evidence either way
        score = prior(x) @ u
    ratio = float(torch.tensor((6 / 7) / (1 / 7)).log())  # add-1 smoothing over the 2 bigrams: 6/7 vs 1/7
    assert torch.allclose(score[0], torch.tensor([0.0, 2.0 * ratio, 0.0, 0.0]), atol=1e-5)
    assert torch.allclose(score[5], torch.tensor([0.0, -2.0 * ratio, 0.0, 0.0]), atol=1e-5)
    with torch.no_grad():  # unseen (a, c), <unk> and padding: nothing added
        assert torch.allclose(prior(torch.tensor([[a, c, 1, b, 0]])) @ u, torch.zeros(1, 5), atol=1e-6)
    assert prior.bigrams.weight.requires_grad and prior.bigrams.num_embeddings == 3  # learnt; "none" + 2 bigrams


def test_bigram_prior_trains_inside_an_encoder():
    data = recipe_splits(TextRecipe(min_count=1, max_len=8), synthetic(), valid_fraction=0.25, seed=0)
    recipe = TextRecipe(min_count=1, max_len=8, dropout=0.0, max_epochs=4, lr=5e-3, batch_size=32, nb_init=3.0,
                        nb_bigrams=3.0)
    torch.manual_seed(0)
    model = FlexiBertSpace(recipe.config(TINY, len(data.vocab))).build(ARCH)
    result = train_recipe(model, data, recipe, seed=0)
    assert type(model.tokens).__name__ == "BigramPrior" and result["test_accuracy"] > 0.9
    with pytest.raises(ValueError, match="nb_bigrams"):
        train_recipe(torch.nn.Linear(8, 2), data, TextRecipe(min_count=1, max_len=8, nb_bigrams=1.0), seed=0)


def test_bow_prior_and_distillation_need_what_they_use():
    data = recipe_splits(TextRecipe(min_count=1, max_len=8), synthetic(), valid_fraction=0.25, seed=0)
    recipe = TextRecipe(min_count=1, max_len=8, max_epochs=1, distill=0.5)
    model = FlexiBertSpace(recipe.config(TINY, len(data.vocab))).build(ARCH)
    with pytest.raises(ValueError, match="distill"):
        train_recipe(model, data, recipe, seed=0)
    with pytest.raises(ValueError, match="distill"):  # wrong number of rows
        train_recipe(model, data, recipe, seed=0, teacher=torch.full((3, 2), 0.5))
    with pytest.raises(ValueError, match="nb_init"):
        train_recipe(torch.nn.Linear(8, 2), data, TextRecipe(min_count=1, max_len=8, nb_init=1.0), seed=0)


def test_cross_fitted_teacher_is_calibrated_and_the_bow_recipe_learns():
    data = recipe_splits(TextRecipe(min_count=1, max_len=8), synthetic(), valid_fraction=0.25, seed=0)
    soft = tfidf_teacher(data, c=10.0, folds=3)
    assert soft.shape == (len(data.train_y), 2) and torch.allclose(soft.sum(1), torch.ones(len(soft)))
    assert float((soft.argmax(1) == data.train_y).float().mean()) > 0.95  # held-out folds still see the keyword
    recipe = TextRecipe(min_count=1, max_len=8, dropout=0.0, max_epochs=6, lr=5e-3, batch_size=32, nb_init=3.0,
                        distill=0.5)
    for seed in (0, 1, 2):
        torch.manual_seed(seed)  # the initialisation, independent of the tests run before
        model = FlexiBertSpace(recipe.config(TINY, len(data.vocab))).build(ARCH)
        assert train_recipe(model, data, recipe, seed=seed, teacher=soft)["test_accuracy"] > 0.9


@pytest.mark.parametrize("field, value", [
    ("max_epochs", 0), ("batch_size", 0), ("vocab_size", 0), ("vocab_size", 1), ("vocab_size", 2), ("min_count", 0),
    ("max_len", 0), ("patience", -1), ("max_epochs", 2.5), ("lr", -1e-3), ("lr", float("nan")), ("weight_decay", -0.1),
    ("dropout", 1.0), ("word_dropout", -0.1), ("label_smoothing", 1.5), ("warmup", 2.0), ("distill", 1.1),
    ("nb_init", float("inf")), ("nb_bigrams", -1.0), ("pooling", "max"), ("batch_size", True)])
def test_text_recipe_settings_are_checked_and_named(field, value):
    """Out-of-range settings used to "succeed" (max_epochs=0: valid_accuracy -1.0; vocab_size=1 kept all but one
    word, 0 meant no cap; batch_size=0 divided by zero)."""
    with pytest.raises(ConfigError, match=f"^{field}: "):
        TextRecipe(**{field: value})


def test_text_recipe_accepts_its_defaults_and_the_edges_the_experiments_use():
    TextRecipe()
    TextRecipe(min_count=1, vocab_size=3, max_len=1, max_epochs=1, patience=0, batch_size=1, lr=0.0, weight_decay=0.0,
               dropout=0.0, word_dropout=0.0, label_smoothing=1.0, warmup=1.0, distill=1.0, nb_init=0.0, pooling="mean")
    replace(TextRecipe(), dropout=0.0, pooling="mean", word_dropout=0.0, lr=0.0, weight_decay=0.0,
            label_smoothing=0.0, warmup=0.0, max_epochs=1, patience=0, batch_size=1, nb_init=0.0,
            distill=0.0)  # transformer_recipe.py's tokenisation-only memo key


@pytest.mark.parametrize("fraction", [0.0, -0.1, 1.0, 0.001, float("nan")])
def test_recipe_splits_needs_sentences_on_both_sides(fraction):
    """valid_fraction=0 used to leave an empty validation split: valid_accuracy -1.0 and the last epoch's test."""
    with pytest.raises(ConfigError, match="^valid_fraction: "):
        recipe_splits(TextRecipe(min_count=1, max_len=8), synthetic(n=100), valid_fraction=fraction, seed=0)


def test_train_recipe_names_data_that_does_not_fit_the_model():
    """A too small vocab_size / max_len / num_classes used to fail inside torch ("index out of range in self")."""
    recipe = TextRecipe(min_count=1, max_len=8, max_epochs=1, batch_size=32)
    data = recipe_splits(recipe, synthetic(), valid_fraction=0.25, seed=0)  # ids up to 30, sentences of 8
    empty = replace(data, valid_x=data.valid_x[:0], valid_y=data.valid_y[:0])
    cases = [(replace(TINY, vocab_size=10), data, r"^vocab_size: the model embeds 10 token ids, but data.train_x"),
             (replace(TINY, max_len=4), data, r"^max_len: the model has 4 positions, but data.train_x holds sentences "
                                              r"of 8"),
             (TINY, replace(data, valid_y=data.valid_y * 2), r"^num_classes: the model predicts 2 classes, but "
                                                             r"data.valid_y holds label 2"),
             (TINY, replace(data, test_y=data.test_y - 1), r"^data.test_y: label -1"),
             (TINY, empty, r"^data.valid_x: the split holds no"),
             (TINY, replace(data, train_y=data.train_y.float()), r"^data.train_y: expected one integer label")]
    for config, splits, message in cases:
        model = FlexiBertSpace(config).build(ARCH)
        before = {k: v.clone() for k, v in model.state_dict().items()}
        with pytest.raises(ConfigError, match=message):
            train_recipe(model, splits, recipe, seed=0)
        assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())  # before any training
    with pytest.raises(ConfigError, match="^recipe: expected a TextRecipe"):
        train_recipe(FlexiBertSpace(TINY).build(ARCH), data, {"max_epochs": 1}, seed=0)
