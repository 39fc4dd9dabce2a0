//! PCA in plain Rust: the covariance matrix, then a symmetric eigendecomposition by the cyclic
//! Jacobi method. No LAPACK: the matrices here are at most a few hundred wide (384 for
//! MiniLM), where Jacobi takes about a second and is simple enough to trust.

/// Eigenvalues (descending) and the matching unit eigenvectors of a symmetric matrix.
///
/// `a` is `n`×`n`, row-major; only its symmetric part matters. Cyclic Jacobi:
/// 1. sweep over every pair (p, q) above the diagonal;
/// 2. rotate rows and columns p, q by the angle that zeroes `a[p][q]`, and apply the same
///    rotation to the accumulated eigenvector matrix `v` (starting from the identity);
/// 3. repeat sweeps until the off-diagonal mass is negligible against the diagonal (quadratic
///    convergence: about 6-10 sweeps for a 384-wide covariance);
/// 4. the diagonal holds the eigenvalues, the columns of `v` the eigenvectors; sort them
///    by eigenvalue, largest first, and fix each vector's sign (largest component positive)
///    so results are reproducible.
#[must_use]
pub fn symmetric_eigen(a: &[f64], n: usize) -> (Vec<f64>, Vec<Vec<f64>>) {
    let mut a: Vec<f64> = a.to_vec();
    a.resize(n * n, 0.0);
    let mut v = vec![0.0f64; n * n];
    for i in 0..n {
        v[i * n + i] = 1.0;
    }
    for _sweep in 0..100 {
        let off: f64 = (0..n)
            .flat_map(|i| ((i + 1)..n).map(move |j| (i, j)))
            .map(|(i, j)| a[i * n + j] * a[i * n + j])
            .sum();
        let diag: f64 = (0..n).map(|i| a[i * n + i] * a[i * n + i]).sum();
        if off <= 1e-24 * diag.max(f64::MIN_POSITIVE) {
            break;
        }
        for p in 0..n {
            for q in (p + 1)..n {
                let apq = a[p * n + q];
                if apq == 0.0 {
                    continue;
                }
                // t = tan of the rotation angle, the smaller root of t² + 2θt − 1 = 0, which
                // keeps the rotation under 45° and the method stable.
                let theta = (a[q * n + q] - a[p * n + p]) / (2.0 * apq);
                let t = if theta.abs() > 1e150 {
                    0.5 / theta
                } else {
                    theta.signum() / (theta.abs() + (theta * theta + 1.0).sqrt())
                };
                let c = 1.0 / (t * t + 1.0).sqrt();
                let s = t * c;
                for k in 0..n {
                    let (akp, akq) = (a[k * n + p], a[k * n + q]);
                    a[k * n + p] = c * akp - s * akq;
                    a[k * n + q] = s * akp + c * akq;
                }
                for k in 0..n {
                    let (apk, aqk) = (a[p * n + k], a[q * n + k]);
                    a[p * n + k] = c * apk - s * aqk;
                    a[q * n + k] = s * apk + c * aqk;
                }
                for k in 0..n {
                    let (vkp, vkq) = (v[k * n + p], v[k * n + q]);
                    v[k * n + p] = c * vkp - s * vkq;
                    v[k * n + q] = s * vkp + c * vkq;
                }
            }
        }
    }
    let mut order: Vec<usize> = (0..n).collect();
    order.sort_by(|&i, &j| a[j * n + j].total_cmp(&a[i * n + i]));
    let values = order.iter().map(|&i| a[i * n + i]).collect();
    let vectors = order
        .iter()
        .map(|&col| {
            let mut e: Vec<f64> = (0..n).map(|k| v[k * n + col]).collect();
            let biggest = e
                .iter()
                .copied()
                .max_by(|x, y| x.abs().total_cmp(&y.abs()))
                .unwrap_or(0.0);
            if biggest < 0.0 {
                e.iter_mut().for_each(|x| *x = -*x);
            }
            e
        })
        .collect();
    (values, vectors)
}

/// A fitted PCA: subtract the mean, project on the top components.
#[derive(Debug, Clone)]
pub struct Pca {
    /// Per-dimension mean of the data it was fitted on.
    pub mean: Vec<f64>,
    /// `k` unit principal axes, each as wide as the input, largest variance first.
    pub components: Vec<Vec<f64>>,
    /// The variance along each component.
    pub variances: Vec<f64>,
}

