//! A flat vector index: one scope's embeddings as contiguous rows, scanned in full.
//!
//! Rows are stored as `i8` with one scale per row (symmetric quantisation to the row's largest
//! component): a quarter of the memory of `f32` rows, so a cache budget holds about three
//! times the entries, and a scan that reads a quarter of the bytes (measured with
//! `examples/scan.rs`: 35k rows of 256 dimensions, 1.9 ms p50 against 2.4 ms for `f32` on the
//! shared 2-core machine; the portable build has no AVX2, so the integer maths gains less than
//! the memory does). The similarity error is about 1e-3, far below the gaps between
//! thresholds.
//!
//! Why not HNSW: a scope is one (tenant, route, system prompt), so it holds thousands of
//! entries, not millions. At that size an exact scan over contiguous, unit-length rows is a
//! few hundred microseconds (see `eval/cache.md`), has perfect recall, costs no memory beyond
//! the vectors, and deletes in O(1) (swap-remove), where HNSW graphs degrade under the constant
//! deletions that TTL and LRU eviction make. When a scope outgrows the scan budget, this type
//! is the one to replace; its interface (insert, remove, top-k) would not change.

/// Rows of one dimension, each unit length, with the caller's id for each row.
#[derive(Debug, Clone)]
pub struct FlatIndex {
    dim: usize,
    rows: Vec<i8>,
    scales: Vec<f32>,
    ids: Vec<u64>,
}

/// `v` as `i8`s and the scale that maps them back (`v[i] ≈ q[i] * scale`).
fn quantise(v: &[f32], out: &mut Vec<i8>) -> f32 {
    let max = v.iter().fold(0f32, |m, x| m.max(x.abs()));
    if max == 0.0 || !max.is_finite() {
        out.extend(std::iter::repeat_n(0i8, v.len()));
        return 0.0;
    }
    let scale = max / 127.0;
    // In range by construction: |x| / scale <= 127.
    out.extend(v.iter().map(|x| (x / scale).round() as i8));
    scale
}

/// Integer dot product with sixteen independent `i32` lanes, which the compiler vectorises
/// (no `unsafe`, no target features). 256 products of at most 127² fit an `i32` easily.
fn dot_i8(a: &[i8], b: &[i8]) -> i32 {
    let mut acc = [0i32; 16];
    let (ca, cb) = (a.chunks_exact(16), b.chunks_exact(16));
    let (ra, rb) = (ca.remainder(), cb.remainder());
    for (x, y) in ca.zip(cb) {
        for i in 0..16 {
            acc[i] += i32::from(x[i]) * i32::from(y[i]);
        }
    }
    let mut s: i32 = acc.iter().sum();
    for (x, y) in ra.iter().zip(rb) {
        s += i32::from(*x) * i32::from(*y);
    }
    s
}

impl FlatIndex {
    pub fn new(dim: usize) -> FlatIndex {
        FlatIndex {
            dim,
            rows: Vec::new(),
            scales: Vec::new(),
            ids: Vec::new(),
        }
    }

    pub fn dim(&self) -> usize {
        self.dim
    }

    pub fn len(&self) -> usize {
        self.ids.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }

    /// Appends a row (must be `dim` long and unit length); returns its position.
    pub fn push(&mut self, id: u64, v: &[f32]) -> usize {
        let scale = quantise(&v[..self.dim.min(v.len())], &mut self.rows);
        // A short vector is padded so rows stay aligned (it then matches nothing well).
        self.rows.resize(self.ids.len() * self.dim + self.dim, 0);
        self.scales.push(scale);
        self.ids.push(id);
        self.ids.len() - 1
    }

    /// Removes the row at `pos` by moving the last row into it. Returns the id of the row that
    /// moved to `pos`, if any, so the caller can update its position.
    pub fn swap_remove(&mut self, pos: usize) -> Option<u64> {
        let last = self.ids.len().checked_sub(1)?;
        if pos > last {
            return None;
        }
        if pos != last {
            let (head, tail) = self.rows.split_at_mut(last * self.dim);
            head[pos * self.dim..(pos + 1) * self.dim].copy_from_slice(&tail[..self.dim]);
        }
        self.rows.truncate(last * self.dim);
        self.scales.swap_remove(pos);
        self.ids.swap_remove(pos);
        (pos != last).then(|| self.ids[pos])
    }

