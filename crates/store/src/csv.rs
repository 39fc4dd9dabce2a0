//! CSV export of report rows (RFC 4180, written by the `csv` crate): any `Serialize` struct of
//! scalars, options, unit enum variants and nested structs (flattened as `outer.inner`
//! columns) becomes one line, its field names the header. It must not know what the rows mean.
//!
//! The `csv` crate quotes a field when it holds a comma, a double quote, CR or LF, doubling its
//! quotes, and ends lines with CRLF. Its own serde support is not used for the cells: it
//! refuses nested structs and writes floats its own way (`120.0`), where these exports name
//! nested columns `outer.inner` and write numbers as Rust displays them (`120`). A text cell
//! that a spreadsheet would run as a formula (starting with `=`, `+`, `-`, `@`, tab or CR) gets
//! a leading `'` (OWASP's CSV injection advice): tenants, keys and request ids may come from
//! clients. Numbers are written as they are.

use std::fmt::Display;

use serde::ser::{self, Impossible};
use serde::Serialize;

/// Why rows cannot be written as CSV.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CsvError {
    #[error("a CSV row must be a struct of flat fields; {0}")]
    NotFlat(String),
    #[error("row {row} has the columns {got:?}, the header {want:?}")]
    Columns {
        row: usize,
        got: Vec<String>,
        want: Vec<String>,
    },
    #[error("writing CSV: {0}")]
    Write(String),
}

impl ser::Error for CsvError {
    fn custom<T: Display>(msg: T) -> Self {
        CsvError::NotFlat(msg.to_string())
    }
}

impl From<csv::Error> for CsvError {
    fn from(e: csv::Error) -> Self {
        CsvError::Write(e.to_string())
    }
}

/// The rows as a CSV document with a header line; empty for no rows.
pub fn to_csv<T: Serialize>(rows: &[T]) -> Result<String, CsvError> {
    let mut out = csv::WriterBuilder::new()
        .terminator(csv::Terminator::CRLF)
        .from_writer(Vec::new());
    let mut header: Option<Vec<String>> = None;
    for (i, row) in rows.iter().enumerate() {
        let mut cells = Vec::new();
        row.serialize(Flat {
            prefix: "",
            cells: &mut cells,
        })?;
        let names: Vec<String> = cells.iter().map(|(n, _)| n.clone()).collect();
        if names.iter().any(String::is_empty) {
            return Err(CsvError::NotFlat("a row must be a struct".to_owned()));
        }
        match &header {
            None => {
                out.write_record(&names)?;
                header = Some(names);
            }
            Some(want) if *want != names => {
                return Err(CsvError::Columns {
                    row: i,
                    got: names,
                    want: want.clone(),
                });
            }
            Some(_) => {}
        }
        out.write_record(cells.iter().map(|(_, c)| c))?;
    }
    let bytes = out
        .into_inner()
        .map_err(|e| CsvError::Write(e.to_string()))?;
    String::from_utf8(bytes).map_err(|e| CsvError::Write(e.to_string()))
}

/// A text cell, defused if a spreadsheet would take it for a formula.
fn text(s: &str) -> String {
    if s.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        format!("'{s}")
    } else {
        s.to_owned()
    }
}

/// Serialises one value into `(column, cell)` pairs, the column named by `prefix`.
struct Flat<'a> {
    prefix: &'a str,
    cells: &'a mut Vec<(String, String)>,
}

impl Flat<'_> {
    fn push(self, cell: String) -> Result<(), CsvError> {
        self.cells.push((self.prefix.to_owned(), cell));
        Ok(())
    }

    fn not_flat(&self, what: &str) -> CsvError {
        CsvError::NotFlat(format!("`{}` is {what}", self.prefix))
    }
}

macro_rules! display_cell {
    ($($method:ident: $ty:ty),*) => {
        $(fn $method(self, v: $ty) -> Result<(), CsvError> {
            self.push(v.to_string())
        })*
    };
}

