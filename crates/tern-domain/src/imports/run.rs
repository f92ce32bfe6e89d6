//! Running an import: the uploaded file streamed from the blobs port, split into records, each good row
//! handed to [`crate::ingest::accept`] as an `identify` event in batches, each broken row recorded, and the
//! progress saved on the import record after every batch.
//!
//! A run is safe to repeat. Rows carry deterministic `messageId`s, so a row accepted twice is stored once;
//! a run that starts on an import another run left `running` resumes after the last checkpoint (rows before
//! it are read but not accepted again); and a run that loses the record's version to a newer run stops.

use std::time::{Duration, Instant};

use bytes::Bytes;
use futures::StreamExt;
use tern_ports::{ByteStream, PortError, Ports, Update};

use super::columns::{Columns, HeaderError, MAX_COLUMNS};
use super::records::{RawRecord, RecordSplitter, Split};
use super::rows::{MAX_ROW_BYTES, RowError, RowProblem, map_row};
use super::store::{
    Import, ImportMessage, ImportStatus, MAX_KEPT_ROW_ERRORS, failure_update, get_import,
    progress_update, put_row_errors, status_update, upload_key, write,
};
use crate::error::{DomainError, DomainResult};
use crate::ingest::{self, Event};

/// Rows accepted and checkpointed together.
pub const BATCH_ROWS: usize = 500;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunOptions {
    /// Rows handed to `accept` (and checkpointed) together.
    pub batch_rows: usize,
    /// After this long, a run stops at its next checkpoint and reports [`RunOutcome::Paused`], so that a
    /// host with a time limit (Lambda's 15 minutes) can ask for the rest in a new message.
    pub pause_after: Option<Duration>,
}

impl Default for RunOptions {
    fn default() -> Self {
        Self {
            batch_rows: BATCH_ROWS,
            pause_after: None,
        }
    }
}

/// What a run came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RunOutcome {
    /// The import ended in this run, completed or failed.
    Finished(Import),
    /// The run stopped at a checkpoint after `pause_after`; another run continues from there.
    Paused(Import),
    /// The import's start has not landed yet (it still awaits its upload): try again later.
    NotStarted,
    /// Nothing to do: the import is gone or finished, or a newer run took it over.
    Skipped(Skip),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Skip {
    Gone,
    Finished,
    Superseded,
}

/// Runs (or resumes) the import a message names. Errors are transient (a port failed): the message should
/// be retried, and the retry resumes from the last checkpoint.
pub async fn run_import(
    ports: &Ports,
    message: &ImportMessage,
    options: &RunOptions,
) -> DomainResult<RunOutcome> {
    let table = ports.table.as_ref();
    let Some(import) = get_import(table, &message.workspace_id, &message.import_id).await? else {
        return Ok(RunOutcome::Skipped(Skip::Gone));
    };
    match import.status {
        status if status.is_finished() => return Ok(RunOutcome::Skipped(Skip::Finished)),
        ImportStatus::AwaitingUpload => return Ok(RunOutcome::NotStarted),
        _ => {}
    }
    let now = ports.clock.now();
    let import = match write(
        table,
        &import,
        status_update(ImportStatus::Running, now),
        now,
    )
    .await
    {
        Ok(import) => import,
        Err(error) => return superseded_or(error),
    };
    let stream = ports
        .blobs
        .get_stream(&upload_key(&import.workspace_id, &import.id))
        .await?;
    let mut run = Run::new(ports, import, options);
    let result = match stream {
        Some(stream) => run.read(stream).await,
        None => run.fail("the uploaded file is gone").await,
    };
    result.or_else(superseded_or)
}

/// Ends an import as failed unless it finished already; for a host that gives up on its message.
pub async fn fail_import(ports: &Ports, message: &ImportMessage, reason: &str) -> DomainResult<()> {
    let table = ports.table.as_ref();
    let Some(import) = get_import(table, &message.workspace_id, &message.import_id).await? else {
        return Ok(());
    };
    if import.status.is_finished() {
        return Ok(());
    }
    let now = ports.clock.now();
    match write(table, &import, failure_update(reason, now), now).await {
        // Someone else wrote meanwhile: their outcome stands.
        Err(DomainError::Port(PortError::ConditionFailed)) => Ok(()),
        other => other.map(|_| ()),
    }
}

fn superseded_or(error: DomainError) -> DomainResult<RunOutcome> {
    match error {
        DomainError::Port(PortError::ConditionFailed) => Ok(RunOutcome::Skipped(Skip::Superseded)),
        other => Err(other),
    }
}

/// One run over the file.
struct Run<'a> {
    ports: &'a Ports,
    options: &'a RunOptions,
    /// The record as last written by this run.
    import: Import,
    started: Instant,
    /// Data rows committed by earlier runs: read again, not accepted again.
    resume_after: u64,
    columns: Option<Columns>,
    /// The number of the last record read; the header is row 1.
    row: u64,
    batch: Batch,
}

/// Rows read since the last checkpoint.
#[derive(Default)]
struct Batch {
    rows: u64,
    events: Vec<Event>,
    errors: Vec<RowError>,
}

/// What reading one record asks of the run.
enum Next {
    Continue,
    Commit,
    Fail(String),
}

impl<'a> Run<'a> {
    fn new(ports: &'a Ports, import: Import, options: &'a RunOptions) -> Self {
        Self {
            ports,
            options,
            resume_after: import.counts.rows_read,
            import,
            started: Instant::now(),
            columns: None,
            row: 0,
            batch: Batch::default(),
        }
    }