    /// The `k` best (id, position, similarity) with similarity at least `min`, best first.
    pub fn top_k(&self, q: &[f32], k: usize, min: f32) -> Vec<(u64, usize, f32)> {
        let mut best: Vec<(u64, usize, f32)> = Vec::with_capacity(k + 1);
        if q.len() != self.dim || k == 0 || self.dim == 0 {
            return best;
        }
        let mut qq = Vec::with_capacity(self.dim);
        let q_scale = quantise(q, &mut qq);
        for (pos, row) in self.rows.chunks_exact(self.dim).enumerate() {
            let s = dot_i8(&qq, row) as f32 * q_scale * self.scales[pos];
            if s < min {
                continue;
            }
            if best.len() == k && best.last().is_some_and(|b| b.2 >= s) {
                continue;
            }
            let at = best.partition_point(|b| b.2 >= s);
            best.insert(at, (self.ids[pos], pos, s));
            best.truncate(k);
        }
        best
    }

    /// Bytes held per row: the quantised vector, its scale and its id.
    pub fn bytes_per_row(&self) -> usize {
        self.dim + 4 + 8
    }
}

/// Dot product with eight independent accumulators, so the compiler vectorises it without
/// `unsafe` or target features.
pub fn dot(a: &[f32], b: &[f32]) -> f32 {
    let mut acc = [0f32; 8];
    let (ca, cb) = (a.chunks_exact(8), b.chunks_exact(8));
    let (ra, rb) = (ca.remainder(), cb.remainder());
    for (x, y) in ca.zip(cb) {
        for i in 0..8 {
            acc[i] += x[i] * y[i];
        }
    }
    let mut s: f32 = acc.iter().sum();
    for (x, y) in ra.iter().zip(rb) {
        s += x * y;
    }
    s
}

/// Scales `v` to unit length in place; a zero vector stays zero (it then matches nothing).
pub fn normalise(v: &mut [f32]) {
    let n = dot(v, v).sqrt();
    if n > 0.0 && n.is_finite() {
        for x in v.iter_mut() {
            *x /= n;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn top_k_orders_and_swap_remove_keeps_rows() {
        let mut ix = FlatIndex::new(2);
        ix.push(10, &[1.0, 0.0]);
        ix.push(11, &[0.0, 1.0]);
        ix.push(12, &[0.6, 0.8]);
        let got = ix.top_k(&[1.0, 0.0], 2, 0.1);
        assert_eq!(got.iter().map(|g| g.0).collect::<Vec<_>>(), vec![10, 12]);
        assert_eq!(ix.swap_remove(0), Some(12));
        let got = ix.top_k(&[0.6, 0.8], 1, 0.0);
        assert_eq!((got[0].0, got[0].1), (12, 0));
        assert_eq!(ix.swap_remove(1), None);
        assert_eq!(ix.len(), 1);
    }

    #[test]
    fn quantised_similarity_is_close_to_exact() {
        let mut state = 12345u64;
        let mut next = || {
            state = state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ((state >> 33) as f32 / (1u64 << 31) as f32) - 0.5
        };
        let mut unit = || {
            let mut v: Vec<f32> = (0..256).map(|_| next()).collect();
            normalise(&mut v);
            v
        };
        let rows: Vec<Vec<f32>> = (0..50).map(|_| unit()).collect();
        let mut ix = FlatIndex::new(256);
        for (i, r) in rows.iter().enumerate() {
            ix.push(i as u64, r);
        }
        let q = unit();
        for (id, _, s) in ix.top_k(&q, 50, -1.0) {
            let exact = dot(&q, &rows[id as usize]);
            assert!((s - exact).abs() < 3e-3, "{s} vs {exact}");
        }
        // A vector finds itself at similarity ~1.
        let got = ix.top_k(&rows[7], 1, 0.0);
        assert_eq!(got[0].0, 7);
        assert!((got[0].2 - 1.0).abs() < 3e-3, "{}", got[0].2);
    }
}