impl<'a> ser::Serializer for Flat<'a> {
    type Ok = ();
    type Error = CsvError;
    type SerializeSeq = Impossible<(), CsvError>;
    type SerializeTuple = Impossible<(), CsvError>;
    type SerializeTupleStruct = Impossible<(), CsvError>;
    type SerializeTupleVariant = Impossible<(), CsvError>;
    type SerializeMap = FlatMap<'a>;
    type SerializeStruct = FlatStruct<'a>;
    type SerializeStructVariant = Impossible<(), CsvError>;

    display_cell!(serialize_bool: bool, serialize_i8: i8, serialize_i16: i16, serialize_i32: i32,
        serialize_i64: i64, serialize_i128: i128, serialize_u8: u8, serialize_u16: u16,
        serialize_u32: u32, serialize_u64: u64, serialize_u128: u128, serialize_f32: f32,
        serialize_f64: f64);

    fn serialize_char(self, v: char) -> Result<(), CsvError> {
        self.push(text(&v.to_string()))
    }

    fn serialize_str(self, v: &str) -> Result<(), CsvError> {
        self.push(text(v))
    }

    fn serialize_bytes(self, _: &[u8]) -> Result<(), CsvError> {
        Err(self.not_flat("bytes"))
    }

    fn serialize_none(self) -> Result<(), CsvError> {
        self.push(String::new())
    }

    fn serialize_some<T: ?Sized + Serialize>(self, value: &T) -> Result<(), CsvError> {
        value.serialize(self)
    }

    fn serialize_unit(self) -> Result<(), CsvError> {
        self.push(String::new())
    }

    fn serialize_unit_struct(self, _: &'static str) -> Result<(), CsvError> {
        self.push(String::new())
    }

    fn serialize_unit_variant(
        self,
        _: &'static str,
        _: u32,
        variant: &'static str,
    ) -> Result<(), CsvError> {
        self.push(text(variant))
    }

    fn serialize_newtype_struct<T: ?Sized + Serialize>(
        self,
        _: &'static str,
        value: &T,
    ) -> Result<(), CsvError> {
        value.serialize(self)
    }

    fn serialize_newtype_variant<T: ?Sized + Serialize>(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: &T,
    ) -> Result<(), CsvError> {
        Err(self.not_flat("an enum with data"))
    }

    fn serialize_seq(self, _: Option<usize>) -> Result<Self::SerializeSeq, CsvError> {
        Err(self.not_flat("a list"))
    }

    fn serialize_tuple(self, _: usize) -> Result<Self::SerializeTuple, CsvError> {
        Err(self.not_flat("a tuple"))
    }

    fn serialize_tuple_struct(
        self,
        _: &'static str,
        _: usize,
    ) -> Result<Self::SerializeTupleStruct, CsvError> {
        Err(self.not_flat("a tuple struct"))
    }

    fn serialize_tuple_variant(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: usize,
    ) -> Result<Self::SerializeTupleVariant, CsvError> {
        Err(self.not_flat("an enum with data"))
    }

    /// What `#[serde(flatten)]` makes of a struct: its fields and the flattened one's.
    fn serialize_map(self, _: Option<usize>) -> Result<Self::SerializeMap, CsvError> {
        Ok(FlatMap {
            fields: FlatStruct {
                prefix: self.prefix,
                cells: self.cells,
            },
            key: None,
        })
    }

    fn serialize_struct(
        self,
        _: &'static str,
        _: usize,
    ) -> Result<Self::SerializeStruct, CsvError> {
        Ok(FlatStruct {
            prefix: self.prefix,
            cells: self.cells,
        })
    }

    fn serialize_struct_variant(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: usize,
    ) -> Result<Self::SerializeStructVariant, CsvError> {
        Err(self.not_flat("an enum with data"))
    }
}

/// A struct's fields, each a column `prefix.field` (or `field` at the top).
struct FlatStruct<'a> {
    prefix: &'a str,
    cells: &'a mut Vec<(String, String)>,
}

impl FlatStruct<'_> {
    fn field<T: ?Sized + Serialize>(&mut self, key: &str, value: &T) -> Result<(), CsvError> {
        let name = if self.prefix.is_empty() {
            key.to_owned()
        } else {
            format!("{}.{key}", self.prefix)
        };
        value.serialize(Flat {
            prefix: &name,
            cells: self.cells,
        })
    }
}

