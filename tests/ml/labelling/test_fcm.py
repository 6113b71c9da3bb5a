import numpy as np
import pytest

from ml.labelling.fcm import FuzzyCMeans, fcm_centers, fcm_memberships, fcm_objective


def brute_memberships(x: np.ndarray, c: np.ndarray, m: float) -> np.ndarray:
    U = np.zeros((len(x), len(c)))
    for i in range(len(x)):
        for j in range(len(c)):
            dij = np.linalg.norm(x[i] - c[j])
            U[i, j] = 1.0 / sum((dij / np.linalg.norm(x[i] - c[k])) ** (2 / (m - 1))
                                for k in range(len(c)))
    return U


def brute_centers(x: np.ndarray, U: np.ndarray, m: float) -> np.ndarray:
    C = np.zeros((U.shape[1], x.shape[1]))
    for j in range(U.shape[1]):
        w = sum(U[i, j] ** m for i in range(len(x)))
        C[j] = sum(U[i, j] ** m * x[i] for i in range(len(x))) / w
    return C


@pytest.mark.parametrize("m", [1.5, 2.0, 3.0])
def test_updates_match_a_loop_reference(m: float) -> None:
    rng = np.random.default_rng(1)
    x = rng.normal(size=(40, 5))
    c = rng.normal(size=(4, 5))
    U = fcm_memberships(x, c, m)
    np.testing.assert_allclose(U, brute_memberships(x, c, m), rtol=1e-8)
    np.testing.assert_allclose(fcm_centers(x, U, m), brute_centers(x, U, m), rtol=1e-8)
    np.testing.assert_allclose(U.sum(1), 1.0)


def test_fit_recovers_separated_clusters_and_lowers_the_objective() -> None:
    rng = np.random.default_rng(0)
    true = np.array([[0.0, 0.0, 0.0], [5.0, 5.0, 0.0], [10.0, 0.0, 5.0]])
    x = np.concatenate([t + 0.3 * rng.normal(size=(300, 3)) for t in true])
    model = FuzzyCMeans(n_clusters=3, max_samples=500, seed=0).fit(x)
    assert model.centers is not None
    found = model.centers[np.argsort(model.centers[:, 0])]
    np.testing.assert_allclose(found, true, atol=0.2)
    assert fcm_objective(x, model.centers) < fcm_objective(x, true + 1.0)
    U = model.predict(x, batch_size=100)
    assert U.shape == (900, 3) and U.dtype == np.float32
    assert (U.argmax(1) == np.repeat(np.argsort(np.argsort(true[:, 0])), 300)).mean() > 0.99


def test_predict_image_and_errors() -> None:
    rng = np.random.default_rng(0)
    model = FuzzyCMeans(n_clusters=2, seed=0).fit(rng.normal(size=(100, 4)))
    out = model.predict_image(rng.normal(size=(4, 6, 7)))
    assert out.shape == (2, 6, 7)
    np.testing.assert_allclose(out.sum(0), 1.0, rtol=1e-5)
    with pytest.raises(ValueError, match="expected"):
        model.predict(np.zeros((3, 5)))
    with pytest.raises(ValueError, match="before fit"):
        FuzzyCMeans().predict(np.zeros((3, 4)))
    with pytest.raises(ValueError, match="fuzzifier"):
        fcm_memberships(np.zeros((3, 2)), np.ones((2, 2)), m=1.0)
    with pytest.raises(ValueError, match="NaN"):
        FuzzyCMeans(n_clusters=2).fit(np.full((10, 2), np.nan))
