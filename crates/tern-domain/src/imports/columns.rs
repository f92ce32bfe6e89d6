//! The header row of an import: which column gives the user id, the email, the anonymous id, and which
//! trait each other column sets, with the type a `name:type` suffix forces.

use std::collections::BTreeMap;
use std::fmt;

use thiserror::Error;

use super::cells::CellType;

/// The most columns a file may have. A profile with more traits than this is not what a CSV import is for,
/// and the bound keeps a malformed header (one enormous line of commas) from growing memory.
pub const MAX_COLUMNS: usize = 1000;

/// What one column sets on the profile.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum Target {
    /// `userId`, `user_id` or `id`.
    UserId,
    /// `anonymousId` or `anonymous_id`.
    AnonymousId,
    /// Any other column, named as in the header (the `email` column is the trait `email`).
    Trait(String),
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Target::UserId => f.write_str("the user id"),
            Target::AnonymousId => f.write_str("the anonymous id"),
            Target::Trait(name) => write!(f, "the trait {name:?}"),
        }
    }
}

/// One column of the header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Column {
    /// The header cell as written (trimmed), which row errors name.
    pub header: String,
    pub target: Target,
    /// The type a `:type` suffix forces; `None` infers the type of each cell.
    pub forced: Option<CellType>,
}

/// The parsed header row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Columns {
    pub columns: Vec<Column>,
    /// The position of the trait `email` column, which identifies a row that has no user id.
    pub email: Option<usize>,
}

/// Why a header row cannot be imported; the whole import fails with this reason.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum HeaderError {
    #[error("the file is empty: its first row must name the columns")]
    Empty,
    #[error("the header has more than {MAX_COLUMNS} columns")]
    TooManyColumns,
    #[error("the header row is larger than {max} bytes", max = super::rows::MAX_ROW_BYTES)]
    TooLarge,
    #[error("column {position}: the name is not valid UTF-8")]
    NotUtf8 { position: usize },
    #[error("column {position}: the name is empty")]
    EmptyName { position: usize },
    #[error(
        "column {position} ({header:?}): unknown type {kind:?}; use string, number, bool or date"
    )]
    UnknownType {
        position: usize,
        header: String,
        kind: String,
    },
    #[error("column {position} ({header:?}): {target} is always text and cannot be typed {kind}")]
    TypedIdentity {
        position: usize,
        header: String,
        target: Target,
        kind: CellType,
    },
    #[error("columns {first} and {second} both set {target}")]
    Duplicate {
        first: usize,
        second: usize,
        target: Target,
    },
    #[error(
        "no column identifies a profile: the header needs userId (or user_id, id), email or anonymousId"
    )]
    NoIdentity,
}

impl Columns {
    /// Parses the header cells (raw bytes, as read). Positions in errors count from 1.
    pub fn parse(cells: &[&[u8]]) -> Result<Columns, HeaderError> {
        if cells.len() > MAX_COLUMNS {
            return Err(HeaderError::TooManyColumns);
        }
        // One empty line is no header at all.
        if cells.is_empty() || (cells.len() == 1 && cells[0].is_empty()) {
            return Err(HeaderError::Empty);
        }
        let columns = cells
            .iter()
            .enumerate()
            .map(|(index, cell)| parse_column(index + 1, cell))
            .collect::<Result<Vec<_>, _>>()?;
        check_unique(&columns)?;
        let email = columns
            .iter()
            .position(|column| column.target == Target::Trait(EMAIL_TRAIT.to_string()));
        let identifies = |target: &Target| matches!(target, Target::UserId | Target::AnonymousId);
        if email.is_none() && !columns.iter().any(|column| identifies(&column.target)) {
            return Err(HeaderError::NoIdentity);
        }
        Ok(Columns { columns, email })
    }

    pub fn len(&self) -> usize {
        self.columns.len()
    }

    pub fn is_empty(&self) -> bool {
        self.columns.is_empty()
    }
}

/// The trait an `email` column sets, whatever the header's case.
pub const EMAIL_TRAIT: &str = "email";

fn parse_column(position: usize, cell: &[u8]) -> Result<Column, HeaderError> {
    let text = std::str::from_utf8(cell).map_err(|_| HeaderError::NotUtf8 { position })?;
    let header = text.trim().to_string();
    let (name, forced) = split_type_suffix(position, &header)?;
    if name.is_empty() {
        return Err(HeaderError::EmptyName { position });
    }
    let target = target_of(name);
    let identifies = matches!(&target, Target::UserId | Target::AnonymousId)
        || target == Target::Trait(EMAIL_TRAIT.to_string());
    if let Some(kind) = forced
        && identifies
        && kind != CellType::String
    {
        return Err(HeaderError::TypedIdentity {
            position,
            header: header.clone(),
            target,
            kind,
        });
    }
    Ok(Column {
        header,
        target,
        forced,
    })
}

/// `age:number` is the column `age` forced to numbers. A suffix that names no type is refused rather than
/// kept as part of the name, so that a typo (`age:nubmer`) does not silently become a trait.
fn split_type_suffix(
    position: usize,
    header: &str,
) -> Result<(&str, Option<CellType>), HeaderError> {
    let Some((name, suffix)) = header.rsplit_once(':') else {
        return Ok((header, None));
    };
    match CellType::parse(suffix.trim()) {
        Some(kind) => Ok((name.trim(), Some(kind))),
        None => Err(HeaderError::UnknownType {
            position,
            header: header.to_string(),
            kind: suffix.trim().to_string(),
        }),
    }
}