impl Pca {
    /// Fits `k` components to `rows` (each `dim` wide). `k` is capped at `dim`.
    #[must_use]
    pub fn fit(rows: &[Vec<f32>], dim: usize, k: usize) -> Self {
        let n = rows.len().max(1) as f64;
        let mut mean = vec![0.0f64; dim];
        for r in rows {
            for (m, &x) in mean.iter_mut().zip(r) {
                *m += f64::from(x);
            }
        }
        mean.iter_mut().for_each(|m| *m /= n);
        // Upper triangle of the covariance, one contiguous row slice at a time so the inner
        // loop vectorises.
        let mut cov = vec![0.0f64; dim * dim];
        let mut x = vec![0.0f64; dim];
        for r in rows {
            for ((xi, &ri), m) in x.iter_mut().zip(r).zip(&mean) {
                *xi = f64::from(ri) - m;
            }
            for i in 0..dim {
                let xi = x[i];
                let row = &mut cov[i * dim + i..(i + 1) * dim];
                for (c, &xj) in row.iter_mut().zip(&x[i..]) {
                    *c += xi * xj;
                }
            }
        }
        let denom = (rows.len().saturating_sub(1)).max(1) as f64;
        for i in 0..dim {
            for j in i..dim {
                let c = cov[i * dim + j] / denom;
                cov[i * dim + j] = c;
                cov[j * dim + i] = c;
            }
        }
        let (values, vectors) = symmetric_eigen(&cov, dim);
        let k = k.min(dim);
        Self {
            mean,
            components: vectors.into_iter().take(k).collect(),
            variances: values.into_iter().take(k).collect(),
        }
    }

    /// Coordinates of `row` on the fitted components.
    #[must_use]
    pub fn transform(&self, row: &[f32]) -> Vec<f32> {
        self.components
            .iter()
            .map(|c| {
                c.iter()
                    .zip(row)
                    .zip(&self.mean)
                    .map(|((ci, &x), m)| ci * (f64::from(x) - m))
                    .sum::<f64>() as f32
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn eigen_of_a_known_matrix() {
        // [[2,1],[1,2]] has eigenvalues 3 (axis (1,1)/√2) and 1 (axis (1,−1)/√2).
        let (vals, vecs) = symmetric_eigen(&[2.0, 1.0, 1.0, 2.0], 2);
        assert!((vals[0] - 3.0).abs() < 1e-12 && (vals[1] - 1.0).abs() < 1e-12);
        let r = 0.5f64.sqrt();
        assert!((vecs[0][0] - r).abs() < 1e-12 && (vecs[0][1] - r).abs() < 1e-12);
        assert!((vecs[1][0].abs() - r).abs() < 1e-12 && (vecs[1][0] + vecs[1][1]).abs() < 1e-12);
    }

    #[test]
    fn eigen_reconstructs_a_random_symmetric_matrix() {
        // A V = V Λ for a dense 24×24 symmetric matrix built from a fixed LCG.
        let n = 24;
        let mut state = 12345u64;
        let mut next = || {
            state = state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ((state >> 33) as f64 / f64::from(u32::MAX)) - 0.25
        };
        let mut a = vec![0.0; n * n];
        for i in 0..n {
            for j in i..n {
                let x = next();
                a[i * n + j] = x;
                a[j * n + i] = x;
            }
        }
        let (vals, vecs) = symmetric_eigen(&a, n);
        for (lambda, e) in vals.iter().zip(&vecs) {
            for i in 0..n {
                let av: f64 = (0..n).map(|j| a[i * n + j] * e[j]).sum();
                assert!(
                    (av - lambda * e[i]).abs() < 1e-9,
                    "residual {}",
                    av - lambda * e[i]
                );
            }
        }
        assert!(vals.windows(2).all(|w| w[0] >= w[1]));
    }

    #[test]
    fn pca_finds_the_dominant_axis() {
        // Points spread along (3, 4)/5 with small noise on the other axis.
        let rows: Vec<Vec<f32>> = (0..200)
            .map(|i| {
                let t = i as f32 - 99.5; // centred: the t values sum to 0
                let noise = if i % 2 == 0 { 0.1 } else { -0.1 };
                vec![0.6 * t - 0.8 * noise + 5.0, 0.8 * t + 0.6 * noise - 1.0]
            })
            .collect();
        let pca = Pca::fit(&rows, 2, 1);
        assert!((pca.components[0][0] - 0.6).abs() < 1e-4);
        assert!((pca.components[0][1] - 0.8).abs() < 1e-4);
        let y = pca.transform(&[5.0, -1.0]);
        assert!(y[0].abs() < 1e-3, "the mean projects to the origin");
    }
}