impl ser::SerializeStruct for FlatStruct<'_> {
    type Ok = ();
    type Error = CsvError;

    fn serialize_field<T: ?Sized + Serialize>(
        &mut self,
        key: &'static str,
        value: &T,
    ) -> Result<(), CsvError> {
        self.field(key, value)
    }

    fn end(self) -> Result<(), CsvError> {
        Ok(())
    }
}

/// A map with text keys, each a column like a struct's field.
struct FlatMap<'a> {
    fields: FlatStruct<'a>,
    key: Option<String>,
}

impl ser::SerializeMap for FlatMap<'_> {
    type Ok = ();
    type Error = CsvError;

    fn serialize_key<T: ?Sized + Serialize>(&mut self, key: &T) -> Result<(), CsvError> {
        match serde_json::to_value(key) {
            Ok(serde_json::Value::String(k)) => {
                self.key = Some(k);
                Ok(())
            }
            _ => Err(CsvError::NotFlat(format!(
                "`{}` is a map without text keys",
                self.fields.prefix
            ))),
        }
    }

    fn serialize_value<T: ?Sized + Serialize>(&mut self, value: &T) -> Result<(), CsvError> {
        let key = self.key.take().unwrap_or_default();
        self.fields.field(&key, value)
    }

    fn end(self) -> Result<(), CsvError> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Serialize)]
    struct Inner {
        a: u32,
        b: Option<f64>,
    }

    #[derive(Serialize)]
    #[serde(rename_all = "lowercase")]
    enum Kind {
        Day,
    }

    #[derive(Serialize)]
    struct Row {
        name: String,
        n: i64,
        kind: Kind,
        inner: Inner,
        missing: Option<String>,
    }

    fn row(name: &str, n: i64) -> Row {
        Row {
            name: name.to_owned(),
            n,
            kind: Kind::Day,
            inner: Inner { a: 1, b: Some(0.5) },
            missing: None,
        }
    }

    #[test]
    fn quotes_as_rfc_4180_says_and_flattens_nested_structs() {
        let csv = to_csv(&[
            row("plain", -3),
            row("a,b", 0),
            row("say \"hi\"", 1),
            row("two\nlines", 2),
            row("cr\rhere", 3),
        ])
        .unwrap();
        assert_eq!(
            csv,
            "name,n,kind,inner.a,inner.b,missing\r\n\
             plain,-3,day,1,0.5,\r\n\
             \"a,b\",0,day,1,0.5,\r\n\
             \"say \"\"hi\"\"\",1,day,1,0.5,\r\n\
             \"two\nlines\",2,day,1,0.5,\r\n\
             \"cr\rhere\",3,day,1,0.5,\r\n"
        );
    }

    #[test]
    fn text_a_spreadsheet_would_run_is_defused_but_numbers_are_not() {
        let csv = to_csv(&[row("=HYPERLINK(\"x\")", -1), row("@SUM(A1)", 0)]).unwrap();
        let lines: Vec<&str> = csv.split("\r\n").collect();
        assert_eq!(lines[1], "\"'=HYPERLINK(\"\"x\"\")\",-1,day,1,0.5,");
        assert_eq!(lines[2], "'@SUM(A1),0,day,1,0.5,");
    }

    #[test]
    fn flattened_fields_are_columns_of_their_own() {
        #[derive(Serialize)]
        struct Outer {
            key: &'static str,
            #[serde(flatten)]
            inner: Inner,
        }
        let csv = to_csv(&[Outer {
            key: "k",
            inner: Inner { a: 2, b: None },
        }])
        .unwrap();
        assert_eq!(csv, "key,a,b\r\nk,2,\r\n");
    }

    #[test]
    fn no_rows_is_an_empty_document_and_lists_are_refused() {
        assert_eq!(to_csv::<Row>(&[]).unwrap(), "");
        #[derive(Serialize)]
        struct Listy {
            xs: Vec<u8>,
        }
        assert_eq!(
            to_csv(&[Listy { xs: vec![1] }]),
            Err(CsvError::NotFlat("`xs` is a list".to_owned()))
        );
        assert_eq!(
            to_csv(&[1u8]),
            Err(CsvError::NotFlat("a row must be a struct".to_owned()))
        );
    }
}
