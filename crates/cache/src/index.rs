//! A flat vector index: one scope's embeddings as contiguous `f32` rows, searched exactly.
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
    rows: Vec<f32>,
    ids: Vec<u64>,
}

impl FlatIndex {
    pub fn new(dim: usize) -> FlatIndex {
        FlatIndex {
            dim,
            rows: Vec::new(),
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
        self.rows.extend_from_slice(v);
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
        self.ids.swap_remove(pos);
        (pos != last).then(|| self.ids[pos])
    }

    /// The `k` best (id, position, similarity) with similarity at least `min`, best first.
    pub fn top_k(&self, q: &[f32], k: usize, min: f32) -> Vec<(u64, usize, f32)> {
        let mut best: Vec<(u64, usize, f32)> = Vec::with_capacity(k + 1);
        if q.len() != self.dim || k == 0 || self.dim == 0 {
            return best;
        }
        for (pos, row) in self.rows.chunks_exact(self.dim).enumerate() {
            let s = dot(q, row);
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

    /// Bytes held by the rows and ids.
    pub fn bytes_per_row(&self) -> usize {
        self.dim * 4 + 8
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
}
