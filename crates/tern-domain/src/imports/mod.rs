//! CSV imports of profiles: an uploaded file whose rows become `identify` events.
//!
//! The flow: [`create_import`] records an import and hands out an upload target; the client uploads the
//! file; [`start_import`] checks it is there and requests a run on the `imports` queue; [`run_import`]
//! streams the file, maps the header ([`columns`]) and each row ([`rows`], [`cells`]), accepts good rows in
//! batches and records broken ones, and saves its progress on the import record ([`store`]).

pub mod cells;
pub mod columns;
pub mod records;
pub mod rows;
pub mod run;
pub mod store;

pub use cells::CellType;
pub use columns::{Column, Columns, HeaderError, Target};
pub use rows::{ProfileRow, RowError, RowProblem, map_row};
pub use run::{BATCH_ROWS, RunOptions, RunOutcome, Skip, fail_import, run_import};
pub use store::{
    CreatedImport, IMPORTS_QUEUE, Import, ImportCounts, ImportMessage, ImportStatus, RowErrorPage,
    create_import, get_import, is_import_id, list_row_errors, start_import, upload_key,
};