/// Identity columns are recognized whatever their case and underscores (`userId`, `user_id`, `UserID`);
/// every other name is a trait, kept as written, except that `email` is always the trait `email`.
fn target_of(name: &str) -> Target {
    let folded: String = name
        .chars()
        .filter(|c| *c != '_')
        .flat_map(char::to_lowercase)
        .collect();
    match folded.as_str() {
        "userid" | "id" => Target::UserId,
        "anonymousid" => Target::AnonymousId,
        EMAIL_TRAIT => Target::Trait(EMAIL_TRAIT.to_string()),
        _ => Target::Trait(name.to_string()),
    }
}

fn check_unique(columns: &[Column]) -> Result<(), HeaderError> {
    let mut seen: BTreeMap<&Target, usize> = BTreeMap::new();
    for (index, column) in columns.iter().enumerate() {
        if let Some(first) = seen.insert(&column.target, index + 1) {
            return Err(HeaderError::Duplicate {
                first,
                second: index + 1,
                target: column.target.clone(),
            });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(header: &[&str]) -> Result<Columns, HeaderError> {
        let cells: Vec<&[u8]> = header.iter().map(|cell| cell.as_bytes()).collect();
        Columns::parse(&cells)
    }

    #[test]
    fn identity_columns_are_recognized_in_any_spelling() {
        for name in ["userId", "user_id", "id", "UserID", "USER_ID"] {
            let columns = parse(&[name, "plan"]).unwrap();
            assert_eq!(columns.columns[0].target, Target::UserId, "{name}");
        }
        for name in ["anonymousId", "anonymous_id", "AnonymousID"] {
            let columns = parse(&[name]).unwrap();
            assert_eq!(columns.columns[0].target, Target::AnonymousId, "{name}");
        }
        let columns = parse(&["Email", "name"]).unwrap();
        assert_eq!(columns.columns[0].target, Target::Trait("email".into()));
        assert_eq!(columns.email, Some(0));
        assert_eq!(columns.columns[1].target, Target::Trait("name".into()));
    }

    #[test]
    fn a_type_suffix_forces_the_type_and_is_not_part_of_the_name() {
        let columns =
            parse(&["id", "zip:string", "age : number", "vip:BOOL", "born:date"]).unwrap();
        let read: Vec<(Target, Option<CellType>)> = columns
            .columns
            .iter()
            .map(|c| (c.target.clone(), c.forced))
            .collect();
        assert_eq!(
            read,
            vec![
                (Target::UserId, None),
                (Target::Trait("zip".into()), Some(CellType::String)),
                (Target::Trait("age".into()), Some(CellType::Number)),
                (Target::Trait("vip".into()), Some(CellType::Bool)),
                (Target::Trait("born".into()), Some(CellType::Date)),
            ]
        );
        assert_eq!(columns.columns[2].header, "age : number");
    }

    #[test]
    fn broken_headers_are_refused_with_the_column_named() {
        assert_eq!(parse(&[""]), Err(HeaderError::Empty));
        assert_eq!(
            parse(&["id", " "]),
            Err(HeaderError::EmptyName { position: 2 })
        );
        assert_eq!(
            parse(&["id", "age:nubmer"]),
            Err(HeaderError::UnknownType {
                position: 2,
                header: "age:nubmer".into(),
                kind: "nubmer".into()
            })
        );
        assert!(matches!(
            parse(&["userId:number"]),
            Err(HeaderError::TypedIdentity { position: 1, .. })
        ));
        assert!(matches!(
            parse(&["id", "email:date"]),
            Err(HeaderError::TypedIdentity { position: 2, .. })
        ));
        assert_eq!(
            parse(&["userId", "plan", "id"]),
            Err(HeaderError::Duplicate {
                first: 1,
                second: 3,
                target: Target::UserId
            })
        );
        assert!(matches!(
            parse(&["email", "EMAIL:string"]),
            Err(HeaderError::Duplicate {
                first: 1,
                second: 2,
                ..
            })
        ));
        assert_eq!(parse(&["plan", "age"]), Err(HeaderError::NoIdentity));
        let not_utf8: &[&[u8]] = &[b"id", b"\xff"];
        assert_eq!(
            Columns::parse(not_utf8),
            Err(HeaderError::NotUtf8 { position: 2 })
        );
        let wide: Vec<String> = (0..=MAX_COLUMNS).map(|i| format!("c{i}")).collect();
        let wide: Vec<&str> = wide.iter().map(String::as_str).collect();
        assert_eq!(parse(&wide), Err(HeaderError::TooManyColumns));
    }

    #[test]
    fn header_errors_read_as_sentences() {
        let error = parse(&["id", "age:nubmer"]).unwrap_err();
        assert_eq!(
            error.to_string(),
            "column 2 (\"age:nubmer\"): unknown type \"nubmer\"; use string, number, bool or date"
        );
        let error = parse(&["id", "user_id"]).unwrap_err();
        assert_eq!(error.to_string(), "columns 1 and 2 both set the user id");
    }
}
