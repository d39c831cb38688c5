"""Dataset loaders for the examples and benchmarks.

Real datasets are read from files you already have (nothing is downloaded):

* :func:`load_mnist` -- MNIST from ``mnist.npz`` or LeCun's idx files (plain or gzipped);
  :func:`read_idx` reads any idx file.
* :func:`load_binarized_mnist` -- the fixed binarization of Larochelle & Murray (2011);
  :func:`dynamic_binarize` draws a fresh Bernoulli(x) binarization from an explicit rng.
* :func:`load_uci` / :func:`uci_n_splits` / :func:`uci_info` -- the UCI regression benchmark
  in the PBP / MC-dropout split layout, normalized with training statistics
  (:class:`RegressionData` reports RMSE and log-likelihood in the original units).
* :func:`load_breast_cancer`, :func:`load_digits`, :func:`load_diabetes` -- small data that
  ships with scikit-learn (``pip install zsarray[examples]``).
* :func:`shared_data_dir` -- ``$ZSARRAY_SHARED/data`` or ``<repo>/../shared/data``, used as
  the default location when no path is given.

>>> from zsarray import datasets
>>> (x_train, y_train), (x_test, y_test) = datasets.load_mnist()     # doctest: +SKIP
>>> x_train.shape, x_train.dtype                                      # doctest: +SKIP
((60000, 784), dtype('float32'))
>>> d = datasets.load_uci("bostonHousing", split=3)                   # doctest: +SKIP
>>> x_tr, y_tr, x_te, y_te = d; d.rmse(predicted_normalized_means)     # doctest: +SKIP
"""
from ._common import DataFormatError, shared_data_dir
from .mnist import BinarizedMNIST, dynamic_binarize, load_binarized_mnist, load_mnist, read_idx
from .packaged import SupervisedData, load_breast_cancer, load_diabetes, load_digits
from .uci import UCI_DATASETS, RegressionData, load_uci, uci_info, uci_n_splits

__all__ = ["DataFormatError", "shared_data_dir",
           "read_idx", "load_mnist", "load_binarized_mnist", "BinarizedMNIST", "dynamic_binarize",
           "UCI_DATASETS", "RegressionData", "load_uci", "uci_n_splits", "uci_info",
           "SupervisedData", "load_breast_cancer", "load_digits", "load_diabetes"]
