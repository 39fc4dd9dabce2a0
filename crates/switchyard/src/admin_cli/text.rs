//! Text output: short version ids, times, tables and diffs.

/// The first 12 characters of a version id, as the gateway's logs and records print it.
pub(super) fn short(id: &str) -> &str {
    id.get(..12).unwrap_or(id)
}

/// Milliseconds since the epoch as `2026-11-27 06:38:21` (UTC).
pub(super) fn when(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms).map_or_else(
        || ms.to_string(),
        |t| t.format("%Y-%m-%d %H:%M:%S").to_string(),
    )
}

/// Columns padded to their widest cell; the last column is not padded.
pub(super) fn table(header: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let line = |cells: &mut dyn Iterator<Item = &str>| {
        let cells: Vec<&str> = cells.collect();
        let mut out = String::new();
        for (i, cell) in cells.iter().enumerate() {
            if i + 1 == cells.len() {
                out.push_str(cell);
            } else {
                out.push_str(&format!("{cell:<w$}  ", w = widths[i]));
            }
        }
        out.trim_end().to_owned()
    };
    let mut out = line(&mut header.iter().copied());
    for row in rows {
        out.push('\n');
        out.push_str(&line(&mut row.iter().map(String::as_str)));
    }
    out
}

/// The table, or `empty` when it has no rows.
pub(super) fn print_table(header: &[&str], rows: &[Vec<String>], empty: &str) {
    if rows.is_empty() {
        println!("{empty}");
    } else {
        println!("{}", table(header, rows));
    }
}

/// A diff with a blank line before it, or nothing when it is empty.
pub(super) fn print_diff(diff: &str) {
    if !diff.is_empty() {
        println!();
        print!("{diff}");
        if !diff.ends_with('\n') {
            println!();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_align_all_but_the_last_column() {
        let rows = vec![
            vec!["a".to_owned(), "long value".to_owned(), "x".to_owned()],
            vec!["bbb".to_owned(), "v".to_owned(), String::new()],
        ];
        assert_eq!(
            table(&["K", "VALUE", "NOTE"], &rows),
            "K    VALUE       NOTE\na    long value  x\nbbb  v"
        );
    }
}
