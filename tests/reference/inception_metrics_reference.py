"""numpy/scipy implementations of the metric formulas of the reference tools, written from their
definitions, for varbench's metric fixtures and benchmark script (float64 throughout):

* FID: pytorch-fid / ADM evaluator (scipy.linalg.sqrtm of S1 S2), torch-fidelity (eigenvalues of the
  non-symmetric S1 S2), and the symmetric route varbench uses (eigenvalues of sqrt(S1) S2 sqrt(S1)).
* Inception Score: ADM (consecutive 5000-image chunks, mean) and torch-fidelity (10 splits of a
  RandomState(2020) permutation, mean and std).
* Precision/recall: the ADM evaluator's k-NN manifolds (k = 3, squared distances, <=).
* KID: torch-fidelity's subsets (RandomState(2020).choice without replacement), cubic kernel, unbiased
  MMD^2.
"""
import numpy as np
import scipy.linalg
import scipy.special
import torch


def gaussian(x):
    x = np.asarray(x, dtype=np.float64)
    return x.mean(axis=0), np.cov(x, rowvar=False)


def fid_sqrtm(mu1, s1, mu2, s2):
    covmean, _ = scipy.linalg.sqrtm(s1 @ s2, disp=False)
    if not np.isfinite(covmean).all():
        raise ValueError("sqrtm of the covariance product is not finite")
    covmean = covmean.real
    d = mu1 - mu2
    return float(d @ d + np.trace(s1) + np.trace(s2) - 2 * np.trace(covmean))


def fid_eigvals(mu1, s1, mu2, s2):
    ev = np.linalg.eigvals(s1 @ s2).astype(np.complex128)
    d = mu1 - mu2
    return float(d @ d + np.trace(s1) + np.trace(s2) - 2 * np.sqrt(ev).real.sum())


def psd_sqrt(s, rank=None):
    """Symmetric square root over the `rank` largest eigenvalues (all when None)."""
    lam, v = np.linalg.eigh(s)
    lam = np.clip(lam, 0, None)
    if rank is not None:
        lam[: len(lam) - rank] = 0
    return (v * np.sqrt(lam)) @ v.T


def fid_symmetric(mu1, s1, mu2, s2, n1=None, n2=None):
    """Argument order as the C++ API: (sample, reference); the reference's square root is taken. With
    the sample counts, only the min(n1, n2) - 1 largest eigenvalues (the most a product of two sample
    covariances can have) enter the trace; the others are rounding noise."""
    d_dims = len(mu1)
    r2 = None if n2 is None else min(n2 - 1, d_dims)
    r = psd_sqrt(s2, r2)
    lam = np.sort(np.linalg.eigvalsh(r @ s1 @ r))
    k = min([d_dims] + [n - 1 for n in (n1, n2) if n is not None])
    d = mu1 - mu2
    return float(d @ d + np.trace(s1) + np.trace(s2) - 2 * np.sqrt(np.clip(lam[len(lam) - k:], 0, None)).sum())


def _split_score(logits):
    p = scipy.special.softmax(logits, axis=1)
    log_p = scipy.special.log_softmax(logits, axis=1)
    q = p.mean(axis=0, keepdims=True)
    return float(np.exp((p * (log_p - np.log(q))).sum(axis=1).mean()))


def inception_score_adm(logits, split_size=5000):
    logits = np.asarray(logits, dtype=np.float64)
    scores = [_split_score(logits[i:i + split_size]) for i in range(0, len(logits), split_size)]
    return float(np.mean(scores)), float(np.std(scores))


