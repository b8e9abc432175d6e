"""The classic baseline every report carries as a yardstick: a scikit-learn model trained on the run's training
split and scored on its test split. Texts get TF-IDF features (words, 1-2 grams) and a logistic regression;
images a logistic regression on their pixels.

Its cost stays under a tenth of a reference run's (bench/baseline_cost.py measures it): images train on a
seeded sample of at most ``MAX_IMAGES`` of the training split, and their regression stops after ``IMAGE_STEPS``
steps of its solver, converged or not (Fashion-MNIST: 82.5% test accuracy, where all 60,000 images give 84.4%
in as many steps at several times the cost). Texts train on a seeded sample of at most ``MAX_TEXTS`` (SST-2's
whole split of 53,879; a 500,000-row file's 320,000 training texts took 419 s on one core). The same split
always gives the same figures."""

import time
import warnings
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

MAX_IMAGES = 10_000
MAX_TEXTS = 60_000
IMAGE_STEPS = 100
SEED = 0


@dataclass
class Baseline:
    """What a baseline scored. ``trained_on``: the training rows it used, of the split's ``train_size``."""

    name: str
    test_acc: float
    test_macro_f1: float
    trained_on: int
    train_size: int
    seconds: float


def fit_baseline(train: tuple[Sequence, Sequence], test: tuple[Sequence, Sequence]) -> Baseline:
    """The baseline of a task whose splits are (inputs, labels): inputs a list of texts, or an array of one row
    of numbers per image (pixels in [0, 1]); labels class indices (0/1 floats for two classes are taken)."""
    from threadpoolctl import threadpool_limits  # scikit-learn's own dependency

    # One thread for the linear algebra: the same figures whatever the machine's cores, and no BLAS threads
    # spinning against a busy CPU (Fashion-MNIST's on 2 busy cores: 5-8 s on one thread, 23-49 s on both).
    with threadpool_limits(limits=1):
        return _fitted(train, test)


def _fitted(train: tuple[Sequence, Sequence], test: tuple[Sequence, Sequence]) -> Baseline:
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import f1_score

    start = time.perf_counter()
    inputs, labels = train[0], np.asarray(train[1]).astype(np.int64)
    test_labels = np.asarray(test[1]).astype(np.int64)
    train_size, classes = len(labels), np.union1d(labels, test_labels)
    most = MAX_IMAGES if isinstance(inputs, np.ndarray) else MAX_TEXTS
    if train_size > most:
        kept = np.sort(np.random.default_rng(SEED).choice(train_size, most, replace=False))
        inputs = inputs[kept] if isinstance(inputs, np.ndarray) else [inputs[i] for i in kept]
        labels = labels[kept]
    if isinstance(inputs, np.ndarray):
        name = f"logistic regression on the pixels (scikit-learn, {IMAGE_STEPS} L-BFGS steps at most)"
        features, test_features, steps = inputs, test[0], IMAGE_STEPS
    else:
        from sklearn.feature_extraction.text import TfidfVectorizer

        name = "TF-IDF (words, 1-2 grams) + logistic regression (scikit-learn)"
        vectorizer = TfidfVectorizer(ngram_range=(1, 2))
        features, test_features, steps = vectorizer.fit_transform(inputs), vectorizer.transform(test[0]), 1000
    model = LogisticRegression(max_iter=steps, random_state=SEED)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)  # stopping early is the point, for images
        model.fit(features, labels)
    predicted = model.predict(test_features)
    return Baseline(
        name=name,
        test_acc=float(np.mean(predicted == test_labels)),
        test_macro_f1=float(f1_score(test_labels, predicted, labels=classes, average="macro", zero_division=0)),
        trained_on=len(labels),
        train_size=train_size,
        seconds=time.perf_counter() - start,
    )