    async fn read(&mut self, mut stream: ByteStream) -> DomainResult<RunOutcome> {
        let mut splitter = RecordSplitter::new(MAX_ROW_BYTES, MAX_COLUMNS);
        loop {
            let chunk = match stream.next().await {
                // An empty chunk would tell the splitter the file ended.
                Some(Ok(chunk)) if chunk.is_empty() => continue,
                Some(Ok(chunk)) => chunk,
                Some(Err(error)) => return Err(self.read_error(&error)),
                None => Bytes::new(),
            };
            let at_end = chunk.is_empty();
            let mut input = &chunk[..];
            loop {
                let (split, used) = splitter.split(input, at_end);
                input = &input[used..];
                match split {
                    Split::Record => {
                        let next = self.take(splitter.record());
                        if let Some(outcome) = self.after(next, splitter.position()).await? {
                            return Ok(outcome);
                        }
                    }
                    Split::NeedInput => break,
                    Split::End => return self.finish(splitter.position()).await,
                }
            }
        }
    }

    /// Reads one record into the batch.
    fn take(&mut self, record: RawRecord<'_>) -> Next {
        self.row += 1;
        let Some(columns) = &self.columns else {
            return match header_of(record) {
                Ok(columns) => {
                    self.columns = Some(columns);
                    Next::Continue
                }
                Err(error) => Next::Fail(format!("row 1 (the header): {error}")),
            };
        };
        if self.row - 1 <= self.resume_after {
            return Next::Continue;
        }
        let mapped = match record {
            RawRecord::Fields(fields) => map_row(columns, &fields),
            RawRecord::TooLarge => Err(RowProblem::whole_row(format!(
                "the row is larger than {MAX_ROW_BYTES} bytes"
            ))),
            RawRecord::TooManyFields => Err(RowProblem::whole_row(format!(
                "the row has more than {MAX_COLUMNS} fields; the header has {}",
                columns.len()
            ))),
        };
        match mapped {
            Ok(row) => {
                let event = row.into_event(&self.import.workspace_id, self.ports.clock.now());
                self.batch.events.push(event);
            }
            Err(problem) => self.batch.errors.push(problem.at_row(self.row)),
        }
        self.batch.rows += 1;
        if self.batch.rows >= self.options.batch_rows as u64 {
            Next::Commit
        } else {
            Next::Continue
        }
    }

    /// Acts on what a record asked for; `Some` ends the run.
    async fn after(&mut self, next: Next, position: u64) -> DomainResult<Option<RunOutcome>> {
        match next {
            Next::Continue => Ok(None),
            Next::Fail(reason) => self.fail(&reason).await.map(Some),
            Next::Commit => {
                self.commit(position, Update::new()).await?;
                let paused = self
                    .options
                    .pause_after
                    .is_some_and(|limit| self.started.elapsed() >= limit);
                Ok(paused.then(|| RunOutcome::Paused(self.import.clone())))
            }
        }
    }

    async fn finish(&mut self, position: u64) -> DomainResult<RunOutcome> {
        if self.columns.is_none() {
            return self.fail(&HeaderError::Empty.to_string()).await;
        }
        let now = self.ports.clock.now();
        self.commit(position, status_update(ImportStatus::Completed, now))
            .await?;
        Ok(RunOutcome::Finished(self.import.clone()))
    }

    async fn fail(&mut self, reason: &str) -> DomainResult<RunOutcome> {
        let now = self.ports.clock.now();
        self.import = write(
            self.ports.table.as_ref(),
            &self.import,
            failure_update(reason, now),
            now,
        )
        .await?;
        Ok(RunOutcome::Finished(self.import.clone()))
    }

    /// Accepts the batch's events, stores its row errors, and saves the progress (with `extra` changes) as
    /// the new checkpoint.
    async fn commit(&mut self, position: u64, extra: Update) -> DomainResult<()> {
        let batch = std::mem::take(&mut self.batch);
        let mut counts = self.import.counts;
        let mut errors_kept = self.import.errors_kept;
        if !batch.events.is_empty() {
            let accepted =
                ingest::accept(self.ports, &self.import.workspace_id, batch.events).await?;
            counts.imported += accepted.stored as u64;
            counts.unchanged += accepted.duplicates as u64;
        }
        let room = MAX_KEPT_ROW_ERRORS.saturating_sub(errors_kept) as usize;
        let kept = &batch.errors[..batch.errors.len().min(room)];
        put_row_errors(
            self.ports.table.as_ref(),
            &self.import.workspace_id,
            &self.import.id,
            kept,
        )
        .await?;
        errors_kept += kept.len() as u64;
        counts.failed += batch.errors.len() as u64;
        counts.rows_read += batch.rows;
        counts.bytes_read = position;

        let mut update = progress_update(&counts, errors_kept);
        update.set.extend(extra.set);
        update.set_if_absent.extend(extra.set_if_absent);
        let now = self.ports.clock.now();
        self.import = write(self.ports.table.as_ref(), &self.import, update, now).await?;
        Ok(())
    }

    fn read_error(&self, error: &std::io::Error) -> DomainError {
        DomainError::Port(PortError::Unavailable(format!(
            "reading the file of import {} after row {}: {error}",
            self.import.id, self.row
        )))
    }
}

fn header_of(record: RawRecord<'_>) -> Result<Columns, HeaderError> {
    match record {
        RawRecord::Fields(fields) => Columns::parse(&fields),
        RawRecord::TooLarge => Err(HeaderError::TooLarge),
        RawRecord::TooManyFields => Err(HeaderError::TooManyColumns),
    }
}