def inception_score_torch_fidelity(logits, splits=10, seed=2020):
    logits = np.asarray(logits, dtype=np.float64)
    n = len(logits)
    perm = np.random.RandomState(seed).permutation(n)
    logits = logits[perm]
    scores = [_split_score(logits[i * n // splits:(i + 1) * n // splits]) for i in range(splits)]
    return float(np.mean(scores)), float(np.std(scores)), perm


def squared_distances(u, v):
    nu = (u * u).sum(axis=1)[:, None]
    nv = (v * v).sum(axis=1)[None, :]
    return np.maximum(nu - 2 * (u @ v.T) + nv, 0.0)


def manifold_radii(x, k=3):
    d = squared_distances(x, x)
    return np.partition(d, k, axis=1)[:, k]  # (k+1)-th smallest, the point itself included


def precision_recall(ref, sample, k=3):
    ref = np.asarray(ref, dtype=np.float64)
    sample = np.asarray(sample, dtype=np.float64)
    r_ref, r_smp = manifold_radii(ref, k), manifold_radii(sample, k)
    d = squared_distances(ref, sample)  # [N_ref, N_sample]
    precision = float((d <= r_ref[:, None]).any(axis=0).mean())
    recall = float((d <= r_smp[None, :]).any(axis=1).mean())
    return precision, recall


def kid(sample, ref, subsets=100, subset_size=1000, seed=2020):
    x_all = np.asarray(sample, dtype=np.float64)
    y_all = np.asarray(ref, dtype=np.float64)
    rng = np.random.RandomState(seed)
    m = subset_size
    gamma = 1.0 / x_all.shape[1]
    mmds = []
    for _ in range(subsets):
        x = x_all[rng.choice(len(x_all), m, replace=False)]
        y = y_all[rng.choice(len(y_all), m, replace=False)]
        kxx = (x @ x.T * gamma + 1) ** 3
        kyy = (y @ y.T * gamma + 1) ** 3
        kxy = (x @ y.T * gamma + 1) ** 3
        off = (kxx.sum() - np.trace(kxx)) + (kyy.sum() - np.trace(kyy))
        mmds.append(off / (m * (m - 1)) - 2 * kxy.sum() / (m * m))
    return float(np.mean(mmds)), float(np.std(mmds))


def correlated_features(rng, n, d, shift=0.0, scale=1.0):
    """Non-negative, correlated, full-rank-when-n>d features (Inception pool3 features are post-ReLU
    averages: non-negative with a dense covariance)."""
    a = np.eye(d) + rng.normal(0, 0.5 / np.sqrt(d), size=(d, d))
    z = rng.normal(0, 1, size=(n, d)) @ a
    return np.abs(scale * z + shift).astype(np.float32)


def make_metric_fixtures(rng):
    fx = {}
    t = lambda a: torch.from_numpy(np.ascontiguousarray(a))  # noqa: E731

    # FID, full rank at d = 2048 (the real case): sqrtm and eigenvalue routes agree to ~1e-10 here.
    x1 = correlated_features(rng, 2600, 2048)
    x2 = correlated_features(rng, 2300, 2048, shift=0.1, scale=1.1)
    (m1, s1), (m2, s2) = gaussian(x1), gaussian(x2)
    fx["fid.full.x1"], fx["fid.full.x2"] = t(x1), t(x2)
    fx["fid.full.sqrtm"] = torch.tensor(fid_sqrtm(m1, s1, m2, s2), dtype=torch.float64)
    fx["fid.full.symmetric"] = torch.tensor(fid_symmetric(m1, s1, m2, s2, len(x1), len(x2)), dtype=torch.float64)

    # Fewer samples than dimensions: rank-deficient covariances.
    x1 = correlated_features(rng, 100, 256)
    x2 = correlated_features(rng, 120, 256, shift=0.3)
    (m1, s1), (m2, s2) = gaussian(x1), gaussian(x2)
    fx["fid.low.x1"], fx["fid.low.x2"] = t(x1), t(x2)
    fx["fid.low.mu1"], fx["fid.low.sigma1"] = t(m1), t(s1)
    fx["fid.low.sqrtm"] = torch.tensor(fid_sqrtm(m1, s1, m2, s2), dtype=torch.float64)
    fx["fid.low.symmetric"] = torch.tensor(fid_symmetric(m1, s1, m2, s2, len(x1), len(x2)), dtype=torch.float64)

    # sFID: the same formula on the 2023-d spatial features.
    x1 = correlated_features(rng, 300, 2023)
    x2 = correlated_features(rng, 350, 2023, shift=0.2)
    (m1, s1), (m2, s2) = gaussian(x1), gaussian(x2)
    fx["sfid.x1"], fx["sfid.x2"] = t(x1), t(x2)
    fx["sfid.symmetric"] = torch.tensor(fid_symmetric(m1, s1, m2, s2, len(x1), len(x2)), dtype=torch.float64)

    # Inception Score on random logits (5500 images: ADM chunks of 5000 and 500).
    logits = (rng.normal(0, 3, size=(5500, 1008)) + rng.normal(0, 2, size=(1, 1008))).astype(np.float32)
    fx["is.logits"] = t(logits)
    fx["is.adm.mean"], fx["is.adm.std"] = (torch.tensor(v, dtype=torch.float64) for v in inception_score_adm(logits))
    mean, std, perm = inception_score_torch_fidelity(logits)
    fx["is.tf.mean"], fx["is.tf.std"] = torch.tensor(mean, dtype=torch.float64), torch.tensor(std, dtype=torch.float64)
    fx["is.tf.permutation"] = t(perm.astype(np.int64))
    fx["rng.choice_2020_1000_200"] = t(np.random.RandomState(2020).choice(1000, 200, replace=False).astype(np.int64))

    # Precision/recall: overlapping clouds so that neither is 0 or 1.
    ref = rng.normal(0, 1, size=(700, 64)).astype(np.float32)
    smp = (rng.normal(0, 1, size=(600, 64)) + 0.3).astype(np.float32)
    fx["pr.ref"], fx["pr.sample"] = t(ref), t(smp)
    fx["pr.ref_radii"] = t(manifold_radii(ref.astype(np.float64)))
    p, r = precision_recall(ref, smp)
    fx["pr.precision"], fx["pr.recall"] = torch.tensor(p, dtype=torch.float64), torch.tensor(r, dtype=torch.float64)

    # KID: 100 subsets of 200 (the defaults are 100 of 1000).
    x = np.abs(rng.normal(0, 1, size=(300, 64))).astype(np.float32)
    y = np.abs(rng.normal(0.1, 1, size=(280, 64))).astype(np.float32)
    fx["kid.sample"], fx["kid.ref"] = t(x), t(y)
    mean, std = kid(x, y, subsets=100, subset_size=200)
    fx["kid.mean"], fx["kid.std"] = torch.tensor(mean, dtype=torch.float64), torch.tensor(std, dtype=torch.float64)
    return fx
